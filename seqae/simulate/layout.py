"""Where things go: gene spans, N runs and the satellite array on each chromosome.

All large features of a chromosome are laid out at once, as non-overlapping
items separated by random gaps (a uniform random composition of the free
space), so the layout never fails or slows down however densely genes are
packed — unlike placing them one by one with rejection.
"""

from __future__ import annotations

import numpy as np

from seqae.errors import ConfigError
from seqae.simulate.context import ChromosomeInfo, SimContext

#: Free sequence kept on each side of a gene span (bp): it holds the ~500 bp
#: promoter window and keeps promoter-proximal peaks (TSS +- 1 kb) of
#: neighbouring genes apart.
GENE_PAD = 1000
#: Gene lengths are log-uniform in this range (bp) ...
GENE_MIN, GENE_MAX = 2000, 40000
#: ... but shrunk if the genes would cover more than this share of a chromosome.
MAX_GENIC_FRACTION = 0.55
#: Free sequence kept at both chromosome ends (bp).
END_MARGIN = 1000
#: Free sequence kept around N runs and the satellite array (bp).
GAP_PAD = 200


#: The promoter window of a gene: this many bp upstream of the TSS ...
PROMOTER_UPSTREAM = 500
#: ... and this many bp downstream of it.
PROMOTER_DOWNSTREAM = 100


def tss_of(start: int, end: int, strand: str) -> int:
    """0-based position of the first transcribed base of a span ``[start, end)``."""
    return start if strand == "+" else end - 1


def promoter_window(start: int, end: int, strand: str) -> tuple[int, int]:
    """``[a, b)`` of the promoter window of a gene span ``[start, end)`` (upstream on its strand)."""
    tss = tss_of(start, end, strand)
    if strand == "+":
        return tss - PROMOTER_UPSTREAM, tss + PROMOTER_DOWNSTREAM
    return tss - PROMOTER_DOWNSTREAM + 1, tss + PROMOTER_UPSTREAM + 1


def _n_run_lengths(rng: np.random.Generator, length: int) -> np.ndarray:
    """One or two N runs of 200-2000 bp (shorter on very short chromosomes)."""
    n = int(rng.integers(1, 3))
    upper = max(200, min(2000, length // 40))
    return rng.integers(200, upper + 1, size=n)


def _genes_per_chromosome(n_genes: int, n_chrom: int) -> list[int]:
    """Genes split as evenly as possible, the first chromosomes taking the remainder."""
    return [n_genes // n_chrom + (1 if i < n_genes % n_chrom else 0) for i in range(n_chrom)]


def _gene_lengths(rng: np.random.Generator, n: int, budget: int) -> np.ndarray:
    """``n`` gene lengths (bp), log-uniform in [GENE_MIN, GENE_MAX], scaled to fit ``budget``.

    ``budget`` bounds the sum of ``length + 2 * GENE_PAD``; the caller has
    checked that ``n`` minimal genes fit.
    """
    lengths = np.exp(rng.uniform(np.log(GENE_MIN), np.log(GENE_MAX), size=n))
    for _ in range(20):
        total = lengths.sum() + n * 2 * GENE_PAD
        if total <= budget:
            break
        # Shrink proportionally; genes already at the minimum stay there, so
        # repeat until the sum fits.
        lengths = np.maximum(GENE_MIN, lengths * (budget - n * 2 * GENE_PAD) / lengths.sum() * 0.98)
    return lengths.astype(np.int64)


def place_items(rng: np.random.Generator, length: int, item_lengths: np.ndarray, margin: int) -> np.ndarray:
    """Random non-overlapping starts for items in ``[margin, length - margin)``.

    Args:
        item_lengths: shape ``(n,)``, bp, in the order the items should appear.
    Returns:
        starts, shape ``(n,)``, increasing, with ``starts[k] + item_lengths[k] <= starts[k+1]``.
    """
    n = len(item_lengths)
    free = length - 2 * margin - int(item_lengths.sum())
    if free < 0:
        raise ValueError("items do not fit")
    cuts = np.sort(rng.integers(0, free + 1, size=n))
    # cuts[k] is the total gap before item k; items follow each other in order.
    offsets = np.concatenate([[0], np.cumsum(item_lengths)[:-1]])
    return margin + cuts + offsets


def plan_layout(ctx: SimContext) -> None:
    """Stage ``layout``: chromosomes, their GC targets, N runs, satellite and gene spans.

    Fills ``ctx.chromosomes`` and ``ctx.layout``.

    Raises:
        ConfigError: the chromosomes are too short for the requested genes.
    """
    s = ctx.settings
    rng = ctx.rng("layout")
    n_chrom, length = int(s["n_chromosomes"]), int(s["chromosome_length"])
    genes_per = _genes_per_chromosome(int(s["n_genes"]), n_chrom)
    # One pericentromeric-like satellite array on one chromosome: the
    # "repeat-rich region" that the blacklist masks.
    sat_chrom = int(rng.integers(n_chrom))
    sat_len = int(min(rng.integers(3000, 6001), length // 20))

    for i in range(n_chrom):
        name = f"chr{i + 1}"
        # Keep GC within a plausible range however many chromosomes are asked for.
        gc = float(np.clip(s["gc_mean"] + i * s["gc_step"], 0.25, 0.75))
        info = ChromosomeInfo(name=name, length=length, gc_target=gc)
        n_runs = _n_run_lengths(rng, length)
        other = [int(x) + 2 * GAP_PAD for x in n_runs] + ([sat_len + 2 * GAP_PAD] if i == sat_chrom else [])
        avail = length - 2 * END_MARGIN - sum(other)
        n_g = genes_per[i]
        need = n_g * (GENE_MIN + 2 * GENE_PAD)
        if need > MAX_GENIC_FRACTION * avail:
            per_chrom = int(n_g * (GENE_MIN + 2 * GENE_PAD) / MAX_GENIC_FRACTION + sum(other) + 2 * END_MARGIN) + 1
            raise ConfigError(
                f"simulate.chromosome_length: {length} bp is too short for {s['n_genes']} genes on "
                f"{n_chrom} chromosomes (needs about {per_chrom} bp per chromosome); "
                f"raise chromosome_length or n_chromosomes, or lower n_genes"
            )
        gene_len = _gene_lengths(rng, n_g, int(MAX_GENIC_FRACTION * avail))
        # Items: genes (with their pads), N runs and the satellite, in random order.
        kinds = ["gene"] * n_g + ["N"] * len(n_runs) + (["sat"] if i == sat_chrom else [])
        lens = np.concatenate(
            [gene_len + 2 * GENE_PAD, n_runs + 2 * GAP_PAD, [sat_len + 2 * GAP_PAD] if i == sat_chrom else []]
        ).astype(np.int64)
        order = rng.permutation(len(kinds))
        starts = place_items(rng, length, lens[order], END_MARGIN)
        strands = rng.choice(np.array(["+", "-"]), size=n_g)
        spans: list[tuple[int, int, str]] = []
        g = 0
        for item, start in zip(order, starts, strict=True):
            kind, item_len = kinds[item], int(lens[item])
            if kind == "gene":
                spans.append((int(start) + GENE_PAD, int(start) + item_len - GENE_PAD, str(strands[g])))
                g += 1
            elif kind == "N":
                info.n_runs.append((int(start) + GAP_PAD, int(start) + item_len - GAP_PAD))
            else:
                info.satellite = (int(start) + GAP_PAD, int(start) + item_len - GAP_PAD)
        reserved = np.zeros(length, dtype=bool)
        for a, b in info.n_runs + ([info.satellite] if info.satellite else []):
            reserved[a:b] = True
        ctx.chromosomes.append(info)
        ctx.layout[name] = spans
        ctx.reserved[name] = reserved
        ctx.planted[name] = reserved.copy()


#: Padding added around N runs and the satellite in the blacklist (bp).
BLACKLIST_PAD = 300
#: At most this many N runs are blacklisted (plus the satellite), so the file has 3-6 regions.
MAX_BLACKLISTED_N_RUNS = 5


def blacklist_regions(ctx: SimContext) -> list[tuple[str, int, int]]:
    """3-6 BED3 regions: the satellite array and some N runs, padded; in genome order."""
    rng = ctx.rng("blacklist")
    n_runs = [(c.name, a, b) for c in ctx.chromosomes for a, b in c.n_runs]
    pick = np.sort(rng.choice(len(n_runs), size=min(len(n_runs), MAX_BLACKLISTED_N_RUNS), replace=False))
    regions = [n_runs[i] for i in pick]
    regions += [(c.name, *c.satellite) for c in ctx.chromosomes if c.satellite is not None]
    order = {name: i for i, name in enumerate(ctx.chrom_names)}
    out = []
    for name, a, b in sorted(regions, key=lambda r: (order[r[0]], r[1])):
        out.append((name, max(0, a - BLACKLIST_PAD), min(ctx.chrom(name).length, b + BLACKLIST_PAD)))
    return out
