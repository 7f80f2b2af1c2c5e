"""Training objectives: reconstruction, masked classification, InfoMax and CPC; anomaly scores.

Every function computes in float32 with autocast disabled, so the losses stay
exact when the network runs in bfloat16.

Track loss, decided:

* ``mse`` (default): squared error on the *stored* values (``log1p`` of the
  signal when the windows file says ``track_transform: log1p``). The log
  compresses the heavy right tail of ChIP signal, so peaks do not drown the
  background, and the decoder predicts the stored value directly.
* ``poisson``: the decoder predicts the log-rate of the *raw* signal; targets
  are inverted to raw values (``expm1`` of the stored value for ``log1p``,
  the stored value itself for ``none``, clamped at 0) and the loss is
  ``poisson_nll_loss(log_input=True)`` plus ``xlogy(t, t) - t``, a constant
  per target that makes a perfect prediction score 0 (the Poisson deviance / 2),
  so per-window errors are comparable as anomaly scores. bigWig signal is often
  not integer counts (fold enrichment, CPM); the loss is still well defined.
  Stored float16 tracks lose precision at large values, which matters little
  for a rate.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqae.alphabet import CODE_N

TRACK_LOSSES = ("mse", "poisson")
TRACK_TRANSFORMS = ("none", "log1p")
_MAX_LOG_RATE = 30.0  # exp(30) ~ 1e13: far above any signal, far below float32 overflow


@contextmanager
def float32_region(device_type: str) -> Iterator[None]:
    """Disable autocast inside (callers cast their inputs with ``.float()``)."""
    with torch.autocast(device_type=device_type, enabled=False):
        yield


# ---------------------------------------------------------------- reconstruction


def sequence_error(seq_logits: Tensor, seq: Tensor) -> Tensor:
    """Per-window cross-entropy (nats per base), ignoring N positions: ``[B, 4, L], [B, L] -> [B]``.

    A window without any called base scores 0.
    """
    with float32_region(seq_logits.device.type):
        ce, valid = _base_ce(seq_logits, seq)
        return ce.sum(-1) / valid.sum(-1).clamp_min(1)


def sequence_loss(seq_logits: Tensor, seq: Tensor) -> Tensor:
    """Cross-entropy (nats per base) averaged over every non-N base of the batch: scalar."""
    with float32_region(seq_logits.device.type):
        ce, valid = _base_ce(seq_logits, seq)
        return ce.sum() / valid.sum().clamp_min(1)


def _base_ce(seq_logits: Tensor, seq: Tensor) -> tuple[Tensor, Tensor]:
    valid = seq < CODE_N
    target = torch.where(valid, seq, torch.zeros_like(seq)).long()
    ce = F.cross_entropy(seq_logits.float(), target, reduction="none")  # [B, L]
    return ce * valid, valid.float()


def _raw_signal(tracks: Tensor, transform: str) -> Tensor:
    if transform == "log1p":
        return torch.expm1(tracks.float()).clamp_min(0.0)
    if transform == "none":
        return tracks.float().clamp_min(0.0)
    raise ValueError(f"track transform must be one of {TRACK_TRANSFORMS}, got {transform!r}")


def _track_elementwise(tracks_pred: Tensor, tracks: Tensor, kind: str, transform: str) -> Tensor:
    pred = tracks_pred.float()
    if kind == "mse":
        return (pred - tracks.float()).pow(2)
    if kind == "poisson":
        rate_target = _raw_signal(tracks, transform)
        log_rate = pred.clamp(max=_MAX_LOG_RATE)
        nll = F.poisson_nll_loss(log_rate, rate_target, log_input=True, full=False, reduction="none")
        return nll + torch.special.xlogy(rate_target, rate_target) - rate_target
    raise ValueError(f"track loss must be one of {TRACK_LOSSES}, got {kind!r}")


def track_error(tracks_pred: Tensor, tracks: Tensor, kind: str = "mse", transform: str = "log1p") -> Tensor:
    """Per-window track error, mean over tracks and positions: ``[B, T, L] x2 -> [B]`` (0 when T = 0).

    Args:
        tracks_pred: decoder output (stored value for ``mse``, log-rate for ``poisson``).
        tracks: targets on the stored transform.
        kind: ``mse`` or ``poisson`` (see the module docstring).
        transform: the windows file's ``track_transform`` (``log1p`` or ``none``).
    """
    with float32_region(tracks_pred.device.type):
        if tracks.shape[1] == 0:
            return tracks_pred.new_zeros(tracks_pred.shape[0], dtype=torch.float32)
        return _track_elementwise(tracks_pred, tracks, kind, transform).mean(dim=(1, 2))


def track_loss(tracks_pred: Tensor, tracks: Tensor, kind: str = "mse", transform: str = "log1p") -> Tensor:
    """Track loss averaged over batch, tracks and positions: scalar (see :func:`track_error`)."""
    return track_error(tracks_pred, tracks, kind, transform).mean()


def tracks_to_stored(tracks_pred: Tensor, kind: str = "mse", transform: str = "log1p") -> Tensor:
    """Decoder track output -> values on the windows file's stored scale (float32, same shape).

    ``mse`` predictions already are; ``poisson`` log-rates become ``log1p(exp(.))``
    (``transform = log1p``) or ``exp(.)`` (``none``).
    """
    pred = tracks_pred.float()
    if kind == "mse":
        return pred
    if kind != "poisson":
        raise ValueError(f"track loss must be one of {TRACK_LOSSES}, got {kind!r}")
    log_rate = pred.clamp(max=_MAX_LOG_RATE)
    if transform == "log1p":
        return F.softplus(log_rate)  # log1p(exp(x)), computed stably
    if transform == "none":
        return torch.exp(log_rate)
    raise ValueError(f"track transform must be one of {TRACK_TRANSFORMS}, got {transform!r}")


def reconstruction_error(
    seq_logits: Tensor,
    tracks_pred: Tensor,
    seq: Tensor,
    tracks: Tensor,
    track_kind: str = "mse",
    transform: str = "log1p",
    track_weight: float = 1.0,
) -> Tensor:
    """Anomaly score per window: ``sequence_error + track_weight * track_error``, ``[B]`` float32.

    High where the autoencoder cannot rebuild the window, i.e. where it looks
    unlike the training windows (the one-class use of an autoencoder).
    """
    score = sequence_error(seq_logits, seq)
    if tracks.shape[1] and track_weight:
        score = score + track_weight * track_error(tracks_pred, tracks, track_kind, transform)
    return score


# ---------------------------------------------------------------- classification


def masked_cross_entropy(logits: Tensor, target: Tensor, ignore: int = -1) -> tuple[Tensor, Tensor]:
    """Cross-entropy over the rows whose label is known, and the accuracy on them.

    Args:
        logits: ``[B, n_classes]``.
        target: ``int [B]``; ``ignore`` (-1) marks an unknown label.

    Returns:
        ``(loss, accuracy)``, float32 scalars; both 0 when no row has a label
        (never NaN, and no host synchronisation to find out).
    """
    with float32_region(logits.device.type):
        known = target != ignore
        safe = torch.where(known, target, torch.zeros_like(target)).long()
        ce = F.cross_entropy(logits.float(), safe, reduction="none")
        n = known.sum().clamp_min(1).float()
        loss = (ce * known).sum() / n
        accuracy = ((logits.argmax(-1) == safe) & known).sum().float() / n
    return loss, accuracy


# ---------------------------------------------------------------- InfoMax


class InfoMaxDiscriminator(nn.Module):
    """Deep-InfoMax-style global discriminator over (sequence features, latent) pairs.

    The features ``[B, C, L']`` are summarised (1x1 conv, GELU, mean+max over
    positions), concatenated with a latent ``[B, D]`` and scored by an MLP.
    Positives pair each window's features with its own latent, negatives with
    another window's latent (the batch rolled by a random non-zero shift, so no
    window is ever paired with itself). The loss is binary cross-entropy, and
    both the discriminator and the encoder minimise it: an encoder whose
    latents tell windows apart lets the discriminator win (lecture notes:
    ``theta* = argmin_theta min_phi L_D``).

    Args:
        feature_channels: C.
        latent_dim: D.
        hidden: width of the summary and of the MLP.
    """

    def __init__(self, feature_channels: int, latent_dim: int, hidden: int = 128):
        super().__init__()
        self.summary = nn.Conv1d(feature_channels, hidden, 1)
        self.score = nn.Sequential(nn.Linear(2 * hidden + latent_dim, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def scores(self, features: Tensor, latent: Tensor) -> Tensor:
        """Logit that ``latent [B, D]`` belongs to ``features [B, C, L']``: ``[B]``."""
        h = F.gelu(self.summary(features))
        summary = torch.cat([h.mean(-1), h.amax(-1)], dim=-1)
        return self.score(torch.cat([summary, latent.to(summary.dtype)], dim=-1)).squeeze(-1)

    def forward(
        self, features: Tensor, latent: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(loss, accuracy)`` float32 scalars; both 0 for a batch of one (no negatives).

        ``generator`` (a CPU generator, optional) draws the shift of the negatives.
        """
        batch = latent.shape[0]
        if batch < 2:
            zero = latent.new_zeros((), dtype=torch.float32)
            return zero, zero
        # One Python int drawn on the CPU: no device synchronisation.
        shift = int(torch.randint(1, batch, (1,), generator=generator))
        pos = self.scores(features, latent)
        neg = self.scores(features, latent.roll(shift, dims=0))
        with float32_region(latent.device.type):
            logits = torch.cat([pos, neg]).float()
            target = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)]).float()
            loss = F.binary_cross_entropy_with_logits(logits, target)
            accuracy = ((logits > 0).float() == target).float().mean()
        return loss, accuracy


# ---------------------------------------------------------------- CPC


class CPCHead(nn.Module):
    """Contrastive predictive coding over the encoder's per-position features (van den Oord et al. 2018).

    The features ``[B, C, L']`` are averaged over non-overlapping chunks of
    ``chunk`` positions (a trailing partial chunk is dropped) and projected to
    ``z [B, N, dim]``. A causal GRU reads ``z_1..z_t`` into a context ``c_t``,
    and one linear map per offset ``k = 1..n_future`` predicts ``z_{t+k}``
    from ``c_t``. InfoNCE: for each offset, every prediction is scored by dot
    product against the targets of all windows and all positions at that
    offset (``M = B * (N - k)`` candidates); the matching one is the positive.

    The GRU runs in float32 (autocast off): recurrent kernels are not reliably
    available in bfloat16.

    Caveat: the encoder is not causal, so a chunk's features already see bases
    of the neighbouring chunks through the receptive field; small offsets are
    easier than they look. Use chunks of at least the receptive field of the
    features you care about, or larger ``n_future``.

    Args:
        feature_channels: C.
        n_future: number of future chunks predicted (offsets 1..n_future).
        chunk: encoder positions per chunk.
        dim: size of the chunk embeddings (and of the GRU state).
    """

    def __init__(self, feature_channels: int, n_future: int = 4, chunk: int = 4, dim: int = 64):
        super().__init__()
        if n_future < 1 or chunk < 1:
            raise ValueError(f"n_future and chunk must be positive, got {n_future}, {chunk}")
        self.n_future = n_future
        self.chunk = chunk
        self.dim = dim
        self.project = nn.Conv1d(feature_channels, dim, 1)
        self.context = nn.GRU(dim, dim, batch_first=True)
        self.predict = nn.Linear(dim, dim * n_future)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """``features [B, C, L']`` -> ``(loss, accuracy)`` float32 scalars, averaged over offsets.

        Both are 0 when there are fewer than two chunks.
        """
        batch, channels, length = features.shape
        n_chunks = length // self.chunk
        if n_chunks < 2:
            zero = features.new_zeros((), dtype=torch.float32)
            return zero, zero
        pooled = features[..., : n_chunks * self.chunk].reshape(batch, channels, n_chunks, self.chunk).mean(-1)
        with float32_region(features.device.type):
            z = self.project(pooled.float()).transpose(1, 2)  # [B, N, dim]
            context, _ = self.context(z)  # [B, N, dim]; causal by construction
            predictions = self.predict(context).view(batch, n_chunks, self.n_future, self.dim)
            losses, accuracies = [], []
            for k in range(1, min(self.n_future, n_chunks - 1) + 1):
                pred = predictions[:, : n_chunks - k, k - 1].reshape(-1, self.dim)  # [M, dim]
                target = z[:, k:].reshape(-1, self.dim)  # [M, dim]
                logits = pred @ target.T  # [M, M]; row i's positive is column i
                labels = torch.arange(logits.shape[0], device=logits.device)
                losses.append(F.cross_entropy(logits, labels))
                accuracies.append((logits.argmax(-1) == labels).float().mean())
            return torch.stack(losses).mean(), torch.stack(accuracies).mean()
