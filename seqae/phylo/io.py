"""Files of the tree stage: FASTA families in (or NEXUS, PHYLIP, Stockholm, Clustal), Newick/NHX trees in and out.

Reading checks the input and raises :class:`seqae.errors.InputError`, one
line ``<path>:<line>: <what>``, for each problem a user can fix: an empty
file, sequence text before the first header (naming the format when it is
another alignment format's), a header without a name, a header name that is not UTF-8, a name
that a Newick tree cannot hold, a duplicate name, a character outside IUPAC
DNA (with its line and column), a record without sequence, fewer than 4
sequences, unequal lengths where an alignment is required; for trees, text
that is not one Newick tree and leaves that do not match the family.

Writing goes through :func:`seqae.fileio.atomic_output` (temporary file, then
rename). Newick is written with branch lengths (12 significant digits) and
internal node names where there are any; NHX adds ``[&&NHX:key=value:...]``
per node. Both read back with ete3 and with ``Bio.Phylo.read(path,
"newick")`` (which keeps the NHX block as each clade's ``comment``).
"""

from __future__ import annotations

import gzip
import io
import os
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqae.errors import InputError
from seqae.fileio import atomic_output, not_text, require_file
from seqae.phylo.alignment_formats import READABLE, detect_format, read_records
from seqae.phylo.alphabet import VALID_BYTES, encode

__all__ = [
    "MIN_FAMILY_SIZE",
    "Family",
    "read_family",
    "read_tree",
    "write_family",
    "write_newick",
    "write_nhx",
]

#: A family needs this many sequences: an unrooted tree of 3 has no topology.
MIN_FAMILY_SIZE = 4
#: Characters a name cannot hold: Newick's own (unquoted), whitespace, and '=', which
#: ete3's Newick writer turns into '_' (a name would change, or two become one).
_NAME_BAD = re.compile(r"[()\[\]:;,'\"=\s]")
#: NHX values must not contain these.
_NHX_BAD = re.compile(r"[()\[\]:;,=\s]")
_DIST_FORMAT = "%0.12g"


@dataclass(frozen=True)
class Family:
    """A family of homologous sequences read from FASTA.

    Attributes:
        names: the record names (first word of each header), unique.
        sequences: the sequences in upper case, gaps kept.
        path: the file read.
    """

    names: list[str]
    sequences: list[str]
    path: Path | None = None

    @property
    def aligned(self) -> bool:
        """True when all sequences have the same length."""
        return len({len(s) for s in self.sequences}) == 1

    def codes(self) -> np.ndarray:
        """``[n, L]`` uint8 codes (A=0 C=1 G=2 T=3, gap/ambiguous=4).

        Raises:
            ValueError: the sequences are not aligned (unequal lengths).
        """
        if not self.aligned:
            raise ValueError("the family is not aligned (sequences of unequal lengths)")
        return np.stack([encode(s) for s in self.sequences])

    def as_dict(self) -> dict[str, str]:
        """name -> sequence."""
        return dict(zip(self.names, self.sequences))


def _name_problem(name: str) -> str | None:
    if not name:
        return "has no name"
    bad = _NAME_BAD.search(name)
    if bad:
        if bad.group() == "=":
            return f"name {name!r} contains '=', which the Newick trees written by ete3 turn into '_'"
        return f"name {name!r} contains {bad.group()!r}, which a Newick tree cannot hold"
    return None


def read_family(path: str | os.PathLike[str], aligned_required: bool = True) -> Family:
    """Read a family of homologous DNA sequences, checking it.

    Args:
        path: FASTA file, plain or gzip; lines may wrap; lower case, IUPAC
            ambiguity codes, ``U``, gaps (``-``, ``.``) and ``?`` (missing)
            are accepted. An alignment in NEXUS, PHYLIP, Stockholm or Clustal
            format is read too (:mod:`seqae.phylo.alignment_formats`).
        aligned_required: all sequences must have the same length.

    Returns:
        :class:`Family` with at least :data:`MIN_FAMILY_SIZE` sequences.

    Raises:
        InputError: one line naming the file, the line (the record, for the
            formats other than FASTA) and the problem.
    """
    p = require_file(path, "FASTA file")
    raw = p.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip or bgzip, as genome FASTAs often come
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(p, f"is not a valid gzip file ({exc})") from None
    what = not_text(raw[:4096])
    if what is not None:
        raise InputError(p, f"is {what}")
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark, as some editors save
    if not raw.strip():
        raise InputError(p, "empty file: no FASTA records")
    first = raw.lstrip().split(b"\n", 1)[0].strip()
    other = None if first.startswith(b">") else detect_format(first)
    if other in READABLE:
        records = _other_records(p, raw, other)
    else:
        records = _fasta_records(p, raw, other)
    names = [name for name, _, _ in records]
    sequences = [seq for _, seq, _ in records]
    for name, seq, number in records:
        if not seq:
            raise InputError(p, f"record {name!r} has no sequence", number)
    if len(names) < MIN_FAMILY_SIZE:
        raise InputError(p, f"only {len(names)} sequences; a family needs at least {MIN_FAMILY_SIZE}")
    if aligned_required:
        length = len(sequences[0])
        for name, seq, number in records:
            if len(seq) != length:
                raise InputError(
                    p,
                    f"record {name!r} has {len(seq)} characters but {names[0]!r} has {length}; "
                    "an alignment needs sequences of equal length",
                    number,
                )
    return Family(names=names, sequences=sequences, path=p)


def _fasta_records(p: Path, raw: bytes, other: str | None) -> list[tuple[str, str, int | None]]:
    """``(name, sequence in upper case, header line)`` of each FASTA record, each line checked.

    ``other``: the format the first line looks like (named when the file has text before any header).
    """
    records: list[tuple[str, int, list[bytes]]] = []
    first_seen: dict[str, int] = {}
    for number, line in enumerate(raw.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(b">"):
            words = line[1:].split()
            name = _checked_name(p, words[0] if words else b"", number, first_seen)
            first_seen[name] = number
            records.append((name, number, []))
            continue
        if not records:
            hint = (
                f"; this looks like a {other} file, which the tree stage does not read: convert it to aligned FASTA"
                if other else ""
            )  # fmt: skip
            raise InputError(p, "sequence text before the first '>' header" + hint, number)
        _check_characters(p, line, records[-1][0], number)
        records[-1][2].append(line)
    if not records:
        raise InputError(p, "no FASTA records (no line starts with '>')")
    return [(name, b"".join(parts).decode("ascii").upper(), number) for name, number, parts in records]


def _other_records(p: Path, raw: bytes, fmt: str) -> list[tuple[str, str, None]]:
    """``(name, sequence in upper case, None)`` of each record of a NEXUS, PHYLIP, Stockholm or Clustal alignment."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(p, f"is not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8") from None
    first_seen: dict[str, int] = {}
    records = []
    for index, (name, seq) in enumerate(read_records(p, text, fmt)):
        name = _checked_name(p, name.encode(), None, first_seen, record=index + 1)
        first_seen[name] = index + 1
        _check_characters(p, seq.encode("utf-8"), name, None)
        records.append((name, seq.upper(), None))
    return records


def _checked_name(
    p: Path, word: bytes, number: int | None, first_seen: dict[str, int], record: int | None = None
) -> str:
    """The sequence name ``word`` decoded and checked (UTF-8, Newick-safe, not seen before)."""
    where = "FASTA header" if record is None else f"record {record}'s"
    try:
        name = word.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            p, f"{where} name is not UTF-8 text (byte 0x{word[exc.start]:02x}); save the file as UTF-8", number
        ) from None
    problem = _name_problem(name)
    if problem:
        raise InputError(p, f"{where} {problem}", number)
    if name in first_seen:
        first = f"line {first_seen[name]}" if record is None else f"record {first_seen[name]}"
        raise InputError(p, f"duplicate sequence name {name!r} (first at {first})", number)
    return name


def _check_characters(p: Path, text: bytes, name: str, number: int | None) -> None:
    """Raise at the first character of ``text`` (record ``name``) outside IUPAC DNA, gaps and ``?``."""
    bad = text.translate(None, VALID_BYTES)
    if bad:
        column = text.index(bad[:1]) + 1
        char = bad[:1].decode("latin-1")
        raise InputError(p, f"character {char!r} at column {column} of record {name!r} is not IUPAC DNA", number)


def write_family(records: Family | Mapping[str, str], path: str | os.PathLike[str], line_width: int = 60) -> Path:
    """Write sequences as FASTA (atomically), ``line_width`` characters a line."""
    items: Iterable[tuple[str, str]] = (
        zip(records.names, records.sequences) if isinstance(records, Family) else records.items()
    )
    with atomic_output(path) as tmp, open(tmp, "w") as handle:
        for name, seq in items:
            handle.write(f">{name}\n")
            handle.writelines(seq[start : start + line_width] + "\n" for start in range(0, len(seq), line_width))
    return Path(path)


def _mask_comments(text: str) -> str:
    """``text`` with ``[...]`` comments blanked (same length) for structure checks."""
    return re.sub(r"\[[^\]]*\]", lambda m: " " * len(m.group()), text)


def _newick_problem(text: str) -> str | None:
    """Why ``text`` is not one rooted Newick tree, or None (ete3 is lenient)."""
    plain = _mask_comments(text).strip()
    if "[" in plain or "]" in plain:
        return "unbalanced '[' ']' comment brackets"
    if not plain.endswith(";"):
        return "the tree does not end with ';'"
    if plain.count(";") > 1:
        return f"{plain.count(';')} ';' found; expected exactly one tree"
    if not plain.startswith("("):
        return "the tree does not start with '('"
    depth = 0
    closed_at = -1  # where the outermost '(' closes
    for pos, char in enumerate(plain):
        if char == "(":
            if depth == 0 and closed_at >= 0:
                return f"text after the outermost ')' at character {closed_at + 1} is not the root's label"
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return f"unmatched ')' at character {pos + 1}"
            if depth == 0:
                closed_at = pos
        elif char == "," and depth == 0:
            return f"text after the outermost ')' at character {closed_at + 1} is not the root's label"
    if depth != 0:
        return f"{depth} '(' not closed"
    return None


def _few(names: Iterable[str], k: int = 5) -> str:
    items = sorted(names)
    more = f" and {len(items) - k} more" if len(items) > k else ""
    return ", ".join(map(repr, items[:k])) + more


def _nexus_tree(path: Path, text: str) -> str:
    """The one tree of a NEXUS file (MrBayes, BEAST, PAUP*), its TRANSLATE table applied, as Newick."""
    from Bio import Phylo

    # MrBayes and BEAST annotate nodes and branches with [&...] comments (MrBayes's hold
    # quotes and parentheses, which Bio.Nexus cannot read), and Bio writes any it keeps
    # as escaped text that is no Newick. They carry nothing here: drop every comment.
    text = re.sub(r"\[[^\]]*\]", "", text)
    try:
        trees = list(Phylo.parse(io.StringIO(text), "nexus"))
    except Exception as exc:  # noqa: BLE001 - Bio.Nexus raises bare Exceptions and NexusErrors alike
        raise InputError(path, f"not a readable NEXUS file: {' '.join(str(exc).split())[:200]}") from None
    if len(trees) != 1:
        raise InputError(path, f"the NEXUS file holds {len(trees)} trees; expected exactly one")
    out = io.StringIO()
    Phylo.write(trees, out, "newick", format_branch_length=_DIST_FORMAT)  # Bio's default keeps 8 digits
    return out.getvalue().strip()


def read_tree(path: str | os.PathLike[str], leaf_names: Sequence[str] | None = None):
    """Read one Newick/NHX tree, checking it.

    Args:
        path: a file with one tree (branch lengths and NHX attributes
            optional; internal labels are read as node names; quoted names
            lose their quotes; other ``[...]`` comments are dropped). NHX
            values are read as text. A NEXUS file with one tree (MrBayes,
            BEAST) is read too, its TRANSLATE table applied.
        leaf_names: if given, the tree's leaves must be exactly these names
            (e.g. the family's sequence names).

    Returns:
        ``ete3.Tree``.

    Raises:
        InputError: empty file, not one Newick tree (with ete3's or our
            reason), unnamed or duplicate leaves, or leaves that differ from
            ``leaf_names`` (a few of each side are listed).
    """
    from seqae.phylo.ete import NewickError, Tree

    p = require_file(path, "tree file")
    text = p.read_text(encoding="utf-8-sig", errors="replace").strip()  # utf-8-sig: a byte-order mark is skipped
    if not text:
        raise InputError(p, "empty file: no Newick tree")
    if text[:6].upper() == "#NEXUS":
        text = _nexus_tree(p, text)
    problem = _newick_problem(text)
    if problem:
        raise InputError(p, f"not a valid Newick tree: {problem}")
    # Comments other than NHX's (BEAST's [&R], [&rate=...]) carry nothing here, and ete3 rejects them.
    text = re.sub(r"\[(?!&&NHX)[^\]]*\]", "", text)
    try:
        tree = Tree(text, format=1, quoted_node_names=True)
    except (NewickError, ValueError, TypeError) as exc:
        reason = " ".join(str(exc).split()).split(" You may want to check")[0]
        raise InputError(p, f"not a valid Newick tree: {reason}") from None
    names = [leaf.name for leaf in tree.get_leaves()]
    if any(not name for name in names):
        raise InputError(p, f"{sum(1 for x in names if not x)} leaves have no name")
    seen: set[str] = set()
    dups = {x for x in names if x in seen or seen.add(x)}
    if dups:
        raise InputError(p, f"duplicate leaf names: {_few(dups)}")
    if leaf_names is not None:
        expected = set(leaf_names)
        only_tree, only_family = seen - expected, expected - seen
        if only_tree or only_family:
            parts = []
            if only_tree:
                parts.append(f"{len(only_tree)} only in the tree ({_few(only_tree)})")
            if only_family:
                parts.append(f"{len(only_family)} only in the FASTA ({_few(only_family)})")
            raise InputError(p, "tree leaves do not match the FASTA: " + "; ".join(parts))
    return tree


def _check_writable(tree, features: Sequence[str] = ()) -> None:
    for node in tree.traverse():
        if node.is_leaf():
            problem = _name_problem(node.name)
            if problem:
                raise ValueError(f"leaf {problem}")
        elif node.name and _NAME_BAD.search(node.name):
            raise ValueError(f"internal node name {node.name!r} contains a character Newick cannot hold")
        for key in features:
            if hasattr(node, key) and _NHX_BAD.search(str(getattr(node, key))):
                raise ValueError(f"NHX value {key}={getattr(node, key)!r} contains a reserved character")


def write_newick(tree, path: str | os.PathLike[str]) -> Path:
    """Write an ete3 tree as Newick: leaf names, internal names, branch lengths.

    Atomic (temporary file, then rename). Branch lengths keep 12 significant
    digits. A named root is written with its name (e.g. ``...)N1;`` after
    :func:`~seqae.phylo.ancestral.name_internal_nodes`).

    Raises:
        ValueError: a leaf without a name or with a Newick special character.
    """
    _check_writable(tree)
    with atomic_output(path) as tmp:
        tree.write(outfile=str(tmp), format=1, dist_formatter=_DIST_FORMAT, format_root_node=bool(tree.name))
    return Path(path)


def write_nhx(tree, path: str | os.PathLike[str], features: Sequence[str]) -> Path:
    """Write an ete3 tree as NHX: Newick plus ``[&&NHX:key=value...]`` per node.

    Args:
        tree: nodes carry the ``features`` as attributes (``node.add_feature``),
            e.g. ``disc_score`` or a leaf ``label``; nodes without one skip it.
            The root's attributes are written too.
        path: output file (written atomically).
        features: attribute names to write.

    Raises:
        ValueError: bad leaf names, or a value containing one of ``()[]:;,=``
            or whitespace.
    """
    features = list(features)
    _check_writable(tree, features)
    with atomic_output(path) as tmp:
        tree.write(outfile=str(tmp), format=1, features=features, dist_formatter=_DIST_FORMAT, format_root_node=True)
    return Path(path)
