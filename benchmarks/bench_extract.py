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

Prints one table, the ratio and the bigWig signal read against the bases
the windows need (``extract_report.json``). Target: ratio >= 10.

``--scale mammal`` is the size users have: hg38's 25 chromosome sizes
(3.09 Gb), three TFs of 100,000 summits each, three bigWig tracks of 10 bp
bins, GC-matched background at the default ratio (0.5). Its inputs (about
8 GB) are written with NumPy into a temporary folder and removed at the end
(``--inputs DIR`` keeps them in DIR instead, and reuses them when they are
there: building them takes about 5 minutes on 2 idle cores); there the
quarter run is skipped and the naive loop times a sample of the windows seqae
wrote.

    python benchmarks/bench_extract.py                 # 60 Mb, 120k peaks, 2 tracks (inputs cached)
    python benchmarks/bench_extract.py --quick         # a small smoke run
    python benchmarks/bench_extract.py --scale mammal  # 3.09 Gb, 300k summits, 3 tracks
    python benchmarks/bench_extract.py --scale mammal --inputs /scratch/mammal  # inputs kept for the next run
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
from typing import Any

import numpy as np
import pandas as pd
import pyBigWig
import pyfaidx
import yaml

WINDOW_LEN = 1000
FLANK = 100


#: hg38's primary chromosome sizes (bp): chr1-22, X, Y, M; 3.09 Gb in all.
HG38_SIZES = {
    "chr1": 248_956_422, "chr2": 242_193_529, "chr3": 198_295_559, "chr4": 190_214_555, "chr5": 181_538_259,
    "chr6": 170_805_979, "chr7": 159_345_973, "chr8": 145_138_636, "chr9": 138_394_717, "chr10": 133_797_422,
    "chr11": 135_086_622, "chr12": 133_275_309, "chr13": 114_364_328, "chr14": 107_043_718, "chr15": 101_991_189,
    "chr16": 90_338_345, "chr17": 83_257_441, "chr18": 80_373_285, "chr19": 58_617_616, "chr20": 64_444_167,
    "chr21": 46_709_983, "chr22": 50_818_468, "chrX": 156_040_895, "chrY": 57_227_415, "chrM": 16_569,
}  # fmt: skip

LINE = 60  # FASTA bases per line


def write_fasta(path: Path, sizes: dict[str, int], rng: np.random.Generator) -> None:
    """Random genome (AT-rich, a 5 kb N run mid-chromosome) and its .fai, written without pyfaidx's indexer."""
    fai = []
    offset = 0
    with open(path, "wb") as f:
        for chrom, size in sizes.items():
            header = f">{chrom}\n".encode()
            f.write(header)
            offset += len(header)
            fai.append(f"{chrom}\t{size}\t{offset}\t{LINE}\t{LINE + 1}\n")
            for lo in range(0, size, 50 * 1_000_000 // LINE * LINE):  # 50 Mb pieces bound the memory
                n = min(50 * 1_000_000 // LINE * LINE, size - lo)
                codes = np.frombuffer(b"ACGT", np.uint8)[rng.choice(4, size=n, p=[0.3, 0.2, 0.2, 0.3]).astype(np.uint8)]
                mid = size // 2 - lo
                if 0 <= mid < n:
                    codes[mid : mid + 5000] = ord("N")
                n_lines = -(-n // LINE)
                padded = np.full(n_lines * LINE, ord("\n"), np.uint8)
                padded[:n] = codes
                lines = np.concatenate([padded.reshape(n_lines, LINE), np.full((n_lines, 1), ord("\n"), np.uint8)], 1)
                last = n - (n_lines - 1) * LINE
                data = lines[:-1].tobytes() + lines[-1, :last].tobytes() + b"\n"
                f.write(data)
                offset += len(data)
    Path(f"{path}.fai").write_text("".join(fai))


def write_peaks(path: Path, name: str, sizes: dict[str, int], n: int, rng: np.random.Generator) -> None:
    """narrowPeak of ``n`` summits spread over the chromosomes in proportion to their length."""
    chroms = np.array(list(sizes))
    length = np.array(list(sizes.values()))
    chrom_idx = np.sort(rng.choice(len(chroms), size=n, p=length / length.sum()))
    size = length[chrom_idx]
    keep = size > 5000
    chrom_idx, size = chrom_idx[keep], size[keep]
    summit = rng.integers(2000, size - 2000)
    start = summit - rng.integers(50, 300, len(summit))
    end = summit + rng.integers(50, 300, len(summit))
    order = np.lexsort((start, chrom_idx))
    table = {
        "chrom": chroms[chrom_idx[order]], "start": start[order], "end": end[order],
        "name": [f"{name}_{i}" for i in range(len(order))], "score": rng.integers(0, 1000, len(order)),
        "strand": ".", "signal": 5.0, "p": 10.0, "q": 8.0, "peak": (summit - start)[order],
    }  # fmt: skip
    pd.DataFrame(table).to_csv(path, sep="\t", header=False, index=False)


def write_bigwig(path: Path, sizes: dict[str, int], rng: np.random.Generator) -> None:
    """Signal in 10 bp bins everywhere (like ``bamCoverage --binSize 10``)."""
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(sizes.items()), maxZooms=6)
    for chrom, size in sizes.items():
        for lo in range(0, size // 10 * 10, 10_000_000):
            n_bins = min(10_000_000, size // 10 * 10 - lo) // 10
            vals = rng.poisson(0.5, n_bins).astype(np.float64) + rng.random(n_bins)
            bw.addEntries(chrom, lo, values=vals, span=10, step=10)
    bw.close()


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
        write_fasta(paths["fasta"], sizes, rng)
    for key, name in (("peaks_a", "TFA"), ("peaks_b", "TFB")):
        write_peaks(paths[key], name, sizes, n_peaks // 2, rng)
    for key in ("bw_a", "bw_b"):
        if not paths[key].exists():
            write_bigwig(paths[key], sizes, rng)
    stamp.write_text(json.dumps({k: str(v) for k, v in paths.items()}))
    return paths


def build_mammal(folder: Path, n_tfs: int = 3, summits_per_tf: int = 100_000, seed: int = 0) -> dict[str, Any]:
    """hg38-sized genome, ``n_tfs`` narrowPeaks and bigWigs under ``folder``: ``{"fasta": path, "tfs": [...]}``."""
    rng = np.random.default_rng(seed)
    fasta = folder / "hg38_sized.fa"
    write_fasta(fasta, HG38_SIZES, rng)
    tfs = []
    for t in range(n_tfs):
        name = f"TF{t + 1}"
        peaks, bigwig = folder / f"{name}.narrowPeak", folder / f"{name}.bw"
        write_peaks(peaks, name, HG38_SIZES, summits_per_tf, rng)
        write_bigwig(bigwig, HG38_SIZES, rng)
        tfs.append({"name": name, "peaks": str(peaks), "bigwig": str(bigwig)})
    return {"fasta": fasta, "tfs": tfs}


def mammal_inputs(folder: Path) -> dict[str, Any]:
    """:func:`build_mammal`'s inputs in ``folder``: built there, unless a finished build is already there."""
    done = folder / "inputs.json"
    if done.exists():
        return json.loads(done.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    inputs = build_mammal(folder)
    done.write_text(
        json.dumps({"fasta": str(inputs["fasta"]), "tfs": inputs["tfs"]})
    )  # written last: the build is whole
    return inputs


def default_config(paths: dict[str, Path], workdir: Path, peaks_fraction: float = 1.0) -> dict[str, Any]:
    """The 60 Mb case: two TFs with bigWigs, no background; ``peaks_fraction`` keeps the first part of each file."""
    peaks = {"A": paths["peaks_a"], "B": paths["peaks_b"]}
    if peaks_fraction < 1.0:
        for key, path in list(peaks.items()):
            lines = path.read_text().splitlines(keepends=True)
            sub = workdir / f"sub_{key}.narrowPeak"
            sub.write_text("".join(lines[: int(len(lines) * peaks_fraction)]))
            peaks[key] = sub
    return {
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


def run_seqae(config: dict[str, Any], workdir: Path, tag: str) -> dict[str, Any]:
    """Run ``seqae extract`` as a subprocess; return windows, seconds, peak RSS (MiB) and what it read."""
    run_dir = workdir / tag
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = run_dir / "bench.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    out = run_dir / "windows.h5"
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
    report = json.loads((run_dir / "extract_report.json").read_text())
    fasta = [g["reads"]["fasta"] for g in report["genomes"]]
    return {
        "windows": report["n_windows"],
        "seconds": seconds,
        "rss_mib": rss_kib / 1024,
        "file_mib": out.stat().st_size / 2**20,
        "bigwig": report["bigwig_reads"],
        "fasta_read": sum(f["bases_read"] for f in fasta),
        "genome_bases": sum(f["genome_bases"] for f in fasta),
        "bed": run_dir / "windows.bed",
    }


def run_naive(bed: Path, fasta_path: Path, bigwigs: list[Path], n_sample: int, seed: int = 0) -> dict[str, float]:
    """The per-window loop on a sample of the windows seqae wrote: pyfaidx fetch, one-hot, pyBigWig.values per track.

    Each step is already vectorised within the window (numpy one-hot through
    a lookup table, ``values(numpy=True)``), as a careful user would write it.
    """
    lines = bed.read_text().splitlines()
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(len(lines), size=min(n_sample, len(lines)), replace=False))
    windows = []
    for i in picked:
        chrom, start, end = lines[i].split("\t")[:3]
        windows.append((chrom, int(start) - FLANK, int(end) + FLANK))
    windows.sort()
    fasta = pyfaidx.Fasta(str(fasta_path))
    bws = [pyBigWig.open(str(path)) for path in bigwigs]
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


def print_results(runs: list[tuple[str, dict[str, Any]]], naive: dict[str, float]) -> None:
    """The table, the ratio and the reads of the last (full) seqae run."""
    full = runs[-1][1]
    seqae_rate = full["windows"] / full["seconds"]
    naive_rate = naive["windows"] / naive["seconds"]
    print(f"{'method':<34}{'windows':>10}{'seconds':>10}{'windows/s':>12}{'peak RSS MiB':>14}")
    for label, run in runs:
        print(f"{label:<34}{run['windows']:>10}{run['seconds']:>10.1f}"
              f"{run['windows'] / run['seconds']:>12.0f}{run['rss_mib']:>14.0f}")  # fmt: skip
    print(
        f"{'naive loop (pyfaidx+one-hot+bw)':<34}{naive['windows']:>10}{naive['seconds']:>10.1f}{naive_rate:>12.0f}{'':>14}"
    )
    print(
        f"windows file: {full['file_mib']:.0f} MiB ({full['file_mib'] * 2**20 / max(full['windows'], 1) / 1024:.1f} KiB/window)"
    )
    print(f"ratio seqae/naive: {seqae_rate / naive_rate:.1f}x (target >= 10x)")
    bw = full["bigwig"]
    print(f"bigWig signal read: {bw['bytes_read'] / 1e9:.2f} GB for {bw['bytes_needed'] / 1e9:.2f} GB needed "
          f"({bw['read_over_needed']}x; {bw['calls']} reads; target <= 1.5x)")  # fmt: skip
    print(
        f"FASTA bases decoded: {full['fasta_read'] / 1e9:.2f} Gb, {full['fasta_read'] / full['genome_bases']:.2f}x the genome (both passes)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["default", "mammal"], default="default")
    parser.add_argument("--genome-mb", type=int, default=60)
    parser.add_argument("--peaks", type=int, default=120_000)
    parser.add_argument("--naive-sample", type=int, default=10_000, help="windows timed for the naive loop")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "seqae_bench_extract")
    parser.add_argument("--tmp", type=Path, default=None, help="--scale mammal: where the temporary inputs go")
    parser.add_argument("--inputs", type=Path, default=None,
                        help="--scale mammal: keep the inputs in this folder, and reuse them when already there")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="small smoke run (10 Mb, 10k peaks)")
    args = parser.parse_args()
    if args.quick:
        args.genome_mb, args.peaks, args.naive_sample = 10, 10_000, 2_000

    if args.scale == "mammal":
        with tempfile.TemporaryDirectory(dir=args.tmp, prefix="seqae_bench_mammal_") as tmp:
            work = Path(tmp)
            t0 = time.perf_counter()
            inputs = mammal_inputs(args.inputs or work)
            size_gb = sum(p.stat().st_size for p in Path(inputs["fasta"]).parent.iterdir()) / 1e9
            print(f"inputs: {sum(HG38_SIZES.values()) / 1e9:.2f} Gb genome (hg38 sizes), 3 TFs x 100,000 summits, "
                  f"3 bigWigs of 10 bp bins; {size_gb:.1f} GB, ready in {time.perf_counter() - t0:.0f} s")  # fmt: skip
            config = {
                "seed": 1,
                "genomes": [{"species": "mammal", "fasta": str(inputs["fasta"]), "tfs": inputs["tfs"]}],
                "extract": {"window_len": WINDOW_LEN, "max_jitter": FLANK},
            }
            full = run_seqae(config, work, "full")
            naive = run_naive(
                full["bed"], inputs["fasta"], [Path(tf["bigwig"]) for tf in inputs["tfs"]], args.naive_sample
            )
            print_results([("seqae extract", full)], naive)
        return

    t0 = time.perf_counter()
    paths = build_inputs(args.cache, args.genome_mb, args.peaks)
    print(
        f"inputs: {args.genome_mb} Mb genome, {args.peaks} peaks, 2 bigWigs ({time.perf_counter() - t0:.0f} s to build)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        quarter = run_seqae(default_config(paths, work, 0.25), work, "quarter")
        full = run_seqae(default_config(paths, work), work, "full")
        naive = run_naive(full["bed"], paths["fasta"], [paths["bw_a"], paths["bw_b"]], args.naive_sample)
    print_results([("seqae extract (25% of peaks)", quarter), ("seqae extract", full)], naive)
    print(f"peak RSS growth from 25% to 100% of the windows: {full['rss_mib'] / max(quarter['rss_mib'], 1):.2f}x")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
