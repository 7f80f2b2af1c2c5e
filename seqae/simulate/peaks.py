"""TF peaks: summit choice, motif planting, scores and the narrowPeak writer.

For each TF, in the order of ``settings["tfs"]``:

* a share of summits sits near promoters (within ~1 kb of a TSS) — the share
  depends on the TF (CTCF mostly distal, FOXA1 rather promoter-proximal) and
  each TF prefers the promoters of a few gene families;
* from the second TF on, ~15 % of the peaks are co-bound: they reuse a
  summit of an earlier TF (a few bp away);
* the rest are distal (> 2 kb from any TSS);
* ~10 % of the peaks are weak: no motif, low score; every other peak gets 1-3
  instances of the TF's motif, sampled from its PWM, within +-50 bp of the summit.

Summits of one TF are at least ``MIN_SPACING`` bp apart, and no peak comes
near an N run or the satellite array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from seqae.errors import ConfigError
from seqae.simulate.context import SimContext
from seqae.simulate.motifs import Pwm, plant_near, shipped_motifs

#: Minimum distance between two summits of the same TF (bp).
MIN_SPACING = 500
#: Peaks keep this far from N runs and the satellite (bp).
RESERVED_PAD = 600
#: Promoter-proximal: summit within this distance of a TSS (bp).
PROMOTER_DISTANCE = 1000
#: Distal: summit at least this far from every TSS (bp).
DISTAL_DISTANCE = 2000
#: Motif instances are centred within +- this of the summit (bp).
SITE_JITTER = 50
WEAK_FRACTION = 0.1
COBOUND_FRACTION = 0.15
#: Share of promoter-proximal peaks for TFs known here; others draw 0.1-0.4.
PROMOTER_PREFERENCE = {"CTCF": 0.1, "GATA1": 0.25, "FOXA1": 0.4, "SPI1": 0.3, "REST": 0.2}

PEAK_COLUMNS = (
    "tf name chrom start end summit score signal_value p_value q_value strength width_sd kind weak has_motif "
    "n_sites cobound_with nearest_gene tss_distance promoter_family"
).split()
SITE_COLUMNS = ["tf", "chrom", "start", "end", "strand", "motif_id", "peak_name", "score"]


def promoter_preference(rng: np.random.Generator, tf: str) -> float:
    """Share of a TF's peaks that are promoter-proximal."""
    return PROMOTER_PREFERENCE.get(tf.upper(), float(rng.uniform(0.1, 0.4)))


class _SummitPicker:
    """Accepts candidate summits one TF at a time, keeping them apart and out of reserved regions."""

    def __init__(self, ctx: SimContext):
        self.names = ctx.chrom_names
        self.lengths = np.array([c.length for c in ctx.chromosomes])
        # A summit is allowed where no reserved base lies within RESERVED_PAD;
        # computed once per chromosome with a cumulative sum, not per candidate.
        self.allowed = []
        for name in self.names:
            r = np.concatenate([[0], np.cumsum(ctx.reserved[name])])
            pos = np.arange(len(r) - 1)
            lo = np.clip(pos - RESERVED_PAD, 0, len(r) - 1)
            hi = np.clip(pos + RESERVED_PAD, 0, len(r) - 1)
            ok = (r[hi] - r[lo] == 0) & (pos >= RESERVED_PAD) & (pos < len(pos) - RESERVED_PAD)
            self.allowed.append(ok)
        self.taken = [np.zeros(n, dtype=bool) for n in self.lengths]

    def reset(self) -> None:
        for t in self.taken:
            t[:] = False

    def accept(self, chrom: np.ndarray, summit: np.ndarray, quota: int) -> np.ndarray:
        """Indices of the candidates accepted, in order, at most ``quota``."""
        out: list[int] = []
        for j, (c, x) in enumerate(zip(chrom, summit, strict=True)):
            if len(out) >= quota:
                break
            if not (0 <= x < self.lengths[c]) or not self.allowed[c][x] or self.taken[c][x]:
                continue
            self.taken[c][max(0, x - MIN_SPACING + 1) : x + MIN_SPACING] = True
            out.append(j)
        return np.array(out, dtype=np.int64)


def _tss_tables(ctx: SimContext) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per chromosome: sorted TSS positions and the matching row indices of ``ctx.genes``."""
    out = []
    for name in ctx.chrom_names:
        sub = ctx.genes[ctx.genes["chrom"] == name].sort_values("tss")
        out.append((sub["tss"].to_numpy(np.int64), sub.index.to_numpy(np.int64)))
    return out


def nearest_tss(
    tables: list[tuple[np.ndarray, np.ndarray]], chrom: np.ndarray, pos: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Row of ``ctx.genes`` of the nearest TSS (-1 if none) and the absolute distance (bp) per position."""
    gene = np.full(len(pos), -1, dtype=np.int64)
    dist = np.full(len(pos), np.iinfo(np.int64).max, dtype=np.int64)
    for c, (tss, rows) in enumerate(tables):
        sel = np.flatnonzero(chrom == c)
        if not len(sel) or not len(tss):
            continue
        i = np.searchsorted(tss, pos[sel])
        left, right = np.clip(i - 1, 0, len(tss) - 1), np.clip(i, 0, len(tss) - 1)
        dl, dr = np.abs(pos[sel] - tss[left]), np.abs(tss[right] - pos[sel])
        best = np.where(dl <= dr, left, right)
        gene[sel], dist[sel] = rows[best], np.minimum(dl, dr)
    return gene, dist


def _promoter_candidates(
    rng: np.random.Generator, ctx: SimContext, fam_weight: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` summits near TSSs of genes drawn with per-family weights; (chrom index, summit)."""
    genes = ctx.genes
    fam_index = genes["family"].map({f.name: i for i, f in enumerate(ctx.extra["families"])}).to_numpy()
    p = fam_weight[fam_index]
    g = rng.choice(len(genes), size=n, p=p / p.sum())
    sign = np.where(genes["strand"].to_numpy()[g] == "+", 1, -1)
    # Mostly just upstream of the TSS, where promoter-bound TFs sit.
    offset = np.clip(rng.normal(-100, 300, size=n), -PROMOTER_DISTANCE + 50, PROMOTER_DISTANCE - 50).astype(np.int64)
    chrom = genes["chrom"].map({c: i for i, c in enumerate(ctx.chrom_names)}).to_numpy()[g]
    return chrom, genes["tss"].to_numpy(np.int64)[g] + sign * offset


def _distal_candidates(
    rng: np.random.Generator, ctx: SimContext, tables: list[tuple[np.ndarray, np.ndarray]], n: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uniform summits at least DISTAL_DISTANCE from every TSS (after filtering)."""
    lengths = np.array([c.length for c in ctx.chromosomes])
    chrom = rng.choice(len(lengths), size=n, p=lengths / lengths.sum())
    pos = (rng.random(n) * lengths[chrom]).astype(np.int64)
    _, dist = nearest_tss(tables, chrom, pos)
    keep = dist >= DISTAL_DISTANCE
    return chrom[keep], pos[keep]


def _pick_summits(
    rng: np.random.Generator,
    ctx: SimContext,
    picker: _SummitPicker,
    tables: list[tuple[np.ndarray, np.ndarray]],
    tf: str,
    n_peaks: int,
    fam_weight: np.ndarray,
    earlier: list[pd.DataFrame],
    key: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Summits of one TF: ``(chrom index, summit, kind, cobound_with)`` arrays of length ``n_peaks``.

    Co-bound summits come first, then promoter-proximal ones, then distal
    ones fill the rest (including any promoter quota that could not be met).
    ``earlier`` holds the peak tables of the TFs done before; ``key`` names
    the config key in errors.
    """
    picker.reset()
    n_cob = int(round(COBOUND_FRACTION * n_peaks)) if len(earlier) else 0
    n_prom = int(round(promoter_preference(rng, tf) * n_peaks))
    chrom_parts, summit_parts, kind_parts, partner_parts = [], [], [], []

    def take(c: np.ndarray, x: np.ndarray, kind: str, partner: np.ndarray | None, quota: int) -> int:
        idx = picker.accept(c, x, quota)
        chrom_parts.append(c[idx])
        summit_parts.append(x[idx])
        kind_parts.append(np.full(len(idx), kind, dtype=object))
        partner_parts.append(
            np.asarray(partner, dtype=object)[idx] if partner is not None else np.full(len(idx), "", dtype=object)
        )
        return len(idx)

    if n_cob:
        pool = pd.concat(earlier, ignore_index=True)
        pool = pool[~pool["weak"]]
        pick = rng.choice(len(pool), size=min(len(pool), 3 * n_cob), replace=False)
        c = pool["chrom_index"].to_numpy()[pick]
        x = pool["summit"].to_numpy(np.int64)[pick] + rng.integers(-30, 31, size=len(pick))
        n_cob = take(c, x, "cobound", pool["tf"].to_numpy()[pick], n_cob)
    got = 0
    for _ in range(5):
        if got >= n_prom:
            break
        c, x = _promoter_candidates(rng, ctx, fam_weight, 3 * (n_prom - got))
        got += take(c, x, "promoter", None, n_prom - got)
    need = n_peaks - n_cob - got
    for _ in range(20):
        if need <= 0:
            break
        c, x = _distal_candidates(rng, ctx, tables, 3 * need + 10)
        need -= take(c, x, "distal", None, need)
    if need > 0:
        raise ConfigError(
            f"{key}: {n_peaks} peaks of {tf} do not fit on {len(ctx.chromosomes)} chromosomes of "
            f"{ctx.chromosomes[0].length} bp; lower n_peaks or raise chromosome_length"
        )
    return (
        np.concatenate(chrom_parts),
        np.concatenate(summit_parts),
        np.concatenate(kind_parts),
        np.concatenate(partner_parts),
    )


def _scores(strength: np.ndarray) -> dict[str, np.ndarray]:
    """narrowPeak score (int 0-1000), signalValue (fold enrichment), -log10 p and q from strength."""
    score = np.clip(np.round(250 * strength), 1, 1000).astype(np.int64)
    signal = np.round(1.5 + 12 * strength, 3)
    pval = np.round(2 + 30 * strength, 3)
    qval = np.round(np.maximum(0.0, pval - 1.3), 3)
    return {"score": score, "signal_value": signal, "p_value": pval, "q_value": qval}


def build_peaks(ctx: SimContext) -> None:
    """Stage ``peaks``: summits, planted motifs and scores of every TF.

    Fills ``ctx.peaks`` (TF -> table, sorted by chromosome and start) and
    ``ctx.sites``; writes the motif instances into ``ctx.genome``.
    """
    motifs = shipped_motifs()
    picker = _SummitPicker(ctx)
    tables = _tss_tables(ctx)
    n_fam = len(ctx.extra["families"])
    chrom_names = np.array(ctx.chrom_names, dtype=object)
    all_sites: list[pd.DataFrame] = []
    earlier: list[pd.DataFrame] = []
    for i, tf_cfg in enumerate(ctx.settings["tfs"]):
        tf, pwm = tf_cfg["name"], motifs[tf_cfg["motif"]]
        rng = ctx.rng(f"peaks/{tf}")
        n_peaks = int(tf_cfg["n_peaks"])
        # Each TF prefers the promoters of a few families.
        fam_weight = np.ones(n_fam)
        fam_weight[rng.choice(n_fam, size=max(1, n_fam // 3), replace=False)] = 4.0
        chrom, summit, kind, partner = _pick_summits(
            rng, ctx, picker, tables, tf, n_peaks, fam_weight, earlier, key=f"simulate.tfs[{i}].n_peaks"
        )
        order = np.lexsort((summit, chrom))
        chrom, summit, kind, partner = chrom[order], summit[order], kind[order], partner[order]
        n = len(summit)
        names = np.array([f"{tf}_peak_{i + 1}" for i in range(n)], dtype=object)
        weak = np.zeros(n, dtype=bool)
        weak[rng.choice(n, size=int(round(WEAK_FRACTION * n)), replace=False)] = True
        wanted = np.where(weak, 0, rng.choice([1, 2, 3], size=n, p=[0.55, 0.3, 0.15]))
        n_sites = np.zeros(n, dtype=np.int64)
        site_frames = []
        for c, cname in enumerate(ctx.chrom_names):
            sel = np.flatnonzero(chrom == c)
            if not len(sel):
                continue
            own, starts, strands, sc = plant_near(
                rng, ctx.genome[cname], ctx.planted[cname], pwm, summit[sel], wanted[sel], SITE_JITTER
            )
            n_sites += np.bincount(sel[own], minlength=n)
            site_frames.append(_site_frame(tf, cname, starts, strands, pwm, names[sel[own]], sc))
        all_sites += site_frames
        has_motif = n_sites > 0
        # Signal strength grows with the number of sites; weak peaks stay low.
        strength = np.where(
            weak,
            rng.lognormal(-1.4, 0.3, size=n),
            rng.lognormal(0.0, 0.45, size=n) * (1 + 0.35 * np.maximum(n_sites - 1, 0)),
        )
        left, right = rng.integers(100, 301, size=n), rng.integers(100, 301, size=n)
        gene, dist = nearest_tss(tables, chrom, summit)
        near = (gene >= 0) & (dist <= PROMOTER_DISTANCE)
        gene_ids = np.where(gene >= 0, ctx.genes["gene_id"].to_numpy()[np.maximum(gene, 0)], "")
        families = ctx.genes["family"].to_numpy()[np.maximum(gene, 0)]
        frame = pd.DataFrame(
            {
                "tf": tf,
                "name": names,
                "chrom": chrom_names[chrom],
                "start": summit - left,
                "end": summit + right,
                "summit": summit,
                **_scores(strength),
                "strength": np.round(strength, 4),
                "width_sd": rng.integers(50, 151, size=n),
                "kind": kind,
                "weak": weak,
                "has_motif": has_motif,
                "n_sites": n_sites,
                "cobound_with": partner,
                "nearest_gene": gene_ids,
                "tss_distance": dist,
                "promoter_family": np.where(near, families, ""),
            }
        )
        ctx.peaks[tf] = frame[PEAK_COLUMNS]
        earlier.append(frame.assign(chrom_index=chrom))
    ctx.sites = pd.concat(all_sites, ignore_index=True) if all_sites else pd.DataFrame(columns=SITE_COLUMNS)


def _site_frame(
    tf: str, chrom: str, starts: np.ndarray, strands: np.ndarray, pwm: Pwm, peak_names: np.ndarray, scores: np.ndarray
) -> pd.DataFrame:
    """Truth rows of the sites planted on one chromosome, sorted by start."""
    return pd.DataFrame(
        {
            "tf": tf,
            "chrom": chrom,
            "start": starts,
            "end": starts + pwm.width,
            "strand": strands,
            "motif_id": pwm.id,
            "peak_name": peak_names,
            "score": np.round(scores, 3),
        },
        columns=SITE_COLUMNS,
    ).sort_values("start", kind="stable", ignore_index=True)


def write_narrowpeak(path: str | Path, peaks: pd.DataFrame) -> None:
    """Write the 10 narrowPeak columns (BED6+4, summit offset from start in column 10)."""
    out = pd.DataFrame(
        {
            "chrom": peaks["chrom"],
            "start": peaks["start"],
            "end": peaks["end"],
            "name": peaks["name"],
            "score": peaks["score"],
            "strand": ".",
            "signal": peaks["signal_value"].map("{:.3f}".format),
            "p": peaks["p_value"].map("{:.3f}".format),
            "q": peaks["q_value"].map("{:.3f}".format),
            "peak": peaks["summit"] - peaks["start"],
        }
    )
    out.to_csv(path, sep="\t", header=False, index=False)
