"""Per-base ChIP signal and the bigWig writer.

The signal is simulated the way a real track arises: as the coverage of
sequenced fragments (120-220 bp). Each peak contributes a Poisson number of
fragments (mean ~ 40 x its strength) whose centres scatter normally around
the summit (sd 50-150 bp, per peak), giving a smooth bump; sparse background
fragments fall uniformly everywhere, and the satellite array collects an
artefactual pile-up in every track, as blacklisted regions do in real data.

Coverage is piecewise constant, so it is written as run-length intervals
(bedGraph-like entries, zeros included): a few thousand entries per
chromosome instead of one per base, and no NaN gaps for readers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from seqae.bigwig_writer import BigWigWriter
from seqae.simulate.context import SimContext

#: Fragment length range (bp).
FRAGMENT_MIN, FRAGMENT_MAX = 120, 220
#: Mean fragments per peak per unit of peak strength.
FRAGMENTS_PER_STRENGTH = 40.0
#: One background fragment per this many bp on average.
BACKGROUND_SPACING = 1500
#: One artefact fragment per this many bp of the satellite array.
ARTEFACT_SPACING = 15


def coverage(
    rng: np.random.Generator,
    length: int,
    summits: np.ndarray,
    strengths: np.ndarray,
    widths: np.ndarray,
    artefacts: list[tuple[int, int]] = (),
) -> np.ndarray:
    """Fragment coverage of one chromosome, shape ``(length,)``, float32 (counts).

    Args:
        summits, strengths, widths: per peak, shape ``(n,)``; widths is the sd
            (bp) of fragment centres around the summit.
        artefacts: ``(start, end)`` regions with a dense uniform pile-up.
    """
    n_frag = rng.poisson(FRAGMENTS_PER_STRENGTH * np.asarray(strengths, dtype=float))
    owner = np.repeat(np.arange(len(summits)), n_frag)
    centres = [np.asarray(summits)[owner] + rng.normal(0.0, 1.0, size=len(owner)) * np.asarray(widths)[owner]]
    n_bg = rng.poisson(length / BACKGROUND_SPACING)
    centres.append(rng.uniform(0, length, size=n_bg))
    for a, b in artefacts:
        centres.append(rng.uniform(a, b, size=rng.poisson((b - a) / ARTEFACT_SPACING)))
    centre = np.concatenate(centres)
    flen = rng.integers(FRAGMENT_MIN, FRAGMENT_MAX + 1, size=len(centre))
    start = np.clip(np.round(centre - flen / 2).astype(np.int64), 0, length)
    end = np.clip(start + flen, 0, length)
    # +1 at each fragment start, -1 at each end; the running sum is the coverage.
    diff = np.bincount(start, minlength=length + 1) - np.bincount(end, minlength=length + 1)
    return np.cumsum(diff[:length]).astype(np.float32)


def runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run-length encoding: ``(starts, ends, values)`` of maximal constant runs, shape ``(m,)`` each."""
    change = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(values)]])
    return starts, ends, values[starts]


def write_bigwig(path: str | Path, chrom_sizes: list[tuple[str, int]], tracks: dict[str, np.ndarray]) -> None:
    """Write per-base ``tracks`` (chrom -> float32 array) as a bigWig, chromosomes in ``chrom_sizes`` order."""
    with BigWigWriter(path, chrom_sizes, zoom_levels=10) as bw:
        for name, _ in chrom_sizes:
            starts, ends, vals = runs(tracks[name])
            bw.add_intervals(name, starts, ends, vals)


def track_of(ctx: SimContext, tf: str) -> dict[str, np.ndarray]:
    """Simulated coverage of every chromosome for ``tf``, from ``ctx.peaks[tf]``."""
    rng = ctx.rng(f"signal/{tf}")
    peaks: pd.DataFrame = ctx.peaks[tf]
    out = {}
    for info in ctx.chromosomes:
        p = peaks[peaks["chrom"] == info.name]
        artefacts = [info.satellite] if info.satellite else []
        out[info.name] = coverage(
            rng, info.length, p["summit"].to_numpy(), p["strength"].to_numpy(), p["width_sd"].to_numpy(), artefacts
        )
    return out
