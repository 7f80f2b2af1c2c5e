"""Rows of a windows file's ``/seq`` and ``/tracks``, the HDF5 chunks inflated in parallel threads.

h5py decompresses a read in one thread; here each chunk is fetched raw
(``read_direct_chunk``) and inflated (and un-shuffled) in a thread pool, which
is what the file's gzip/shuffle filters do, several chunks at a time.
Datasets with other filters are read through h5py.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from seqae.errors import SeqaeError
from seqae.fileio import ClosedOnExit
from seqae.windows.store import open_windows_file

try:  # ISA-L's inflate reads the same zlib streams as the stdlib's, several times faster.
    from isal.isal_zlib import decompress as _inflate
    from isal.isal_zlib import error as _InflateError
except ImportError:  # pragma: no cover - isal is a dependency; zlib reads the same data
    from zlib import decompress as _inflate
    from zlib import error as _InflateError

_H5Z_FILTER_DEFLATE = 1
_H5Z_FILTER_SHUFFLE = 2


class WindowReader(ClosedOnExit):
    """Rows of ``/seq`` and ``/tracks``, their HDF5 chunks decompressed in parallel threads.

    h5py decompresses a read in one thread; here each chunk is fetched raw
    (``read_direct_chunk``) and inflated (and un-shuffled) in a thread pool,
    which is what the file's gzip/shuffle filters do, several chunks at a
    time. Datasets with other filters are read through h5py.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.file = open_windows_file(path)
        self.pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="inflate")
        self.seq = self.file["seq"]
        self.tracks = self.file.get("tracks")
        self.n_tracks = len(json.loads(self.file.attrs["track_names"]))

    def read(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(seq uint8 [n, seq_len], tracks [n, T, seq_len])`` of increasing file ``rows``."""
        seq = read_rows(self.seq, rows, self.pool)
        if self.tracks is None:
            tracks = np.zeros((len(rows), self.n_tracks, self.seq.shape[1]), dtype=np.float16)
        else:
            tracks = read_rows(self.tracks, rows, self.pool)
        return seq, tracks

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.file.close()


def _deflate_pipeline(ds: Any) -> bool | None:
    """For a dataset whose chunks span whole rows and whose filters are (shuffle,) deflate:
    whether it is shuffled. None when chunks cannot be decoded here."""
    if ds.chunks is None or tuple(ds.chunks[1:]) != tuple(ds.shape[1:]) or not ds.dtype.isnative:
        return None
    plist = ds.id.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    if filters == [_H5Z_FILTER_DEFLATE]:
        return False
    if filters == [_H5Z_FILTER_SHUFFLE, _H5Z_FILTER_DEFLATE]:
        return True
    return None


def read_rows(ds: Any, rows: np.ndarray, pool: ThreadPoolExecutor) -> np.ndarray:
    """``ds[rows]`` for increasing ``rows``, chunk by chunk in ``pool`` when the filters allow."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.empty((len(rows), *ds.shape[1:]), dtype=ds.dtype)
    if len(rows) == 0:
        return out
    shuffled = _deflate_pipeline(ds)
    if shuffled is None:
        if rows[-1] - rows[0] + 1 == len(rows):
            ds.read_direct(out, np.s_[int(rows[0]) : int(rows[-1]) + 1])
        else:
            out[:] = ds[rows]
        return out
    chunk_rows = ds.chunks[0]
    chunk = rows // chunk_rows
    bounds = np.r_[0, np.flatnonzero(np.diff(chunk)) + 1, len(rows)]
    futures = []
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        first = int(chunk[lo]) * chunk_rows
        try:
            mask, raw = ds.id.read_direct_chunk((first,) + (0,) * (ds.ndim - 1))
        except Exception:  # noqa: BLE001 - e.g. a chunk never written: let h5py fill it
            mask, raw = -1, b""
        futures.append(pool.submit(_decode_chunk, ds, raw, mask, shuffled, rows[lo:hi], first, out, lo))
    for future in futures:
        future.result()
    return out


def _decode_chunk(
    ds: Any, raw: bytes, mask: int, shuffled: bool, rows: np.ndarray, first: int, out: np.ndarray, at: int
) -> None:
    """Inflate (and un-shuffle) one raw chunk; copy its ``rows`` into ``out[at:]``.

    Raises:
        SeqaeError: the chunk is corrupt (damaged on disk or in a copy), in one line naming the file.
    """
    try:
        if mask != 0:  # a filter was skipped for this chunk, or no chunk: h5py knows what to do
            whole = rows[-1] - rows[0] + 1 == len(rows)
            out[at : at + len(rows)] = ds[rows[0] : rows[-1] + 1] if whole else ds[rows]
            return
        data = np.frombuffer(_inflate(raw), dtype=np.uint8)
        size = ds.dtype.itemsize
        if shuffled and size > 1:
            # HDF5's shuffle stores byte k of every element together, for k = 0, 1, ...
            data = np.ascontiguousarray(data.reshape(size, -1).T)
        block = data.view(ds.dtype).reshape(ds.chunks)
    except (_InflateError, ValueError, OSError) as exc:  # a bad checksum or block; a chunk of the wrong size
        raise SeqaeError(
            f"{ds.file.filename}: {ds.name} is corrupt in the chunk of rows {first}-{first + ds.chunks[0] - 1} "
            f"({exc}); extract the windows again, or copy the file again"
        ) from None
    out[at : at + len(rows)] = block[rows - first]


def read_windows(
    path: str | os.PathLike[str], rows: np.ndarray | slice | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Sequence codes and tracks of some windows, in the order of ``rows`` (all when None).

    Returns:
        ``(seq uint8 [n, seq_len], tracks [n, T, seq_len] or None)``: None when the file has no tracks.
    """
    with WindowReader(path) as reader:
        wanted = np.arange(reader.seq.shape[0])
        if rows is not None:
            wanted = wanted[rows]
        order = np.argsort(wanted, kind="stable")
        seq, tracks = reader.read(wanted[order])
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return seq[inverse], (tracks[inverse] if reader.tracks is not None else None)
