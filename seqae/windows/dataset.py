"""PyTorch access to a windows file: a lazy ``Dataset`` and a device-staged copy.

``WindowDataset`` reads rows on demand (one HDF5 read per batch through
``__getitems__``), which suits data larger than memory. ``stage()`` loads the
selected rows once onto a device (the GPU when training) so that a training
step only gathers indices on the device and never waits for the CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import h5py
import numpy as np
import pandas as pd
import torch

from seqae.errors import InputError, SeqaeError
from seqae.windows.reader import read_rows
from seqae.windows.store import WindowsSchema, open_windows_file, qualify_chromosomes, read_labels, read_schema

#: The split labels a windows file may hold.
SPLITS = ("train", "val", "test")

# HDF5 chunk cache per open file: holds many compressed chunks so that batches
# of nearby rows do not decompress the same chunk twice.
_CHUNK_CACHE_BYTES = 64 * 1024**2


class WindowDataset(torch.utils.data.Dataset):
    """Windows of one or more splits, read lazily from a windows file.

    Args:
        path: the windows HDF5 file.
        splits: split names to keep (``"train"``, ``"val"``, ``"test"``); None keeps all.

    Items are dicts: ``seq`` (``int64 [seq_len]`` base codes), ``tracks``
    (``float32 [T, seq_len]``) and ``index`` (row in the file).
    """

    def __init__(self, path: str | os.PathLike[str], splits: Sequence[str] | str | None = None):
        self.path = str(path)
        self.schema: WindowsSchema = read_schema(path)
        # Chromosome labels are species-qualified when the file holds several genomes.
        self.labels: pd.DataFrame = qualify_chromosomes(read_labels(path))
        if isinstance(splits, str):
            splits = [splits]
        if "split" in self.labels:
            unknown = sorted(set(self.labels["split"].astype(str).unique()) - set(SPLITS))
            if unknown:
                # Rows of another split would be left out of every split silently.
                raise InputError(self.path, f"split label {unknown[0]!r} is none of {', '.join(SPLITS)}")
        keep = np.ones(len(self.labels), bool) if splits is None else self.labels["split"].isin(splits).to_numpy()
        self.rows = np.flatnonzero(keep)
        self._file: h5py.File | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def _h5(self) -> h5py.File:
        # Opened on first use so that DataLoader workers each get their own handle.
        if self._file is None:
            open_windows_file(self.path).close()
            self._file = h5py.File(self.path, "r", rdcc_nbytes=_CHUNK_CACHE_BYTES, rdcc_nslots=10007)
        return self._file

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        batch = self.read_batch([i])
        return {k: v[0] for k, v in batch.items()}

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        """Items of a DataLoader batch, read from the file in one call (then collated as usual)."""
        batch = self.read_batch(indices)
        return [{k: v[i] for k, v in batch.items()} for i in range(len(indices))]

    def read_batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """A batch in one read: ``seq int64 [B, seq_len]``, ``tracks float32 [B, T, seq_len]``, ``index [B]``."""
        rows = self.rows[np.asarray(indices, dtype=np.int64)]
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        f = self._h5()
        # h5py needs strictly increasing indices; duplicates are read once.
        uniq, back = np.unique(sorted_rows, return_inverse=True)
        n_tracks = len(self.schema.track_names)
        try:
            seq = f["seq"][uniq][back][inverse]
            if n_tracks:
                tracks = f["tracks"][uniq][back][inverse].astype(np.float32)
            else:
                tracks = np.zeros((len(rows), 0, self.schema.seq_len), dtype=np.float32)
        except OSError as exc:  # HDF5's "Can't read data (inflate() failed)" of a damaged chunk
            raise SeqaeError(f"{f.filename}: corrupt data in rows {uniq[0]}-{uniq[-1]} ({exc}); "
                             "extract the windows again, or copy the file again") from None  # fmt: skip
        return {
            "seq": torch.from_numpy(seq.astype(np.int64)),
            "tracks": torch.from_numpy(tracks),
            "index": torch.from_numpy(rows),
        }

    def label_codes(self, column: str) -> tuple[torch.Tensor, list[str]]:
        """Integer codes of a label column for this dataset's rows, and the category names.

        Codes are assigned over the whole file (sorted categories), so the same
        category has the same code in every split.
        """
        categories = sorted(self.labels[column].astype(str).unique())
        codes = pd.Categorical(self.labels[column].astype(str), categories=categories).codes
        return torch.from_numpy(codes[self.rows].astype(np.int64)), categories

    def stage(self, device: torch.device | str = "cpu", track_dtype: torch.dtype = torch.float16) -> StagedWindows:
        """Load this dataset's rows onto ``device`` in one go (see :class:`StagedWindows`)."""
        seq = self._read_rows("seq", np.zeros((0, self.schema.seq_len), np.uint8))
        n_tracks = len(self.schema.track_names)
        if n_tracks:
            tracks = self._read_rows("tracks", np.zeros((0, n_tracks, self.schema.seq_len), np.float16))
        else:
            tracks = np.zeros((len(self.rows), 0, self.schema.seq_len), np.float16)
        return StagedWindows(
            seq=torch.from_numpy(seq).to(device),
            tracks=torch.from_numpy(np.asarray(tracks)).to(device=device, dtype=track_dtype),
            index=torch.from_numpy(self.rows).to(device),
        )

    def _read_rows(self, name: str, empty: np.ndarray) -> np.ndarray:
        """This dataset's rows of ``/<name>``, the HDF5 chunks inflated in parallel (:func:`~seqae.windows.reader.read_rows`)."""
        if not len(self.rows):
            return empty
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="inflate") as pool:
            return read_rows(self._h5()[name], self.rows, pool)

    def close(self) -> None:
        """Close the HDF5 handle, if open."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None
        return state


@dataclass
class StagedWindows:
    """Windows held as tensors on one device.

    Attributes:
        seq: ``uint8 [N, seq_len]`` base codes.
        tracks: ``[N, T, seq_len]`` signal (float16 by default, to halve memory).
        index: ``int64 [N]`` rows in the windows file.
    """

    seq: torch.Tensor
    tracks: torch.Tensor
    index: torch.Tensor

    def __len__(self) -> int:
        return self.seq.shape[0]

    @property
    def device(self) -> torch.device:
        """Where the tensors live."""
        return self.seq.device

    def batches(
        self, batch_size: int, shuffle: bool = True, generator: torch.Generator | None = None, drop_last: bool = False
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Yield batches gathered on the device: ``seq int64 [B, seq_len]``, ``tracks float32``, ``index``.

        The permutation is drawn on the CPU from ``generator`` (reproducible
        across devices) and moved to the device once per epoch.
        """
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        order = order.to(self.device)
        stop = n - n % batch_size if drop_last else n
        for lo in range(0, stop, batch_size):
            idx = order[lo : lo + batch_size]
            yield {"seq": self.seq[idx].long(), "tracks": self.tracks[idx].float(), "index": self.index[idx]}
