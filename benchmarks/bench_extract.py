#!/usr/bin/env python
"""Benchmark: ``seqae extract`` against a naive per-window loop, in one run.

Builds (once, cached) a realistic input: a genome of ``--genome-mb`` Mb over
several chromosomes, ``--peaks`` narrowPeak summits split over two TFs, and
two bigWig tracks with 10 bp bins of signal everywhere (like
``bamCoverage --binSize 10``). Then measures:

* ``seqae extract`` end to end (a subprocess: imports, parsing, labels,
  HDF5 writing with compression), windows per second and peak RSS;
* the naive loop a user would write: per window ``pyfaidx`` fetch, one-hot
  encoding and ``pyBigWig.values`` for each track, on a sample of the same
  windows, windows per second;
* peak RSS of ``seqae extract`` at a quarter of the peaks, to show that
  memory does not grow with the number of windows.

Prints one table and the ratio. Target: ratio >= 10.

    python benchmarks/bench_extract.py            # full size (>= 50 Mb, 100k peaks)
    python benchmarks/bench_extract.py --quick    # a small smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyBigWig
import pyfaidx
import yaml

WINDOW_LEN = 1000
FLANK = 100


def build_inputs(folder: Path, genome_mb: int, n_peaks: int, seed: int = 0) -> dict[str, Path]:
    """Write genome.fa, two narrowPeaks and two bigWigs under ``folder`` (skipped if present)."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / f"inputs_{genome_mb}mb_{n_peaks}.json"
    paths = {
        "fasta": folder / f"genome_{genome_mb}mb.fa",
        "peaks_a": folder / f"TFA_{genome_mb}mb_{n_peaks}.narrowPeak",
        "peaks_b": folder / f"TFB_{genome_mb}mb_{n_peaks}.narrowPeak",
        "bw_a": folder / f"TFA_{genome_mb}mb.bw",
        "bw_b": folder / f"TFB_{genome_mb}mb.bw",
    }
    if stamp.exists():
        return paths
    rng = np.random.default_rng(seed)
    n_chroms = 5
    sizes = {f"chr{i + 1}": genome_mb * 1_000_000 // n_chroms for i in range(n_chroms)}
    if not paths["fasta"].exists():
        with open(paths["fasta"], "wb") as f:
            for chrom, size in sizes.items():
                codes = rng.choice(np.frombuffer(b"ACGT", np.uint8), size=size, p=[0.3, 0.2, 0.2, 0.3])
                codes[size // 2 : size // 2 + 5000] = ord("N")
                n_lines = -(-size // 60)
                padded = np.full(n_lines * 60, ord("\n"), np.uint8)
                padded[:size] = codes
                lines = np.concatenate([padded.reshape(n_lines, 60), np.full((n_lines, 1), ord("\n"), np.uint8)], 1)
                f.write(f">{chrom}\n".encode())
                last = size - (n_lines - 1) * 60
                f.write(lines[:-1].tobytes())
                f.write(lines[-1, :last].tobytes() + b"\n")
        pyfaidx.Fasta(str(paths["fasta"])).close()

    chroms = np.array(list(sizes))
    for key, name in (("peaks_a", "TFA"), ("peaks_b", "TFB")):
        n = n_peaks // 2
        chrom_idx = rng.integers(0, n_chroms, n)
        size = np.array([sizes[c] for c in chroms[chrom_idx]])
        summit = rng.integers(2000, size - 2000)
        start = summit - rng.integers(50, 300, n)
        end = summit + rng.integers(50, 300, n)
        order = np.lexsort((start, chrom_idx))
        with open(paths[key], "w") as f:
            for i in order:
                f.write(
                    f"{chroms[chrom_idx[i]]}\t{start[i]}\t{end[i]}\t{name}_{i}\t{rng.integers(0, 1000)}\t.\t"
                    f"5.0\t10.0\t8.0\t{summit[i] - start[i]}\n"
                )

    for key in ("bw_a", "bw_b"):
        if paths[key].exists():
            continue
        bw = pyBigWig.open(str(paths[key]), "w")
        bw.addHeader(list(sizes.items()), maxZooms=6)
        for chrom, size in sizes.items():
            n_bins = size // 10
            vals = rng.poisson(0.5, n_bins).astype(np.float64) + rng.random(n_bins)
            bw.addEntries(chrom, 0, values=vals, span=10, step=10)
        bw.close()
    stamp.write_text(json.dumps({k: str(v) for k, v in paths.items()}))
    return paths


def run_seqae(paths: dict[str, Path], workdir: Path, peaks_fraction: float = 1.0) -> dict[str, float]:
    """Run ``seqae extract`` as a subprocess; return windows, seconds and peak RSS (MiB)."""
    peaks = {"A": paths["peaks_a"], "B": paths["peaks_b"]}
    if peaks_fraction < 1.0:
        for key, path in list(peaks.items()):
            lines = path.read_text().splitlines(keepends=True)
            sub = workdir / f"sub_{key}.narrowPeak"
            sub.write_text("".join(lines[: int(len(lines) * peaks_fraction)]))
            peaks[key] = sub
    config = {
        "seed": 1,
        "genomes": [
            {
                "species": "bench",
                "fasta": str(paths["fasta"]),
                "tfs": [
                    {"name": "TFA", "peaks": str(peaks["A"]), "bigwig": str(paths["bw_a"])},
                    {"name": "TFB", "peaks": str(peaks["B"]), "bigwig": str(paths["bw_b"])},
                ],
            }
        ],
        "extract": {"window_len": WINDOW_LEN, "max_jitter": FLANK, "background_ratio": 0.0},
    }
    cfg_path = workdir / "bench.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    out = workdir / f"windows_{peaks_fraction}.h5"
    # The child reports its own peak RSS, so each run is measured on its own.
    script = (
        "import resource, sys; from seqae.cli import main; rc = main(sys.argv[1:]); "
        "print('maxrss_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)"
    )
    cmd = [sys.executable, "-c", script, "--quiet", "extract", "--config", str(cfg_path), "--out", str(out)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, check=True, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    rss_kib = int(done.stderr.strip().splitlines()[-1].split()[-1])
    report = json.loads((workdir / "extract_report.json").read_text())
    return {
        "windows": report["n_windows"],
        "seconds": seconds,
        "rss_mib": rss_kib / 1024,
        "file_mib": out.stat().st_size / 2**20,
    }


def run_naive(paths: dict[str, Path], n_sample: int, seed: int = 0) -> dict[str, float]:
    """The per-window loop: pyfaidx fetch, one-hot, pyBigWig.values per track.

    Each step is already vectorised within the window (numpy one-hot through
    a lookup table, ``values(numpy=True)``), as a careful user would write it.
    """
    lines = paths["peaks_a"].read_text().splitlines() + paths["peaks_b"].read_text().splitlines()
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(len(lines), size=min(n_sample, len(lines)), replace=False))
    windows = []
    for i in picked:
        f = lines[i].split("\t")
        summit = int(f[1]) + int(f[9])
        windows.append((f[0], summit - WINDOW_LEN // 2 - FLANK, summit + WINDOW_LEN // 2 + FLANK))
    windows.sort()
    fasta = pyfaidx.Fasta(str(paths["fasta"]))
    bws = [pyBigWig.open(str(paths["bw_a"])), pyBigWig.open(str(paths["bw_b"]))]
    lookup = np.full(256, 4, dtype=np.int64)
    for code, base in enumerate(b"ACGT"):
        lookup[base] = code
    eye = np.eye(5, 4, dtype=np.float32)  # row 4 (N) is all zeros
    t0 = time.perf_counter()
    checksum = 0.0
    for chrom, start, end in windows:
        seq = fasta[chrom][start:end].seq.upper()
        one_hot = eye[lookup[np.frombuffer(seq.encode(), dtype=np.uint8)]]
        tracks = [np.nan_to_num(bw.values(chrom, start, end, numpy=True)) for bw in bws]
        checksum += float(one_hot[0, 0]) + float(tracks[0][0])
    seconds = time.perf_counter() - t0
    return {"windows": len(windows), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genome-mb", type=int, default=60)
    parser.add_argument("--peaks", type=int, default=120_000)
    parser.add_argument("--naive-sample", type=int, default=10_000, help="windows timed for the naive loop")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "seqae_bench_extract")
    parser.add_argument("--quick", action="store_true", help="small smoke run (10 Mb, 10k peaks)")
    args = parser.parse_args()
    if args.quick:
        args.genome_mb, args.peaks, args.naive_sample = 10, 10_000, 2_000

    t0 = time.perf_counter()
    paths = build_inputs(args.cache, args.genome_mb, args.peaks)
    print(f"inputs: {args.genome_mb} Mb genome, {args.peaks} peaks, 2 bigWigs ({time.perf_counter() - t0:.0f} s to build)")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        quarter = run_seqae(paths, work, peaks_fraction=0.25)
        full = run_seqae(paths, work)
    naive = run_naive(paths, args.naive_sample)

    seqae_rate = full["windows"] / full["seconds"]
    naive_rate = naive["windows"] / naive["seconds"]
    print(f"{'method':<34}{'windows':>10}{'seconds':>10}{'windows/s':>12}{'peak RSS MiB':>14}")
    print(f"{'seqae extract (25% of peaks)':<34}{quarter['windows']:>10}{quarter['seconds']:>10.1f}"
          f"{quarter['windows'] / quarter['seconds']:>12.0f}{quarter['rss_mib']:>14.0f}")
    print(f"{'seqae extract':<34}{full['windows']:>10}{full['seconds']:>10.1f}{seqae_rate:>12.0f}{full['rss_mib']:>14.0f}")
    print(f"{'naive loop (pyfaidx+one-hot+bw)':<34}{naive['windows']:>10}{naive['seconds']:>10.1f}{naive_rate:>12.0f}{'':>14}")
    print(f"windows file: {full['file_mib']:.0f} MiB ({full['file_mib'] * 2**20 / max(full['windows'], 1) / 1024:.1f} KiB/window)")
    print(f"ratio seqae/naive: {seqae_rate / naive_rate:.1f}x (target >= 10x)")
    print(f"peak RSS growth from 25% to 100% of the windows: {full['rss_mib'] / max(quarter['rss_mib'], 1):.2f}x")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
