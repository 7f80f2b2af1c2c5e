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

The two text helpers, :func:`read_tab_text` and :func:`parse_tab_columns`, and
:func:`group_by_chrom` are shared with :mod:`seqae.annotation`.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from seqae.errors import InputError
from seqae.fileio import require_file

__all__ = [
    "PEAK_COLUMNS",
    "read_peaks",
    "merge_close_summits",
    "read_bed_intervals",
    "overlaps_any",
    "rename_chromosomes",
]

PEAK_COLUMNS = ["chrom", "start", "end", "summit", "score", "name", "peak_set"]

#: narrowPeak has exactly 10 columns; BED peaks 3 to 6 (chrom, start, end, name, score, strand).
_NARROWPEAK_COLUMNS = 10
_BED_COLUMNS = (3, 4, 5, 6)

#: Coordinates above this are certainly a mistake (and would lose precision as float64).
_MAX_COORD = 2**53

# A problem found in a parsed table: a bool mask over the data rows and a
# function that describes the problem of one row (row index -> message).
Problem = tuple[np.ndarray, Callable[[int], str]]

_SPACE_BYTES = np.zeros(256, dtype=bool)
_SPACE_BYTES[[9, 10, 11, 12, 13, 32]] = True


# --------------------------------------------------------------------------
# Shared text-table helpers
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TabText:
    """A tab-separated text file, split into lines but not yet into columns.

    Attributes:
        path: the file, for error messages.
        raw: the file's bytes (gunzipped, ``\\r\\n`` turned into ``\\n``, cut
            before a stop line such as ``##FASTA``).
        skiprows: 0-based indices of the lines in ``raw`` that are not data
            (blank, comment, header); handed to the parser to skip.
        lineno: int64 [n_data], the 1-based file line number of each data line.
        ncols: int64 [n_data], the number of tab-separated columns of each data line.
        line_start, line_end: int64 [n_data], byte offsets of each data line
            in ``raw`` (end excludes the newline).
        tabs: int64, byte offsets of every tab in ``raw``.
    """

    path: Path
    raw: bytes
    skiprows: np.ndarray
    lineno: np.ndarray
    ncols: np.ndarray
    line_start: np.ndarray
    line_end: np.ndarray
    tabs: np.ndarray

    def __len__(self) -> int:
        return len(self.lineno)

    def column_strings(self, rows: np.ndarray, col: int) -> pa.Array:
        """Column ``col`` (0-based) of the data lines ``rows`` as an Arrow string array.

        No bytes are copied to build it: an Arrow array whose values alternate
        between the wanted fields and the bytes between them is laid over
        ``raw`` (its offsets are the field boundaries), and Arrow's ``take``
        then copies out just the fields.  So a wide column such as GTF
        attributes becomes strings only for the rows that need it.  Every row
        must have more than ``col`` columns.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return pa.array([], type=pa.large_string())
        # The overlay needs fields in file order, each once.
        unique_rows, inverse = np.unique(rows, return_inverse=True)
        if (self.ncols[unique_rows] <= col).any():
            raise ValueError(f"some rows have no column {col}")
        line_start, line_end = self.line_start[unique_rows], self.line_end[unique_rows]
        first_tab = np.searchsorted(self.tabs, line_start)
        begin = line_start if col == 0 else self.tabs[first_tab + col - 1] + 1
        if len(self.tabs):
            # Unless it is the line's last column, a field ends at the tab after it.
            tab_after = self.tabs[np.minimum(first_tab + col, len(self.tabs) - 1)]
            end = np.where(self.ncols[unique_rows] - 1 == col, line_end, tab_after)
        else:
            end = line_end
        n = len(unique_rows)
        offsets = np.empty(2 * n + 1, dtype=np.int64)
        offsets[0:-1:2] = begin
        offsets[1::2] = end
        offsets[-1] = end[-1]
        # Fields and gaps start and end at tabs or newlines, so every value is
        # valid UTF-8 (read_tab_text checked the whole file).
        overlay = pa.LargeStringArray.from_buffers(2 * n, pa.py_buffer(offsets), pa.py_buffer(self.raw))
        return overlay.take(pa.array(2 * inverse.reshape(-1)))


def _line_number(raw: bytes, offset: int) -> int:
    """1-based line number of byte ``offset`` in ``raw``."""
    return raw.count(b"\n", 0, offset) + 1


def _has_prefix(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, prefix: bytes, whole_word: bool) -> np.ndarray:
    """bool [n_lines]: lines that start with ``prefix`` (followed by blank or end of line if whole_word)."""
    n = len(prefix)
    out = np.zeros(len(starts), dtype=bool)
    # Only lines whose first byte matches are gathered, so memory stays small.
    cand = np.flatnonzero((ends - starts >= n) & (buf[np.minimum(starts, len(buf) - 1)] == prefix[0]))
    if cand.size == 0:
        return out
    pos = starts[cand, None] + np.arange(n)
    ok = (buf[pos] == np.frombuffer(prefix, dtype=np.uint8)).all(axis=1)
    if whole_word:
        after = starts[cand] + n
        at_end = after >= ends[cand]
        ok &= at_end | _SPACE_BYTES[buf[np.minimum(after, len(buf) - 1)]]
    out[cand] = ok
    return out


def read_tab_text(
    path: str | os.PathLike[str],
    *,
    what: str,
    comment_prefix: bytes = b"#",
    header_words: tuple[bytes, ...] = (),
    stop_prefix: bytes | None = None,
) -> TabText:
    """Read a tab-separated text file (optionally gzipped) and classify its lines.

    Blank lines (only whitespace), lines starting with ``comment_prefix`` and
    lines whose first word is one of ``header_words`` (e.g. UCSC ``track`` and
    ``browser`` lines) are skipped.  A line starting with ``stop_prefix`` ends
    the table (GFF3's ``##FASTA``).  Everything is done with numpy on the bytes:
    no Python loop per line.

    Raises:
        InputError: missing/unreadable file, bad gzip data, binary or non-UTF-8
            content, or a carriage return in the middle of a line.
    """
    p = require_file(path, what)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(p, f"cannot read {what} ({exc.strerror or exc})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(p, f"is not a valid gzip file ({exc})") from None
    if raw[:3] == b"\xef\xbb\xbf":
        # A UTF-8 byte-order mark: pandas would drop it, the line scan would not.
        raw = raw[3:]
    if b"\x00" in raw:
        raise InputError(p, f"is a binary file, not a text {what}", line=_line_number(raw, raw.index(b"\x00")))
    if b"\r" in raw:
        # Windows line ends are fine; a lone \r would split a line for pandas
        # but not for us, which would shift every later line number.
        raw = raw.replace(b"\r\n", b"\n")
        cr = raw.find(b"\r")
        if cr >= 0:
            raise InputError(p, "contains a carriage return (\\r) that does not end a line", line=_line_number(raw, cr))

    buf = np.frombuffer(raw, dtype=np.uint8)
    if buf.size and (buf >= 0x80).any():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                p, f"is not UTF-8 text (byte 0x{raw[exc.start]:02x})", line=_line_number(raw, exc.start)
            ) from None

    newlines = np.flatnonzero(buf == 10)
    starts = np.concatenate(([0], newlines + 1)).astype(np.int64)
    if starts[-1] == len(buf):  # the file ends with a newline (or is empty): no line after it
        starts = starts[:-1]
    ends = np.append(newlines, len(buf))[: len(starts)].astype(np.int64)

    if stop_prefix is not None and len(starts):
        stop = np.flatnonzero(_has_prefix(buf, starts, ends, stop_prefix, whole_word=False))
        if stop.size:
            cut = int(starts[stop[0]])
            raw, buf = raw[:cut], buf[:cut]
            starts, ends = starts[: stop[0]], ends[: stop[0]]

    if len(starts) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return TabText(p, raw, empty, empty, empty, empty, empty, empty)

    # Tab counts per line: positions of all tabs, counted between line starts
    # and ends with searchsorted (cheaper than a per-byte cumulative sum).
    tabs = np.flatnonzero(buf == 9)
    ntabs = np.searchsorted(tabs, ends) - np.searchsorted(tabs, starts)
    # Blank lines: empty, or whitespace only.  Only lines whose first byte is
    # whitespace can be the latter, so whitespace is located only if there are some.
    nonblank = ends > starts
    maybe_blank = nonblank & _SPACE_BYTES[buf[np.minimum(starts, len(buf) - 1)]]
    if maybe_blank.any():
        cand = np.flatnonzero(maybe_blank)
        spaces = np.flatnonzero(_SPACE_BYTES[buf])
        n_space = np.searchsorted(spaces, ends[cand]) - np.searchsorted(spaces, starts[cand])
        nonblank[cand] = n_space < ends[cand] - starts[cand]
    skip = ~nonblank
    if comment_prefix:
        skip |= _has_prefix(buf, starts, ends, comment_prefix, whole_word=False)
    for word in header_words:
        skip |= _has_prefix(buf, starts, ends, word, whole_word=True)
    data = np.flatnonzero(~skip)
    return TabText(
        path=p,
        raw=raw,
        skiprows=np.flatnonzero(skip),
        lineno=data + 1,
        ncols=ntabs[data] + 1,
        line_start=starts[data],
        line_end=ends[data],
        tabs=tabs,
    )


def _describe_value(value: object) -> str:
    """A field value for a message: quoted, or 'missing' for an absent field."""
    if not isinstance(value, str) or value == "":
        return "(missing)"
    return repr(value)


def parse_tab_columns(text: TabText, columns: Mapping[int, tuple[str, str]]) -> tuple[pd.DataFrame, list[Problem]]:
    """Split the data lines of ``text`` into the named, typed columns.

    Args:
        text: from :func:`read_tab_text`.
        columns: 0-based column index -> (name, kind); kind is ``"str"``,
            ``"int"`` (an integral number; ``1e3`` counts) or ``"float"``
            (``"."`` reads as NaN).  Every data line must have each of these
            columns; check ``text.ncols`` first and report short lines before
            the problems returned here.

    Returns:
        The frame (one row per data line, in file order) and the problems found
        (non-numeric values).  Int columns are int64 when there are no
        problems; otherwise float64 with NaN at the bad rows, so that the
        caller can still check the other rows before raising the first problem.
    """
    width = int(text.ncols.max()) if len(text) else max(columns) + 1
    usecols = sorted(columns)
    kinds = {i: columns[i][1] for i in usecols}
    common = dict(
        sep="\t",
        header=None,
        names=list(range(width)),
        usecols=usecols,
        quoting=csv.QUOTE_NONE,
        skiprows=text.skiprows.tolist(),
        skip_blank_lines=False,  # blank lines are in skiprows, so rows map 1:1 to text.lineno
        keep_default_na=False,  # 'NA', 'nan' ... are names, not missing values
        engine="c",
        encoding="utf-8",
    )
    problems: list[Problem] = []
    try:
        # Fast path: the C parser converts the numbers itself.
        frame = pd.read_csv(
            io.BytesIO(text.raw),
            dtype={i: {"str": str, "int": np.int64, "float": np.float64}[k] for i, k in kinds.items()},
            na_values={i: ["."] for i, k in kinds.items() if k == "float"},
            **common,
        )
    except (ValueError, OverflowError, TypeError):
        # Some value does not convert: read everything as text and find which.
        frame = pd.read_csv(io.BytesIO(text.raw), dtype=str, na_filter=False, **common)
        for i, kind in kinds.items():
            if kind == "str":
                continue
            name = columns[i][0]
            raw_col = frame[i]
            num = pd.to_numeric(raw_col, errors="coerce").astype(np.float64)
            vals = num.to_numpy()
            if kind == "int":
                bad = ~np.isfinite(vals) | (np.abs(vals) > _MAX_COORD)
                bad[~bad] = vals[~bad] != np.floor(vals[~bad])
                what = "an integer"
            else:
                bad = np.isnan(vals) & (raw_col != ".").to_numpy()
                what = "a number"
            if bad.any():
                vals = vals.copy()
                vals[bad] = np.nan
                raw_text = raw_col.to_numpy(dtype=object)
                problems.append(
                    (bad, lambda r, n=name, rt=raw_text, w=what: f"{n} {_describe_value(rt[r])} is not {w}")
                )
            frame[i] = vals
    if len(frame) != len(text):
        # Cannot happen with the checks in read_tab_text; guard the line mapping anyway.
        raise InputError(text.path, f"has {len(frame)} table rows but {len(text)} data lines; cannot map line numbers")
    frame.columns = [columns[i][0] for i in usecols]
    frame.index = pd.RangeIndex(len(frame))
    return frame, problems


def raise_first_problem(path: Path, lineno: np.ndarray, problems: list[Problem]) -> None:
    """Raise an InputError for the earliest bad row (ties: the first problem in list order)."""
    if not problems:
        return
    bad = np.zeros(len(lineno), dtype=bool)
    for mask, _ in problems:
        bad |= mask
    hits = np.flatnonzero(bad)
    if hits.size == 0:
        return
    row = int(hits[0])
    for mask, describe in problems:
        if mask[row]:
            raise InputError(path, describe(row), line=int(lineno[row]))


def group_by_chrom(chrom: np.ndarray | pd.Series) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (chromosome name, row indices) for each chromosome, in order of first appearance.

    One factorize and one stable argsort, so the per-chromosome loop is cheap
    even with thousands of scaffolds.  Missing names (NaN/None) are left out.
    """
    codes, uniques = pd.factorize(np.asarray(chrom, dtype=object))
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    for k, name in enumerate(uniques):
        yield str(name), order[bounds[k] : bounds[k + 1]]


def sort_by_chrom(df: pd.DataFrame, position: str) -> pd.DataFrame:
    """``df`` sorted by chrom (lexicographic) then ``position``, stable, with a fresh RangeIndex.

    Sorting on factorized chromosome codes avoids a string sort of every row.
    """
    codes, _ = pd.factorize(df["chrom"], sort=True)
    order = np.lexsort((df[position].to_numpy(), codes))
    return df.iloc[order].reset_index(drop=True)


def _column_count_problem(text: TabText, expected: int, first_line: int) -> Problem:
    ncols = text.ncols
    return (
        ncols != expected,
        lambda r: f"has {ncols[r]} columns, but the first data line (line {first_line}) has {expected}",
    )


def _coordinate_problems(frame: pd.DataFrame) -> list[Problem]:
    """Negative coordinates and empty intervals in 0-based half-open (start, end) columns."""
    start = frame["start"].to_numpy(dtype=np.float64)
    end = frame["end"].to_numpy(dtype=np.float64)
    return [
        (start < 0, lambda r: f"start {int(start[r])} is negative"),
        (end < 0, lambda r: f"end {int(end[r])} is negative"),
        (end <= start, lambda r: f"end {int(end[r])} is not greater than start {int(start[r])}"),
    ]


def _chrom_problem(frame: pd.DataFrame) -> Problem:
    return ((frame["chrom"] == "").to_numpy(), lambda r: "the chromosome name is empty")


# --------------------------------------------------------------------------
# Peaks
# --------------------------------------------------------------------------


def read_peaks(path: str | os.PathLike[str], peak_set: str) -> pd.DataFrame:
    """Read peaks from a narrowPeak or BED file (optionally gzipped).

    The format is decided by the number of tab-separated columns of the first
    data line: 10 is narrowPeak, 3 to 6 is BED (chrom, start, end, name,
    score, strand).  Blank lines and lines starting with ``#``, ``track`` or
    ``browser`` are skipped.

    Summits: narrowPeak column 10 is the summit's offset from ``start``;
    ``-1`` means "no summit" and the midpoint is used.  BED peaks always use
    the midpoint ``(start + end) // 2``.

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
    text = read_tab_text(path, what="peak file", header_words=(b"track", b"browser"))
    p = text.path
    if len(text) == 0:
        raise InputError(p, "no peaks in file")
    first_line, n = int(text.lineno[0]), int(text.ncols[0])
    if n != _NARROWPEAK_COLUMNS and n not in _BED_COLUMNS:
        raise InputError(
            p,
            f"has {n} columns; expected 3 to 6 (BED) or {_NARROWPEAK_COLUMNS} (narrowPeak)",
            line=first_line,
        )
    narrow = n == _NARROWPEAK_COLUMNS
    columns: dict[int, tuple[str, str]] = {0: ("chrom", "str"), 1: ("start", "int"), 2: ("end", "int")}
    if n >= 4:
        columns[3] = ("name", "str")
    if n >= 5:
        columns[4] = ("score", "float")
    if narrow:
        columns[9] = ("summit offset (column 10)", "int")
    # Short lines would read as missing fields, so their column count is reported first.
    count_problem = _column_count_problem(text, n, first_line)
    frame, parse_problems = parse_tab_columns(text, columns)

    start = frame["start"].to_numpy(dtype=np.float64)
    end = frame["end"].to_numpy(dtype=np.float64)
    midpoint = np.floor((start + end) / 2)
    problems = [count_problem, _chrom_problem(frame), *parse_problems, *_coordinate_problems(frame)]
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
    text = read_tab_text(path, what="BED file", header_words=(b"track", b"browser"))
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
        [short, _chrom_problem(frame), *parse_problems, *_coordinate_problems(frame)],
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
