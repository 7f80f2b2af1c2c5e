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
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from seqae import __version__
from seqae.errors import InputError
from seqae.fileio import require_file

FORMAT_NAME = "seqae-windows"
SCHEMA_VERSION = 1
BASE_CODES = "ACGTN"

# Rows per HDF5 chunk: ~256 KiB of sequence per chunk at seq_len 1200, large
# enough for fast compression, small enough for random access by a DataLoader.
_SEQ_CHUNK_ROWS = 256
_TRACK_CHUNK_ROWS = 64
_COMPRESSION = {"compression": "gzip", "compression_opts": 1, "shuffle": True}


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


class WindowsWriter:
    """Append windows chunk by chunk to a new windows file.

    Args:
        path: the file to create (callers pass a temporary path and rename it
            when everything is written; see :func:`seqae.fileio.atomic_output`).
        schema: window length, flank and tracks.
        track_dtype: ``float16`` or ``float32``.
        settings: configuration recorded in the file (JSON-serialisable).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        schema: WindowsSchema,
        track_dtype: str = "float16",
        settings: Mapping[str, Any] | None = None,
    ):
        self.schema = schema
        self.n_windows = 0
        self._file = h5py.File(path, "w")
        seq_len = schema.seq_len
        self._seq = self._file.create_dataset(
            "seq",
            shape=(0, seq_len),
            maxshape=(None, seq_len),
            dtype=np.uint8,
            chunks=(_SEQ_CHUNK_ROWS, seq_len),
            **_COMPRESSION,
        )
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
        lo, hi = self.n_windows, self.n_windows + n
        self._seq.resize(hi, axis=0)
        self._seq[lo:hi] = seq
        if self._tracks is not None:
            if tracks is None or tracks.shape[:2] != (n, self._tracks.shape[1]):
                raise ValueError("tracks chunk does not match the sequence chunk or the track count")
            self._tracks.resize(hi, axis=0)
            self._tracks[lo:hi] = tracks.astype(self._tracks.dtype, copy=False)
        self.n_windows = hi

    def write_labels(self, labels: pd.DataFrame) -> None:
        """Write the label table, one row per appended window, as ``/labels/<column>``."""
        if len(labels) != self.n_windows:
            raise ValueError(f"{len(labels)} label rows for {self.n_windows} windows")
        group = self._file.require_group("labels")
        for column in labels.columns:
            values = labels[column]
            if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
                data = values.to_numpy()
                group.create_dataset(column, data=data, **_COMPRESSION if len(data) else {})
            else:
                data = values.astype(str).to_numpy(dtype=object)
                group.create_dataset(column, data=data, dtype=h5py.string_dtype("utf-8"))
        self._file.attrs["label_columns"] = json.dumps(list(labels.columns))
        self._file.attrs["n_windows"] = self.n_windows

    def close(self) -> None:
        """Flush and close the file."""
        self._file.close()

    def __enter__(self) -> WindowsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    except OSError:
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
        raise InputError(p, "windows file is incomplete (no labels written)")
    return f


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


def read_windows(
    path: str | os.PathLike[str], rows: np.ndarray | slice | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Sequence codes and tracks of some windows (all when ``rows`` is None).

    Returns:
        ``(seq uint8 [n, seq_len], tracks [n, T, seq_len] or None)``.
    """
    with open_windows_file(path) as f:
        selector = slice(None) if rows is None else rows
        if isinstance(selector, np.ndarray):
            # h5py fancy indexing needs increasing indices.
            order = np.argsort(selector)
            inverse = np.empty_like(order)
            inverse[order] = np.arange(len(order))
            seq = f["seq"][np.asarray(selector)[order]][inverse]
            tracks = f["tracks"][np.asarray(selector)[order]][inverse] if "tracks" in f else None
        else:
            seq = f["seq"][selector]
            tracks = f["tracks"][selector] if "tracks" in f else None
    return seq, tracks
