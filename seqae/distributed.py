"""Data-parallel training (DDP) under torchrun: the process group, sharding of batches, reductions.

``torchrun --standalone --nproc_per_node N -m seqae train ...`` starts N
processes (one per GPU) and tells each its place in the environment:
``RANK`` (0..N-1), ``WORLD_SIZE`` (N) and ``LOCAL_RANK`` (the GPU on this
node). :func:`process_group` joins them into one process group (NCCL on
CUDA, gloo on the CPU) for the duration of a run; without those variables,
or with ``WORLD_SIZE=1``, a run is a single process and nothing here
communicates.

What the trainer (:mod:`seqae.training`) does with them:

* ``training.batch_size`` is the *global* batch: every optimiser step sees
  ``batch_size`` windows, ``batch_size / N`` on each process
  (:func:`shard_batches` cuts each batch of the single-process order into N
  equal parts), so the steps, the learning-rate schedule and the epochs are
  those of one process, and the averaged gradient is that of the whole batch
  up to batch-size effects (BatchNorm statistics over the process's part, means
  over the known labels of each part, augmentation draws).
* Validation batches are dealt out whole (:func:`round_robin_batches`) and the
  metric sums are merged (:func:`merge_totals`), so validation losses are
  those of one process, and every process takes the same early-stopping decision.
* Buffers are made equal explicitly (:class:`BufferSync`), not broadcast by DDP.
* Only rank 0 writes files; every rank reads the checkpoint on ``--resume``.
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from seqae.errors import SeqaeError

# How long a collective may wait for the other processes before the run fails
# (a process that died makes torchrun stop the others sooner than this).
TIMEOUT = datetime.timedelta(minutes=30)


@dataclass(frozen=True)
class Dist:
    """This process's place in a data-parallel run (``world_size`` 1: a single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """More than one process: collectives are needed."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and logs."""
        return self.rank == 0


SINGLE = Dist()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise SeqaeError(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from None


def env_world() -> Dist:
    """RANK, WORLD_SIZE and LOCAL_RANK as torchrun sets them (a single process when unset)."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world:
        raise SeqaeError(f"RANK={rank} and WORLD_SIZE={world} do not describe a process of a data-parallel run")
    return Dist(rank=rank, world_size=world, local_rank=local)


@contextlib.contextmanager
def process_group(device_type: str) -> Iterator[Dist]:
    """Join the process group that torchrun's environment describes, for the duration of the block.

    A group that is already initialised (by the caller) is used as it is and
    left open. Otherwise, with ``WORLD_SIZE`` > 1 the group is created with
    NCCL when ``device_type`` is ``cuda`` (after selecting the GPU
    ``LOCAL_RANK``) and gloo on the CPU, and destroyed at the end.

    Raises:
        SeqaeError: torch without distributed support, or fewer visible GPUs than processes on this node.
    """
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        env = env_world()
        local = env.local_rank if (env.rank, env.world_size) == (rank, world) else rank
        if device_type == "cuda":
            torch.cuda.set_device(local % max(torch.cuda.device_count(), 1))
        yield Dist(rank=rank, world_size=world, local_rank=local)
        return
    env = env_world()
    if not env.enabled:
        yield SINGLE
        return
    if not dist.is_available():
        raise SeqaeError("this torch build has no torch.distributed: multi-process training is not possible")
    kwargs: dict[str, Any] = {}
    if device_type == "cuda":
        if env.local_rank >= torch.cuda.device_count():
            raise SeqaeError(
                f"process {env.rank} of {env.world_size} wants GPU {env.local_rank} (LOCAL_RANK), "
                f"but {torch.cuda.device_count()} are visible; start at most one process per GPU"
            )
        torch.cuda.set_device(env.local_rank)
        if "device_id" in inspect.signature(dist.init_process_group).parameters:  # torch >= 2.3
            kwargs["device_id"] = torch.device("cuda", env.local_rank)
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo", timeout=TIMEOUT, **kwargs)
    try:
        yield env
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------------- collectives


def barrier(ctx: Dist) -> None:
    """Wait for every process (nothing to do for a single one)."""
    if ctx.enabled:
        torch.distributed.barrier()


def all_gather_objects(ctx: Dist, obj: Any) -> list[Any]:
    """Every process's ``obj`` (picklable), in rank order; ``[obj]`` for a single process."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    torch.distributed.all_gather_object(out, obj)
    return out


def merge_totals(parts: Sequence[Mapping[tuple[str, ...], tuple[list[float], int]]]) -> dict[str, float]:
    """Means from several processes' sums: ``{keys: (sums, count)}`` each -> ``{key: sum / count}``.

    Summed in the order of ``parts`` (rank order), so every process that
    merges the same parts gets the same floats, bit for bit.
    """
    sums: dict[tuple[str, ...], list[float]] = {}
    counts: dict[tuple[str, ...], int] = {}
    for part in parts:
        for keys, (values, n) in part.items():
            if keys in sums:
                sums[keys] = [a + b for a, b in zip(sums[keys], values, strict=True)]
                counts[keys] += n
            else:
                sums[keys], counts[keys] = list(values), n
    out: dict[str, float] = {}
    for keys, values in sums.items():
        n = max(counts[keys], 1)
        out.update(zip(keys, (v / n for v in values), strict=True))
    return out


def first_bad_step(parts: Sequence[tuple[int, float]]) -> tuple[int, float]:
    """The earliest ``(step, loss)`` with ``step >= 0`` among the processes' reports; ``(-1, 0.0)`` when none."""
    bad = [(step, value) for step, value in parts if step >= 0]
    return min(bad, key=lambda item: item[0]) if bad else (-1, 0.0)


def state_fingerprint(module: torch.nn.Module) -> list[tuple[str, float]]:
    """One float64 sum per tensor of the module's state (parameters and buffers), by name."""
    with torch.no_grad():
        state = module.state_dict()
        sums = torch.stack([t.detach().double().sum() for t in state.values()]) if state else torch.zeros(0)
        return list(zip(state.keys(), sums.tolist(), strict=True))


def check_replicas(ctx: Dist, module: torch.nn.Module) -> None:
    """Raise when the processes' copies of the module are not identical (a bug: they must never drift).

    Compares :func:`state_fingerprint` of every process with rank 0's; one
    small gather, run once per epoch.
    """
    if not ctx.enabled:
        return
    prints = all_gather_objects(ctx, state_fingerprint(module))
    for rank, other in enumerate(prints[1:], start=1):
        for (name, a), (_, b) in zip(prints[0], other, strict=True):
            if not (a == b or (math.isnan(a) and math.isnan(b))):
                raise SeqaeError(
                    f"data-parallel processes 0 and {rank} hold different values of {name} "
                    f"(sums {a!r} and {b!r}); this is a bug in seqae's multi-process training"
                )


def data_parallel(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` wrapped in DistributedDataParallel (the process group is initialised).

    * ``find_unused_parameters=False``: every parameter gets a gradient at every
      step - heads whose loss weight is 0, whose labels are all unknown in a batch
      or whose gradient reversal is still 0 contribute zeros, not nothing
      (tests/training/test_ddp.py checks it for every model kind) - so DDP need not walk
      the autograd graph each step. Should a parameter ever go unused, DDP
      fails loudly at the next step instead of averaging wrong gradients.
    * Buffers are not broadcast from rank 0 before each forward pass:
      :class:`BufferSync` averages them over the processes (VQ
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


# ---------------------------------------------------------------------- sharding


def shard_batches(order: Tensor, batch_size: int, rank: int, world_size: int, drop_last: bool) -> list[Tensor]:
    """This process's part of every global batch of ``order``.

    Global batch ``i`` is ``order[i * batch_size : (i + 1) * batch_size]``,
    the batch a single process takes (the ragged last one only without
    ``drop_last``). Process ``rank`` takes the ``rank``-th of ``world_size``
    equal contiguous parts of each: the parts are disjoint, together they
    cover the batch, and every process gets as many batches, of the same
    sizes, as the others (what the gradient all-reduce needs). A batch whose
    size is not divisible by ``world_size`` drops its last ``size %
    world_size`` positions, the same ones for every process; a batch with
    fewer positions than processes is dropped. With ``world_size`` 1 these
    are exactly the single-process batches.

    Args:
        order: ``int64 [n]``, this epoch's order of the positions (a permutation, or ``arange`` for file order).
        batch_size: the global batch size.
        rank, world_size: this process and the number of processes.
        drop_last: drop the ragged last global batch.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
    n = order.numel()
    stop = n - n % batch_size if drop_last else n
    out = []
    for lo in range(0, stop, batch_size):
        batch = order[lo : min(lo + batch_size, stop)]
        per = batch.numel() // world_size
        if per:
            out.append(batch[rank * per : (rank + 1) * per])
    return out


def round_robin_batches(n: int, batch_size: int, rank: int, world_size: int) -> list[Tensor]:
    """Positions ``0..n-1`` in file-order batches of ``batch_size``; batch ``j`` goes to process ``j % world_size``.

    For evaluation: the batches are the single process's (so are per-batch
    metrics), each evaluated once; processes may get one batch more than
    others, which needs no collective.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
    order = torch.arange(n)
    return [order[lo : lo + batch_size] for j, lo in enumerate(range(0, n, batch_size)) if j % world_size == rank]


# ---------------------------------------------------------------------- buffers


class BufferSync:
    """Keep every process's buffers equal; DDP runs with its own forward-pass buffer broadcast off.

    DDP's default (``broadcast_buffers``) copies rank 0's buffers to the
    other processes before every forward pass, which keeps them equal by
    throwing away what the other processes' batches contributed. Here:

    * **VQ codebooks** (:class:`~seqae.models.quantize.VectorQuantizer`, its
      ``ema_count`` / ``ema_sum`` / ``codebook`` / ``steps_unused``) are synchronised
      after every optimiser step (:meth:`after_step`), because the next
      forward pass assigns codes with them. The EMA statistics are averaged
      over the processes: all started the step from the same state, and the
      EMA is linear, so the average is the EMA of the processes' mean batch
      statistics - the codebook (their ratio) follows the centroids of the
      whole global batch, as on one GPU, instead of rank 0's part. A code
      counts as used when any process used it (``steps_unused``: minimum).
      Codes that the step restarted (dead before it) are re-initialised by each
      process from its own random window; they take rank 0's (averaging
      random windows would put them between the data). The codebook is then
      recomputed from the averaged statistics with the quantiser's smoothing.
    * **Other floating-point buffers** (BatchNorm running statistics) are only
      used in evaluation, so they are averaged once per epoch, before
      validation and the checkpoint (:meth:`average_rest`). An EMA being
      linear, this equals averaging them after every step; the running
      variance is then the mean within-process variance (the spread between
      the processes' batch means is left out, a batch-size effect).
    * Integer buffers (``num_batches_tracked``, a quantiser's ``initialised``)
      change the same way in every process.

    :func:`check_replicas` verifies once per epoch that nothing drifted.
    """

    def __init__(self, module: torch.nn.Module, ctx: Dist):
        from seqae.models.quantize import VectorQuantizer

        self.ctx = ctx
        self.quantizers = [m for m in module.modules() if isinstance(m, VectorQuantizer)]
        synced = {id(b) for q in self.quantizers for b in (q.ema_count, q.ema_sum, q.codebook, q.steps_unused)}
        self.rest = [b for b in module.buffers() if b.is_floating_point() and id(b) not in synced]
        self._dead: list[Tensor] = []

    @staticmethod
    def _dead_codes(q: Any) -> Tensor:
        # The codes VectorQuantizer._restart_dead re-initialises in the next training forward pass.
        dead = q.steps_unused >= q.dead_code_steps if q.dead_code_steps > 0 else torch.zeros_like(q.initialised)
        return dead | ~q.initialised

    def before_step(self) -> None:
        """Note which codes the coming forward pass restarts (call before it)."""
        if self.ctx.enabled and self.quantizers:
            self._dead = [self._dead_codes(q) for q in self.quantizers]

    @torch.no_grad()
    def after_step(self) -> None:
        """Make the VQ codebooks equal again (call after every optimiser step, in every process)."""
        if not (self.ctx.enabled and self.quantizers):
            return
        dist = torch.distributed
        stats = [t for q in self.quantizers for t in (q.ema_count, q.ema_sum)]
        flat = torch.cat([t.reshape(-1).float() for t in stats])
        from_rank0 = flat.clone()
        dist.broadcast(from_rank0, src=0)
        dist.all_reduce(flat)
        flat /= self.ctx.world_size
        unused = torch.stack([q.steps_unused for q in self.quantizers]) if _same_shapes(self.quantizers) else None
        if unused is not None:
            dist.all_reduce(unused, op=dist.ReduceOp.MIN)
        lo = 0
        for i, q in enumerate(self.quantizers):
            dead = self._dead[i] if self._dead else torch.zeros_like(q.initialised)
            for t, mask in ((q.ema_count, dead), (q.ema_sum, dead.unsqueeze(-1))):
                n = t.numel()
                mean, first = flat[lo : lo + n].view_as(t), from_rank0[lo : lo + n].view_as(t)
                t.copy_(torch.where(mask, first, mean))
                lo += n
            if unused is not None:
                q.steps_unused.copy_(unused[i])
            else:
                dist.all_reduce(q.steps_unused, op=dist.ReduceOp.MIN)
            # As VectorQuantizer._ema_update derives the codebook from the statistics.
            total = q.ema_count.sum(-1, keepdim=True)
            smoothed = (q.ema_count + q.eps) / (total + q.codebook_size * q.eps) * total
            q.codebook.copy_(q.ema_sum / smoothed.unsqueeze(-1))
        self._dead = []

    @torch.no_grad()
    def average_rest(self) -> None:
        """Average the other floating-point buffers over the processes (call in every process, once per epoch)."""
        if not (self.ctx.enabled and self.rest):
            return
        flat = torch.cat([b.reshape(-1).float() for b in self.rest])
        torch.distributed.all_reduce(flat)
        flat /= self.ctx.world_size
        lo = 0
        for b in self.rest:
            b.copy_(flat[lo : lo + b.numel()].view_as(b))
            lo += b.numel()


def _same_shapes(quantizers: Sequence[Any]) -> bool:
    return len({tuple(q.steps_unused.shape) for q in quantizers}) == 1
