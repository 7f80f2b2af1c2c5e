"""Background windows: random genomic windows whose GC distribution matches the peak windows'."""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from seqae.errors import InputError
from seqae.genome import Genome, gc_and_n_fraction
from seqae.intervals import overlaps_any
from seqae.spans import ReadStats

log = logging.getLogger("seqae")

# Background candidates drawn per background window needed: enough to fill
# the GC bins at the tails of the peak GC distribution.
_CANDIDATES_PER_BACKGROUND = 20
_MIN_CANDIDATES = 5_000


def measure_and_sample_background(
    genome: Genome,
    windows: pd.DataFrame,
    blacklist: pd.DataFrame | None,
    settings: Mapping[str, Any],
    rng: np.random.Generator,
    report: dict[str, Any],
    chromosomes: Collection[str] | None = None,
    stats: ReadStats | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measure GC/N of peak windows, drop N-rich ones, and draw GC-matched background windows.

    Background windows are drawn from ``chromosomes`` (default: every FASTA
    sequence), in proportion to their usable length. Each chromosome's
    windows, peaks and candidates together, are read once in start order;
    ``stats`` counts the FASTA reads.

    Returns:
        ``(peak windows with gc and n_fraction, background windows)``.
    """
    window_len, flank, chunk = settings["window_len"], settings["max_jitter"], settings["chunk_windows"]
    sizes = genome.chrom_sizes
    n_wanted = round(settings["background_ratio"] * len(windows))
    n_candidates = 0 if n_wanted == 0 else max(_CANDIDATES_PER_BACKGROUND * n_wanted, _MIN_CANDIDATES)
    usable = {
        c: max(0, s - window_len - 2 * flank) if chromosomes is None or c in chromosomes else 0
        for c, s in sizes.items()
    }
    total_usable = sum(usable.values())

    gc = np.full(len(windows), np.nan)
    n_frac = np.ones(len(windows))
    cand_frames = []
    by_chrom = windows.groupby("chrom", sort=False).indices
    peak_starts = windows["start"].to_numpy()
    # The candidates are drawn chromosome by chromosome in FASTA order (one random
    # stream, so the draw does not depend on how the measuring is spread); the
    # measuring, which reads and decodes most of the genome, then runs on
    # several chromosomes at once (the reads and NumPy release the GIL).
    jobs = []
    for chrom in genome.chroms:
        rows = by_chrom.get(chrom, np.zeros(0, dtype=np.int64))
        n_cand = round(n_candidates * usable[chrom] / total_usable) if total_usable else 0
        if len(rows) == 0 and n_cand == 0:
            continue
        cand_starts = (
            np.sort(rng.integers(flank, flank + usable[chrom], size=n_cand, endpoint=True))
            if n_cand
            else np.zeros(0, dtype=np.int64)
        )
        jobs.append((chrom, rows, cand_starts))

    def measure(job: tuple[str, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, ReadStats]:
        chrom, rows, cand_starts = job
        # Peak and candidate windows measured together, in start order: one pass over the chromosome's spans.
        starts = np.concatenate([peak_starts[rows], cand_starts])
        order = np.argsort(starts, kind="stable")
        both_gc, both_n = np.empty(len(starts)), np.empty(len(starts))
        reads = ReadStats()
        both_gc[order], both_n[order] = _gc_chunked(genome, chrom, starts[order], window_len, chunk, reads)
        return both_gc, both_n, reads

    workers = _measure_threads() if genome.thread_safe_reads else 1
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gc") as pool:
        for (chrom, rows, cand_starts), (both_gc, both_n, reads) in zip(jobs, pool.map(measure, jobs), strict=True):
            if stats is not None:
                stats.add(reads)
            gc[rows], n_frac[rows] = both_gc[: len(rows)], both_n[: len(rows)]
            if len(cand_starts):
                cand_gc, cand_n = both_gc[len(rows) :], both_n[len(rows) :]
                cand_frames.append(
                    pd.DataFrame({"chrom": chrom, "start": cand_starts, "gc": cand_gc, "n_fraction": cand_n})
                )

    windows = windows.assign(gc=gc, n_fraction=n_frac)
    too_many_n = windows["n_fraction"].to_numpy() > settings["max_n_fraction"]
    report["dropped_n_fraction"] = int(too_many_n.sum())
    if too_many_n.any():
        log.info(
            "%s: %d peak windows hold more than max_n_fraction (%g) N bases and are left out",
            genome.path, int(too_many_n.sum()), settings["max_n_fraction"],
        )  # fmt: skip
    windows = windows[~too_many_n].reset_index(drop=True)
    report["n_peak_windows"] = len(windows)
    if not len(windows):
        raise InputError(genome.path, "no peak window is left after filtering (chromosome ends, blacklist, N fraction)")

    n_wanted = round(settings["background_ratio"] * len(windows))
    background = _empty_background(windows)
    if n_wanted and cand_frames:
        cands = pd.concat(cand_frames, ignore_index=True)
        ok = cands["n_fraction"].to_numpy() <= settings["max_n_fraction"]
        ends = cands["start"].to_numpy() + window_len
        peak_iv = windows[["chrom", "start", "end"]]
        ok &= ~overlaps_any(cands["chrom"].to_numpy(), cands["start"].to_numpy(), ends, peak_iv)
        if blacklist is not None:
            ok &= ~overlaps_any(cands["chrom"].to_numpy(), cands["start"].to_numpy(), ends, blacklist)
        cands = cands[ok].reset_index(drop=True)
        chosen = gc_matched_sample(windows["gc"].to_numpy(), cands["gc"].to_numpy(), n_wanted, settings["gc_bins"], rng)
        picked = cands.iloc[chosen]
        background = pd.DataFrame(
            {
                "species": windows["species"].iloc[0],
                "chrom": picked["chrom"].to_numpy(),
                "start": picked["start"].to_numpy(),
                "end": picked["start"].to_numpy() + window_len,
                "summit": picked["start"].to_numpy() + window_len // 2,
                "kind": "background",
                "peak_set": "background",
                "peak_name": "",
                "score": 0.0,
                "n_merged": 0,
                "gc": picked["gc"].to_numpy(),
                "n_fraction": picked["n_fraction"].to_numpy(),
            }
        )
    report["n_background_wanted"] = n_wanted
    report["n_background_windows"] = len(background)
    return windows, background


def _measure_threads() -> int:
    """Chromosomes measured at once: the CPUs this process may run on, at most 4."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(4, usable))


def _empty_background(like: pd.DataFrame) -> pd.DataFrame:
    return like.iloc[:0].copy()


def _gc_chunked(
    genome: Genome, chrom: str, starts: np.ndarray, length: int, chunk: int, stats: ReadStats | None
) -> tuple[np.ndarray, np.ndarray]:
    """GC and N fraction of windows ``[start, start + length)`` (sorted ``starts``), ``chunk`` windows at a time.

    Only the spans the windows cover are read from the FASTA, so memory is
    bounded by a chunk, not by the chromosome.
    """
    gc = np.empty(len(starts))
    n_frac = np.empty(len(starts))
    for lo in range(0, len(starts), chunk):
        block = genome.window_codes(chrom, starts[lo : lo + chunk], length, stats)
        gc[lo : lo + chunk], n_frac[lo : lo + chunk] = gc_and_n_fraction(block)
    return gc, n_frac


def gc_matched_sample(
    target_gc: np.ndarray, candidate_gc: np.ndarray, n: int, n_bins: int, rng: np.random.Generator
) -> np.ndarray:
    """Indices of candidates whose GC histogram follows the target's.

    The GC range [0, 1] is cut into ``n_bins`` equal bins; each bin receives
    ``n`` times the target's share of that bin, drawn without replacement
    (fewer where the bin has too few candidates).

    Returns:
        ``int64 [<= n]`` sorted candidate indices.
    """
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    target_bin = np.clip(np.digitize(target_gc, edges[1:-1]), 0, n_bins - 1)
    cand_bin = np.clip(np.digitize(np.nan_to_num(candidate_gc, nan=-1.0), edges[1:-1]), 0, n_bins - 1)
    cand_bin[np.isnan(candidate_gc)] = -1
    share = np.bincount(target_bin, minlength=n_bins) / max(len(target_gc), 1)
    wanted = np.floor(share * n).astype(np.int64)
    # Hand the rounding remainder to the bins with the largest fractional parts.
    remainder = n - int(wanted.sum())
    if remainder > 0:
        wanted[np.argsort(-(share * n - wanted), kind="stable")[:remainder]] += 1
    order = np.argsort(cand_bin, kind="stable")
    bounds = np.searchsorted(cand_bin[order], np.arange(-1, n_bins + 1))
    picked = []
    for b in range(n_bins):
        pool = order[bounds[b + 1] : bounds[b + 2]]
        take = min(int(wanted[b]), len(pool))
        if take:
            picked.append(rng.choice(pool, size=take, replace=False))
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)
