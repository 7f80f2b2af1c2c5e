"""Peaks, summits and blacklists.

Coordinates inside seqae are 0-based and half-open everywhere: an interval
``[start, end)`` covers bases ``start .. end - 1`` and a position is the
0-based index of one base.  BED and narrowPeak files already use that
convention, so no conversion happens here.

Parsing is vectorised: a file is read once as bytes, line boundaries, comment
lines and column counts are found with numpy, and the data lines go through
pandas' C parser in one call.  Every bad input is reported as one
:class:`~seqae.errors.InputError` naming the file, the 1-based line number of
the first bad line (comment and header lines count) and what is wrong.

The text-table parsing is :mod:`seqae.tabtext`'s, shared with :mod:`seqae.annotation`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd

from seqae.errors import InputError
from seqae.tabtext import (
    chrom_problem,
    column_count_problem,
    coordinate_problems,
    group_by_chrom,
    parse_tab_columns,
    raise_first_problem,
    read_tab_text,
    skip_column_names,
    sort_by_chrom,
)

__all__ = [
    "PEAK_COLUMNS",
    "read_peaks",
    "merge_close_summits",
    "read_bed_intervals",
    "overlaps_any",
    "rename_chromosomes",
]

PEAK_COLUMNS = ["chrom", "start", "end", "summit", "score", "name", "peak_set"]

#: Column counts read with the summit at the midpoint: BED3 to BED9 (broadPeak is BED6 + 3),
#: BED12 and gappedPeak (BED12 + 3). Every other count from 10 up is narrowPeak, with any
#: columns past the tenth ignored (IDR writes 20).
_MIDPOINT_COLUMNS = (3, 4, 5, 6, 7, 8, 9, 12, 15)


# --------------------------------------------------------------------------
# Peaks
# --------------------------------------------------------------------------


def read_peaks(path: str | os.PathLike[str], peak_set: str) -> pd.DataFrame:
    """Read peaks from a narrowPeak or BED file (optionally gzipped).

    The format is decided by the number of tab-separated columns of the first
    data line: 3 to 9 is BED (chrom, start, end, name, score, strand, ...;
    broadPeak has 9), 12 is BED12 and 15 gappedPeak; 10 is narrowPeak, and so
    is any other count above 10 (narrowPeak with columns of its own after the
    tenth, as IDR's output has).  Blank lines and lines starting with ``#``,
    ``track`` or ``browser`` are skipped, and so is a first line that names
    the columns (``chrom<TAB>start<TAB>end...``, as R and pandas write
    tables: its second and third fields both start with a letter or ``_``;
    :func:`~seqae.tabtext.skip_column_names`).

    Summits: narrowPeak column 10 is the summit's offset from ``start``;
    ``-1`` means "no summit" and the midpoint is used.  The other formats
    have no summit: they use the midpoint ``(start + end) // 2``.

    Args:
        path: the peak file.
        peak_set: a label for this file's peaks (e.g. the experiment); also
            used to name unnamed peaks.

    Returns:
        A frame with :data:`PEAK_COLUMNS`, sorted by chrom then summit:
        ``chrom`` (str), ``start``/``end`` (int64, 0-based half-open),
        ``summit`` (int64, absolute 0-based position of the summit base, in
        ``[start, end)``), ``score`` (float64: BED/narrowPeak column 5; 0 for
        BED3/BED4 and for a ``.`` score), ``name`` (str; ``.`` or empty
        becomes ``f"{peak_set}_{line}"`` with the file line number),
        ``peak_set`` (str).

    Raises:
        InputError: ``<path>:<line>: <what>`` for a missing file, a file with no
            peaks, an unsupported or inconsistent column count, non-integer,
            negative or empty coordinates, a summit outside its peak, or a
            non-numeric score.  The line is the first bad line in the file.
    """
    text = skip_column_names(
        read_tab_text(path, what="peak file", header_words=(b"track", b"browser")), integer_columns=(1, 2)
    )
    p = text.path
    if len(text) == 0:
        raise InputError(p, "no peaks in file")
    first_line, n = int(text.lineno[0]), int(text.ncols[0])
    if n < 3:
        spaces = b" " in text.raw[int(text.line_start[0]) : int(text.line_end[0])]
        raise InputError(
            p,
            f"has {n} column{'s' if n != 1 else ''}; a peak line needs at least 3 (BED), tab-separated"
            + (" (this one is separated by spaces)" if spaces else ""),
            line=first_line,
        )
    narrow = n not in _MIDPOINT_COLUMNS
    columns: dict[int, tuple[str, str]] = {0: ("chrom", "str"), 1: ("start", "int"), 2: ("end", "int")}
    if n >= 4:
        columns[3] = ("name", "str")
    if n >= 5:
        columns[4] = ("score", "float")
    if narrow:
        columns[9] = ("summit offset (column 10)", "int")
    # Short lines would read as missing fields, so their column count is reported first.
    count_problem = column_count_problem(text, n, first_line)
    frame, parse_problems = parse_tab_columns(text, columns)

    start = frame["start"].to_numpy(dtype=np.float64)
    end = frame["end"].to_numpy(dtype=np.float64)
    midpoint = np.floor((start + end) / 2)
    problems = [count_problem, chrom_problem(frame), *parse_problems, *coordinate_problems(frame)]
    if narrow:
        offset = frame["summit offset (column 10)"].to_numpy(dtype=np.float64)
        summit = np.where(offset == -1, midpoint, start + offset)
        problems.append(
            (offset < -1, lambda r: f"summit offset {int(offset[r])} (column 10) is negative (-1 means no summit)")
        )
        # Only rows whose interval is valid; otherwise that is the message.
        outside = (offset >= 0) & (end > start) & ((summit < start) | (summit >= end))
        problems.append(
            (outside, lambda r: f"summit {int(summit[r])} is outside the peak {int(start[r])}-{int(end[r])}")
        )
    else:
        summit = midpoint
    raise_first_problem(p, text.lineno, problems)

    if "score" in frame:
        score = frame["score"].to_numpy(dtype=np.float64)
        score = np.where(np.isnan(score), 0.0, score)  # '.' = no score
    else:
        score = np.zeros(len(frame))
    if "name" in frame:
        name = frame["name"].astype(str)
        unnamed = ((name == ".") | (name == "")).to_numpy()
    else:
        name = pd.Series([""] * len(frame), dtype=str)
        unnamed = np.ones(len(frame), dtype=bool)
    if unnamed.any():
        default = peak_set + "_" + pd.Series(text.lineno[unnamed]).astype(str)
        name = name.copy()
        name[unnamed] = default.to_numpy()

    peaks = pd.DataFrame(
        {
            "chrom": frame["chrom"].astype(str),
            "start": start.astype(np.int64),
            "end": end.astype(np.int64),
            "summit": summit.astype(np.int64),
            "score": score,
            "name": name.to_numpy(),
        }
    )
    peaks["name"] = peaks["name"].astype(str)
    peaks = sort_by_chrom(peaks, "summit")
    peaks["peak_set"] = pd.Series(peak_set, index=peaks.index, dtype=str)  # a constant: added after the sort
    return peaks[PEAK_COLUMNS]


def merge_close_summits(peaks: pd.DataFrame, min_distance: int) -> pd.DataFrame:
    """Merge summits on the same chromosome that are closer than ``min_distance`` bp.

    Clusters chain: sorted by position, a new cluster starts wherever the
    chromosome changes or two consecutive summits are ``>= min_distance``
    apart, so a cluster may span more than ``min_distance``.  Each cluster
    becomes one row: the row of its highest-scoring summit (ties: the first by
    position), with ``peak_set`` replaced by the sorted unique peak sets of the
    cluster joined by ``,`` (comma lists in the input are split first, so
    merging merged tables works) and a new int64 column ``n_merged`` (rows in
    the cluster).  All other columns are those of the kept row.

    Args:
        peaks: a frame with at least chrom, summit, score and peak_set (e.g.
            concatenated :func:`read_peaks` frames).
        min_distance: bp; 0 merges nothing.

    Returns:
        A new frame sorted by chrom, summit with a fresh RangeIndex;
        ``min_distance == 0`` returns a sorted copy with ``n_merged = 1``.
    """
    if min_distance < 0:
        raise ValueError(f"min_distance must be >= 0, got {min_distance}")
    df = sort_by_chrom(peaks, "summit")
    n = len(df)
    if min_distance == 0 or n == 0:
        df["n_merged"] = np.ones(n, dtype=np.int64)
        return df

    chrom = df["chrom"].to_numpy(dtype=object)
    summit = df["summit"].to_numpy(dtype=np.int64)
    new_cluster = np.ones(n, dtype=bool)
    new_cluster[1:] = (chrom[1:] != chrom[:-1]) | (np.diff(summit) >= min_distance)
    cluster = np.cumsum(new_cluster) - 1
    first = np.flatnonzero(new_cluster)
    n_merged = np.diff(np.append(first, n))

    # Order rows by cluster, then score descending, then position: the first
    # row of each cluster's block is the one to keep.  Clusters keep their
    # sizes, so block k starts at first[k].  NaN scores sort last.
    score = df["score"].to_numpy(dtype=np.float64)
    order = np.lexsort((np.arange(n), -score, cluster))
    keep = order[first]

    joined = _join_peak_sets(df["peak_set"], cluster)

    out = df.iloc[keep].reset_index(drop=True)
    out["peak_set"] = pd.Series(joined, dtype=object).astype(str).to_numpy()
    out["n_merged"] = n_merged.astype(np.int64)
    return out


def _join_peak_sets(peak_set: pd.Series, cluster: np.ndarray) -> np.ndarray:
    """object [n_clusters]: the sorted unique peak-set labels of each cluster, joined by ','.

    ``cluster`` is the non-decreasing cluster id (0..K-1) of each row.  Labels
    that are already comma lists are split, so merging merged tables works.
    Only the few distinct peak-set strings are handled in Python; rows are
    handled with numpy (one gather per row, one sort, one reduceat).
    """
    codes, distinct = pd.factorize(peak_set.astype(str).to_numpy(dtype=object))
    parts = [sorted(set(str(d).split(","))) for d in distinct]  # one entry per distinct string
    labels = sorted({label for p in parts for label in p})
    label_id = {label: i for i, label in enumerate(labels)}
    n_parts = np.array([len(p) for p in parts], dtype=np.int64)
    flat = np.array([label_id[label] for p in parts for label in p], dtype=np.int64)
    offset = np.concatenate(([0], np.cumsum(n_parts)[:-1]))

    # Expand each row into its labels: row r contributes flat[offset[c] : offset[c] + n_parts[c]].
    per_row = n_parts[codes]
    row = np.repeat(np.arange(len(codes)), per_row)
    within = np.arange(len(row)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    label = flat[offset[codes[row]] + within]

    # Unique (cluster, label) pairs, ordered by cluster then label.  Rows are
    # already in cluster order, so the stable sort runs on nearly sorted keys.
    key = cluster[row].astype(np.int64) * len(labels) + label
    key = np.sort(key, kind="stable")
    key = key[np.r_[True, key[1:] != key[:-1]]]
    key_cluster, key_label = np.divmod(key, len(labels))
    first = np.r_[True, key_cluster[1:] != key_cluster[:-1]]
    plain = np.array(labels, dtype=object)
    with_sep = np.array(["," + label for label in labels], dtype=object)
    tokens = np.where(first, plain[key_label], with_sep[key_label])
    # Object-array reduceat concatenates the strings of each cluster in C.
    return np.add.reduceat(tokens, np.flatnonzero(first))


# --------------------------------------------------------------------------
# Blacklists and overlap
# --------------------------------------------------------------------------


def read_bed_intervals(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read BED3+ intervals (e.g. a blacklist); columns after the third are ignored.

    Header handling is as in :func:`read_peaks`.  Lines may differ in their
    number of columns, but each needs at least three.

    Returns:
        ``chrom`` (str), ``start``/``end`` (int64, 0-based half-open), in file
        order.  An empty file (or one with only comments) gives an empty frame.

    Raises:
        InputError: ``<path>:<line>: <what>`` for a missing file, a line with
            fewer than 3 columns, a non-integer or negative coordinate, or
            ``end <= start``.
    """
    text = skip_column_names(
        read_tab_text(path, what="BED file", header_words=(b"track", b"browser")), integer_columns=(1, 2)
    )
    if len(text) == 0:
        return pd.DataFrame(
            {
                "chrom": pd.Series([], dtype=str),
                "start": np.zeros(0, np.int64),
                "end": np.zeros(0, np.int64),
            }
        )
    ncols = text.ncols
    short = (ncols < 3, lambda r: f"has {ncols[r]} column{'s' if ncols[r] != 1 else ''}; a BED line needs at least 3")
    if ncols.max() < 3:
        # Nothing to parse into three columns; the first line is the bad one.
        raise_first_problem(text.path, text.lineno, [short])
    frame, parse_problems = parse_tab_columns(text, {0: ("chrom", "str"), 1: ("start", "int"), 2: ("end", "int")})
    raise_first_problem(
        text.path,
        text.lineno,
        [short, chrom_problem(frame), *parse_problems, *coordinate_problems(frame)],
    )
    return pd.DataFrame(
        {
            "chrom": frame["chrom"].astype(str),
            "start": frame["start"].to_numpy(dtype=np.int64),
            "end": frame["end"].to_numpy(dtype=np.int64),
        }
    )


def overlaps_any(
    chrom: np.ndarray | pd.Series,
    start: np.ndarray | pd.Series,
    end: np.ndarray | pd.Series,
    intervals: pd.DataFrame,
) -> np.ndarray:
    """bool [n]: whether each query ``[start, end)`` overlaps any interval on its chromosome.

    Both queries and ``intervals`` (chrom, start, end) are 0-based half-open,
    so intervals that only touch (``end == other.start``) do not overlap.

    Per chromosome, intervals are sorted by start and their ends replaced by
    the running maximum (equivalent to merging overlapping intervals); then for
    each query, the last interval starting before the query's end is found
    with ``np.searchsorted``, and the query overlaps iff that running maximum
    end lies after the query's start.
    """
    chrom = np.asarray(chrom, dtype=object)
    q_start = np.asarray(start, dtype=np.int64)
    q_end = np.asarray(end, dtype=np.int64)
    out = np.zeros(len(chrom), dtype=bool)
    if len(chrom) == 0 or len(intervals) == 0:
        return out
    iv = intervals.sort_values(["chrom", "start"], kind="stable")
    by_chrom = dict(group_by_chrom(iv["chrom"].to_numpy(dtype=object)))
    iv_start_all = iv["start"].to_numpy(dtype=np.int64)
    iv_end_all = iv["end"].to_numpy(dtype=np.int64)
    for name, rows in group_by_chrom(chrom):
        iv_rows = by_chrom.get(name)
        if iv_rows is None:
            continue
        iv_start = iv_start_all[iv_rows]  # sorted: iv was sorted by chrom, start
        reach = np.maximum.accumulate(iv_end_all[iv_rows])
        last = np.searchsorted(iv_start, q_end[rows], side="left") - 1  # last interval with start < query end
        hit = last >= 0
        hit[hit] = reach[last[hit]] > q_start[rows][hit]
        out[rows] = hit
    return out


def rename_chromosomes(df: pd.DataFrame, mapping: Mapping[str, str]) -> tuple[pd.DataFrame, pd.Series]:
    """Rename ``df.chrom`` through ``mapping``; drop rows whose chromosome is not mapped.

    A mapping value of None also drops the chromosome.  Row order is kept (the
    new names may sort differently; sort afterwards where order matters) and
    the index is reset.

    Returns:
        (renamed frame, dropped): ``dropped`` is an int64 Series named
        ``"dropped"``, indexed by the original chromosome name, giving the
        number of rows dropped for each; most rows first, then by name.
    """
    new = df["chrom"].map(dict(mapping))
    keep = new.notna().to_numpy()
    renamed = df.loc[keep].copy()
    renamed["chrom"] = new[keep].astype(str)
    renamed = renamed.reset_index(drop=True)
    dropped_names = df["chrom"][~keep].astype(str)
    dropped = dropped_names.value_counts()
    dropped = (
        dropped.rename_axis("chrom")
        .reset_index(name="dropped")
        .sort_values(["dropped", "chrom"], ascending=[False, True], kind="stable")
        .set_index("chrom")["dropped"]
        .astype(np.int64)
    )
    return renamed, dropped
