"""Alignments in the formats other than FASTA that phylogenetics programs write: NEXUS, PHYLIP, Stockholm, Clustal.

:func:`detect_format` names the format from a file's first line;
:func:`read_records` reads such an alignment with Biopython's ``Bio.AlignIO``
into ``(name, sequence)`` pairs, for :func:`seqae.phylo.io.read_family` to check
as it checks FASTA. Formats that hold no alignment a family can come from
(GenBank, EMBL, FASTQ) and MSF are named, so that the error can say what the
file is, but not read.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from seqae.errors import InputError

__all__ = ["READABLE", "detect_format", "read_records"]

#: First lines of the formats met in users' hands: name and the Bio.AlignIO formats to try
#: (none: named in the error only). PHYLIP is tried relaxed first (names up to the first
#: blank, as RAxML and IQ-TREE write), then strict (names in 10 columns).
_FORMATS = (
    (re.compile(rb"#nexus\b", re.IGNORECASE), "NEXUS", ("nexus",)),
    (re.compile(rb"# stockholm\b", re.IGNORECASE), "Stockholm", ("stockholm",)),
    (re.compile(rb"(clustal|muscle|mafft|probcons)\b", re.IGNORECASE), "Clustal", ("clustal",)),
    (re.compile(rb"\d+\s+\d+\s*$"), "PHYLIP", ("phylip-relaxed", "phylip")),
    (re.compile(rb"(locus|id)\s", re.IGNORECASE), "GenBank or EMBL", ()),
    (re.compile(rb"!!"), "MSF", ()),
    (re.compile(rb"#mega\b", re.IGNORECASE), "MEGA", ()),
    (re.compile(rb"@\S"), "FASTQ", ()),
)
#: The formats :func:`read_records` reads.
READABLE = tuple(name for _, name, formats in _FORMATS if formats)


def detect_format(first_line: bytes) -> str | None:
    """The format whose files start like ``first_line`` (stripped), or None."""
    for start, name, _ in _FORMATS:
        if start.match(first_line):
            return name
    return None


def read_records(path: Path, text: str, name: str) -> list[tuple[str, str]]:
    """``(name, sequence)`` of each record of an alignment in format ``name`` (one of :data:`READABLE`).

    Raises:
        InputError: Bio.AlignIO cannot read it as that format (its reason, on one line).
    """
    from Bio import AlignIO

    formats = next(formats for _, known, formats in _FORMATS if known == name)
    # PHYLIP's header gives the shape. Strict files whose names fill all 10 columns read as
    # relaxed ones too, with the first bases glued to the names: only the shape tells them apart.
    shape = tuple(int(v) for v in text.split(None, 2)[:2]) if name == "PHYLIP" else None
    reason = ""
    for fmt in formats:
        try:
            alignment = AlignIO.read(io.StringIO(text), fmt)
        except Exception as exc:  # noqa: BLE001 - Bio's parsers raise ValueError, AssertionError, NexusError...
            reason = reason or " ".join(str(exc).split())[:200] or type(exc).__name__
            continue
        found = (len(alignment), alignment.get_alignment_length())
        if shape is not None and found != shape:
            reason = reason or (
                f"the header says {shape[0]} sequences of {shape[1]} columns; read as {fmt}: {found[0]} of {found[1]}"
            )
            continue
        return [(record.id, str(record.seq)) for record in alignment]
    if shape is not None and "the header says" not in reason:
        reason += f"; does the header's {shape[0]} sequences of {shape[1]} columns fit the file?"
    raise InputError(path, f"not a readable {name} alignment ({reason})")
