"""Running a trained model over windows held as NumPy arrays: in batches, on its device, without gradients.

``seqae embed`` (:mod:`seqae.embed_blocks`) and ``seqae evaluate``
(:mod:`seqae.evaluation.passes`) both run a model this way, so this is the
one place that decides how:

- :func:`batches` cuts ``range(N)`` into consecutive slices of at most ``batch_size`` rows;
- :func:`device_batches` moves each slice of ``seq uint8 [N, L]`` and
  ``tracks [N, T, L]`` (stored dtype) to the device as the model reads them
  (``int64`` codes, ``float32`` tracks);
- :func:`inference_mode` is the gradient-free mode the passes run under;
- :func:`autocast` is the precision the model runs at: bf16 autocast on CUDA,
  full fp32 elsewhere (the rule of ``training.precision: auto``, from
  :mod:`seqae.runtime`), so that on the CPU nothing is autocast; ``seqae
  embed`` chooses its own (:func:`precision_dtype`);
- :func:`window_accuracy` is the per-window reconstruction accuracy (called bases only).

torch is imported inside the functions that use it, so importing this
module does not load torch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from seqae import runtime

if TYPE_CHECKING:
    import torch

__all__ = [
    "PRECISIONS",
    "autocast",
    "batches",
    "device_batches",
    "inference_dtype",
    "inference_mode",
    "precision_dtype",
    "window_accuracy",
]

#: The precisions a model can be run at (``seqae embed --precision``).
PRECISIONS = ("auto", "fp32", "bf16")


def batches(n: int, batch_size: int) -> list[slice]:
    """Consecutive row slices of at most ``batch_size`` rows that cover ``range(n)``, in order."""
    return [slice(lo, min(n, lo + batch_size)) for lo in range(0, n, batch_size)]


def inference_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype of inference on ``device``: bf16 on CUDA, None (full fp32) elsewhere."""
    return runtime.autocast_dtype("auto", device)


def precision_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of running a model at ``precision`` on ``device`` (None: full fp32).

    ``fp32``: None; ``bf16``: bf16; ``auto``: bf16 where the device computes it
    natively (CUDA, and CPUs with AMX or AVX512-BF16, on which the model pass
    alone ran 1.5-2.1x as fast as fp32 in ``benchmarks/bench_embed.py``'s runs,
    and the whole ``seqae embed`` job 1.0-1.4x), else fp32 (elsewhere bf16 is
    emulated, slower than fp32).
    """
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "bf16" or device.type == "cuda" or (device.type == "cpu" and runtime.cpu_has_native_bf16()):
        return torch.bfloat16
    return None


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """The context a model call of inference runs in: autocast to :func:`inference_dtype` (a no-op on the CPU)."""
    return runtime.autocast(device, inference_dtype(device))


def inference_mode() -> contextlib.AbstractContextManager:
    """No gradients and no autograd bookkeeping (``torch.inference_mode``); a context or a decorator."""
    import torch

    return torch.inference_mode()


def device_batches(
    seq: np.ndarray,
    tracks: np.ndarray,
    slices: Sequence[slice],
    device: torch.device,
    window_len: int | None = None,
    stage: bool = False,
) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    """``(rows, seq, tracks)`` per slice of rows, on ``device``, as a model reads them.

    Args:
        seq: base codes ``uint8 [N, S]``.
        tracks: signal tracks ``[N, T, S]`` in their stored dtype.
        slices: the row slices, in the order they are wanted (e.g. :func:`batches`).
        window_len: when given, the centre ``window_len`` columns of each window
            (:func:`seqae.models.augment.centre_crop`); else all ``S``.
        stage: move all ``N`` rows to the device at once, in their stored dtype
            (one transfer of a bounded block), instead of one slice at a time.

    Yields:
        ``rows`` (a slice of ``slices``), ``seq int64 [B, L]`` and
        ``tracks float32 [B, T, L]`` on ``device``.
    """
    import torch

    from seqae.models.augment import centre_crop

    seq_t, tracks_t = torch.from_numpy(seq), torch.from_numpy(tracks)
    if stage:
        seq_t = seq_t.to(device, non_blocking=True)
        tracks_t = tracks_t.to(device, non_blocking=True)
    if window_len is not None:
        seq_t, tracks_t = centre_crop(seq_t, tracks_t, window_len)
    for rows in slices:
        x = seq_t[rows].to(device, non_blocking=True).long()
        t = tracks_t[rows].to(device, non_blocking=True).float()
        yield rows, x, t


def window_accuracy(pred: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
    """Per-window share of the called bases predicted right, ``float32 [B]``.

    Args:
        pred: predicted base codes ``[B, L]`` (e.g. the arg-max of the logits).
        seq: true base codes ``int64 [B, L]``; N (codes >= 4) is left out.

    Returns:
        ``float32 [B]``; NaN for a window with no called base.
    """
    import torch

    from seqae.alphabet import CODE_N

    called = seq < CODE_N
    right = (pred == seq) & called
    n_called = called.sum(1)
    return torch.where(n_called > 0, right.sum(1).float() / n_called.clamp_min(1), float("nan"))
