"""The windows a training run reads: its train and validation splits, their labels, and the batches.

Both splits are staged on the device when they fit (``training.stage_on_device``),
so that a step only gathers rows there; otherwise a DataLoader streams each
batch from the HDF5 file. Either way the batches are the same positions
(:meth:`RunData.train_index_batches`, :meth:`RunData.val_index_batches`), cut
into each process's part in a data-parallel run (see :mod:`seqae.distributed`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from seqae import distributed
from seqae.errors import SeqaeError
from seqae.runtime import free_memory
from seqae.windows.store import UNKNOWN_LABELS

# Stage the data when it takes at most this fraction of the free device memory
# (the rest is for the model, its activations and the optimiser).
STAGE_MEMORY_FRACTION = 0.4


class _BatchOrder:
    """Batch sampler yielding the position batches set in ``batches`` (set them before each epoch).

    The streamed runs get the same batches as the staged ones
    (:meth:`RunData.train_index_batches`, :meth:`RunData.val_index_batches`).
    """

    def __init__(self) -> None:
        self.batches: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            yield batch.tolist()


def _staged_batches(staged: Any, batches: list[torch.Tensor]) -> Iterator[dict[str, torch.Tensor]]:
    """Batches gathered on the device from staged windows (as :meth:`StagedWindows.batches` does);
    the positions go to the device in one transfer."""
    if not batches:
        return
    flat = torch.cat(batches).to(staged.device)
    lo = 0
    for batch in batches:
        idx = flat[lo : lo + batch.numel()]
        lo += batch.numel()
        yield {"seq": staged.seq[idx].long(), "tracks": staged.tracks[idx].float(), "index": staged.index[idx]}


@dataclass
class RunData:
    """The train and validation windows of one run, and how batches reach the device.

    Staged: both splits live on the device; a batch is a gather there.
    Streamed: a DataLoader per split (persistent workers, pinned memory on
    CUDA) reads each batch from the HDF5 file in one call.
    """

    path: str
    device: torch.device
    batch_size: int
    train: Any  # WindowDataset
    val: Any  # WindowDataset
    label_codes: dict[str, torch.Tensor]  # column -> int64 [n_windows in file] on device, -1 unknown
    label_categories: dict[str, list[str]]
    windows_fingerprint: str  # seqae.windows.store.windows_fingerprint of the file
    staged: bool
    num_workers: int
    track_dtype: torch.dtype
    staged_train: Any = None
    staged_val: Any = None
    ctx: distributed.Dist = distributed.SINGLE
    drop_last: bool = field(init=False)
    _loaders: dict[str, tuple[_BatchOrder, Any]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        # A ragged last batch is dropped (each epoch drops other windows); a
        # batch of one window would also break BatchNorm.
        self.drop_last = len(self.train) > self.batch_size

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch (global batches; the same for every process)."""
        n = len(self.train)
        if self.drop_last:
            return n // self.batch_size
        return int(n >= self.ctx.world_size and n > 0)

    def train_index_batches(self, generator: torch.Generator) -> list[torch.Tensor]:
        """This process's part of every training batch of the epoch: the global batches follow
        ``randperm(n, generator)``, the same in every process (see :func:`distributed.shard_batches`)."""
        order = torch.randperm(len(self.train), generator=generator)
        return distributed.shard_batches(order, self.batch_size, self.ctx.rank, self.ctx.world_size, self.drop_last)

    def val_index_batches(self) -> list[torch.Tensor]:
        """This process's validation batches, in file order (see :func:`distributed.round_robin_batches`)."""
        return distributed.round_robin_batches(len(self.val), self.batch_size, self.ctx.rank, self.ctx.world_size)

    def _loader(self, split: str) -> tuple[_BatchOrder, Any]:
        if split not in self._loaders:
            dataset = self.train if split == "train" else self.val
            order = _BatchOrder()
            loader = torch.utils.data.DataLoader(
                dataset,
                batch_sampler=order,
                num_workers=self.num_workers,
                pin_memory=self.device.type == "cuda",
                persistent_workers=self.num_workers > 0,
                # Seeds the workers without drawing from the global RNG.
                generator=torch.Generator().manual_seed(0),
            )
            self._loaders[split] = (order, loader)
        return self._loaders[split]

    def _streamed(self, split: str, batches: list[torch.Tensor]) -> Iterator[dict[str, torch.Tensor]]:
        order, loader = self._loader(split)
        order.batches = batches
        if not batches:
            return
        for batch in loader:
            yield {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def train_batches(self, epoch_generator: torch.Generator) -> Iterator[dict[str, torch.Tensor]]:
        """This epoch's training batches on the device (this process's part of each: :meth:`train_index_batches`)."""
        batches = self.train_index_batches(epoch_generator)
        if self.staged:
            return _staged_batches(self.staged_train, batches)
        return self._streamed("train", batches)

    def train_batches_in_order(self) -> Iterator[dict[str, torch.Tensor]]:
        """Every training window once, in file order, on the device (the same in every process)."""
        batches = list(torch.arange(len(self.train)).split(self.batch_size))
        if self.staged:
            return _staged_batches(self.staged_train, batches)
        return self._streamed("train", batches)

    def val_batches(self) -> Iterator[dict[str, torch.Tensor]]:
        """This process's validation batches on the device, in file order."""
        batches = self.val_index_batches()
        if self.staged:
            return _staged_batches(self.staged_val, batches)
        return self._streamed("val", batches)

    def labels(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """Label codes (``int64 [B]`` on the device, -1 unknown) of the windows at file rows ``index [B]``, per column."""
        return {column: codes[index] for column, codes in self.label_codes.items()}

    def close(self) -> None:
        self._loaders.clear()  # persistent workers end with their loader
        self.train.close()
        self.val.close()


def _label_codes(
    train: Any, val: Any, columns: list[str], windows: str
) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Codes of every label column over the whole file (``int64 [n]``, -1 unknown) and the known categories."""
    n_file = len(train.labels)
    codes_out, categories_out = {}, {}
    for column in columns:
        if column not in train.labels.columns:
            raise SeqaeError(
                f"{windows}: no label column {column!r} for a latent block (columns: {', '.join(train.labels.columns)})"
            )
        full = np.full(n_file, -1, dtype=np.int64)
        categories: list[str] = []
        for ds in (train, val):
            codes, categories = ds.label_codes(column)
            full[ds.rows] = codes.numpy()
        known = [c for c in categories if c not in UNKNOWN_LABELS]
        if not known:
            filled = [c for c in train.labels.columns if (~train.labels[c].astype(str).isin(UNKNOWN_LABELS)).any()]
            raise SeqaeError(
                f"{windows}: label column {column!r} is empty for every window (labels with values: "
                f"{', '.join(filled)}); give its latent block one of those or `label: null`"
            )
        remap = np.array([-1 if c in UNKNOWN_LABELS else known.index(c) for c in categories], dtype=np.int64)
        codes_out[column] = np.where(full >= 0, remap[np.maximum(full, 0)], -1)
        categories_out[column] = known
    return codes_out, categories_out


def open_run_data(
    windows: str,
    training: Mapping[str, Any],
    label_columns: list[str],
    device: torch.device,
    ctx: distributed.Dist = distributed.SINGLE,
) -> RunData:
    """The train and validation splits of a windows file, staged on ``device`` when ``training.stage_on_device``
    says so (``auto``: when they take at most :data:`STAGE_MEMORY_FRACTION` of its free memory).

    Args:
        windows: the windows HDF5 file.
        training: effective training settings (``batch_size``, ``stage_on_device``, ``num_workers``).
        label_columns: the label columns the model's latent blocks name.
        device: where batches are delivered.
        ctx: this process's place in a data-parallel run.

    Raises:
        SeqaeError: a batch that the processes cannot share evenly, no train windows, fewer than
            processes, or a label column missing or empty.
    """
    from seqae.windows.dataset import WindowDataset
    from seqae.windows.store import open_windows_file, windows_fingerprint

    if training["batch_size"] % ctx.world_size:
        raise SeqaeError(
            f"training.batch_size {training['batch_size']} is the global batch of a step and must be divisible "
            f"by the number of processes, {ctx.world_size} (torchrun --nproc_per_node)"
        )
    train = WindowDataset(windows, "train")
    val = WindowDataset(windows, "val")
    if len(train) == 0:
        raise SeqaeError(f"{windows}: no windows in the train split")
    if len(train) < ctx.world_size:
        raise SeqaeError(f"{windows}: {len(train)} train windows cannot be shared by {ctx.world_size} processes")
    codes, categories = _label_codes(train, val, label_columns, windows)
    with open_windows_file(windows) as f:
        stored = np.dtype(f["tracks"].dtype) if "tracks" in f else np.dtype(np.float16)
    # Staged tracks keep the stored precision, so staged and lazy batches are identical.
    track_dtype = torch.float32 if stored == np.float32 else torch.float16
    stage = training["stage_on_device"]
    if stage == "auto":
        schema = train.schema
        per_window = schema.seq_len * (1 + len(schema.track_names) * torch.finfo(track_dtype).bits // 8) + 8
        need = (len(train) + len(val)) * per_window
        free = free_memory(device)
        stage = free is None or need <= STAGE_MEMORY_FRACTION * free
    data = RunData(
        path=windows,
        device=device,
        batch_size=training["batch_size"],
        train=train,
        val=val,
        label_codes={c: torch.from_numpy(v).to(device) for c, v in codes.items()},
        label_categories=categories,
        windows_fingerprint=windows_fingerprint(windows, train.labels),
        staged=bool(stage),
        num_workers=training["num_workers"],
        track_dtype=track_dtype,
        ctx=ctx,
    )
    if data.staged:
        data.staged_train = train.stage(device, track_dtype=track_dtype)
        data.staged_val = val.stage(device, track_dtype=track_dtype)
        # The HDF5 handle is not needed any more once the rows are on the device.
        train.close()
        val.close()
    return data
