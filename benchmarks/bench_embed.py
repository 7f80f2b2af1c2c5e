#!/usr/bin/env python
"""Benchmark: ``seqae embed`` on the CPU, this tree against an earlier commit, in one run.

Runs ``seqae embed`` end to end (model loading, reading, the model, Parquet,
AnnData and bigWig writing) twice on the same model and windows, as
subprocesses with the same torch thread count:

* *before*: the package as it was at ``--before`` (default ``a6efdc6``, the
  commit before the single-pass embedding), extracted with ``git archive``
  into a temporary folder;
* *now*: this tree's package.

Prints windows/s of each and the ratio (target >= 3x), and checks that both
wrote the same Parquet rows (latents, scores, ranks, accuracy within float
tolerance). Then the ceiling: the model pass's floating-point work per window
(torch's FLOP counter), the rate this CPU multiplies float32 matrices at with
the same threads, and so the windows/s no code could pass without doing less
arithmetic per window.

Needs a windows file (e.g. the demo's ``results/windows/windows.h5``) and a
model both packages read. a6efdc6 refuses today's model settings
(``erasure``, ``scan``), so train one with the earlier package (the rate does
not depend on the weights)::

    mkdir /tmp/old && git archive a6efdc6 seqae config | tar -x -C /tmp/old
    # /tmp/old/bench.yaml: its config/config.yaml with training: {max_steps: 10}
    cd /tmp/old && PYTHONPATH=. python -m seqae.cli train --config bench.yaml \\
        --model plain --windows $REPO/results/windows/windows.h5 --outdir m
    python benchmarks/bench_embed.py --model /tmp/old/m/best.pt \\
        --windows results/windows/windows.h5 --splits test
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def run_embed(package_root: Path, args: argparse.Namespace, outdir: Path) -> dict:
    """``seqae embed`` from the package under ``package_root``; its ``embed_summary.json``."""
    script = (
        "import sys, torch; torch.set_num_threads(int(sys.argv[1])); "
        "from seqae.cli import main; sys.exit(main(sys.argv[2:]))"
    )
    cmd = [sys.executable, "-c", script, str(args.threads), "--quiet", "embed", "--model", str(args.model),
           "--windows", str(args.windows), "--outdir", str(outdir), "--batch-size", str(args.batch_size),
           "--device", "cpu"]  # fmt: skip
    if args.splits:
        cmd += ["--splits", *args.splits]
    subprocess.run(cmd, check=True, env={"PYTHONPATH": str(package_root), "PATH": "/usr/bin:/bin"}, cwd=package_root)
    return json.loads((outdir / "embed_summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--windows", type=Path, required=True)
    parser.add_argument("--splits", nargs="+", help="embed only these splits (default all windows)")
    parser.add_argument("--before", default="a6efdc6", help="git commit of the 'before' package")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads of both runs")
    args = parser.parse_args()
    args.model, args.windows = args.model.resolve(), args.windows.resolve()
    with tempfile.TemporaryDirectory(prefix="seqae_bench_embed_") as tmp:
        work = Path(tmp)
        before_root = work / "before"
        before_root.mkdir()
        archive = subprocess.run(["git", "archive", args.before, "seqae"], cwd=ROOT, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(before_root)], input=archive.stdout, check=True)
        results = {}
        for label, root in (("before", before_root), ("now", ROOT)):
            results[label] = run_embed(root, args, work / label)
        a = pd.read_parquet(work / "before" / "embeddings.parquet")
        b = pd.read_parquet(work / "now" / "embeddings.parquet")
        numeric = [c for c in a.columns if c.startswith("z_") or c in ("anomaly_score", "seq_recon_accuracy")]
        same_rows = a.drop(columns=numeric).equals(b.drop(columns=numeric))
        worst = float(np.nanmax(np.abs(a[numeric].to_numpy() - b[numeric].to_numpy())))
    n = results["now"]["n_windows"]
    print(f"seqae embed on the CPU, {n} windows, batch {args.batch_size}, {args.threads} torch threads")
    print(f"{'version':<28}{'seconds':>10}{'windows/s':>12}")
    for label, name in (("before", f"before ({args.before})"), ("now", "now (this tree)")):
        s = results[label]
        print(f"{name:<28}{s['seconds']:>10.1f}{s['windows_per_second']:>12.1f}")
    ratio = results["now"]["windows_per_second"] / results["before"]["windows_per_second"]
    print(f"ratio now/before: {ratio:.2f}x (target >= 3x)")
    print(f"same Parquet rows: labels and ranks {'identical' if same_rows else 'DIFFER'}; "
          f"largest difference of a latent, score or accuracy {worst:.2e}")  # fmt: skip
    print_ceiling(args, results["before"]["windows_per_second"], results["now"]["windows_per_second"])


def model_flops_per_window(model_path: Path, windows: Path, n: int = 8) -> float:
    """Floating-point operations of one embed pass (encoder, decoder, chain score) per window."""
    import h5py
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from seqae.checkpoint import load_model
    from seqae.models.augment import centre_crop

    model, meta = load_model(model_path)
    with h5py.File(windows, "r") as f:
        seq, tracks = torch.from_numpy(f["seq"][:n]), torch.from_numpy(f["tracks"][:n])
    seq, tracks = centre_crop(seq, tracks, meta["model_init"]["window_len"])
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model.score_reconstruct(seq.long(), tracks.float())
    return counter.get_total_flops() / n


def matmul_gflops(threads: int, size: int = 1024, repeats: int = 20) -> float:
    """float32 GFLOP/s of torch.mm on this CPU with ``threads`` threads (the best of three timings)."""
    import time

    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 * repeats / best / 1e9


def print_ceiling(args: argparse.Namespace, before_rate: float, now_rate: float) -> None:
    """What 3x the earlier rate asks of this CPU, against its measured matrix-multiply rate."""
    flops = model_flops_per_window(args.model, args.windows)
    peak = matmul_gflops(args.threads)
    ceiling = peak * 1e9 / flops
    print(f"model pass: {flops / 1e9:.3f} GFLOP per window; now {now_rate * flops / 1e9:.1f} GFLOP/s")
    print(f"this CPU's float32 matrix multiply with {args.threads} threads: {peak:.1f} GFLOP/s, "
          f"so at most {ceiling:.1f} windows/s at this arithmetic ({ceiling / before_rate:.2f}x before, "
          f"{now_rate / ceiling:.0%} of it reached now)")  # fmt: skip


if __name__ == "__main__":
    main()
