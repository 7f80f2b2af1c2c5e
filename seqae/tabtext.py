"""Tab-separated text tables read fast, with one clear line for the first bad row.

A file is read once as bytes; line boundaries, comment lines and column
counts are found with numpy, and the data lines go through pandas' C parser
in one call. Every bad input is reported as one
:class:`~seqae.errors.InputError` naming the file, the 1-based line number of
the first bad line (comment and header lines count) and what is wrong.

Used by the peak and BED readers (:mod:`seqae.intervals`) and the gene
annotation reader (:mod:`seqae.annotation`).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from seqae.errors import InputError
from seqae.fileio import require_file

#: Coordinates above this are certainly a mistake (and would lose precision as float64).
MAX_COORD = 2**53

# A problem found in a parsed table: a bool mask over the data rows and a
# function that describes the problem of one row (row index -> message).
Problem = tuple[np.ndarray, Callable[[int], str]]

#: A column name starts with a letter or an underscore (``start``, ``chromStart``); a
#: coordinate, even a bad one such as ``1.5`` or ``1e5``, does not.
_NAME_START = re.compile(rb"[A-Za-z_]")

_SPACE_BYTES = np.zeros(256, dtype=bool)
_SPACE_BYTES[[9, 10, 11, 12, 13, 32]] = True


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


def skip_column_names(text: TabText, integer_columns: tuple[int, ...]) -> TabText:
    """``text`` without its first data line when that line names the columns.

    Tables exported from R, pandas or a spreadsheet often start with a line
    such as ``chrom<TAB>start<TAB>end`` without a ``#``.  The first data line
    counts as such a header when every one of ``integer_columns`` (0-based)
    starts with a letter or an underscore there.  A line with only some of
    them so, or with a number that is not an integer (``1.5``), stays data,
    so that a bad coordinate is still reported as one.
    """
    if len(text) == 0:
        return text
    fields = text.raw[int(text.line_start[0]) : int(text.line_end[0])].split(b"\t")
    values = [fields[col].strip() for col in integer_columns if col < len(fields)]
    if len(values) < len(integer_columns) or not all(_NAME_START.match(v) for v in values):
        return text
    first = int(text.lineno[0]) - 1  # its 0-based line index
    return replace(
        text,
        skiprows=np.sort(np.append(text.skiprows, first)),
        lineno=text.lineno[1:],
        ncols=text.ncols[1:],
        line_start=text.line_start[1:],
        line_end=text.line_end[1:],
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
                bad = ~np.isfinite(vals) | (np.abs(vals) > MAX_COORD)
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


def column_count_problem(text: TabText, expected: int, first_line: int) -> Problem:
    ncols = text.ncols
    return (
        ncols != expected,
        lambda r: f"has {ncols[r]} columns, but the first data line (line {first_line}) has {expected}",
    )


def coordinate_problems(frame: pd.DataFrame) -> list[Problem]:
    """Negative coordinates and empty intervals in 0-based half-open (start, end) columns."""
    start = frame["start"].to_numpy(dtype=np.float64)
    end = frame["end"].to_numpy(dtype=np.float64)
    return [
        (start < 0, lambda r: f"start {int(start[r])} is negative"),
        (end < 0, lambda r: f"end {int(end[r])} is negative"),
        (end <= start, lambda r: f"end {int(end[r])} is not greater than start {int(start[r])}"),
    ]


def chrom_problem(frame: pd.DataFrame) -> Problem:
    return ((frame["chrom"] == "").to_numpy(), lambda r: "the chromosome name is empty")
