"""Chromosome names: how the names of peaks, annotations, blacklists and bigWigs meet a FASTA's.

``chr1`` / ``1`` / ``Chr1`` and ``chrM`` / ``MT`` / ``M`` meet by the ``auto``
rule; an alias table (UCSC's ``chromAlias.txt`` layout) maps any other naming.
:meth:`ChromAliases.shared_keys` gives the name under which one chromosome of
several genomes meets (splits with shared coordinates, chromosome hold-outs).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from seqae.errors import InputError
from seqae.fileio import require_file

log = logging.getLogger("seqae")


def chrom_key(name: str) -> str:
    """A name under which ``chr1``/``1``/``Chr1`` and ``chrM``/``MT``/``M`` meet."""
    key = name.strip().lower().removeprefix("chr")
    return "m" if key in ("m", "mt") else key


def harmonise_chrom_names(names: Iterable[str], reference: Iterable[str]) -> dict[str, str]:
    """Map each of ``names`` to the ``reference`` (FASTA) name it denotes, by the ``auto`` rule.

    An exact match wins; otherwise names are matched by :func:`chrom_key`
    (``chr`` prefix and mitochondrion spelling ignored). Names with no
    counterpart are left out of the mapping. See :class:`ChromAliases`.
    """
    return ChromAliases(reference).match(names)


#: ``chrom_aliases`` values that are rules, not alias files.
ALIAS_RULES = ("auto", "none")


class ChromAliases:
    """How chromosome names of peaks, annotations, blacklists and bigWigs meet the FASTA's (``chrom_aliases``).

    An exact name always matches. Beyond that, ``rule`` is ``"auto"``
    (``chr1`` / ``1`` / ``Chr1`` and ``chrM`` / ``MT`` / ``M`` meet, both ways),
    ``"none"`` (exact names only), or the path of an alias table: UCSC's
    ``chromAlias.txt`` layout, tab-separated, one line per sequence holding
    every name of it (``#`` lines are headers); each name on a line whose
    names include a FASTA name maps to that FASTA name. A name found on the
    lines of two FASTA sequences is ambiguous and not used (logged).

    Raises:
        InputError: an alias file that is missing or names no FASTA sequence.
    """

    def __init__(self, reference: Iterable[str], rule: str = "auto"):
        self.reference = list(reference)
        self.rule = rule
        self._exact = set(self.reference)
        self._aliases: dict[str, str] = {}
        if rule == "auto":
            for ref in self.reference:
                self._aliases.setdefault(chrom_key(ref), ref)
        elif rule != "none":
            self._aliases = _read_alias_table(rule, self.reference)

    def _lookup(self, name: str) -> str | None:
        if name in self._exact:
            return name
        if self.rule == "auto":
            return self._aliases.get(chrom_key(name))
        return self._aliases.get(name)

    def match(self, names: Iterable[str]) -> dict[str, str]:
        """``{name: FASTA name}`` for every one of ``names`` that has a counterpart."""
        found = {name: self._lookup(name) for name in set(names)}
        return {name: ref for name, ref in found.items() if ref is not None}

    def shared_keys(self) -> dict[str, str]:
        """FASTA name -> the name under which the same chromosome of another genome meets it.

        The shortest :func:`chrom_key` among the sequence's names (an alias
        table's included), so that ``chr1``, ``1`` and ``NC_000001.11`` (with
        a table that also names it ``1``) meet: what splits with
        ``shared_coordinates`` and chromosome hold-outs compare across genomes.
        """
        names: dict[str, list[str]] = {ref: [ref] for ref in self.reference}
        if self.rule not in ALIAS_RULES:
            for alias, ref in self._aliases.items():
                names[ref].append(alias)
        return {ref: min(map(chrom_key, aliases), key=lambda k: (len(k), k)) for ref, aliases in names.items()}

    def holdout_matcher(self) -> ChromAliases:
        """How configured hold-out names meet this FASTA's: its alias table, else the ``auto`` rule."""
        return self if self.rule not in ALIAS_RULES else ChromAliases(self.reference, "auto")

    def map_source(self, source: str | os.PathLike[str], names: Iterable[str]) -> dict[str, str]:
        """:meth:`match`, logging once the names of ``source`` that were renamed (the alias rule at work)."""
        mapping = self.match(names)
        renamed = sorted((name, ref) for name, ref in mapping.items() if name != ref)
        if renamed:
            how = f"chrom_aliases: {self.rule}" if self.rule in ALIAS_RULES else f"the alias table {self.rule}"
            log.info(
                "%s: %d chromosome names matched to the FASTA's by %s (%s%s)",
                source,
                len(renamed),
                how,
                ", ".join(f"{name} -> {ref}" for name, ref in renamed[:5]),
                ", ..." if len(renamed) > 5 else "",
            )
        return mapping


def _read_alias_table(path: str | os.PathLike[str], reference: list[str]) -> dict[str, str]:
    """Alias -> FASTA name from a UCSC-style alias table (see :class:`ChromAliases`)."""
    p = require_file(path, "chromosome alias table")
    exact = set(reference)
    aliases: dict[str, str] = {}
    ambiguous: set[str] = set()
    names_a_sequence = False
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(p, f"cannot read the chromosome alias table ({exc})") from None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        names = [n.strip() for n in line.split("\t") if n.strip()]
        refs = [n for n in names if n in exact]
        if not refs:
            continue
        names_a_sequence = True
        for name in names:
            if name in exact:
                continue
            if aliases.setdefault(name, refs[0]) != refs[0]:
                ambiguous.add(name)
    if not names_a_sequence:
        raise InputError(p, f"no line names a sequence of the FASTA (FASTA has: {', '.join(reference[:5])})")
    for name in ambiguous:
        del aliases[name]
    if ambiguous:
        log.warning("%s: %d names stand for several FASTA sequences and are not used (e.g. %s)",
                    p, len(ambiguous), min(ambiguous))  # fmt: skip
    return aliases
