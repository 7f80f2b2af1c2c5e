"""The tree stage's inputs, read and checked before any fit: batch tables, families, reference trees, labels.

:func:`read_batch` reads the table of a batch (``seqae trees --batch``);
:func:`prepare_family` reads one family's aligned FASTA, its reference tree
and leaf labels into a :class:`PreparedFamily`, and raises a one-line
:class:`~seqae.errors.InputError` (or :class:`~seqae.errors.ConfigError`)
naming the file on bad input, so that a batch fails in seconds, before any
fitting. Alignment columns without any base are kept, with a warning (see
:mod:`seqae.phylo.stage`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqae.config import FILE_NAME_PATTERN
from seqae.errors import ConfigError, InputError
from seqae.fileio import require_file
from seqae.phylo.alphabet import CODE_MISSING, partial_codes
from seqae.phylo.io import read_family, read_tree

__all__ = ["PreparedFamily", "prepare_family", "read_batch", "read_labels"]

log = logging.getLogger("seqae")

#: Above this share of ambiguity codes among the non-gap characters an alignment is warned about:
#: DNA alignments hold a few percent at most; protein letters (A, C, G, T, R, S, W, K, M, D, H,
#: V, N, Y) pass as IUPAC DNA.
AMBIGUOUS_WARN_SHARE = 0.25
_FAMILY_NAME = re.compile(FILE_NAME_PATTERN)
_NHX_RESERVED = re.compile(r"[()\[\]:;,=\s]+")


def read_labels(labels: Mapping[str, str] | str | os.PathLike[str] | None, names: Sequence[str]) -> dict[str, str]:
    """Leaf labels from a mapping or a two-column TSV (name, label; no header).

    Labels are made safe for NHX (reserved characters and whitespace -> ``_``).

    Raises:
        InputError: a TSV line without two fields, a name labelled twice, or a name not in the family.
    """
    if labels is None:
        return {}
    if isinstance(labels, Mapping):
        raw = {str(k): str(v) for k, v in labels.items()}
        source: str | Path = "labels"
    else:
        source = require_file(labels, "labels file")
        raw, first_line = {}, {}
        for number, line in enumerate(Path(source).read_text().splitlines(), start=1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 2 or not fields[0]:
                raise InputError(source, "expected two tab-separated fields: sequence name, label", number)
            if fields[0] in first_line:
                raise InputError(
                    source, f"sequence {fields[0]!r} is labelled twice (first on line {first_line[fields[0]]})", number
                )
            first_line[fields[0]] = number
            raw[fields[0]] = fields[1]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise InputError(source, f"labels name sequences not in the family: {', '.join(map(repr, unknown[:3]))}{more}")
    return {k: (_NHX_RESERVED.sub("_", v).strip("_") or "_") for k, v in raw.items()}


@dataclass
class PreparedFamily:
    """One family read and checked, waiting for its fit.

    Attributes:
        name: the family's name (letters, digits, ``_``, ``.``, ``-``).
        fasta: its aligned FASTA.
        outdir: where its outputs go.
        names: the ``n`` sequence names, in FASTA order.
        codes: ``[n, L]`` uint8 codes, A C G T = 0..3, gap or ambiguous = 4
            (:meth:`seqae.phylo.io.Family.codes`).
        partials: ``[n, L]`` codes 0..14 that keep ambiguity codes
            (:func:`~seqae.phylo.alphabet.partial_codes`).
        reference: the reference tree (``ete3.Tree``) or None.
        labels: sequence name -> leaf label, safe for NHX.
    """

    name: str
    fasta: Path
    outdir: Path
    names: list[str]
    codes: np.ndarray
    partials: np.ndarray
    reference: Any
    labels: dict[str, str]


def prepare_family(fasta, outdir, reference_tree, labels, family: str | None) -> PreparedFamily:
    """Read and check one family (one-line InputError/ConfigError naming the file on bad input)."""
    fasta = Path(fasta)
    name = family if family is not None else fasta.name.split(".")[0]
    if not _FAMILY_NAME.match(name or ""):
        raise ConfigError(f"family name {name!r} may hold only letters, digits, '_', '.' and '-', and not only dots")
    fam = read_family(fasta, aligned_required=True)
    codes = fam.codes()
    overlap = _check_overlap(codes, fam.names)
    if overlap:
        raise InputError(fasta, overlap)
    partials = partial_codes(fam.sequences)  # read_family checked the characters
    empty = np.flatnonzero((partials == CODE_MISSING).all(axis=0))
    if empty.size:
        log.warning(
            "%s: %d alignment column%s (first: column %d) hold only gaps or N; kept, as IQ-TREE keeps them, but they "
            "add nothing to the likelihood and are N in the ancestral sequences",
            fasta, empty.size, "s" if empty.size > 1 else "", int(empty[0]) + 1,
        )  # fmt: skip
    present = partials != CODE_MISSING
    ambiguous = float((partials > CODE_MISSING).sum() / max(int(present.sum()), 1))
    if ambiguous > AMBIGUOUS_WARN_SHARE:
        log.warning(
            "%s: %.0f%% of the bases are IUPAC ambiguity codes (R, Y, K, ...); is this DNA? A protein alignment "
            "in letters that IUPAC DNA also uses reads as DNA here", fasta, 100 * ambiguous,
        )  # fmt: skip
    if (partials == partials[:1]).all():
        log.warning(
            "%s: all %d sequences are identical; every topology fits them equally well, and the trees' branch "
            "lengths sit at their minimum", fasta, len(fam.names),
        )  # fmt: skip
    reference = None
    if reference_tree is not None:
        if isinstance(reference_tree, (str, os.PathLike)):
            reference = read_tree(reference_tree, leaf_names=fam.names)
        else:
            reference = reference_tree
            leaves = {leaf.name for leaf in reference.get_leaves()}
            if leaves != set(fam.names):
                raise InputError(fasta, "the reference tree's leaves do not match the FASTA's sequence names")
    return PreparedFamily(
        name, fasta, Path(outdir), list(fam.names), codes, partials, reference, read_labels(labels, fam.names)
    )


def read_batch(path: str | os.PathLike[str], outdir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Families of a batch from a TSV with a header: ``name``, ``fasta`` and optionally ``reference``, ``labels``.

    Relative paths are taken as they are (from the working directory); empty
    cells mean none. Each family's outputs go to ``outdir/name/``.

    Raises:
        InputError: not such a table, a missing column, no rows, or a row whose file does not exist
            (named by its line).
    """
    source = require_file(path, "batch table")
    try:
        table = pd.read_csv(source, sep="\t", dtype=str, keep_default_na=False, index_col=False)
        lines = source.read_text().splitlines()
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(source, f"not a tab-separated table ({str(exc).splitlines()[0]})") from None
    # pandas would fill a short row with blanks and take a long row's first field as its index,
    # shifting the others: the error then named another family's file.
    fields = [text.count("\t") + 1 for text in lines]
    for line, (text, n) in enumerate(zip(lines[1:], fields[1:]), start=2):
        if text.strip() and n != fields[0]:
            raise InputError(source, f"{n} tab-separated fields; the header has {fields[0]}", line)
    missing = [c for c in ("name", "fasta") if c not in table.columns]
    if missing or table.empty:
        raise InputError(
            source, f"needs a header with name and fasta and at least one row (missing: {missing or 'rows'})"
        )
    specs = []
    seen: dict[str, int] = {}
    for line, record in enumerate(table.to_dict("records"), start=2):  # line 1 is the header
        if not _FAMILY_NAME.match(record["name"]):
            raise InputError(source, f"family name {record['name']!r} may hold only letters, digits, '_', '.' and "
                             "'-', and not only dots", line)  # fmt: skip
        if record["name"] in seen:
            raise InputError(
                source, f"family {record['name']!r} is listed twice (first on line {seen[record['name']]})", line
            )
        seen[record["name"]] = line
        for column in ("fasta", "reference", "labels"):
            value = record.get(column) or None
            if (column == "fasta" or value) and not Path(value or "").is_file():
                raise InputError(source, f"family {record['name']!r}: its {column} file {value!r} does not exist", line)
        specs.append({
            "name": record["name"], "fasta": record["fasta"], "outdir": Path(outdir) / record["name"],
            "reference": record.get("reference") or None, "labels": record.get("labels") or None,
        })  # fmt: skip
    return specs


def _check_overlap(codes: np.ndarray, names: Sequence[str]) -> str | None:
    from seqae.phylo.distance import pair_counts

    blank = np.flatnonzero(~(codes < CODE_MISSING).any(axis=1))
    if blank.size:
        return (
            f"record {names[int(blank[0])]!r} has no A, C, G or T (only gaps, N or other ambiguity codes); "
            "no distance to it is defined: remove it from the family"
        )
    sites = pair_counts(codes).sites
    np.fill_diagonal(sites, 1)
    if (sites == 0).any():
        i, j = (int(x) for x in np.argwhere(sites == 0)[0])
        return f"sequences {names[i]!r} and {names[j]!r} share no site where both have a definite base"
    return None
