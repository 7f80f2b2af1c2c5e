"""Spans of a plain (uncompressed) FASTA record read by whole lines and decoded without holding the GIL.

:class:`seqae.genome.Genome` reads every span of a plain FASTA here. The
index (``.fai``) gives each record's offset, bases per line and bytes per
line; a span widened to whole lines is then a ``[lines, line width]`` block
of bytes whose first columns are the bases, whatever the line ends (LF or
CR LF). The slower ``bytes.translate`` path in ``genome`` remains for the
spans this reader declines, to name what is wrong in them.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyfaidx

from seqae.alphabet import ASCII_TO_CODE

_CODE_TABLE_ARROW = pa.array(ASCII_TO_CODE)


class LineLengthError(Exception):
    """A FASTA line that does not end where the index says; ``args[0]`` is its first base (0-based)."""


def plain_spans_codes(fd: int, rec: pyfaidx.IndexRecord, starts: np.ndarray, ends: np.ndarray) -> np.ndarray | None:
    """Base codes of spans of one record of a plain FASTA, without holding the GIL: ``uint8 [sum(ends - starts)]``.

    Each span is widened to whole lines and read with one ``preadv`` into a
    shared buffer; the lines are then one ``[lines, line width]`` array whose
    first ``line bases`` columns are the bases, so the line ends drop out in
    one strided copy, an Arrow ``take`` maps ASCII to codes, and the spans
    are cut back to size. None of these steps holds the GIL for long (unlike
    ``bytes.join`` and ``bytes.translate``), so chromosomes measured in
    parallel threads run on all cores.

    Returns:
        The codes, or None when a span holds a byte that is not IUPAC DNA, or
        the file ends early: the caller's slower path then names the fault.

    Raises:
        LineLengthError: a line does not end where the index says it does.
    """
    line_bases, line_width, offset, length = int(rec.lenc), int(rec.lenb), int(rec.offset), int(rec.rlen)
    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    if not len(starts) or line_bases <= 0:
        return np.zeros(0, dtype=np.uint8) if not len(starts) else None
    first_line = starts // line_bases
    n_lines = (ends - 1) // line_bases - first_line + 1
    line_at = np.cumsum(n_lines) - n_lines  # each span's first row in the lines array
    buffer = np.empty((int(n_lines.sum()), line_width), dtype=np.uint8)
    flat = memoryview(buffer.reshape(-1))
    record_end = offset + (length // line_bases) * line_width + length % line_bases  # past the last base
    for row, line, count in zip(line_at.tolist(), first_line.tolist(), n_lines.tolist(), strict=True):
        at = offset + line * line_width
        size = min(count * line_width, record_end - at)
        if os.preadv(fd, [flat[row * line_width : row * line_width + size]], at) != size:
            return None
    # Every line but the record's last ends in the line-end bytes the index gives it (CR or LF).
    if line_width > line_bases:
        last_rows = line_at + n_lines - 1
        record_last = last_rows[(first_line + n_lines) * line_bases >= length]
        buffer[record_last, line_bases:] = 10  # not read, or not there: nothing to check
        line_ends = buffer[:, line_bases:]
        ends_ok = np.logical_or(line_ends == 10, line_ends == 13).all(axis=1)
        if not ends_ok.all():
            bad_row = int(np.argmin(ends_ok))
            k = int(np.searchsorted(line_at, bad_row, side="right")) - 1  # the span holding that line
            raise LineLengthError(int(first_line[k] + bad_row - line_at[k]) * line_bases)
    bases = np.ascontiguousarray(buffer[:, :line_bases]).reshape(-1)
    flat.release()
    del buffer  # the widest copy: freed before the next ones are made
    # Each span cut out of its whole lines (a copy per span, not per base), then coded in one Arrow take.
    skip = line_at * line_bases + starts - first_line * line_bases  # where each span starts in `bases`
    if len(starts) == 1:
        wanted = bases[int(skip[0]) : int(skip[0] + ends[0] - starts[0])]
    else:
        wanted = np.concatenate(
            [bases[a:b] for a, b in zip(skip.tolist(), (skip + ends - starts).tolist(), strict=True)]
        )
    # The system allocator, as NumPy's: Arrow's default pool keeps freed memory (measured slower here).
    codes = pc.take(_CODE_TABLE_ARROW, pa.array(wanted), memory_pool=pa.system_memory_pool()).to_numpy()
    if len(codes) and codes.max() == 255:
        return None
    return codes
