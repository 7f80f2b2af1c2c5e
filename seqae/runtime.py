"""Run-time choices that depend on the device a model runs on.

:func:`resolve_device` turns a ``device`` setting into a torch device, the
same way for training, evaluation, embedding and the tree latent.
:func:`forward_batch_size` is the number of windows per forward pass of
inference (embedding, evaluation) when the user does not set one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seqae.errors import SeqaeError

if TYPE_CHECKING:
    import torch

#: Windows per inference pass on a GPU: large batches keep it busy.
GPU_FORWARD_BATCH = 512
#: Windows per inference pass on the CPU. The decoder's per-base activations
#: are [batch, 1000, 128] float32 tensors (0.5 MB per window each); at 512
#: windows every pass allocates and frees gigabytes, and the kernel's page
#: faults cost more than the arithmetic. Measured on 2 cores with the demo's
#: default model: 73 windows/s at 32, 68 at 64, 56 at 128, 40 at 512.
CPU_FORWARD_BATCH = 32


def resolve_device(device: str | torch.device | None, setting: str = "device") -> torch.device:
    """The torch device a ``device`` setting names.

    ``None`` or ``auto``: the current CUDA device when CUDA is available, else
    the CPU. ``cpu``, ``cuda`` (the current CUDA device, which a
    multi-GPU run sets per process), ``cuda:<i>`` or a ``torch.device``: that
    device.

    Raises:
        SeqaeError: CUDA asked for where there is none, or a name torch does
            not know; the message names ``setting`` (e.g. ``training.device``).
    """
    import torch

    name = "auto" if device is None else str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    elif name.startswith("cuda") and not torch.cuda.is_available():
        raise SeqaeError(f"{setting} is {name!r} but no CUDA device is available (use auto or cpu)")
    try:
        resolved = torch.device(name)
    except RuntimeError:
        raise SeqaeError(f"{setting} is {name!r}: expected auto, cpu, cuda or cuda:<index>") from None
    if resolved.type == "cuda" and resolved.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return resolved


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
