"""Run-time choices that depend on the device a model runs on, and the seeding of random streams.

:func:`resolve_device` turns a ``device`` setting into a torch device, the
same way for training, evaluation, embedding and the tree latent.
:func:`forward_batch_size` is the number of windows per forward pass of
inference (embedding, evaluation) when the user does not set one.
:func:`free_memory` is what staging data on a device may take from.
:func:`autocast_dtype` and :func:`autocast` are mixed precision (AMP);
:func:`deterministic_cpu` makes CPU runs repeatable.
:func:`seed_global_rngs`, :func:`epoch_seed` and :func:`seed_process_rngs`
seed the random streams of a training run (see :mod:`seqae.training.stage`).

torch is imported inside the functions that use it, so importing this
module does not load torch.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

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


def free_memory(device: torch.device) -> int | None:
    """Free bytes on the device (available RAM for the CPU); None when unknown."""
    if device.type == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


# ---------------------------------------------------------------------- mixed precision and determinism


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a ``training.precision`` on a device (None: full fp32)."""
    import torch

    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    return torch.bfloat16


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (AVX512-BF16 or AMX); elsewhere bf16 is emulated, slower than fp32."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on the device's type; a no-op context for ``dtype`` None (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def deterministic_cpu(device: torch.device) -> Iterator[None]:
    """Deterministic algorithms on the CPU for the duration of a run (the previous mode is restored).

    On CUDA this would need CUBLAS_WORKSPACE_CONFIG and slower kernels, so it is left off.
    The NaN-filling of new tensors that deterministic mode turns on by default
    is turned off: it is a debugging aid, and costs a fill per allocation.
    """
    import torch
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


# ---------------------------------------------------------------------- seeding


def seed_global_rngs(seed: int) -> None:
    """Seed the global Python, NumPy and torch RNGs (CPU and CUDA) from one seed."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
    seed_global_rngs(int((int(state[0]) << 31) ^ int(state[1])) & (2**63 - 1))
