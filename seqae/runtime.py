"""Run-time choices that depend on the device a model runs on.

:func:`forward_batch_size` is the number of windows per forward pass of
inference (embedding, evaluation) when the user does not set one.
"""

from __future__ import annotations

from typing import Any

#: Windows per inference pass on a GPU: large batches keep it busy.
GPU_FORWARD_BATCH = 512
#: Windows per inference pass on the CPU. The decoder's per-base activations
#: are [batch, 1000, 128] float32 tensors (0.5 MB per window each); at 512
#: windows every pass allocates and frees gigabytes, and the kernel's page
#: faults cost more than the arithmetic. Measured on 2 cores with the demo's
#: default model: 73 windows/s at 32, 68 at 64, 56 at 128, 40 at 512.
CPU_FORWARD_BATCH = 32


def forward_batch_size(requested: int | None, device: Any) -> int:
    """``requested`` windows per inference pass, or the device's default when None.

    Args:
        requested: a positive batch size, or None for the default.
        device: a ``torch.device`` (or anything with a ``type`` attribute, or a string).

    Returns:
        :data:`GPU_FORWARD_BATCH` on CUDA, :data:`CPU_FORWARD_BATCH` elsewhere, unless requested.
    """
    if requested is not None:
        return requested
    kind = getattr(device, "type", str(device))
    return GPU_FORWARD_BATCH if kind == "cuda" else CPU_FORWARD_BATCH
