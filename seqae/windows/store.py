"""The windows file: one chunked, compressed HDF5 file per dataset.

Schema (``schema_version`` 1; ``docs/windows_schema.md`` has the long form)::

    /                       attributes: format="seqae-windows", schema_version,
                            seqae_version, window_len, flank, seq_len,
                            base_codes="ACGTN", track_names (JSON list),
                            track_transform, track_dtype, n_windows,
                            created_utc, settings (JSON of the extract config)
    /seq     uint8   [N, seq_len]        base codes A=0 C=1 G=2 T=3 N=4
    /tracks  float16|float32 [N, T, seq_len]   per-base signal after
                                         track_transform (absent when T = 0)
    /labels/<column>  [N]                one 1-D dataset per label column;
                                         text as UTF-8 strings
    /summary/mean_profile/<kind>  float32 [T, seq_len]   mean track profile
                                         of peak / background windows (QC)

``seq_len = window_len + 2 * flank``: the window proper is
``seq[:, flank:flank + window_len]``; the flanks let training shift the
window by up to ``flank`` bp without re-reading the genome. Window ``i``'s
genomic coordinates are ``labels/chrom[i]``, ``labels/start[i]`` and
``labels/end[i]`` (0-based, half-open, the window proper).

Every dataset uses gzip (with the shuffle filter), which any HDF5 reader
opens without plugins.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
import pandas as pd

from seqae import __version__
from seqae.errors import InputError
from seqae.fileio import ClosedOnExit, require_file

try:  # ISA-L's deflate: the same zlib stream as the stdlib's, several times faster.
    from isal.isal_zlib import compress as _deflate
except ImportError:  # pragma: no cover - isal is a dependency; plain zlib still writes a valid file
    from zlib import compress as _deflate

FORMAT_NAME = "seqae-windows"
#: A shard of a windows file: sequence and tracks of a range of its rows, no labels.
SHARD_FORMAT = "seqae-windows-shard"
SCHEMA_VERSION = 1
BASE_CODES = "ACGTN"
#: Label values that mean "no label" (a window without a nearest gene has an empty gene
#: label; pandas writes a missing value as "nan"): training gives them code -1, which the
#: heads ignore, and evaluation leaves them out of that label's probes.
UNKNOWN_LABELS = frozenset({"", "nan", "NaN", "None"})

# Rows per HDF5 chunk: ~256 KiB of sequence per chunk at seq_len 1200, large
# enough for fast compression, small enough for random access by a DataLoader.
_SEQ_CHUNK_ROWS = 256
_TRACK_CHUNK_ROWS = 64
#: Rows at which every dataset's chunks begin: a shard of a windows file starts
#: at a multiple of this, so its chunks are copied into the gathered file as they are.
ROW_ALIGN = _SEQ_CHUNK_ROWS
_COMPRESSION = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
_DEFLATE_LEVEL = 1
# Chunks being compressed at once per dataset; bounds the writer's memory.
_MAX_IN_FLIGHT = 16


class _ChunkWriter:
    """Compress full chunks of one dataset in worker threads and write them in order.

    HDF5 applies its filters (shuffle, deflate) in the calling thread, one
    chunk at a time. Here the same filters are applied in a thread pool
    (deflate releases the GIL) and the finished chunks are stored with
    ``write_direct_chunk``, so the file is byte-for-byte what HDF5's own
    gzip filter would read: any HDF5 reader opens it.
    """

    def __init__(self, dataset: h5py.Dataset, pool: ThreadPoolExecutor, shuffle: bool):
        self.dataset = dataset
        self.rows = dataset.chunks[0]
        # h5py's Dataset.ndim asks HDF5 each time (about 0.2 ms, under h5py's lock): once per dataset here.
        self.trailing_zeros = (0,) * (dataset.ndim - 1)
        self.shuffle = shuffle and dataset.dtype.itemsize > 1
        self.pool = pool
        self.pending: list[np.ndarray] = []
        self.n_pending = 0
        self.next_row = 0
        self.in_flight: deque[tuple[int, Future[bytes]]] = deque()

    def append(self, block: np.ndarray) -> None:
        """Queue rows ``[n, ...]``; full chunks are sent for compression."""
        self.pending.append(block)
        self.n_pending += len(block)
        if self.n_pending >= self.rows:
            rows = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
            n_full = len(rows) // self.rows * self.rows
            for lo in range(0, n_full, self.rows):
                self._submit(rows[lo : lo + self.rows])
            rest = rows[n_full:]
            self.pending = [rest] if len(rest) else []
            self.n_pending = len(rest)

    def finish(self) -> None:
        """Pad and send the last partial chunk; write everything still in flight."""
        if self.n_pending:
            rows = np.concatenate(self.pending)
            padded = np.zeros((self.rows, *rows.shape[1:]), dtype=rows.dtype)
            padded[: len(rows)] = rows
            self._submit(padded)
            self.pending, self.n_pending = [], 0
        while self.in_flight:
            self._write_oldest()

    def _submit(self, chunk: np.ndarray) -> None:
        self.in_flight.append((self.next_row, self.pool.submit(self._encode, np.ascontiguousarray(chunk))))
        self.next_row += self.rows
        while len(self.in_flight) > _MAX_IN_FLIGHT:
            self._write_oldest()

    def _encode(self, chunk: np.ndarray) -> bytes:
        if self.shuffle:
            # HDF5's shuffle filter: byte k of every element, for k = 0, 1, ...
            size = chunk.dtype.itemsize
            if size == 2:  # float16 tracks: the low then the high bytes, by integer ops (3x a strided transpose)
                words = chunk.view("<u2").ravel()
                shuffled = np.empty(2 * words.size, dtype=np.uint8)
                shuffled[: words.size] = words
                shuffled[words.size :] = words >> 8
                chunk = shuffled
            else:
                chunk = np.ascontiguousarray(chunk.view(np.uint8).reshape(-1, size).T)
        return _deflate(chunk.data, _DEFLATE_LEVEL)

    def _write_oldest(self) -> None:
        row, future = self.in_flight.popleft()
        offset = (row, *self.trailing_zeros)
        self.dataset.id.write_direct_chunk(offset, future.result(), 0)


@dataclass(frozen=True)
class WindowsSchema:
    """What a model needs to know about a windows file to be compatible with it.

    Attributes:
        window_len: length of the window proper (bp).
        flank: extra bases stored on each side (bp).
        track_names: names of the T signal tracks, in storage order.
        track_transform: ``none`` or ``log1p`` (applied before storage).
        schema_version: version of this file layout.
    """

    window_len: int
    flank: int
    track_names: tuple[str, ...]
    track_transform: str
    schema_version: int = SCHEMA_VERSION

    @property
    def seq_len(self) -> int:
        """Stored length per window (bp): ``window_len + 2 * flank``."""
        return self.window_len + 2 * self.flank

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, e.g. for a checkpoint."""
        return {
            "window_len": self.window_len,
            "flank": self.flank,
            "track_names": list(self.track_names),
            "track_transform": self.track_transform,
            "schema_version": self.schema_version,
        }


class WindowsWriter(ClosedOnExit):
    """Append windows chunk by chunk to a new windows file.

    Args:
        path: the file to create (callers pass a temporary path and rename it
            when everything is written; see :func:`seqae.fileio.atomic_output`).
        schema: window length, flank and tracks.
        track_dtype: ``float16`` or ``float32``.
        settings: configuration recorded in the file (JSON-serialisable).
        deflate_threads: threads compressing chunks (None: up to 4, as many
            as this process may run on).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        schema: WindowsSchema,
        track_dtype: str = "float16",
        settings: Mapping[str, Any] | None = None,
        deflate_threads: int | None = None,
    ):
        self.schema = schema
        self.n_windows = 0
        self._file = h5py.File(path, "w")
        seq_len = schema.seq_len
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        workers = deflate_threads or min(4, usable)
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="deflate")
        self._seq = self._file.create_dataset(
            "seq",
            shape=(0, seq_len),
            maxshape=(None, seq_len),
            dtype=np.uint8,
            chunks=(_SEQ_CHUNK_ROWS, seq_len),
            compression="gzip",
            compression_opts=_DEFLATE_LEVEL,
        )
        self._chunk_writers = [_ChunkWriter(self._seq, self._pool, shuffle=False)]
        n_tracks = len(schema.track_names)
        self._tracks = None
        if n_tracks:
            self._tracks = self._file.create_dataset(
                "tracks",
                shape=(0, n_tracks, seq_len),
                maxshape=(None, n_tracks, seq_len),
                dtype=np.dtype(track_dtype),
                chunks=(_TRACK_CHUNK_ROWS, n_tracks, seq_len),
                **_COMPRESSION,
            )
            self._chunk_writers.append(_ChunkWriter(self._tracks, self._pool, shuffle=True))
        attrs = self._file.attrs
        attrs["format"] = FORMAT_NAME
        attrs["schema_version"] = SCHEMA_VERSION
        attrs["seqae_version"] = __version__
        attrs["window_len"] = schema.window_len
        attrs["flank"] = schema.flank
        attrs["seq_len"] = seq_len
        attrs["base_codes"] = BASE_CODES
        attrs["track_names"] = json.dumps(list(schema.track_names))
        attrs["track_transform"] = schema.track_transform
        attrs["track_dtype"] = str(np.dtype(track_dtype))
        attrs["created_utc"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        attrs["settings"] = json.dumps(dict(settings or {}), sort_keys=True)

    def append(self, seq: np.ndarray, tracks: np.ndarray | None) -> None:
        """Append a chunk: ``seq uint8 [n, seq_len]``, ``tracks [n, T, seq_len]`` (None when T = 0)."""
        n = len(seq)
        if n == 0:
            return
        if seq.shape[1:] != self._seq.shape[1:]:
            raise ValueError(f"sequence rows of length {seq.shape[1]}, expected {self._seq.shape[1]}")
        hi = self.n_windows + n
        # The extent grows first: a chunk may only be written inside it.
        self._seq.resize(hi, axis=0)
        self._chunk_writers[0].append(seq.astype(np.uint8, copy=False))
        if self._tracks is not None:
            if tracks is None or tracks.shape != (n, *self._tracks.shape[1:]):
                raise ValueError("tracks chunk does not match the sequence chunk or the track count")
            self._tracks.resize(hi, axis=0)
            self._chunk_writers[1].append(tracks.astype(self._tracks.dtype, copy=False))
        self.n_windows = hi

    def write_labels(self, labels: pd.DataFrame) -> None:
        """Write the label table, one row per appended window, as ``/labels/<column>``.

        Call it after the last :meth:`append`; it marks the file complete.
        """
        self._flush()
        if len(labels) != self.n_windows:
            raise ValueError(f"{len(labels)} label rows for {self.n_windows} windows")
        group = self._file.require_group("labels")
        for column in labels.columns:
            values = labels[column]
            if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
                data = values.to_numpy()
                group.create_dataset(column, data=data, **_COMPRESSION if len(data) else {})
            else:
                _write_utf8_column(group, column, values)
        self._file.attrs["label_columns"] = json.dumps(list(labels.columns))
        self._file.attrs["n_windows"] = self.n_windows

    def finish_shard(self, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        """Mark the file a shard (rows only, no labels), keeping ``meta`` (JSON) and ``arrays`` for the gather step."""
        self._flush()
        self._file.attrs["format"] = SHARD_FORMAT
        self._file.attrs["shard"] = json.dumps(dict(meta))
        self._file.attrs["n_rows"] = self.n_windows
        group = self._file.require_group("shard")
        for name, array in arrays.items():
            group.create_dataset(name, data=array)

    def append_shard(self, path: str | os.PathLike[str]) -> None:
        """Append the rows of a shard file by copying its compressed chunks as they are (no inflate, no deflate).

        The rows written so far must end on a chunk boundary of every
        dataset (:data:`ROW_ALIGN`), as a shard's rows start on one.
        """
        with h5py.File(require_file(path, "windows shard"), "r") as src:
            if src.attrs.get("format") != SHARD_FORMAT:
                raise InputError(path, "not a seqae windows shard (or an incomplete one)")
            n = int(src.attrs["n_rows"])
            first = self.n_windows
            for writer in self._chunk_writers:
                target = writer.dataset
                if first % writer.rows or writer.n_pending or writer.in_flight:
                    raise ValueError(f"a shard may only start on a chunk boundary, not at row {first}")
                source = src[target.name]
                if source.shape[1:] != target.shape[1:] or source.dtype != target.dtype:
                    raise InputError(path, f"{target.name} of shape {source.shape} and type {source.dtype} does not "
                                           f"match this windows file's {target.shape[1:]} {target.dtype}")  # fmt: skip
                target.resize(first + n, axis=0)
                tail = (0,) * (target.ndim - 1)
                for row in range(0, n, writer.rows):
                    mask, chunk = source.id.read_direct_chunk((row, *tail))
                    target.id.write_direct_chunk((first + row, *tail), chunk, mask)
                writer.next_row = first + -(-n // writer.rows) * writer.rows
            self.n_windows = first + n

    def write_summary(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Small whole-dataset arrays under ``/summary/<name>`` (e.g. mean track profiles for QC)."""
        group = self._file.require_group("summary")
        for name, array in arrays.items():
            group.create_dataset(name, data=array)

    def _flush(self) -> None:
        for writer in self._chunk_writers:
            writer.finish()

    def close(self) -> None:
        """Write what is pending and close the file."""
        try:
            if self._file.id.valid:
                self._flush()
        finally:
            self._pool.shutdown(wait=True)
            self._file.close()

    def abort(self) -> None:
        """Close the file without writing what is pending, and without waiting for the compression threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._file.close()

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        # On an error (SIGTERM and Ctrl-C included) the file is being discarded: writing the
        # chunks still pending, from wherever append() was stopped, would only raise again, in
        # place of the real exception.
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _fixed_width_utf8(values: pd.Series | np.ndarray) -> np.ndarray:
    """Strings ``[n]`` as a NumPy ``S<width>`` array of their UTF-8 bytes, zero-padded.

    Built from Arrow's offsets and data buffers in a few vectorised steps
    rather than by encoding string by string.
    """
    import pyarrow as pa

    series = pd.Series(values)
    if not pd.api.types.is_string_dtype(series) or series.dtype == object:
        series = series.astype(str)
    arrow = pa.array(series).cast(pa.large_string())
    if isinstance(arrow, pa.ChunkedArray):
        arrow = arrow.combine_chunks()
    offsets = np.frombuffer(arrow.buffers()[1], dtype=np.int64)[arrow.offset : arrow.offset + len(arrow) + 1]
    data = (
        np.frombuffer(arrow.buffers()[2], dtype=np.uint8) if arrow.buffers()[2] is not None else np.zeros(0, np.uint8)
    )
    lengths = np.diff(offsets)
    width = max(1, int(lengths.max()) if len(lengths) else 1)
    out = np.zeros((len(lengths), width), dtype=np.uint8)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = np.arange(int(lengths.sum())) - np.repeat(offsets[:-1] - offsets[0], lengths)
    out[rows, cols] = data[offsets[0] : offsets[-1]]
    return out.view(f"S{width}").ravel()


def _write_utf8_column(group: h5py.Group, name: str, values: pd.Series | np.ndarray) -> None:
    """Store strings ``[n]`` as a fixed-length UTF-8 dataset, deflate-compressed.

    Fixed-length strings write and read far faster than variable-length
    ones; the dataset is tagged UTF-8 so readers decode it correctly.
    """
    encoded = _fixed_width_utf8(values)
    file_type = h5py.h5t.py_create(encoded.dtype).copy()
    file_type.set_cset(h5py.h5t.CSET_UTF8)
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    if len(encoded):
        dcpl.set_chunk((min(len(encoded), 65536),))
        dcpl.set_deflate(_DEFLATE_LEVEL)
    space = h5py.h5s.create_simple(encoded.shape)
    dataset = h5py.h5d.create(group.id, name.encode(), file_type, space, dcpl=dcpl)
    if len(encoded):
        dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(encoded), mtype=file_type)


def read_schema(path: str | os.PathLike[str]) -> WindowsSchema:
    """The :class:`WindowsSchema` of a windows file.

    Raises:
        InputError: not a seqae windows file, or a schema version this
            seqae does not read.
    """
    with open_windows_file(path) as f:
        attrs = f.attrs
        return WindowsSchema(
            window_len=int(attrs["window_len"]),
            flank=int(attrs["flank"]),
            track_names=tuple(json.loads(attrs["track_names"])),
            track_transform=str(attrs["track_transform"]),
            schema_version=int(attrs["schema_version"]),
        )


def open_windows_file(path: str | os.PathLike[str]) -> h5py.File:
    """Open a windows file read-only after checking its format and version."""
    p = require_file(path, "windows file")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        truncated = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", str(exc))
        if truncated:  # a copy or download cut short, or a disk that filled up
            have, stored = (int(g) for g in truncated.groups())
            raise InputError(p, f"truncated: {have:,} of its {stored:,} bytes; copy it again") from None
        raise InputError(p, "not an HDF5 file") from None
    if f.attrs.get("format") != FORMAT_NAME:
        f.close()
        raise InputError(p, f"not a seqae windows file (no format={FORMAT_NAME!r} attribute)")
    version = int(f.attrs.get("schema_version", -1))
    if version != SCHEMA_VERSION:
        f.close()
        raise InputError(p, f"windows file schema version {version}; this seqae reads version {SCHEMA_VERSION}")
    if "n_windows" not in f.attrs:
        f.close()
        # n_windows is written last, once the labels and the summary are: its writer did not finish.
        raise InputError(p, "windows file is incomplete (its writing did not finish: extract it again)")
    try:
        problem = _layout_problem(f)
    except Exception:
        f.close()
        raise
    if problem is not None:
        f.close()
        raise InputError(p, f"damaged windows file: {problem}")
    return f


def _layout_problem(f: h5py.File) -> str | None:
    """What in a windows file's layout disagrees with its attributes (metadata only, no data read); None if all fits.

    A file edited or cut by other tools could otherwise fail deep in HDF5 or,
    worse, be read in part: labels shorter than ``seq`` trained on silently.
    """
    attrs = f.attrs
    for key in ("n_windows", "window_len", "flank", "track_names", "track_transform", "label_columns"):
        if key not in attrs:
            return f"no attribute {key}"
    try:
        n = int(attrs["n_windows"])
        seq_len = int(attrs["window_len"]) + 2 * int(attrs["flank"])
        track_names = json.loads(attrs["track_names"])
        label_columns = json.loads(attrs["label_columns"])
    except (ValueError, TypeError):
        return (
            "unreadable attributes (n_windows, window_len and flank are integers; track_names and label_columns JSON)"
        )
    if not isinstance(track_names, list) or not isinstance(label_columns, list):
        return "attributes track_names and label_columns must be JSON lists"
    expected = {"seq": (n, seq_len)}
    if track_names:
        expected["tracks"] = (n, len(track_names), seq_len)
    for name, shape in expected.items():
        ds = f.get(name)
        if not isinstance(ds, h5py.Dataset):
            return f"no dataset /{name}"
        if ds.shape != shape:
            return f"/{name} has shape {ds.shape}, the attributes say {shape}"
    if f["seq"].dtype != np.uint8:
        return f"/seq has dtype {f['seq'].dtype}, not the uint8 base codes seqae writes"
    if "seq_len" in attrs and attrs["seq_len"] != seq_len:
        return f"attribute seq_len is {attrs['seq_len']}, but window_len + 2 * flank is {seq_len}"
    labels = f.get("labels")
    if not isinstance(labels, h5py.Group):
        return "no group /labels"
    for column in label_columns:
        ds = labels.get(column)
        if not isinstance(ds, h5py.Dataset):
            return f"no label column /labels/{column}, which label_columns lists"
        if ds.shape != (n,):
            return f"/labels/{column} has {ds.shape[0] if ds.shape else 0} rows for {n} windows"
    return None


def read_labels(path: str | os.PathLike[str], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The label table of a windows file (one row per window, in file order)."""
    with open_windows_file(path) as f:
        names = json.loads(f.attrs["label_columns"])
        if columns is not None:
            missing = sorted(set(columns) - set(names))
            if missing:
                raise InputError(path, f"no label column {missing[0]!r} (columns: {', '.join(names)})")
            names = list(columns)
        data = {}
        for name in names:
            ds = f["labels"][name]
            data[name] = ds.asstr()[()] if h5py.check_string_dtype(ds.dtype) else ds[()]
    return pd.DataFrame(data)


def windows_fingerprint(path: str | os.PathLike[str], labels: pd.DataFrame | None = None) -> str:
    """A SHA-256 hex digest of what a windows file holds, without reading its sequences and tracks.

    It covers the label table (places, kinds, GC, labels and splits: other
    peaks, splits or genome change it), the extraction settings and track
    dtype recorded in the file, and the per-track mean profiles of
    ``/summary`` (a bigWig replaced or rescaled changes them). Two files with
    one fingerprint hold the same windows, so a training run may resume on
    either. pandas' row hashes use a fixed key, so the digest is stable
    across processes.

    Args:
        path: the windows file.
        labels: its label table as already read (:func:`read_labels`, maybe with
            :func:`qualify_chromosomes`); None reads it.
    """
    labels = read_labels(path) if labels is None else labels
    digest = hashlib.sha256("\t".join(map(str, labels.columns)).encode())
    digest.update(pd.util.hash_pandas_object(labels, index=False).to_numpy().tobytes())
    with open_windows_file(path) as f:
        for key in ("settings", "track_dtype"):
            digest.update(f"\n{key}={f.attrs.get(key, '')}".encode())
    for name, array in sorted(read_summary(path).items()):
        digest.update(f"\n{name}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def qualify_chromosomes(labels: pd.DataFrame) -> pd.DataFrame:
    """The label table with ``chrom`` as ``<species>:<chrom>`` when it holds several species.

    The windows file keeps each genome's own sequence names (so that BED and
    bigWig outputs match its FASTA); models and probes read chromosome labels
    through this function, so that ``chr1`` of one genome is not the same
    class as ``chr1`` of another. With one species the table is returned as is.
    """
    if "species" not in labels or "chrom" not in labels or labels["species"].nunique() < 2:
        return labels
    out = labels.copy()
    out["chrom"] = labels["species"].astype(str) + ":" + labels["chrom"].astype(str)
    return out


def read_summary(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The ``/summary`` arrays of a windows file, by path below ``/summary`` (e.g. ``mean_profile/peak``)."""
    arrays: dict[str, np.ndarray] = {}
    with open_windows_file(path) as f:
        if "summary" in f:
            f["summary"].visititems(
                lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
            )
    return arrays
