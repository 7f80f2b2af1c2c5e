#!/usr/bin/env python
"""Benchmark: ``seqae embed`` on the CPU, this tree against an earlier commit, in one run.

Runs ``seqae embed`` end to end (model loading, reading, the model, Parquet,
AnnData and bigWig writing) three times on the same model and windows, as
subprocesses with the same torch thread count:

* *before*: the package as it was at ``--before`` (default ``a6efdc6``, the
  commit before the single-pass embedding), extracted with ``git archive``
  into a temporary folder;
* *now, fp32*: this tree's package with ``--precision fp32``;
* *now, auto*: this tree's package as it runs by default (``--precision
  auto``: bf16 on a CPU with AMX or AVX512-BF16, else fp32).

Prints windows/s of each and the ratio to *before* (target >= 3x), and how
far each run's Parquet rows are from *before*'s: labels and ranks, the
largest difference of a latent, a score and an accuracy, and the rank
correlation of the anomaly scores. Then the ceiling: the model pass's
floating-point work per window (torch's FLOP counter), the rates this CPU
multiplies float32 and bf16 matrices at with the same threads, and so the
windows/s no code could pass without doing less arithmetic per window.

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


def run_embed(package_root: Path, args: argparse.Namespace, outdir: Path, extra: tuple[str, ...] = ()) -> dict:
    """``seqae embed`` from the package under ``package_root`` (``extra``: more options); its ``embed_summary.json``."""
    script = (
        "import sys, torch; torch.set_num_threads(int(sys.argv[1])); "
        "from seqae.cli import main; sys.exit(main(sys.argv[2:]))"
    )
    cmd = [sys.executable, "-c", script, str(args.threads), "--quiet", "embed", "--model", str(args.model),
           "--windows", str(args.windows), "--outdir", str(outdir), "--device", "cpu"]  # fmt: skip
    if args.batch_size is not None:
        cmd += ["--batch-size", str(args.batch_size)]
    if args.splits:
        cmd += ["--splits", *args.splits]
    cmd += list(extra)
    subprocess.run(cmd, check=True, env={"PYTHONPATH": str(package_root), "PATH": "/usr/bin:/bin"}, cwd=package_root)
    return json.loads((outdir / "embed_summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--windows", type=Path, required=True)
    parser.add_argument("--splits", nargs="+", help="embed only these splits (default all windows)")
    parser.add_argument("--before", default="a6efdc6", help="git commit of the 'before' package")
    parser.add_argument(
        "--batch-size", type=int, help="windows per forward pass of every run (default: each version's own default, "
        "what a user gets: 512 before, 32 on the CPU now)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads of both runs")
    args = parser.parse_args()
    args.model, args.windows = args.model.resolve(), args.windows.resolve()
    with tempfile.TemporaryDirectory(prefix="seqae_bench_embed_") as tmp:
        work = Path(tmp)
        before_root = work / "before"
        before_root.mkdir()
        archive = subprocess.run(["git", "archive", args.before, "seqae"], cwd=ROOT, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(before_root)], input=archive.stdout, check=True)
        runs = {
            "before": (before_root, ()),
            "fp32": (ROOT, ("--precision", "fp32")),
            "auto": (ROOT, ("--precision", "auto")),
        }
        results = {label: run_embed(root, args, work / label, extra) for label, (root, extra) in runs.items()}
        frames = {label: pd.read_parquet(work / label / "embeddings.parquet") for label in runs}
    a = frames["before"]
    numeric = [c for c in a.columns if c.startswith("z_") or c in ("anomaly_score", "seq_recon_accuracy")]
    n = results["fp32"]["n_windows"]
    print(f"seqae embed on the CPU, {n} windows, {args.threads} torch threads")
    print(f"{'version':<34}{'batch':>7}{'seconds':>10}{'windows/s':>12}{'ratio':>8}")
    names = {
        "before": f"before ({args.before})",
        "fp32": "now, --precision fp32",
        "auto": f"now, --precision auto ({results['auto'].get('precision', '?')})",
    }
    base = results["before"]["windows_per_second"]
    for label, name in names.items():
        rate = results[label]["windows_per_second"]
        batch = results[label].get("batch_size", "?")
        print(f"{name:<34}{batch:>7}{results[label]['seconds']:>10.1f}{rate:>12.1f}{rate / base:>7.2f}x")
    print("target: >= 3x before")
    for label in ("fp32", "auto"):
        b = frames[label]
        computed = [*numeric, "anomaly_rank"]
        same_rows = a.drop(columns=computed).equals(b.drop(columns=computed))
        same_ranks = int((a["anomaly_rank"] == b["anomaly_rank"]).sum())
        worst = {c: float(np.nanmax(np.abs(a[c].to_numpy() - b[c].to_numpy()))) for c in numeric}
        z_worst = max(v for c, v in worst.items() if c.startswith("z_"))
        rho = a["anomaly_score"].rank().corr(b["anomaly_score"].rank())
        print(f"{names[label]} against before: labels {'identical' if same_rows else 'DIFFER'}; largest difference "
              f"of a latent {z_worst:.1e}, of a score {worst['anomaly_score']:.1e} nats/base, of an accuracy "
              f"{worst['seq_recon_accuracy']:.1e}; anomaly ranks equal in {same_ranks} of {len(a)} windows, "
              f"rank correlation {rho:.6f}")  # fmt: skip
    print_ceiling(args, base, results["fp32"]["windows_per_second"], results["auto"]["windows_per_second"])


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


def matmul_gflops(threads: int, dtype: str = "float32", size: int = 1024, repeats: int = 20) -> float:
    """GFLOP/s of torch.mm of ``dtype`` matrices on this CPU with ``threads`` threads (the best of three timings)."""
    import time

    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size, dtype=getattr(torch, dtype)), torch.randn(size, size, dtype=getattr(torch, dtype))
    torch.mm(a, b)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 * repeats / best / 1e9


def print_ceiling(args: argparse.Namespace, before_rate: float, fp32_rate: float, auto_rate: float) -> None:
    """What 3x the earlier rate asks of this CPU, against its measured matrix-multiply rates."""
    flops = model_flops_per_window(args.model, args.windows)
    print(f"model pass: {flops / 1e9:.3f} GFLOP per window; fp32 now at {fp32_rate * flops / 1e9:.1f} GFLOP/s, "
          f"auto at {auto_rate * flops / 1e9:.1f}")  # fmt: skip
    for dtype, rate in (("float32", fp32_rate), ("bfloat16", auto_rate)):
        peak = matmul_gflops(args.threads, dtype)
        ceiling = peak * 1e9 / flops
        print(f"this CPU's {dtype} matrix multiply with {args.threads} threads: {peak:.1f} GFLOP/s, so at most "
              f"{ceiling:.1f} windows/s at this arithmetic ({ceiling / before_rate:.2f}x before; {rate / ceiling:.0%} "
              "of it reached)")  # fmt: skip


if __name__ == "__main__":
    main()
