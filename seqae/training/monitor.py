"""What a training run measures: loss and metric means kept on the device, the non-finite loss check,
the loss that picks ``best.pt``, and the validation windows against their dinucleotide shuffles.

Metrics accumulate on the device and reach the host only every
``training.log_every_steps`` steps and at the end of an epoch; a non-finite
loss is tracked on the device too, so the error names the exact step
without a host synchronisation per step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from seqae import distributed
from seqae.runtime import autocast


class DeviceMeans:
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


def step_items(out: Any) -> dict[str, torch.Tensor]:
    """Loss, weighted components (``loss/<name>``) and metrics of a ModelOutput, as detached tensors."""
    return {"loss": out.loss.detach(), **{f"loss/{k}": v for k, v in out.losses.items()}, **out.metrics}


class NonFinite(Exception):
    """A non-finite loss at an optimiser step (1-based) of an epoch."""

    def __init__(self, what: str, step: int, epoch: int):
        super().__init__(f"{what} at step {step} (epoch {epoch})")


class NonFiniteWatch:
    """The first optimiser step of an epoch whose loss is not finite, and that loss, kept on the device.

    :meth:`update` adds a few kernels and never waits for the host; :meth:`check`
    (one process) or :meth:`check_and_merge` (every process, with the metric sums)
    read the result when the host reads the metrics anyway.
    """

    def __init__(self, first_step: int, n_steps: int, device: torch.device, epoch: int):
        """``first_step``: the 1-based number of the epoch's first step; ``n_steps``: steps in the epoch."""
        self.epoch = epoch
        self._step_numbers = torch.arange(first_step, first_step + n_steps, device=device)
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)  # -1: none yet
        self.bad_value = torch.zeros((), device=device)

    def update(self, i: int, loss: torch.Tensor) -> None:
        """Record the 0-dim ``loss`` of the epoch's step ``i`` (0-based) if it is the first non-finite one."""
        new_bad = (self.first_bad < 0) & ~torch.isfinite(loss)
        self.first_bad = torch.where(new_bad, self._step_numbers[i], self.first_bad)
        self.bad_value = torch.where(new_bad, loss.float(), self.bad_value)

    def check(self) -> None:
        """Raise :class:`NonFinite` for the first non-finite step so far (synchronises with the device)."""
        step = int(self.first_bad)
        if step >= 0:
            raise NonFinite(f"loss is {float(self.bad_value)}", step, self.epoch)

    def check_and_merge(
        self, ctx: distributed.Dist, totals: Mapping[tuple[str, ...], tuple[list[float], int]]
    ) -> dict[str, float]:
        """Data-parallel: the non-finite check and the metric means over every process, in one gather.

        Every process raises for the same (earliest) step, so none is left
        waiting in a collective; every process gets the same means.
        ``totals``: this process's :meth:`DeviceMeans.totals` or :meth:`DeviceMeans.interval_totals`.
        """
        parts = distributed.all_gather_objects(ctx, ((int(self.first_bad), float(self.bad_value)), dict(totals)))
        step, value = distributed.first_bad_step([part[0] for part in parts])
        if step >= 0:
            raise NonFinite(f"loss is {value}", step, self.epoch)
        return distributed.merge_totals([part[1] for part in parts])


class ShuffleMonitor:
    """Validation windows against their dinucleotide shuffles (``training.monitor_shuffled``).

    A shuffle keeps the window's composition and dinucleotides and loses its
    higher-order structure (repeats, motifs), so the gap between the two
    sequence cross-entropies is what the model reads beyond composition: the
    quantity behind the anomaly AUROC against shuffled windows that ``seqae
    evaluate`` reports on the test split. One monitor serves one validation pass.
    """

    def __init__(self, module: torch.nn.Module, seed: int, amp_dtype: torch.dtype | None, ctx: distributed.Dist):
        """``module``: the bare model (no DDP wrapper); ``seed``: the run's; ``amp_dtype``: its autocast dtype."""
        self.module = module
        self.seed = seed
        self.amp_dtype = amp_dtype
        self.ctx = ctx
        self._real: list[torch.Tensor] = []
        self._shuffled: list[torch.Tensor] = []

    def errors(
        self, seq: torch.Tensor, tracks: torch.Tensor, index: torch.Tensor, seq_logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequence cross-entropy (nats per base) of each validation window and of its dinucleotide shuffle, ``[B]`` each.

        Args:
            seq: base codes ``[B, L]`` of the (centre-cropped) windows.
            tracks: their tracks ``[B, T, L]``; the shuffles keep the window's own, as in ``seqae evaluate``.
            index: the windows' rows in the file ``[B]``.
            seq_logits: the model's logits for ``seq``, ``[B, 4, L]``.

        The shuffles come from a generator seeded by the run's seed and the
        batch's first window, so every epoch (and a resumed run) scores the same
        control and the training RNG streams are not touched.
        """
        from seqae.metrics import dinucleotide_shuffle
        from seqae.models.objectives import sequence_error

        # One draw per batch (vectorised over its windows), seeded by its first window:
        # validation batches are fixed (file order), so every epoch gets the same shuffles.
        rng = np.random.default_rng([self.seed, 11, int(index[0])])
        shuffled = dinucleotide_shuffle(seq.to(torch.uint8).cpu().numpy(), rng)
        x = torch.from_numpy(shuffled).to(seq.device).long()
        with autocast(seq.device, self.amp_dtype):
            shuffled_logits, _ = self.module.reconstruct(x, tracks)
        return sequence_error(seq_logits, seq).float(), sequence_error(shuffled_logits, x).float()

    def add(
        self, seq: torch.Tensor, tracks: torch.Tensor, index: torch.Tensor, seq_logits: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Score one validation batch (arguments as :meth:`errors`), keep its errors for :meth:`gathered_auroc`,
        and return its means: ``shuffled_seq_ce`` and ``shuffle_gap`` (shuffled less real), nats per base."""
        real, shuffled = self.errors(seq, tracks, index, seq_logits)
        self._real.append(real)
        self._shuffled.append(shuffled)
        return {"shuffled_seq_ce": shuffled.mean(), "shuffle_gap": (shuffled - real).mean()}

    def gathered_auroc(self) -> float:
        """AUROC of the shuffles' sequence error against the real windows', over every process's windows
        (every process takes part in the gather, with or without batches of its own); NaN for none."""
        from seqae.metrics import auroc

        mine = tuple(torch.cat(e).cpu().numpy() if e else np.zeros(0, np.float32) for e in (self._real, self._shuffled))
        parts = distributed.all_gather_objects(self.ctx, mine)
        real_all, shuffled_all = (np.concatenate([p[i] for p in parts]) for i in (0, 1))
        return auroc(real_all, shuffled_all) if real_all.size else math.nan
