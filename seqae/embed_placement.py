"""Where embedded windows go in the output bigWigs: chromosome names and sizes, and the bases each window owns.

Entries of a bigWig may not overlap, so each base of overlapping windows is
written by one window: the one whose centre (``start + window_len // 2``) is
nearest; at equal distance, and for windows with the same start, the later
window (larger start, then later in the file). Each window thus keeps the
part of its window proper between the midpoints to its neighbours' centres,
and owns at least its own centre.

Chromosome names are the windows file's, prefixed ``<species>:`` when it
holds several species. A chromosome's size is the furthest base the file
holds on it (largest window end plus the stored flank), or the one a UCSC
``chrom.sizes`` file gives (see :mod:`seqae.embed`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqae.errors import InputError, SeqaeError
from seqae.windows.store import UNKNOWN_LABELS


def read_chrom_sizes(path: str | os.PathLike[str]) -> dict[str, int]:
    """A UCSC ``chrom.sizes`` file: ``name<TAB>length`` per line (extra columns and ``#`` lines ignored).

    Raises:
        InputError: missing file, a line without a positive integer length, a name given twice.
    """
    from seqae.fileio import require_file

    p = require_file(path, "chrom sizes file")
    sizes: dict[str, int] = {}
    with open(p) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split()
            if len(fields) < 2 or not fields[1].isdigit() or int(fields[1]) < 1:
                raise InputError(p, "expected a chromosome name and a positive length", number)
            if fields[0] in sizes:
                raise InputError(p, f"chromosome {fields[0]!r} given twice", number)
            sizes[fields[0]] = int(fields[1])
    if not sizes:
        raise InputError(p, "no chromosome sizes in the file")
    return sizes


@dataclass(frozen=True)
class Placement:
    """Where the selected windows go in the bigWigs.

    Attributes (arrays indexed by selected window, in file order):
        header: ``(name, size)`` per bigWig chromosome, in the order entries are written.
        chrom: ``int64`` index into ``header``.
        start: ``int64`` start of the window proper.
        own_start, own_end: ``int64`` the bases this window writes (empty when equal);
            disjoint, see the module docstring for the rule.
        order: ``int64`` window indices in genome order (header order, then start; stable).
        genome_sorted: whether file order already is genome order (``order`` is the identity).
    """

    header: list[tuple[str, int]]
    chrom: np.ndarray
    start: np.ndarray
    own_start: np.ndarray
    own_end: np.ndarray
    order: np.ndarray
    genome_sorted: bool


def place_windows(
    labels: Any,
    rows: np.ndarray,
    window_len: int,
    flank: int = 0,
    chrom_sizes: str | os.PathLike[str] | dict[str, int] | None = None,
    source: str | os.PathLike[str] = "windows file",
) -> Placement:
    """Chromosome names, header sizes and owned intervals of the windows ``rows`` of a label table.

    Names are ``species:chrom`` when the file holds several species. Chromosomes
    are ordered by first appearance in the file (the FASTA's order for files
    written by ``seqae extract``).

    ``source`` names the windows file in errors.

    Raises:
        SeqaeError: a window without a chromosome name; with ``chrom_sizes``, a chromosome missing from it
            or shorter than a window's end.
    """
    import pandas as pd

    chrom = labels["chrom"].astype(str).to_numpy()
    unnamed = np.isin(chrom, list(UNKNOWN_LABELS))  # every window's chromosome is in the bigWig header
    if unnamed.any():  # pyBigWig fails on the header with "Received an error while writing the bigWig header"
        raise SeqaeError(
            f"{source}: {int(unnamed.sum())} of the {len(chrom)} windows have no chromosome name (the 'chrom' "
            "label), so they have no place in the bigWigs"
        )
    if "species" in labels and labels["species"].nunique() > 1:
        names = (labels["species"].astype(str) + ":" + labels["chrom"].astype(str)).to_numpy()
    else:
        names = chrom
    codes, uniques = pd.factorize(names)
    codes = codes.astype(np.int64)
    ends = labels["end"].to_numpy(dtype=np.int64)
    furthest = np.zeros(len(uniques), dtype=np.int64)
    np.maximum.at(furthest, codes, ends)
    if chrom_sizes is None:
        sizes = (furthest + flank).tolist()
    else:
        given = chrom_sizes if isinstance(chrom_sizes, dict) else read_chrom_sizes(chrom_sizes)
        first_row = np.unique(codes, return_index=True)[1]
        sizes = []
        for k, name in enumerate(uniques):
            bare = chrom[first_row[k]]
            size = given.get(name, given.get(bare))
            if size is None:
                raise SeqaeError(f"{chrom_sizes}: no size for chromosome {name!r} of the windows file")
            if size < furthest[k]:
                raise SeqaeError(f"{chrom_sizes}: {name!r} is {size} bp but a window ends at {furthest[k]}")
            sizes.append(int(size))
    header = [(str(name), int(size)) for name, size in zip(uniques, sizes, strict=True)]

    code = codes[rows]
    start = labels["start"].to_numpy(dtype=np.int64)[rows]
    order = np.lexsort((start, code)).astype(np.int64)  # stable
    genome_sorted = bool(np.array_equal(order, np.arange(len(order))))
    own_start = np.empty_like(start)
    own_end = np.empty_like(start)
    own_start[order], own_end[order] = owned_intervals(code[order], start[order], window_len)
    return Placement(header, code, start, own_start, own_end, order, genome_sorted)


def owned_intervals(chrom: np.ndarray, start: np.ndarray, window_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The bases each window writes to a bigWig, for windows in genome order: ``(own_start, own_end)``, ``int64 [n]``.

    Base ``p`` goes to the window whose centre ``start + window_len // 2`` is
    nearest, the later one at equal distance; a window with the same start as
    the next one owns nothing (the later wins). Intervals are disjoint, lie in
    their windows proper and cover their union.
    """
    start = np.asarray(start, dtype=np.int64)
    chrom = np.asarray(chrom)
    n = len(start)
    own_start, own_end = start.copy(), start.copy()
    if n == 0:
        return own_start, own_end
    same_next = np.r_[chrom[1:] == chrom[:-1], False]
    keep = ~(same_next & np.r_[start[1:] == start[:-1], False])
    c, s = chrom[keep], start[keep]
    e = s + window_len
    centre = s + window_len // 2
    same = c[1:] == c[:-1]
    # Bases at or past the cut are nearer the next centre (or tied): they go to the next window.
    cut = (centre[:-1] + centre[1:] + 1) // 2
    lo, hi = s.copy(), e.copy()
    hi[:-1] = np.where(same, np.minimum(e[:-1], cut), e[:-1])
    lo[1:] = np.where(same, np.maximum(s[1:], cut), s[1:])
    own_start[keep], own_end[keep] = lo, hi
    return own_start, own_end


__all__ = ["Placement", "owned_intervals", "place_windows", "read_chrom_sizes"]
