"""A bigWig's data blocks read directly: the R-tree index parsed once, blocks decoded with NumPy.

libBigWig (behind ``pyBigWig.values``) walks the file's R-tree index from
disk on every query, field by field: about 250 µs per call on a 10 bp-bin
track, whatever the span (measured, see :data:`seqae.tracks.BIGWIG_MAX_GAP`).
With many sparse windows that fixed cost dominates, and avoiding it by
merging windows across large gaps reads several times the signal needed.
Here the index's leaves (one row per data block: chromosome, first and last
base, file offset and size) are read once into arrays; a query finds its
blocks with ``searchsorted``, reads each with one ``pread``, inflates it and
paints its items into the output with a few vectorised steps. The last
blocks decoded are kept, since sorted windows often fall in the same block.

Layout (UCSC bbi format, little-endian): a 64-byte header; the chromosome
B+ tree; the data blocks, each one zlib-compressed *section* of bedGraph
(start, end, value), variableStep (start, value) or fixedStep (value)
items; the R-tree index of the blocks.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqae.errors import InputError

try:  # ISA-L's inflate: the same zlib streams, faster.
    from isal.isal_zlib import decompress as _inflate
    from isal.isal_zlib import error as _InflateError
except ImportError:  # pragma: no cover - isal is a dependency
    from zlib import decompress as _inflate
    from zlib import error as _InflateError

_BIGWIG_MAGIC = 0x888FFC26
_CHROM_TREE_MAGIC = 0x78CA8C91
_RTREE_MAGIC = 0x2468ACE0
_HEADER = struct.Struct("<IHHQQQHHQQIQ")
_CHROM_TREE_HEADER = struct.Struct("<IIIIQQ")
_NODE_HEADER = struct.Struct("<BBH")
_SECTION = struct.Struct("<IIIIIBBH")
#: The header's total summary: bases covered, smallest and largest value, their sum and sum of squares.
_TOTAL_SUMMARY = struct.Struct("<Qdddd")
_LEAF = np.dtype([("chrom0", "<u4"), ("start", "<u4"), ("chrom1", "<u4"), ("end", "<u4"),
                  ("offset", "<u8"), ("size", "<u8")])  # fmt: skip
_BRANCH = np.dtype([("chrom0", "<u4"), ("start", "<u4"), ("chrom1", "<u4"), ("end", "<u4"), ("child", "<u8")])
_BEDGRAPH = np.dtype([("start", "<u4"), ("end", "<u4"), ("value", "<f4")])
_VARSTEP = np.dtype([("start", "<u4"), ("value", "<f4")])

#: Decoded blocks kept per file (each about 1,024 items).
_BLOCK_CACHE = 8


class UnsupportedBigWig(Exception):
    """A file this reader does not decode (e.g. big-endian); the caller falls back to pyBigWig."""


class BigWigBlocks:
    """Per-base values of a bigWig from its data blocks.

    Args:
        path: the bigWig file (already checked to open with pyBigWig).

    Raises:
        UnsupportedBigWig: not a little-endian bigWig this reader knows.
        InputError: a truncated index or chromosome tree.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDONLY)
        try:
            self._read_header()
        except (struct.error, ValueError) as exc:
            os.close(self._fd)
            raise InputError(self.path, f"truncated bigWig header, chromosome tree or index ({exc})") from None
        except BaseException:
            os.close(self._fd)
            raise
        self._cache: OrderedDict[int, _Block] = OrderedDict()
        #: Data blocks inflated, and their compressed bytes read from the file.
        self.blocks_read = 0
        self.block_bytes = 0

    def _pread(self, size: int, offset: int) -> bytes:
        data = os.pread(self._fd, size, offset)
        if len(data) != size:
            raise ValueError(f"{size} bytes wanted at offset {offset}, {len(data)} there")
        return data

    def _read_header(self) -> None:
        (magic, _version, _zooms, chrom_tree, _data, index, _fields, _defined, _autosql, summary, buf_size,
         _ext) = _HEADER.unpack(self._pread(_HEADER.size, 0))  # fmt: skip
        if magic != _BIGWIG_MAGIC:
            raise UnsupportedBigWig(f"magic {magic:#x}")
        #: ``(bases covered, smallest value, largest value)`` of the whole file, from its header; None without one.
        self.total_summary: tuple[int, float, float] | None = None
        if summary:
            covered, smallest, largest, _sum, _squares = _TOTAL_SUMMARY.unpack(
                self._pread(_TOTAL_SUMMARY.size, summary)
            )
            self.total_summary = (int(covered), float(smallest), float(largest))
        self._compressed = buf_size > 0
        self.chrom_ids = self._read_chrom_tree(chrom_tree)
        leaves = self._read_rtree(index)
        if np.any(leaves["chrom0"] != leaves["chrom1"]):
            raise UnsupportedBigWig("a data block spans two chromosomes")
        beyond = leaves["offset"].astype(np.float64) + leaves["size"] > os.fstat(self._fd).st_size
        if beyond.any():
            raise ValueError(f"the index places {int(beyond.sum())} data blocks past the file's end")
        leaves = leaves[np.lexsort((leaves["start"], leaves["chrom0"]))]
        self._leaves = leaves
        bounds = np.searchsorted(leaves["chrom0"], np.arange(max(self.chrom_ids.values(), default=0) + 2))
        self._chrom_rows = {cid: (int(bounds[cid]), int(bounds[cid + 1])) for cid in self.chrom_ids.values()}
        self._ends = leaves["end"].astype(np.int64)
        self._starts = leaves["start"].astype(np.int64)

    def _read_chrom_tree(self, offset: int) -> dict[str, int]:
        magic, _block, key_size, _val, _count, _ = _CHROM_TREE_HEADER.unpack(
            self._pread(_CHROM_TREE_HEADER.size, offset)
        )
        if magic != _CHROM_TREE_MAGIC:
            raise UnsupportedBigWig(f"chromosome tree magic {magic:#x}")
        ids: dict[str, int] = {}
        todo = [offset + _CHROM_TREE_HEADER.size]
        while todo:
            node = todo.pop()
            is_leaf, _, count = _NODE_HEADER.unpack(self._pread(_NODE_HEADER.size, node))
            item = key_size + 8
            body = self._pread(count * item, node + _NODE_HEADER.size)
            for i in range(count):
                key = body[i * item : i * item + key_size].rstrip(b"\0").decode()
                if is_leaf:
                    ids[key] = struct.unpack_from("<I", body, i * item + key_size)[0]
                else:
                    todo.append(struct.unpack_from("<Q", body, i * item + key_size)[0])
        return ids

    def _read_rtree(self, offset: int) -> np.ndarray:
        if struct.unpack("<I", self._pread(4, offset))[0] != _RTREE_MAGIC:
            raise UnsupportedBigWig("R-tree index magic")
        leaves = []
        todo = [offset + 48]  # the root node follows the 48-byte index header
        while todo:
            node = todo.pop()
            is_leaf, _, count = _NODE_HEADER.unpack(self._pread(_NODE_HEADER.size, node))
            kind = _LEAF if is_leaf else _BRANCH
            items = np.frombuffer(self._pread(count * kind.itemsize, node + _NODE_HEADER.size), dtype=kind)
            if is_leaf:
                leaves.append(items)
            else:
                todo.extend(int(c) for c in items["child"][::-1])
        return np.concatenate(leaves) if leaves else np.zeros(0, dtype=_LEAF)

    def _block(self, row: int) -> _Block:
        """Items of data block ``row`` (see :class:`_Block`)."""
        if row in self._cache:
            self._cache.move_to_end(row)
            return self._cache[row]
        leaf = self._leaves[row]
        try:
            # A corrupt index points past the file's end (ValueError) or past any offset (OverflowError).
            raw = self._pread(int(leaf["size"]), int(leaf["offset"]))
        except (ValueError, OverflowError) as exc:
            raise InputError(self.path, f"corrupt index: a data block is not where it says ({exc})") from None
        self.blocks_read += 1
        self.block_bytes += len(raw)
        try:
            data = _inflate(raw) if self._compressed else raw
            items = _decode_sections(data)
        except (_InflateError, zlib.error, ValueError, struct.error) as exc:
            raise InputError(self.path, f"corrupt data block at byte {int(leaf['offset'])} ({exc})") from None
        self._cache[row] = items
        if len(self._cache) > _BLOCK_CACHE:
            self._cache.popitem(last=False)
        return items

    def values(self, chrom_id: int, start: int, end: int) -> np.ndarray:
        """Values over ``[start, end)`` of the bigWig's chromosome ``chrom_id``, ``float32 [end - start]``.

        Bases without data read as NaN, as with ``pyBigWig.values``.
        """
        return self.spans_values(chrom_id, np.array([start]), np.array([end]), fill=np.nan)

    def spans_values(
        self,
        chrom_id: int,
        starts: np.ndarray,
        ends: np.ndarray,
        fill: float = np.nan,
        prepare: Callable[[np.ndarray], np.ndarray] | None = None,
        dtype: np.dtype | type = np.float32,
    ) -> np.ndarray:
        """Values of sorted, disjoint spans ``[starts[k], ends[k])``, concatenated: ``dtype [sum(ends - starts)]``.

        Every block the spans touch is inflated once (the last few are kept
        between calls); the items of all of them are then painted into all the
        spans in a few vectorised steps, however many spans there are. Bases
        without data read as ``fill``. ``prepare`` maps item values
        (``float32 [k]``) to what is painted (``dtype [k]``), e.g. a
        transform: it runs once per item, not once per base (a 10 bp bin is
        one item).
        """
        starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
        lengths = ends - starts
        total = int(lengths.sum())
        lo_row, hi_row = self._chrom_rows.get(chrom_id, (0, 0))
        first = lo_row + np.searchsorted(self._ends[lo_row:hi_row], starts, side="right")
        last = lo_row + np.searchsorted(self._starts[lo_row:hi_row], ends, side="left")
        n_rows = np.maximum(last - first, 0)
        pair_row = _expand_ranges(first, n_rows)  # every (span, block) pair, span by span
        rows = np.unique(pair_row)
        if not len(rows):
            return np.full(total, fill, dtype=dtype)
        blocks = [self._block(int(row)) for row in rows]
        if all(blk.starts is None for blk in blocks):
            span, item_starts, item_ends, item_vals = _fixed_step_pieces(
                blocks, np.searchsorted(rows, pair_row), np.repeat(np.arange(len(starts)), n_rows), starts, ends
            )
        else:
            span, item_starts, item_ends, item_vals = _general_pieces(blocks, starts, ends)
        a = np.maximum(item_starts, starts[span])
        width = np.minimum(item_ends, ends[span]) - a
        first_pos = np.cumsum(lengths)[span] - lengths[span] + a - starts[span]  # where each piece goes in `out`
        piece_vals = item_vals if prepare is None else prepare(item_vals)
        painted = np.repeat(piece_vals, width)
        if len(painted) == total:  # pieces tile the spans (signal everywhere, as binned coverage has it)
            return painted.astype(dtype, copy=False)
        out = np.full(total, fill, dtype=dtype)
        # Positions of every base the pieces cover: each piece's first position plus 0 .. width - 1.
        out[np.repeat(first_pos - (np.cumsum(width) - width), width) + np.arange(len(painted))] = painted
        return out

    def close(self) -> None:
        """Close the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._cache.clear()


@dataclass(frozen=True)
class _Block:
    """The items of one inflated data block, in position order.

    A block of one fixedStep section whose items do not overlap (span <=
    step, as binned coverage is written) keeps its arithmetic form: item
    ``k`` covers ``[first + k * step, first + k * step + span)``, and
    ``starts``/``ends`` are None, so that no per-item position array is built
    for the many items a query does not touch. Any other block has them.
    """

    values: np.ndarray  # float32 [k]
    starts: np.ndarray | None = None  # int64 [k]
    ends: np.ndarray | None = None  # int64 [k]
    first: int = 0
    step: int = 0
    span: int = 0

    def item_starts(self) -> np.ndarray:
        """``int64 [k]`` first base of every item."""
        if self.starts is not None:
            return self.starts
        return self.first + self.step * np.arange(len(self.values), dtype=np.int64)

    def item_ends(self) -> np.ndarray:
        """``int64 [k]`` end (exclusive) of every item."""
        return self.ends if self.ends is not None else self.item_starts() + self.span


def _expand_ranges(first: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``first[i], first[i] + 1, ..., first[i] + counts[i] - 1`` for every i, concatenated (``int64``)."""
    total = int(counts.sum())
    return np.repeat(first - (np.cumsum(counts) - counts), counts) + np.arange(total, dtype=np.int64)


def _fixed_step_pieces(
    blocks: list[_Block], pair_block: np.ndarray, pair_span: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The items of arithmetic (fixedStep) blocks that overlap the spans, without decoding the others.

    ``pair_block``/``pair_span``: every (block index, span index) pair whose
    ranges overlap, span by span. The items of a block that overlap span
    ``[a, b)`` are ``k0 <= k < k1`` with ``first + k * step < b`` and
    ``first + k * step + span > a``: two integer divisions per pair.

    Returns:
        ``(span int64 [m], item starts int64 [m], item ends int64 [m], values float32 [m])``,
        in output order (span by span, then position).
    """
    first = np.array([blk.first for blk in blocks], dtype=np.int64)[pair_block]
    step = np.array([blk.step for blk in blocks], dtype=np.int64)[pair_block]
    width = np.array([blk.span for blk in blocks], dtype=np.int64)[pair_block]
    count = np.array([len(blk.values) for blk in blocks], dtype=np.int64)
    value_offset = (np.cumsum(count) - count)[pair_block]
    count = count[pair_block]
    k0 = np.clip((starts[pair_span] - first - width) // step + 1, 0, count)
    k1 = np.clip((ends[pair_span] - first - 1) // step + 1, 0, count)
    n = np.maximum(k1 - k0, 0)
    pair = np.repeat(np.arange(len(pair_block)), n)
    k = _expand_ranges(k0, n)
    item_starts = first[pair] + k * step[pair]
    values = np.concatenate([blk.values for blk in blocks])[value_offset[pair] + k]
    return pair_span[pair], item_starts, item_starts + width[pair], values


def _general_pieces(
    blocks: list[_Block], starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The items of any blocks that overlap the spans: as :func:`_fixed_step_pieces`, through every item's position."""
    item_starts = np.concatenate([blk.item_starts() for blk in blocks])
    item_ends = np.concatenate([blk.item_ends() for blk in blocks])
    item_vals = np.concatenate([blk.values for blk in blocks])
    # (span, item) pairs that overlap: the items of a span are one run of them (items are sorted, disjoint).
    i0 = np.searchsorted(item_ends, starts, side="right")
    i1 = np.searchsorted(item_starts, ends, side="left")
    count = np.maximum(i1 - i0, 0)
    span = np.repeat(np.arange(len(starts)), count)
    item = _expand_ranges(i0, count)
    return span, item_starts[item], item_ends[item], item_vals[item]


def _decode_sections(data: bytes) -> _Block:
    """Items of the sections in one inflated block."""
    starts, ends, values = [], [], []
    pos = 0
    while pos < len(data):
        _chrom, sec_start, _sec_end, step, span, kind, _, count = _SECTION.unpack_from(data, pos)
        pos += _SECTION.size
        if kind == 1:  # bedGraph
            items = np.frombuffer(data, dtype=_BEDGRAPH, count=count, offset=pos)
            s, e, v = items["start"].astype(np.int64), items["end"].astype(np.int64), items["value"]
        elif kind == 2:  # variableStep
            items = np.frombuffer(data, dtype=_VARSTEP, count=count, offset=pos)
            s, v = items["start"].astype(np.int64), items["value"]
            e = s + span
        elif kind == 3:  # fixedStep
            items = np.frombuffer(data, dtype="<f4", count=count, offset=pos)
            if pos + items.nbytes == len(data) and not starts and 0 < span <= step:
                return _Block(values=items, first=sec_start, step=step, span=span)
            s = sec_start + step * np.arange(count, dtype=np.int64)
            e, v = s + span, items
        else:
            raise ValueError(f"unknown section type {kind}")
        pos += items.nbytes
        starts.append(s)
        ends.append(e)
        values.append(v.astype(np.float32))
    if len(starts) == 1:
        return _Block(values=values[0], starts=starts[0], ends=ends[0])
    return _Block(values=np.concatenate(values), starts=np.concatenate(starts), ends=np.concatenate(ends))
