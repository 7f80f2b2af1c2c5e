"""Training stage: fit one configured model on a windows file, with exact resumption.

``train_model(config, "vq", "windows.h5", "results/models/vq")`` writes into the output folder::

    checkpoint.pt       the run's state after the last saved epoch (see seqae.checkpoint);
                        `resume=True` continues from it
    best.pt             the model at its lowest validation selection loss (:func:`selection_loss`,
                        ``training.selection``; what embed/evaluate load)
    model.json          settings, data schema, label categories, parameter count, outcome
    metrics.csv         one row per epoch: epoch, step, lr, train_* and val_* means
                        (loss, loss/<component>, every model metric), seconds, samples_per_s;
                        with ``training.monitor_shuffled``, the validation windows against
                        their dinucleotide shuffles: val_shuffled_seq_ce, val_shuffle_gap
                        (nats per base) and val_auroc_shuffled
    loss_curves.png     train vs validation loss, its main components per epoch and the
                        shuffle monitor
    tensorboard/        event files (when torch.utils.tensorboard imports)

Reproducibility: everything random is seeded from ``config["seed"]``. The
shuffling of epoch ``e`` and its augmentation draws (jitter offsets,
reverse-complement coin flips, on the device) come from generators seeded by
``(seed, e)``, so a resumed run needs no generator state for them; the global
torch (CPU and CUDA), NumPy and Python RNGs (dropout, VAE sampling, denoising
corruption, VQ restarts) are saved in every checkpoint and restored. A run
stopped after epoch ``k`` and resumed therefore ends with the same parameters
and the same metrics.csv rows (but the timings) as an uninterrupted run, on
the same device and software.

Speed: the train and validation windows are staged on the device when they
fit (``training.stage_on_device``), so a step only gathers rows on the device;
metrics accumulate on the device and reach the host only every
``training.log_every_steps`` steps and at the end of an epoch. Non-finite
losses are tracked on the device too: the error names the exact step.

Several GPUs (data parallelism): ``torchrun --standalone --nproc_per_node N
-m seqae train ...`` runs one process per GPU (``train_model`` joins the
process group that torchrun's environment describes, see
:mod:`seqae.distributed`). ``training.batch_size`` stays the global batch
(``batch_size / N`` windows per process; it must be divisible by N): each
step's batch is the single-process batch of the same global permutation, cut
into N parts, and ``DistributedDataParallel`` averages the gradients, so the
steps, the learning-rate schedule, the validation metrics and the early
stopping are those of one GPU, and the parameters follow the same path up to
batch-size effects (BatchNorm statistics and the means over known labels
are taken over each process's part; augmentation, dropout and sampling draw
from per-process streams). Only rank 0 writes files and logs; each
checkpoint holds every process's RNG state, so resuming with the same number
of processes is exact, and a checkpoint from N processes resumes in any other
number (it stores the bare module's state, never DDP's). On the CPU the
same runs with the gloo backend (how the tests run it).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import itertools
import json
import logging
import math
import os
import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from seqae import __version__, distributed
from seqae.checkpoint import (
    CHECKPOINT_FORMAT,
    FORMAT_VERSION,
    MODEL_FORMAT,
    check_data,
    check_resumable,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from seqae.config import Config, validate_config
from seqae.errors import SeqaeError
from seqae.fileio import atomic_output, remove_stale_temporaries
from seqae.progress import progress_bar
from seqae.runtime import resolve_device
from seqae.windows.store import UNKNOWN_LABELS

log = logging.getLogger("seqae")

# Stage the data when it takes at most this fraction of the free device memory
# (the rest is for the model, its activations and the optimiser).
STAGE_MEMORY_FRACTION = 0.4
# Redraw loss_curves.png at most this often during a run (and always at its end).
PLOT_EVERY_SECONDS = 30.0
# Without progress bars (--quiet, as in the workflow), a line on the progress of
# the epoch at most this often, so that a slow epoch is not minutes of silence.
PROGRESS_EVERY_SECONDS = 60.0

CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.pt"
#: The files a run writes into its folder (their stale temporaries are removed when a run starts).
OUTPUT_NAMES = (CHECKPOINT_NAME, BEST_NAME, "model.json", "metrics.csv", "loss_curves.png")


# ---------------------------------------------------------------------- settings


def resolve_model(config: Config, model_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Full model settings and effective training settings of one configured model.

    The model's own ``training:`` entry overrides the top-level ``training``
    keys (``augment`` key by key).

    Raises:
        SeqaeError: no such model (the message lists the configured ones).
        ConfigError: invalid model settings, named as ``models.<name>.<key>``.
    """
    models = config.get("models") or {}
    if model_name not in models:
        names = ", ".join(models) or "none"
        raise SeqaeError(f"no model {model_name!r} in the config (configured models: {names})")
    from seqae.models import model_settings

    entry = copy.deepcopy(dict(models[model_name] or {}))
    override = entry.pop("training", None) or {}
    settings = model_settings(entry, where=f"models.{model_name}")
    training = copy.deepcopy(dict(config["training"]))
    for key, value in override.items():
        if key == "augment":
            training["augment"] = {**training["augment"], **value}
        else:
            training[key] = value
    return settings, training


def lr_factor(step: int, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """Learning-rate multiplier before optimiser step ``step`` (0-based).

    Linear warm-up ``(step + 1) / warmup_steps``, then 1 (``constant``) or a
    cosine decay reaching 0 at ``total_steps`` (``cosine``).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def epoch_seed(seed: int, epoch: int, stream: int, rank: int = 0) -> int:
    """A 63-bit seed for one random stream (0 shuffle, 1 augmentation) of one epoch.

    ``rank``: the process of a data-parallel run, for streams that must differ
    between processes (augmentation); rank 0 has the single-process seed.
    """
    entropy = [seed, epoch, stream] if rank == 0 else [seed, epoch, stream, rank]
    state = np.random.SeedSequence(entropy).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & (2**63 - 1)


def seed_process_rngs(seed: int, rank: int, epoch: int) -> None:
    """Seed the global torch, NumPy and Python RNGs of process ``rank`` > 0 of a data-parallel run.

    Dropout, VAE sampling, denoising corruption and VQ restarts draw from the
    global RNGs; drawn alike in every process, the parts of a global batch
    would all get the same noise. Rank 0 keeps the single-process stream.
    ``epoch``: the epoch the stream starts after (0 for a new run).
    """
    state = np.random.SeedSequence([seed, 1 << 20, rank, epoch]).generate_state(2, np.uint32)
    value = int((int(state[0]) << 31) ^ int(state[1])) & (2**63 - 1)
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a ``training.precision`` on a device (None: full fp32)."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    return torch.bfloat16


# ---------------------------------------------------------------------- data


def _free_memory(device: torch.device) -> int | None:
    """Free bytes on the device (available RAM for the CPU); None when unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


class _BatchOrder:
    """Batch sampler yielding the position batches set in ``batches`` (set them before each epoch).

    The streamed runs get the same batches as the staged ones
    (:meth:`_Data.train_index_batches`, :meth:`_Data.val_index_batches`).
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
class _Data:
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


def _open_data(
    windows: str,
    training: Mapping[str, Any],
    label_columns: list[str],
    device: torch.device,
    ctx: distributed.Dist = distributed.SINGLE,
) -> _Data:
    from seqae.windows.dataset import WindowDataset
    from seqae.windows.store import open_windows_file

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
        free = _free_memory(device)
        stage = free is None or need <= STAGE_MEMORY_FRACTION * free
    data = _Data(
        path=windows,
        device=device,
        batch_size=training["batch_size"],
        train=train,
        val=val,
        label_codes={c: torch.from_numpy(v).to(device) for c, v in codes.items()},
        label_categories=categories,
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


# ---------------------------------------------------------------------- metrics


class _DeviceMeans:
    """Batch-size-weighted means of 0-dim device tensors, accumulated without host synchronisation.

    Values of one step are stacked into one vector, so a step adds one
    kernel; the host reads them only in :meth:`means` / :meth:`interval_means`.
    """

    def __init__(self) -> None:
        self.sums: dict[tuple[str, ...], torch.Tensor] = {}
        self.counts: dict[tuple[str, ...], int] = {}
        self._mark: dict[tuple[str, ...], tuple[torch.Tensor, int]] = {}

    def add(self, items: Mapping[str, torch.Tensor], n: int) -> None:
        keys = tuple(items)
        vec = torch.stack([v.detach().float().reshape(()) for v in items.values()])
        if keys in self.sums:
            self.sums[keys].add_(vec, alpha=n)
            self.counts[keys] += n
        else:
            self.sums[keys] = vec * n
            self.counts[keys] = n

    def means(self) -> dict[str, float]:
        """All means so far (one device-to-host transfer per key set)."""
        out: dict[str, float] = {}
        for keys, total in self.sums.items():
            values = (total / max(self.counts[keys], 1)).tolist()
            out.update(zip(keys, values, strict=True))
        return out

    def interval_means(self) -> dict[str, float]:
        """Means since the previous call (for step-level logging)."""
        out: dict[str, float] = {}
        for keys, total in self.sums.items():
            last, last_n = self._mark.get(keys, (torch.zeros_like(total), 0))
            n = self.counts[keys] - last_n
            if n:
                out.update(zip(keys, ((total - last) / n).tolist(), strict=True))
            self._mark[keys] = (total.clone(), self.counts[keys])
        return out

    def totals(self) -> dict[tuple[str, ...], tuple[list[float], int]]:
        """All sums and counts so far, on the host (to merge processes' means with :func:`distributed.merge_totals`)."""
        return {keys: (total.tolist(), self.counts[keys]) for keys, total in self.sums.items()}

    def interval_totals(self) -> dict[tuple[str, ...], tuple[list[float], int]]:
        """Sums and counts since the previous call (of this or :meth:`interval_means`)."""
        out = {}
        for keys, total in self.sums.items():
            last, last_n = self._mark.get(keys, (torch.zeros_like(total), 0))
            if self.counts[keys] - last_n:
                out[keys] = ((total - last).tolist(), self.counts[keys] - last_n)
            self._mark[keys] = (total.clone(), self.counts[keys])
        return out


#: Choices of ``training.selection``: which validation loss picks ``best.pt`` and drives early stopping.
SELECTIONS = ("autoencoder", "autoencoder_and_heads")


def selection_loss(means: Mapping[str, float], selection: str = "autoencoder") -> float:
    """The loss that picks ``best.pt`` and drives early stopping.

    Always the total without the adversaries' own cross-entropy
    (``loss/adversarial``): the encoder works *against* the adversaries, so a
    lower adversarial loss means a *less* disentangled latent, and counting it
    would favour the epochs where the adversaries win.

    ``autoencoder`` also leaves out the supervised heads' cross-entropy
    (``loss/supervised``), keeping reconstruction, KL, VQ commitment, InfoMax
    and CPC: the heads overfit their few labels (their validation
    cross-entropy rises and jitters by more than the sequence term moves), so
    with them the choice follows the heads' noise. Measured on the demo's
    denoising model (60 CPU epochs): with the heads, best.pt was epoch 29 at
    a validation sequence cross-entropy of 1.3320 nats/base, against 1.3200 at
    epoch 60, and 0.358 of the test bases rebuilt against 0.366. The blocks'
    label content is judged by fresh probes in ``seqae evaluate``, not by
    these heads. ``autoencoder_and_heads`` counts them (the earlier rule).
    """
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    left_out = ("loss/adversarial", "loss/supervised") if selection == "autoencoder" else ("loss/adversarial",)
    return float(means["loss"]) - sum(float(means.get(key, 0.0)) for key in left_out)


def _step_items(out: Any) -> dict[str, torch.Tensor]:
    """Loss, weighted components (``loss/<name>``) and metrics of a ModelOutput, as detached tensors."""
    return {"loss": out.loss.detach(), **{f"loss/{k}": v for k, v in out.losses.items()}, **out.metrics}


class _NonFinite(Exception):
    def __init__(self, what: str, step: int, epoch: int):
        super().__init__(f"{what} at step {step} (epoch {epoch})")


# ---------------------------------------------------------------------- the run


def _clip_groups(module: torch.nn.Module) -> list[list[torch.nn.Parameter]]:
    """Trainable parameters grouped by the model's top-level parts (one group per child module,
    one for parameters held directly), each clipped to ``grad_clip_norm`` on its own."""
    groups = [[p for p in child.parameters() if p.requires_grad] for _, child in module.named_children()]
    direct = [p for p in module.parameters(recurse=False) if p.requires_grad]
    return [g for g in [*groups, direct] if g]


class _Run:
    """One training run of one model; see :func:`train_model`."""

    def __init__(
        self,
        config: Config,
        model_name: str,
        windows: str,
        outdir: Path,
        resume: bool,
        progress: bool,
        ctx: distributed.Dist = distributed.SINGLE,
    ):
        from seqae.models import SequenceAutoencoder
        from seqae.models.layout import nested_labels

        self.model_name = model_name
        self.windows = windows
        self.outdir = outdir
        self.ctx = ctx
        self.is_main = ctx.is_main  # only rank 0 writes files (and shows the progress bar)
        self.progress = progress and self.is_main
        self.settings, self.training = resolve_model(config, model_name)
        self.seed = int(config["seed"])
        t = self.training
        if t["batch_size"] % ctx.world_size:
            raise SeqaeError(
                f"training.batch_size {t['batch_size']} is the global batch of a step and must be divisible "
                f"by the number of processes, {ctx.world_size} (torchrun --nproc_per_node)"
            )
        self.checkpoint_path = outdir / CHECKPOINT_NAME
        self.best_path = outdir / BEST_NAME

        previous = None
        if self.checkpoint_path.exists():
            if not resume:
                raise SeqaeError(
                    f"{self.checkpoint_path}: a training run is already here; "
                    "pass --resume to continue it, or choose another --outdir"
                )
            previous = load_checkpoint(self.checkpoint_path, expect=CHECKPOINT_FORMAT)
            check_resumable(
                previous,
                self.checkpoint_path,
                model_name=model_name,
                model_settings=self.settings,
                training=self.training,
                seed=self.seed,
            )
        elif resume:
            log.info("%s: no checkpoint in %s; starting a new run", model_name, outdir)

        from seqae.windows.store import read_schema

        self.schema = read_schema(windows)
        if previous is not None:
            check_data(previous, self.checkpoint_path, windows, self.schema.to_dict())

        self.device = resolve_device(t["device"], "training.device")
        self.amp_dtype = autocast_dtype(t["precision"], self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

        label_columns = list(dict.fromkeys(b["label"] for b in self.settings["blocks"].values() if b["label"]))
        self.data = _open_data(windows, t, label_columns, self.device, ctx)
        if previous is not None:
            check_data(previous, self.checkpoint_path, windows, self.schema.to_dict(), self.data.label_categories)

        random.seed(self.seed)
        np.random.seed(self.seed % 2**32)
        torch.manual_seed(self.seed)
        label_classes = {c: len(cats) for c, cats in self.data.label_categories.items()}
        nested = nested_labels({c: v.cpu().numpy() for c, v in self.data.label_codes.items()})
        for fine, coarse in nested if self.is_main else []:
            log.info(
                "%s: labels %s and %s are nested (each %s has one %s): no block is guarded against the other",
                self.model_name,
                fine,
                coarse,
                fine,
                coarse,
            )
        self.module = SequenceAutoencoder(
            self.settings,
            n_tracks=len(self.schema.track_names),
            window_len=self.schema.window_len,
            label_classes=label_classes,
            track_transform=self.schema.track_transform,
            nested_labels=nested,
        ).to(self.device)
        self.n_parameters = sum(p.numel() for p in self.module.parameters())
        if self.is_main and self.module.erasers is not None:
            for block, labels in self.module.erased_labels.items():
                # LEACE takes one direction per class beyond the first, however weak the
                # label: an 8-coordinate block erased of an 8-class label keeps 1.
                erased = sum(label_classes[label] - 1 for label in labels)
                size = self.module.layout.sizes[block]
                if erased >= size / 2:
                    log.warning(
                        "%s: erasure takes up to %d of the %d coordinates of block %s (%s); "
                        "its own label keeps %d: give the block more coordinates",
                        self.model_name,
                        min(erased, size),
                        size,
                        block,
                        ", ".join(f"{label}: {label_classes[label]} classes" for label in labels),
                        max(size - erased, 0),
                    )

        decay, no_decay = [], []
        for p in self.module.parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 else decay).append(p)
        self.params = decay + no_decay
        # Gradient clipping is per part of the model (encoder, decoder, local codes, each
        # set of heads, ...): under one global norm the label heads' large gradients
        # (norm ~13 against ~0.5 without them, on the demo's two-level model) scaled
        # every update of the decoder down with theirs.
        self.clip_groups = _clip_groups(self.module)
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": t["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
            lr=t["lr"],
            fused=self.device.type == "cuda",
        )
        steps = self.data.steps_per_epoch
        self.total_steps = steps * t["epochs"]
        if t["max_steps"] is not None:
            self.total_steps = min(self.total_steps, t["max_steps"])
        if t["warmup_steps"] >= self.total_steps and previous is None:
            log.warning(
                "%s: warmup_steps (%d) >= total steps (%d): the learning rate never reaches training.lr",
                model_name,
                t["warmup_steps"],
                self.total_steps,
            )
        warmup, total, schedule = t["warmup_steps"], self.total_steps, t["schedule"]
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, warmup, total, schedule)
        )

        self.epoch = 0
        self.step = 0
        self.best_val_loss = math.inf
        self.best_epoch = 0
        # The weights at best_epoch, on the CPU, kept in checkpoint.pt so that
        # best.pt can be rewritten after a resumption: Snakemake deletes a
        # failed job's outputs (best.pt among them) before it retries the job,
        # and the resumed run may never improve on the best epoch again.
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad_epochs = 0
        self.history: list[dict[str, Any]] = []
        self.finished = False
        self.stop_reason: str | None = None
        self.resumed = previous is not None
        if previous is not None:
            self.module.load_state_dict(previous["model_state"])
            self.optimizer.load_state_dict(previous["optimizer_state"])
            self.scheduler.load_state_dict(previous["scheduler_state"])
            self.epoch = int(previous["epoch"])
            self.step = int(previous["step"])
            self.best_val_loss = float(previous["best_val_loss"])
            self.best_epoch = int(previous["best_epoch"])
            self.best_state = previous.get("best_model_state")
            self.bad_epochs = int(previous["epochs_without_improvement"])
            self.history = list(previous["history"])
            self.finished = bool(previous["finished"])
            self.stop_reason = previous["stop_reason"]
            ranks = previous.get("rng_ranks")
            if ranks is not None and len(ranks) == ctx.world_size:
                set_rng_state(ranks[ctx.rank])  # same number of processes: each continues its own streams
            else:
                set_rng_state(previous["rng"])
                if ctx.rank > 0:
                    seed_process_rngs(self.seed, ctx.rank, self.epoch)
        elif ctx.rank > 0:
            seed_process_rngs(self.seed, ctx.rank, 0)
        # Forward passes go through self.model (DDP's wrapper in a data-parallel
        # run); self.module is what is saved, so checkpoints never hold DDP's
        # "module." prefix and load in any number of processes.
        self.model: torch.nn.Module = _data_parallel(self.module, self.device) if ctx.enabled else self.module
        self.buffers = distributed.BufferSync(self.module, ctx)
        if ctx.world_size == 1 and int(t.get("gpus", 1)) > 1 and self.device.type == "cuda":
            log.warning(
                "%s: training.gpus is %d but this is a single process; start it with "
                "`torchrun --standalone --nproc_per_node %d -m seqae train ...` to use them (the workflow does)",
                model_name,
                t["gpus"],
                t["gpus"],
            )
        self.tensorboard: Any = None  # opened in run(), once there is something to train
        self._last_plot = time.monotonic()
        self._plotted_epoch = -1

    # ------------------------------------------------------------------ pieces

    def _open_tensorboard(self) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # noqa: BLE001 - tensorboard is optional: any import failure means none
            return None
        return SummaryWriter(str(self.outdir / "tensorboard"), purge_step=self.step if self.resumed else None)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _labels(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        return {column: codes[index] for column, codes in self.data.label_codes.items()}

    def _train_inputs(
        self, batch: Mapping[str, torch.Tensor], generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        from seqae.models.augment import centre_crop, random_crop, random_reverse_complement

        augment = self.training["augment"]
        seq, tracks, window_len = batch["seq"], batch["tracks"], self.schema.window_len
        if augment["jitter"] and seq.shape[-1] > window_len:
            seq, tracks = random_crop(seq, tracks, window_len, generator=generator)
        else:
            seq, tracks = centre_crop(seq, tracks, window_len)
        if augment["reverse_complement"]:
            seq, tracks = random_reverse_complement(seq, tracks, generator=generator)
        return seq, tracks

    def _model_json(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "kind": self.settings["kind"],
            "seqae_version": __version__,
            "settings": self.settings,
            "training": self.training,
            "seed": self.seed,
            "schema": self.schema.to_dict(),
            "label_categories": self.data.label_categories,
            "label_classes": {c: len(v) for c, v in self.data.label_categories.items()},
            "latent_blocks": {n: b["size"] for n, b in self.settings["blocks"].items()},
            "n_parameters": self.n_parameters,
            "windows": str(self.windows),
            "n_train": len(self.data.train),
            "n_val": len(self.data.val),
            "device": str(self.device),
            "processes": self.ctx.world_size,
            "precision": "fp32" if self.amp_dtype is None else "bf16",
            "epochs_completed": self.epoch,
            "steps": self.step,
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss if math.isfinite(self.best_val_loss) else None,
            "finished": self.finished,
            "stop_reason": self.stop_reason,
        }

    def _data_record(self) -> dict[str, Any]:
        return {
            "schema": self.schema.to_dict(),
            "label_categories": self.data.label_categories,
            "n_train": len(self.data.train),
            "n_val": len(self.data.val),
        }

    def _common_record(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "seqae_version": __version__,
            "model_name": self.model_name,
            "model_init": self.module.init_kwargs,
            "model_state": self.module.state_dict(),
            "training": self.training,
            "seed": self.seed,
            "data": self._data_record(),
            "epoch": self.epoch,
            "step": self.step,
        }

    def _save_checkpoint(self, rng_ranks: list[dict[str, Any]] | None = None) -> None:
        """Write checkpoint.pt; ``rng_ranks``: every process's RNG state in a data-parallel run."""
        state = {
            "format": CHECKPOINT_FORMAT,
            **self._common_record(),
            "optimizer_state": self.optimizer.state_dict(),
            "scheduler_state": self.scheduler.state_dict(),
            "rng": rng_state(),
            "world_size": self.ctx.world_size,
            "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch,
            "best_model_state": self.best_state,
            "epochs_without_improvement": self.bad_epochs,
            "history": self.history,
            "finished": self.finished,
            "stop_reason": self.stop_reason,
        }
        if rng_ranks is not None:
            state["rng_ranks"] = rng_ranks
        save_checkpoint(state, self.checkpoint_path)

    def _save_best(self, val_loss: float) -> None:
        """Write best.pt from the current weights and keep a CPU copy of them for the checkpoint."""
        self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.module.state_dict().items()}
        save_checkpoint({"format": MODEL_FORMAT, **self._common_record(), "val_loss": val_loss}, self.best_path)

    def _restore_best_file(self) -> None:
        """Rewrite a missing best.pt from the best weights kept in the checkpoint."""
        if self.best_path.exists() or self.best_state is None:
            return
        steps = [row["step"] for row in self.history if row["epoch"] == self.best_epoch]
        record = {**self._common_record(), "model_state": self.best_state, "epoch": self.best_epoch}
        record["step"] = int(steps[0]) if steps else self.step
        save_checkpoint({"format": MODEL_FORMAT, **record, "val_loss": self.best_val_loss}, self.best_path)
        log.info("%s: best.pt rewritten from the checkpoint (epoch %d)", self.model_name, self.best_epoch)

    def _write_json(self) -> None:
        with atomic_output(self.outdir / "model.json") as tmp:
            tmp.write_text(json.dumps(self._model_json(), indent=2) + "\n")

    def _write_metrics(self) -> None:
        # Rewritten whole from the history kept in the checkpoint, so after a
        # resumption metrics.csv never holds rows of epochs that were replayed.
        with atomic_output(self.outdir / "metrics.csv") as tmp:
            pd.DataFrame(self.history).to_csv(tmp, index=False)

    def _plot(self, force: bool) -> None:
        """Redraw loss_curves.png when forced or stale; never twice for the same epochs."""
        if not self.history or self._plotted_epoch == self.epoch:
            return
        if not force and time.monotonic() - self._last_plot < PLOT_EVERY_SECONDS:
            return
        from seqae.report_plots import training_note

        note = training_note(self._model_json())
        plot_loss_curves(self.history, self.outdir / "loss_curves.png", title=self.model_name, note=note)
        self._last_plot = time.monotonic()
        self._plotted_epoch = self.epoch

    # ------------------------------------------------------------------ epochs

    def _train_epoch(self, epoch: int) -> tuple[dict[str, float], int, float]:
        """One pass over the training batches; returns (means, windows seen, seconds)."""
        t = self.training
        self.model.train()
        start = time.perf_counter()
        # The same permutation in every process (each takes its part of each batch); its own augmentation draws.
        shuffle = torch.Generator().manual_seed(epoch_seed(self.seed, epoch, 0))
        augment = torch.Generator(device=self.device).manual_seed(epoch_seed(self.seed, epoch, 1, self.ctx.rank))
        sums = _DeviceMeans()
        n_steps = self.data.steps_per_epoch
        if t["max_steps"] is not None:
            n_steps = min(n_steps, t["max_steps"] - self.step)
        # Step numbers (1-based) of this epoch on the device, to record the first
        # non-finite loss without a host synchronisation.
        step_numbers = torch.arange(self.step + 1, self.step + n_steps + 1, device=self.device)
        first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        bad_value = torch.zeros((), device=self.device)
        clip = t["grad_clip_norm"]
        seen = 0
        bar = progress_bar(n_steps, f"{self.model_name} {epoch}/{t['epochs']}", "step", self.progress)
        last_line = start
        try:
            for i, batch in enumerate(itertools.islice(self.data.train_batches(shuffle), n_steps)):
                seq, tracks = self._train_inputs(batch, augment)
                labels = self._labels(batch["index"])
                self.buffers.before_step()
                with self._autocast():
                    out = self.model(seq, tracks, labels, step=self.step)
                self.optimizer.zero_grad(set_to_none=True)
                out.loss.backward()  # in a data-parallel run DDP averages the gradients over the processes here
                if clip is not None:
                    for group in self.clip_groups:
                        torch.nn.utils.clip_grad_norm_(group, clip)
                self.optimizer.step()
                self.buffers.after_step()
                self.scheduler.step()
                self.step += 1
                n = seq.shape[0]
                seen += n
                loss = out.loss.detach()
                new_bad = (first_bad < 0) & ~torch.isfinite(loss)
                first_bad = torch.where(new_bad, step_numbers[i], first_bad)
                bad_value = torch.where(new_bad, loss.float(), bad_value)
                sums.add(_step_items(out), n)
                if self.step % t["log_every_steps"] == 0:
                    if self.ctx.enabled:
                        self._log_steps(self._gather_check(first_bad, bad_value, epoch, sums.interval_totals()), bar)
                    else:
                        self._raise_if_bad(first_bad, bad_value, epoch)
                        self._log_steps(sums.interval_means(), bar)
                bar.update(1)
                if not self.progress and self.is_main and time.perf_counter() - last_line >= PROGRESS_EVERY_SECONDS:
                    last_line = time.perf_counter()
                    rate = seen * self.ctx.world_size / (last_line - start)
                    log.info(
                        "%s epoch %d/%d: step %d/%d, %.0f windows/s, epoch ETA %s",
                        self.model_name, epoch, t["epochs"], i + 1, n_steps, rate,
                        _duration((last_line - start) / (i + 1) * (n_steps - i - 1)),
                    )  # fmt: skip
        finally:
            bar.close()
        if self.ctx.enabled:
            means = self._gather_check(first_bad, bad_value, epoch, sums.totals())
            seen *= self.ctx.world_size  # every process saw as many windows
            self.buffers.average_rest()  # BatchNorm statistics, before validation and the checkpoint
        else:
            means = sums.means()  # synchronises: the time below includes the device's work
            self._raise_if_bad(first_bad, bad_value, epoch)
        return means, seen, time.perf_counter() - start

    def _raise_if_bad(self, first_bad: torch.Tensor, bad_value: torch.Tensor, epoch: int) -> None:
        step = int(first_bad)
        if step >= 0:
            raise _NonFinite(f"loss is {float(bad_value)}", step, epoch)

    def _gather_check(
        self,
        first_bad: torch.Tensor,
        bad_value: torch.Tensor,
        epoch: int,
        totals: Mapping[tuple[str, ...], tuple[list[float], int]],
    ) -> dict[str, float]:
        """Data-parallel: the non-finite check and the metric means over every process, in one gather.

        Every process raises for the same (earliest) step, so none is left
        waiting in a collective; every process gets the same means.
        """
        parts = distributed.all_gather_objects(self.ctx, ((int(first_bad), float(bad_value)), dict(totals)))
        step, value = distributed.first_bad_step([part[0] for part in parts])
        if step >= 0:
            raise _NonFinite(f"loss is {value}", step, epoch)
        return distributed.merge_totals([part[1] for part in parts])

    def _log_steps(self, means: Mapping[str, float], bar: Any) -> None:
        lr = self.scheduler.get_last_lr()[0]
        if self.progress:
            shown = {"loss": means.get("loss", math.nan)}
            shown.update({k.split("/", 1)[1]: v for k, v in means.items() if k.startswith("loss/")})
            bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()} | {"lr": f"{lr:.2e}"}, refresh=False)
        if self.tensorboard is not None:
            for key, value in means.items():
                self.tensorboard.add_scalar(f"train_step/{key}", value, self.step)
            self.tensorboard.add_scalar("train_step/lr", lr, self.step)

    def _refit_erasers(self) -> None:
        """Refit the model's label erasers exactly on all training windows (evaluation mode, centre
        crops), so that validation, best.pt and the embeddings read blocks erased with statistics of
        the encoder as it is now. Every process reads every window: the same result everywhere."""
        from seqae.models.augment import centre_crop

        if getattr(self.module, "erasers", None) is None:
            return

        def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]]:
            for batch in self.data.train_batches_in_order():
                seq, tracks = centre_crop(batch["seq"], batch["tracks"], self.schema.window_len)
                yield seq, tracks, self._labels(batch["index"])

        with self._autocast():
            self.module.fit_erasers(batches())

    @torch.inference_mode()
    def _validate(self) -> dict[str, float]:
        from seqae.models.augment import centre_crop

        # The bare module: each process evaluates its own whole batches, with no collective in
        # the forward pass; the sums are merged below.
        self.module.eval()
        monitor = bool(self.training["monitor_shuffled"])
        sums = _DeviceMeans()
        real_errors: list[torch.Tensor] = []
        shuffled_errors: list[torch.Tensor] = []
        for batch in self.data.val_batches():
            seq, tracks = centre_crop(batch["seq"], batch["tracks"], self.schema.window_len)
            with self._autocast():
                out = self.module(seq, tracks, self._labels(batch["index"]), step=self.step)
            items = _step_items(out)
            if monitor:
                real, shuffled = self._shuffle_errors(seq, tracks, batch["index"], out.seq_logits)
                items |= {"shuffled_seq_ce": shuffled.mean(), "shuffle_gap": (shuffled - real).mean()}
                real_errors.append(real)
                shuffled_errors.append(shuffled)
            sums.add(items, seq.shape[0])
        if self.ctx.enabled:
            means = distributed.merge_totals(distributed.all_gather_objects(self.ctx, sums.totals()))
        else:
            means = sums.means()
        if monitor:  # every process takes part in the gather, with or without batches of its own
            means["auroc_shuffled"] = self._gathered_auroc(real_errors, shuffled_errors)
        return means

    def _shuffle_errors(
        self, seq: torch.Tensor, tracks: torch.Tensor, index: torch.Tensor, seq_logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequence cross-entropy (nats per base) of each validation window and of its dinucleotide shuffle, ``[B]`` each.

        A shuffle keeps the window's composition and dinucleotides and loses its
        higher-order structure (repeats, motifs), so the gap between the two is
        what the model reads beyond composition: the quantity behind the anomaly
        AUROC against shuffled windows that ``seqae evaluate`` reports on the test
        split. The shuffles come from a generator seeded by the run's seed and the
        batch's first window, so every epoch (and a resumed run) scores the same
        control and the training RNG streams are not touched. Tracks stay the
        window's own, as in ``seqae evaluate``.
        """
        from seqae.metrics import dinucleotide_shuffle
        from seqae.models.objectives import sequence_error

        # One draw per batch (vectorised over its windows), seeded by its first window:
        # validation batches are fixed (file order), so every epoch gets the same shuffles.
        rng = np.random.default_rng([self.seed, 11, int(index[0])])
        shuffled = dinucleotide_shuffle(seq.to(torch.uint8).cpu().numpy(), rng)
        x = torch.from_numpy(shuffled).to(seq.device).long()
        with self._autocast():
            shuffled_logits, _ = self.module.reconstruct(x, tracks)
        return sequence_error(seq_logits, seq).float(), sequence_error(shuffled_logits, x).float()

    def _gathered_auroc(self, real: list[torch.Tensor], shuffled: list[torch.Tensor]) -> float:
        """AUROC of the shuffles' sequence error against the real windows', over every process's windows."""
        from seqae.metrics import auroc

        mine = tuple(torch.cat(e).cpu().numpy() if e else np.zeros(0, np.float32) for e in (real, shuffled))
        parts = distributed.all_gather_objects(self.ctx, mine)
        real_all, shuffled_all = (np.concatenate([p[i] for p in parts]) for i in (0, 1))
        return auroc(real_all, shuffled_all) if real_all.size else math.nan

    def run(self, stop_after: int | None) -> dict[str, Any]:
        t = self.training
        self.outdir.mkdir(parents=True, exist_ok=True)
        if self.is_main:
            stale = remove_stale_temporaries(self.outdir, OUTPUT_NAMES)
            if stale:
                log.info("%s: removed %d temporary files of a killed run (%s)", self.model_name, len(stale),
                         ", ".join(p.name for p in stale[:3]))  # fmt: skip
        if self.finished:
            log.info(
                "%s: training is already complete (%d epochs, %s); nothing to do",
                self.model_name,
                self.epoch,
                self.stop_reason,
            )
            self._finish_outputs()
            distributed.barrier(self.ctx)
            return self.summary()
        if self.is_main:
            self.tensorboard = self._open_tensorboard()
            self._write_json()
            if self.resumed:
                self._write_metrics()  # drop rows of epochs after the checkpoint
                log.info("%s: resuming after epoch %d (step %d)", self.model_name, self.epoch, self.step)
        log.info(
            "%s: %s model, %s parameters, %d train / %d val windows, %s%s, %s data%s",
            self.model_name,
            self.settings["kind"],
            f"{self.n_parameters:,}",
            len(self.data.train),
            len(self.data.val),
            self.device,
            "" if self.amp_dtype is None else " bf16",
            "staged" if self.data.staged else "streamed",
            (
                f", {self.ctx.world_size} processes ({t['batch_size'] // self.ctx.world_size} windows each per step)"
                if self.ctx.enabled
                else ""
            ),
        )
        if not len(self.data.val):
            log.warning(
                "%s: no validation windows; best.pt and early stopping follow the training loss", self.model_name
            )
        epochs_run = 0
        run_seconds = 0.0  # of the epochs run by this process, for the ETA
        for epoch in range(self.epoch + 1, t["epochs"] + 1):
            start = time.perf_counter()
            try:
                train, seen, train_seconds = self._train_epoch(epoch)
            except _NonFinite as exc:
                raise SeqaeError(f"{exc}; {self._last_good()}") from None
            self._refit_erasers()
            val = self._validate() if len(self.data.val) else {}
            val_loss = selection_loss(val if val else train, t["selection"])
            if not math.isfinite(val_loss):
                raise SeqaeError(
                    f"validation loss is {val_loss} after epoch {epoch} (step {self.step}); {self._last_good()}"
                )
            row: dict[str, Any] = {"epoch": epoch, "step": self.step, "lr": self.scheduler.get_last_lr()[0]}
            row.update({f"train_{k}": v for k, v in train.items()})
            row.update({f"val_{k}": v for k, v in val.items()})
            row["selection_loss"] = val_loss
            row["seconds"] = time.perf_counter() - start
            row["samples_per_s"] = seen / train_seconds if train_seconds > 0 else math.nan
            self.history.append(row)
            self.epoch = epoch
            improved = val_loss < self.best_val_loss
            if improved:
                self.best_val_loss, self.best_epoch, self.bad_epochs = val_loss, epoch, 0
            else:
                self.bad_epochs += 1
            if t["max_steps"] is not None and self.step >= t["max_steps"]:
                self.stop_reason = "max_steps"
            elif t["early_stopping_patience"] and self.bad_epochs >= t["early_stopping_patience"]:
                self.stop_reason = "early_stopping"
            elif epoch == t["epochs"]:
                self.stop_reason = "epochs"
            self.finished = self.stop_reason is not None
            epochs_run += 1
            run_seconds += row["seconds"]
            stopping = self.finished or (stop_after is not None and epochs_run >= stop_after)
            save = self.finished or epoch % t["checkpoint_every_epochs"] == 0
            rngs = None
            if self.ctx.enabled:
                distributed.check_replicas(self.ctx, self.module)
                if save:  # every process's RNG state, for an exact resumption (all take part in the gather)
                    rngs = distributed.all_gather_objects(self.ctx, rng_state())
            if self.is_main:
                if improved:
                    self._save_best(val_loss)
                if save:
                    self._save_checkpoint(rngs)
                self._write_metrics()
                self._plot(force=stopping)
                if self.tensorboard is not None:
                    for key, value in row.items():
                        if key not in ("epoch", "step"):
                            self.tensorboard.add_scalar(f"epoch/{key}", value, epoch)
                    self.tensorboard.flush()
            shuffles = (
                f", val vs shuffled: AUROC {val['auroc_shuffled']:.3f}, gap {val['shuffle_gap']:.4f} nats/base"
                if "auroc_shuffled" in val
                else ""
            )
            eta = "" if stopping else f", ETA {_duration(run_seconds / epochs_run * (t['epochs'] - epoch))}"
            log.info(
                "%s epoch %d/%d: train loss %.4g, val loss %.4g, selection loss %.4g%s%s (%.1f s, %.0f windows/s%s)",
                self.model_name,
                epoch,
                t["epochs"],
                train["loss"],
                val.get("loss", math.nan),
                val_loss,
                " *" if improved else "",
                shuffles,
                row["seconds"],
                row["samples_per_s"],
                eta,
            )
            if stopping:
                break
        if self.finished:
            log.info(
                "%s: training complete after %d epochs (%s); best selection loss %.4g at epoch %d",
                self.model_name,
                self.epoch,
                self.stop_reason,
                self.best_val_loss,
                self.best_epoch,
            )
        self._finish_outputs()
        distributed.barrier(self.ctx)  # when any process returns, rank 0's files are written
        return self.summary()

    def _last_good(self) -> str:
        if self.checkpoint_path.exists():
            return f"last good checkpoint: {self.checkpoint_path}"
        return "no checkpoint was written (lower training.lr, or check the data)"

    def _finish_outputs(self) -> None:
        if not self.is_main:
            return
        self._restore_best_file()
        self._write_json()
        if self.history:
            self._write_metrics()
            if not (self.outdir / "loss_curves.png").exists():
                self._plotted_epoch = -1
            self._plot(force=True)

    def summary(self) -> dict[str, Any]:
        last = dict(self.history[-1]) if self.history else {}
        return {
            **last,
            "model": self.model_name,
            "epochs_completed": self.epoch,
            "steps": self.step,
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "finished": self.finished,
            "stop_reason": self.stop_reason,
            "n_parameters": self.n_parameters,
            "outdir": str(self.outdir),
        }

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
        self.data.close()


def _data_parallel(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` wrapped in DistributedDataParallel (the process group is initialised).

    * ``find_unused_parameters=False``: every parameter gets a gradient at every
      step - heads whose loss weight is 0, whose labels are all unknown in a batch
      or whose gradient reversal is still 0 contribute zeros, not nothing
      (tests/test_ddp.py checks it for every model kind) - so DDP need not walk
      the autograd graph each step. Should a parameter ever go unused, DDP
      fails loudly at the next step instead of averaging wrong gradients.
    * Buffers are not broadcast from rank 0 before each forward pass:
      :class:`distributed.BufferSync` averages them over the processes (VQ
      codebooks after every step, BatchNorm statistics once per epoch), which
      keeps what every process's windows contributed. The parameters and buffers
      are still made equal once, when wrapping.
    """
    from torch.nn.parallel import DistributedDataParallel

    kwargs: dict[str, Any] = {
        "device_ids": [device.index] if device.type == "cuda" else None,
        "find_unused_parameters": False,
    }
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        kwargs["forward_sync_buffers"] = False  # torch >= 2.13 (broadcast_buffers is deprecated)
    else:
        kwargs["broadcast_buffers"] = False
    return DistributedDataParallel(module, **kwargs)


def _duration(seconds: float) -> str:
    """A duration for a person: "40 s", "7 min", "1.5 h"."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------------- public API


def train_model(
    config: Config,
    model_name: str,
    windows_path: str | os.PathLike[str],
    outdir: str | os.PathLike[str],
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train the configured model ``model_name`` on a windows file.

    Args:
        config: the pipeline configuration (validated here, defaults filled);
            uses ``seed``, ``training`` and ``models[model_name]``.
        model_name: a key of ``config["models"]``.
        windows_path: the windows HDF5 file (its ``train`` and ``val`` splits are used).
        outdir: output folder (see the module docstring for its files).
        resume: continue from ``outdir/checkpoint.pt`` when it exists (a
            finished run is reported complete; with no checkpoint a new run starts).
            Without ``resume`` an existing checkpoint is an error, never overwritten.
        progress: show a tqdm bar per epoch.
        stop_after: end this call after this many epochs, as if the process
            were killed there (for tests; the run stays resumable).

    Under torchrun (``WORLD_SIZE`` > 1) every process calls this with the
    same arguments; they train data-parallel (see the module docstring), and
    only rank 0 writes files and logs below warnings. A process group the
    caller initialised is used as it is.

    Returns:
        The last epoch's metrics.csv row (``epoch``, ``step``, ``lr``,
        ``train_*``, ``val_*``, ``seconds``, ``samples_per_s``) plus
        ``model``, ``epochs_completed``, ``steps``, ``best_epoch``,
        ``best_val_loss``, ``finished``, ``stop_reason``, ``n_parameters``, ``outdir``.

    Raises:
        SeqaeError: unknown model, bad settings, a checkpoint from another
            config or data schema, a non-finite loss (naming the step; the last
            good checkpoint is kept).
    """
    config = validate_config(copy.deepcopy(dict(config)))
    device_type = resolve_device(resolve_model(config, model_name)[1]["device"], "training.device").type
    with distributed.process_group(device_type) as ctx, _quiet_unless_main(ctx):
        run = _Run(config, model_name, str(windows_path), Path(outdir), resume, progress, ctx)
        try:
            with _deterministic_cpu(run.device):
                return run.run(stop_after)
        finally:
            run.close()


@contextlib.contextmanager
def _quiet_unless_main(ctx: distributed.Dist) -> Iterator[None]:
    """Only warnings from the processes other than rank 0 (their info lines would repeat rank 0's)."""
    if ctx.is_main:
        yield
        return
    before = log.level
    log.setLevel(max(before, logging.WARNING))
    try:
        yield
    finally:
        log.setLevel(before)


@contextlib.contextmanager
def _deterministic_cpu(device: torch.device) -> Iterator[None]:
    """Deterministic algorithms on the CPU for the duration of a run (the previous mode is restored).

    On CUDA this would need CUBLAS_WORKSPACE_CONFIG and slower kernels, so it is left off.
    The NaN-filling of new tensors that deterministic mode turns on by default
    is turned off: it is a debugging aid, and costs a fill per allocation.
    """
    import torch.utils.deterministic as deterministic

    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        deterministic.fill_uninitialized_memory,
    )
    try:
        if device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
            deterministic.fill_uninitialized_memory = False
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        deterministic.fill_uninitialized_memory = before[2]


def plot_loss_curves(
    history: list[Mapping[str, Any]], path: str | os.PathLike[str], title: str = "", note: str | None = None
) -> Path:
    """Train vs validation loss per epoch (left), the loss components (middle), log scale when positive,
    and, when validation shuffles were scored (``training.monitor_shuffled``), their AUROC and gap (right).
    ``note`` (how long the model trained, :func:`seqae.report_plots.training_note`) heads the figure."""
    from matplotlib.ticker import MaxNLocator

    from seqae.figure import plt, save_figure
    from seqae.report_plots import PlainLogFormatter

    table = pd.DataFrame(history)
    epochs = table["epoch"].to_numpy()
    monitored = "val_auroc_shuffled" in table
    fig, axes = plt.subplots(1, 3 if monitored else 2, figsize=(15 if monitored else 10, 3.8))
    for split, style in (("train", "-"), ("val", "--")):
        if f"{split}_loss" in table:
            axes[0].plot(epochs, table[f"{split}_loss"], style, marker="o", ms=3, color="black", label=split)
    axes[0].set_title(f"{title} total loss".strip())
    components = sorted({c.split("/", 1)[1] for c in table.columns if c.startswith("train_loss/")})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(components):
        colour = colours[i % len(colours)]
        for split, style in (("train", "-"), ("val", "--")):
            column = f"{split}_loss/{name}"
            if column in table:
                axes[1].plot(epochs, table[column], style, marker="o", ms=3, color=colour, label=f"{name} ({split})")
    axes[1].set_title("loss components (weighted; dashed: validation)")
    if monitored:
        _plot_shuffle_monitor(axes[2], epochs, table)
    axes[0].set_ylabel("loss (weighted sum of the terms)")
    axes[1].set_ylabel("loss term × its weight")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs 1, 2, not 1.2, 1.4
        if len(epochs) == 1:  # one epoch (the quick demo): the locator alone would tick 0.95, 1.00, ...
            ax.set_xticks(epochs)
            ax.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
    for ax in axes[:2]:
        ax.set_xlabel("epoch")
        values = [line.get_ydata() for line in ax.get_lines()]
        if values and all(np.all(np.asarray(v, float) > 0) for v in values):
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(PlainLogFormatter(ax.yaxis.get_major_formatter()))
            ax.yaxis.set_minor_formatter(PlainLogFormatter(ax.yaxis.get_minor_formatter()))
        if ax.get_lines():
            ax.legend(frameon=False, fontsize=7, ncols=2 if ax is axes[1] else 1)
    if note:
        fig.suptitle(f"{title}: trained {note}".strip(": "), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def _plot_shuffle_monitor(ax: Any, epochs: np.ndarray, table: pd.DataFrame) -> None:
    """Validation windows vs their dinucleotide shuffles: AUROC of the sequence error (left axis) and the
    mean gap in cross-entropy, nats per base (right axis)."""
    ax.plot(epochs, table["val_auroc_shuffled"], marker="o", ms=3, color="black", label="AUROC")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("epoch")
    ax.set_ylabel("AUROC, real vs shuffled")
    ax.set_title("validation vs its dinucleotide shuffles")
    if "val_shuffle_gap" in table:
        gap_ax = ax.twinx()
        gap_ax.plot(epochs, table["val_shuffle_gap"], "--", marker="o", ms=3, color="tab:red", label="CE gap")
        gap_ax.set_ylabel("shuffled - real seq CE (nats/base)", color="tab:red")
        # From 0 (or the lowest gap below it): the gap's size, not its jitter.
        gap_ax.set_ylim(bottom=float(np.nanmin(table["val_shuffle_gap"].to_numpy(float), initial=0.0)))
        ax.legend(handles=ax.get_lines()[:1] + gap_ax.get_lines(), frameon=False, fontsize=7, loc="upper left")
