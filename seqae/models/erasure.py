"""Linear concept erasure of foreign labels from a latent block, with running statistics.

A block that must not carry a label (the residual must not tell the
chromosome; the chrom block must not tell the region class) is judged by a
held-out *linear* probe. Gradient reversal and correlation penalties push the
encoder against that read-out, but an encoder can keep the label in
directions a trained head has not found yet, and a penalty strong enough to
win also pulls on the layers it shares with the local codes.

LEACE (Belrose et al. 2023, "LEACE: Perfect linear concept erasure in closed
form") removes the label instead. With ``Sigma`` the block's covariance and
``Sigma_xz`` its cross-covariance with the label's one-hot classes::

    W = Sigma^(-1/2)                              (whitening)
    P = orthogonal projector onto the columns of W Sigma_xz
    erase(x) = x - W^+ P W (x - mean)

is the smallest change (in the whitened norm) after which every class has
the same mean, so no linear classifier of the erased block beats a constant
guess. It is affine, applied in the model's forward pass: the decoder, the
heads and the embedding all read the erased block, and the encoder receives
gradient through it (the statistics themselves are constants).

The statistics are exponential moving averages over training batches (like
batch normalisation's), so the eraser follows the encoder as it learns. At
the end of every epoch the trainer refits them exactly on all training
windows in evaluation mode (:meth:`SequenceAutoencoder.fit_erasers`): the
moving averages lag the encoder and see training-mode batch statistics, and
a probe on evaluation-mode embeddings still read the chromosome off an
EMA-erased residual (0.386, chance 0.227; 0.227 after the exact refit, demo
``cpu.yaml`` run). Rows whose label is unknown (``-1``) do not enter that
label's cross-covariance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Eigenvalues of the block's covariance below this share of the largest are
#: treated as zero (a collapsed direction carries nothing to erase).
_RELATIVE_EIGEN_FLOOR = 1e-6
#: Singular values of the whitened cross-covariance below this share of the
#: largest are treated as zero (the label's classes span at most C - 1 directions).
_RELATIVE_RANK_FLOOR = 1e-4


class BlockEraser(nn.Module):
    """LEACE eraser of one or more labels from one latent block.

    Args:
        dim: the block's size ``d``.
        label_classes: number of classes of each label to erase, in the order
            :meth:`update` receives their targets.
        momentum: weight of each training batch in the running statistics
            (0.02: about the last 50 batches).
    """

    def __init__(self, dim: int, label_classes: Sequence[int], momentum: float) -> None:
        super().__init__()
        if not 0 < momentum <= 1:
            raise ValueError(f"momentum must be in (0, 1], got {momentum}")
        self.dim = dim
        self.label_classes = tuple(int(c) for c in label_classes)
        self.momentum = momentum
        n_columns = sum(self.label_classes)
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("covariance", torch.eye(dim))
        self.register_buffer("cross_covariance", torch.zeros(dim, n_columns))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, x: Tensor, targets: Sequence[Tensor]) -> None:
        """Fold one batch into the running statistics.

        Args:
            x: ``[B, d]`` the block (any float dtype; statistics kept in float32).
            targets: one ``int [B]`` tensor per label (``label_classes`` order),
                classes ``0..C-1`` or ``-1`` for unknown.
        """
        x = x.detach().float()
        n = x.shape[0]
        if n < 2:
            return
        # Under autocast the products below would run (and come back) in bf16;
        # the running statistics are float32 buffers, so they are computed in float32.
        with torch.autocast(x.device.type, enabled=False):
            self._fold(x, targets)

    def _fold(self, x: Tensor, targets: Sequence[Tensor]) -> None:
        """:meth:`update`'s arithmetic on a float32 ``[B, d]`` block, outside autocast."""
        n = x.shape[0]
        mean = x.mean(0)
        centred = x - mean
        covariance = centred.T @ centred / (n - 1)
        columns = []
        for target, n_classes in zip(targets, self.label_classes, strict=True):
            # Masks instead of boolean indexing: no host-device synchronisation in a training step.
            known = (target >= 0).float()[:, None]  # [B, 1]
            count = known.sum().clamp_min(1.0)
            xk = (x - (known * x).sum(0) / count) * known
            y = F.one_hot(target.clamp_min(0).long(), n_classes).float() * known
            y = (y - y.sum(0) / count) * known
            columns.append(xk.T @ y / count)  # [d, C]
        cross = torch.cat(columns, 1)
        # The first batch replaces the initial statistics; a tensor weight keeps
        # the step free of host-device synchronisation.
        weight = torch.where(self.updates == 0, 1.0, self.momentum).to(x.dtype)
        self.mean.lerp_(mean, weight)
        self.covariance.lerp_(covariance, weight)
        self.cross_covariance.lerp_(cross, weight)
        self.updates += 1

    @torch.no_grad()
    def begin_fit(self) -> None:
        """Start an exact fit over many batches (:meth:`accumulate`, then :meth:`end_fit`)."""
        dev = self.mean.device
        self._sums: dict[str, Any] = {
            "n": 0,
            "x": torch.zeros(self.dim, dtype=torch.float64, device=dev),
            "xx": torch.zeros(self.dim, self.dim, dtype=torch.float64, device=dev),
            "labels": [
                {
                    "n": torch.zeros((), dtype=torch.float64, device=dev),
                    "x": torch.zeros(self.dim, dtype=torch.float64, device=dev),
                    "y": torch.zeros(c, dtype=torch.float64, device=dev),
                    "xy": torch.zeros(self.dim, c, dtype=torch.float64, device=dev),
                }
                for c in self.label_classes
            ],
        }

    @torch.no_grad()
    def accumulate(self, x: Tensor, targets: Sequence[Tensor]) -> None:
        """Add one batch (``[B, d]`` and one ``int [B]`` target per label, -1 unknown) to the exact fit."""
        x = x.detach().double()
        sums = self._sums
        sums["n"] += x.shape[0]
        sums["x"] += x.sum(0)
        sums["xx"] += x.T @ x
        for target, n_classes, acc in zip(targets, self.label_classes, sums["labels"], strict=True):
            known = (target >= 0).double()[:, None]
            y = F.one_hot(target.clamp_min(0).long(), n_classes).double() * known
            acc["n"] += known.sum()
            acc["x"] += (known * x).sum(0)
            acc["y"] += y.sum(0)
            acc["xy"] += x.T @ y

    @torch.no_grad()
    def end_fit(self) -> None:
        """Replace the running statistics by the exact ones of the accumulated rows (unchanged if fewer than 2)."""
        sums = self._sums
        del self._sums
        n = sums["n"]
        if n < 2:
            return
        mean = sums["x"] / n
        covariance = (sums["xx"] - n * torch.outer(mean, mean)) / (n - 1)
        columns = []
        for acc in sums["labels"]:
            count = acc["n"].clamp_min(1.0)
            columns.append(acc["xy"] / count - torch.outer(acc["x"] / count, acc["y"] / count))
        self.mean.copy_(mean.float())
        self.covariance.copy_(covariance.float())
        self.cross_covariance.copy_(torch.cat(columns, 1).float())
        self.updates += 1

    def projection(self) -> Tensor:
        """The erasing map ``W^+ P W`` (``[d, d]``, float32) from the current statistics."""
        covariance = self.covariance.double()
        covariance = (covariance + covariance.T) / 2
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        floor = eigenvalues.max().clamp_min(1e-30) * _RELATIVE_EIGEN_FLOOR
        kept = eigenvalues > floor
        root = torch.where(kept, eigenvalues.clamp_min(floor).sqrt(), torch.zeros_like(eigenvalues))
        inverse_root = torch.where(kept, 1.0 / eigenvalues.clamp_min(floor).sqrt(), torch.zeros_like(eigenvalues))
        whiten = eigenvectors @ torch.diag(inverse_root) @ eigenvectors.T  # W
        unwhiten = eigenvectors @ torch.diag(root) @ eigenvectors.T  # W^+
        whitened_cross = whiten @ self.cross_covariance.double()  # [d, C]
        u, s, _ = torch.linalg.svd(whitened_cross, full_matrices=False)
        rank_mask = (s > s.max().clamp_min(1e-30) * _RELATIVE_RANK_FLOOR).double()
        basis = u * rank_mask  # columns outside the rank zeroed
        return (unwhiten @ basis @ basis.T @ whiten).float()

    def forward(self, x: Tensor) -> Tensor:
        """``[B, d]`` block -> the same block with the labels erased.

        Before any update the cross-covariance is zero, so the map is the identity.
        """
        projection = self.projection().to(x.dtype)
        return x - (x - self.mean.to(x.dtype)) @ projection.T

    def extra_repr(self) -> str:
        return f"dim={self.dim}, label_classes={self.label_classes}, momentum={self.momentum}"
