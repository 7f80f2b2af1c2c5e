#!/usr/bin/env python
"""Benchmark: seqae's hand-written training step against Lightning Fabric's, and what each checkpoint restores.

The question it answers (docs/ARCHITECTURE.md, "Decisions"): would Lightning
Fabric replace the hand-written device, AMP, DDP and checkpoint code without
losing speed or exact resumption? Measured in one run, on the demo's default
two-level model (``TWO_LEVEL_SETTINGS``, denoising on so that the forward pass
draws random numbers as a denoising run does):

1. **Step time.** The same forward, backward, per-part clipping and AdamW step,
   once as ``seqae.training`` writes it and once through
   ``Fabric.setup`` / ``Fabric.backward`` / ``Fabric.clip_gradients``, in
   alternating rounds on the same batch. Prints ms per step and the ratio.
2. **Resumption.** ``2 * k`` steps without a stop, against ``k`` steps, a save,
   a fresh model and optimiser, a load and ``k`` more steps:
   (a) Fabric's ``save`` / ``load`` of the model and optimiser state, which
   is what it checkpoints by default; (b) the same plus the RNG states, as
   seqae's ``checkpoint.pt`` stores them. Prints the largest parameter
   difference of each from the uninterrupted run (0 = exact).

Needs ``lightning-fabric`` (``pip install lightning-fabric``; not a dependency
of seqae). On this project's 2-core CPU::

    python benchmarks/bench_fabric.py --batch 8 --steps 6
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch

from seqae.models import SequenceAutoencoder, model_settings
from seqae.models.settings import TWO_LEVEL_SETTINGS
from seqae.training.optimizer import clip_groups, make_optimizer

LABEL_CLASSES = {"chrom": 4, "region_class": 3}
N_TRACKS = 2


def build(seed: int, window_len: int) -> SequenceAutoencoder:
    """The demo's default two-level model with denoising on (random corruption in every forward pass)."""
    torch.manual_seed(seed)
    overrides = copy.deepcopy(TWO_LEVEL_SETTINGS)
    overrides["denoise"] = {"enabled": True}
    overrides["blocks"] = {"chrom": {"size": 8, "label": "chrom"}, "residual": {"size": 16}}
    return SequenceAutoencoder(model_settings(overrides), N_TRACKS, window_len, LABEL_CLASSES)


def batch(size: int, window_len: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Random ``seq int64 [B, L]``, ``tracks float32 [B, T, L]`` and labels."""
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(0, 4, (size, window_len), generator=g)
    tracks = torch.rand((size, N_TRACKS, window_len), generator=g)
    labels = {k: torch.randint(0, n, (size,), generator=g) for k, n in LABEL_CLASSES.items()}
    return seq, tracks, labels


TRAINING = {"lr": 1e-3, "weight_decay": 0.01}
CLIP = 1.0


def seqae_step(model, optimizer, groups, inputs, step: int) -> None:
    """The step of ``seqae.training.epoch`` (full precision on the CPU: no autocast)."""
    out = model(*inputs, step=step)
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    for group in groups:
        torch.nn.utils.clip_grad_norm_(group, CLIP)
    optimizer.step()


def fabric_step(fabric, model, optimizer, groups, inputs, step: int) -> None:
    """The same step through Fabric's backward. ``Fabric.clip_gradients`` clips one norm over the
    whole module, and seqae clips each part on its own, so the parts are clipped as in seqae
    (at 32-bit precision Fabric has nothing to unscale first)."""
    out = model(*inputs, step=step)
    optimizer.zero_grad(set_to_none=True)
    fabric.backward(out.loss)
    for group in groups:
        torch.nn.utils.clip_grad_norm_(group, CLIP)
    optimizer.step()


def time_steps(args: argparse.Namespace) -> dict[str, float]:
    """ms per step of both ways, alternating rounds of ``args.steps`` steps after one warm-up round each."""
    from lightning_fabric import Fabric

    inputs = batch(args.batch, args.window_len, 1)
    plain = build(0, args.window_len)
    plain_opt = make_optimizer(plain, TRAINING, torch.device("cpu"))
    plain_groups = clip_groups(plain)
    fabric = Fabric(accelerator="cpu", devices=1, precision="32-true")
    wrapped = build(0, args.window_len)
    fabric_opt = make_optimizer(wrapped, TRAINING, torch.device("cpu"))
    fabric_groups = clip_groups(wrapped)
    wrapped, fabric_opt = fabric.setup(wrapped, fabric_opt)
    plain.train()
    wrapped.train()
    ways = {
        "seqae": lambda i: seqae_step(plain, plain_opt, plain_groups, inputs, i),
        "fabric": lambda i: fabric_step(fabric, wrapped, fabric_opt, fabric_groups, inputs, i),
    }
    seconds = {k: [] for k in ways}
    for r in range(args.rounds + 1):
        for name, step in ways.items():
            start = time.perf_counter()
            for i in range(args.steps):
                step(r * args.steps + i)
            if r:  # round 0 warms up
                seconds[name].append((time.perf_counter() - start) / args.steps)
    return {k: 1000 * min(v) for k, v in seconds.items()}


def resume_difference(args: argparse.Namespace, with_rng: bool) -> float:
    """Largest |parameter| difference between 2k steps in one go and k + save + load + k through Fabric."""
    from lightning_fabric import Fabric

    fabric = Fabric(accelerator="cpu", devices=1, precision="32-true")
    k = args.steps
    batches = [batch(args.batch, args.window_len, 100 + i) for i in range(2 * k)]

    def fresh():
        model = build(0, args.window_len)
        opt = make_optimizer(model, TRAINING, torch.device("cpu"))
        groups = clip_groups(model)
        model, opt = fabric.setup(model, opt)
        model.train()
        return model, opt, groups

    torch.manual_seed(7)
    model, opt, groups = fresh()
    for i in range(2 * k):
        fabric_step(fabric, model, opt, groups, batches[i], i)
    straight = {n: p.detach().clone() for n, p in model.named_parameters()}

    torch.manual_seed(7)
    model, opt, groups = fresh()
    for i in range(k):
        fabric_step(fabric, model, opt, groups, batches[i], i)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.ckpt"
        state = {"model": model, "optimizer": opt}
        if with_rng:
            state["torch_rng"] = torch.get_rng_state()
        fabric.save(path, state)
        torch.manual_seed(12345)  # a new process: its own RNG state
        model, opt, groups = fresh()
        state = {"model": model, "optimizer": opt}
        remainder = fabric.load(path, state)
        if with_rng:
            torch.set_rng_state(remainder["torch_rng"])
    for i in range(k, 2 * k):
        fabric_step(fabric, model, opt, groups, batches[i], i)
    return max(float((p.detach() - straight[n]).abs().max()) for n, p in model.named_parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--window-len", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=6, help="steps per timed round, and k of the resumption check")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    try:
        import lightning_fabric
    except ImportError:
        raise SystemExit("bench_fabric.py needs lightning-fabric: pip install lightning-fabric") from None
    ms = time_steps(args)
    print(
        f"lightning-fabric {lightning_fabric.__version__}, torch {torch.__version__}, CPU threads {torch.get_num_threads()}"
    )
    print(f"step, batch {args.batch} x {args.window_len} bp (best of {args.rounds} rounds of {args.steps} steps):")
    print(f"  seqae  {ms['seqae']:8.1f} ms")
    print(f"  fabric {ms['fabric']:8.1f} ms   fabric / seqae = {ms['fabric'] / ms['seqae']:.3f}")
    print(f"resumption after {args.steps} of {2 * args.steps} steps, largest parameter difference from no stop:")
    print(f"  fabric.save of model + optimizer          {resume_difference(args, with_rng=False):.3g}")
    print(f"  the same + the RNG state (as checkpoint.pt) {resume_difference(args, with_rng=True):.3g}")


if __name__ == "__main__":
    main()
