#!/usr/bin/env python
"""Benchmark: training throughput of the default (two-level) model, three ways, in one run.

(a) ``seqae.training.train_model`` end to end on a windows file: the project's
    data path (staging, on-device jitter and reverse complement, label
    gathering, metrics kept on the device) — samples/s of its second epoch;
(b) the same model, batch and precision on tensors already on the device:
    forward, backward, clipping and AdamW only — the ceiling for (a);
(c) bpnet-lite's BPNet (benchmark extra) trained on the same input size and
    batch on the same device: a reference point from a widely used model.

Prints samples/s and achieved TFLOP/s (FLOPs counted with
``torch.utils.flop_counter`` on one training step) and the ratios; target
(a)/(b) >= 0.95. Also embeddings/s of ``seqae embed`` on the same file.

    python benchmarks/bench_train.py                      # GPU: batch 256, large model
    python benchmarks/bench_train.py --quick              # CPU smoke run
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from seqae.config import validate_config
from seqae.models import SequenceAutoencoder, model_settings
from seqae.models.settings import TWO_LEVEL_SETTINGS
from seqae.runtime import autocast_dtype, resolve_device
from seqae.training import train_model
from seqae.windows.store import WindowsSchema, WindowsWriter

TRACKS = ("TF1", "TF2", "TF3")


def synthetic_windows(path: Path, n: int, window_len: int, flank: int, seed: int = 0) -> Path:
    """A windows file of ``n`` random windows (labels: 4 chromosomes, 3 region classes, 8 gene families), all in train."""
    rng = np.random.default_rng(seed)
    schema = WindowsSchema(window_len=window_len, flank=flank, track_names=TRACKS, track_transform="log1p")
    with WindowsWriter(path, schema) as writer:
        for lo in range(0, n, 4096):
            m = min(4096, n - lo)
            writer.append(
                rng.integers(0, 4, (m, schema.seq_len), dtype=np.uint8),
                rng.gamma(0.5, 1.0, (m, len(TRACKS), schema.seq_len)).astype(np.float16),
            )
        chrom = np.sort(rng.choice([f"chr{i}" for i in range(1, 5)], n))
        start = np.arange(n, dtype=np.int64) * (window_len + 2 * flank) + flank
        labels = pd.DataFrame(
            {
                "window_id": [f"w{i:07d}" for i in range(n)],
                "species": "bench",
                "chrom": chrom,
                "start": start,
                "end": start + window_len,
                "region_class": rng.choice(["promoter", "genic", "distal"], n),
                "gene_family": rng.choice([f"F{i}" for i in range(8)], n),
                "split": np.where(np.arange(n) < n - max(64, n // 50), "train", "val"),
            }
        )
        writer.write_labels(labels)
    return path


def flops_per_step(model: torch.nn.Module, seq: torch.Tensor, tracks: torch.Tensor, labels: dict) -> float:
    """FLOPs of one forward + backward pass (matmul/conv FLOPs, as counted by PyTorch)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        out = model(seq, tracks, labels, step=0)
        out.loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def bench_tensors(
    model: torch.nn.Module, batch: int, window_len: int, steps: int, warmup: int, device: torch.device, precision: str
) -> tuple[float, float]:
    """(b): samples/s and FLOPs/sample on random tensors already on the device."""
    gen = torch.Generator(device=device).manual_seed(0)
    seq = torch.randint(0, 4, (batch, window_len), device=device, generator=gen)
    tracks = torch.rand((batch, len(TRACKS), window_len), device=device, generator=gen)
    labels = {
        "chrom": torch.randint(0, 4, (batch,), device=device, generator=gen),
        "region_class": torch.randint(0, 3, (batch,), device=device, generator=gen),
        "gene_family": torch.randint(0, 8, (batch,), device=device, generator=gen),
    }
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    dtype = autocast_dtype(precision, device)
    ctx = (
        (lambda: torch.autocast(device.type, dtype=dtype))
        if dtype
        else (lambda: torch.autocast(device.type, enabled=False))
    )
    model.train()

    def step() -> None:
        with ctx():
            out = model(seq, tracks, labels, step=0)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    seconds = _time_steps(step, steps, warmup, device)
    with ctx():
        flops = flops_per_step(model, seq, tracks, labels)
    return steps * batch / seconds, flops / batch


def bench_bpnet(batch: int, window_len: int, steps: int, warmup: int, device: torch.device, precision: str) -> dict:
    """(c): bpnet-lite's BPNet, 64 filters x 8 dilated layers, on one-hot input of the same length."""
    try:
        from bpnetlite import BPNet
    except ImportError:
        return {"skipped": "bpnet-lite is not installed (pip install '.[benchmark]')"}
    model = BPNet(n_filters=64, n_layers=8, n_outputs=len(TRACKS), n_control_tracks=0, trimming=0, verbose=False)
    model = model.to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    codes = torch.randint(0, 4, (batch, window_len), device=device, generator=gen)
    x = torch.nn.functional.one_hot(codes, 4).transpose(1, 2).float()
    target = torch.rand((batch, len(TRACKS), window_len), device=device, generator=gen)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    dtype = autocast_dtype(precision, device)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            profile, counts = model(x)
        # BPNet's usual objective: multinomial profile NLL + MSE of log total counts.
        logp = torch.log_softmax(profile.float().reshape(batch, -1), dim=-1)
        mnll = -(logp * target.reshape(batch, -1)).sum(-1).mean()
        mse = ((counts.float().squeeze(-1) - torch.log1p(target.sum((1, 2)))) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        (mnll + mse).backward()
        optimizer.step()

    seconds = _time_steps(step, steps, warmup, device)
    return {"samples_per_s": steps * batch / seconds, "parameters": sum(p.numel() for p in model.parameters())}


def _time_steps(step, steps: int, warmup: int, device: torch.device) -> float:
    """Seconds of ``steps`` calls of ``step()`` after ``warmup`` untimed ones (device work included)."""
    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return time.perf_counter() - t0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--window-len", type=int, default=1000)
    parser.add_argument("--size", choices=["small", "large"], default="large")
    parser.add_argument("--steps", type=int, default=40, help="timed steps (per epoch for the data path)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--quick", action="store_true", help="CPU smoke run: batch 16, small model, 4 steps")
    parser.add_argument("--decoder", choices=["autoregressive", "conv"], default="autoregressive",
                        help="autoregressive: the two-level model of the demo config (default); "
                        "conv: the global latent decoded by upsampling convolutions")  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.batch, args.size, args.steps, args.warmup = 16, "small", 4, 1

    device = resolve_device(args.device)
    torch.manual_seed(0)
    overrides = copy.deepcopy(TWO_LEVEL_SETTINGS) if args.decoder == "autoregressive" else {}
    overrides["size"] = args.size
    settings = model_settings(overrides)
    label_classes = {"chrom": 4, "region_class": 3, "gene_family": 8}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n_train = args.batch * args.steps
        windows = synthetic_windows(tmp / "windows.h5", n_train + max(64, (n_train + 64) // 50), args.window_len, 100)
        config = validate_config(
            {
                "genomes": [
                    {"species": "bench", "fasta": "unused.fa", "tfs": [{"name": "TF1", "peaks": "unused.bed"}]}
                ],
                "training": {
                    "batch_size": args.batch,
                    "epochs": 2,
                    "warmup_steps": args.warmup,
                    "device": args.device,
                    "precision": args.precision,
                    "early_stopping_patience": 0,
                    "log_every_steps": 1000,
                },
                "models": {"bench": overrides},
            }
        )
        train_model(copy.deepcopy(config), "bench", windows, tmp / "model", progress=False)
        history = pd.read_csv(tmp / "model" / "metrics.csv")
        data_path = float(history["samples_per_s"].iloc[-1])

        model = SequenceAutoencoder(settings, len(TRACKS), args.window_len, label_classes).to(device)
        tensors, flops_per_sample = bench_tensors(
            model, args.batch, args.window_len, args.steps, args.warmup, device, args.precision
        )
        bpnet = bench_bpnet(args.batch, args.window_len, args.steps, args.warmup, device, args.precision)

        from seqae.embed import embed_windows

        embedded = embed_windows(
            tmp / "model" / "best.pt", windows, tmp / "embed", device=args.device, progress=False, recon_tracks=False
        )

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    n_params = sum(p.numel() for p in model.parameters())
    print(f"device: {name}; {args.decoder} decoder, model size {args.size} ({n_params / 1e6:.2f} M parameters); "
          f"batch {args.batch} x {args.window_len} bp")  # fmt: skip
    print(f"{'path':<44}{'samples/s':>12}{'TFLOP/s':>10}")
    print(f"{'(a) seqae train (project data path)':<44}{data_path:>12.0f}{data_path * flops_per_sample / 1e12:>10.2f}")
    print(f"{'(b) same model on tensors on the device':<44}{tensors:>12.0f}{tensors * flops_per_sample / 1e12:>10.2f}")
    if "samples_per_s" in bpnet:
        print(f"{'(c) bpnet-lite BPNet 64x8':<44}{bpnet['samples_per_s']:>12.0f}{'':>10}")
    else:
        print(f"(c) {bpnet['skipped']}")
    print(f"ratio (a)/(b): {data_path / tensors:.3f} (target >= 0.95)")
    if "samples_per_s" in bpnet:
        print(f"ratio (b)/(c): {tensors / bpnet['samples_per_s']:.3f}")
    summary = embedded.summary
    print(f"seqae embed: {summary['windows_per_second']:.0f} windows/s ({summary['n_windows']} windows, no bigWigs)")
    print(json.dumps({"a": data_path, "b": tensors, "c": bpnet, "flops_per_sample": flops_per_sample}))


if __name__ == "__main__":
    main()
