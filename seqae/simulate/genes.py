"""Gene models, gene families with their own promoter grammar, and the GTF writer.

Every gene has one transcript of 2-8 exons (2-3 for lncRNAs). Genes belong to
families; the promoters of one family share features, so a window's sequence
carries a weak signal of its nearest gene's family:

* a family-specific GC shift of the ~600 bp promoter window (some families
  have CpG-island promoters: GC-rich and barely CpG-depleted);
* one or two family-specific short motifs (6-10 bp), planted 1-3 times each
  in the 500 bp upstream of the TSS, in the gene's orientation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from seqae.simulate.context import SimContext
from seqae.simulate.layout import PROMOTER_UPSTREAM, promoter_window, tss_of
from seqae.simulate.motifs import Pwm, plant_near, random_pwm
from seqae.simulate.sequence import deplete_cpg, gc_for_depletion, random_bases

#: Share of genes that are lncRNAs.
LNCRNA_FRACTION = 0.1
#: CpG depletion in CpG-island promoters (other promoters: their chromosome's level).
ISLAND_CPG_DEPLETION = 0.2

GENE_COLUMNS = ["gene_id", "gene_name", "chrom", "start", "end", "strand", "tss", "family", "biotype", "n_exons"]
EXON_COLUMNS = ["gene_id", "transcript_id", "exon_number", "chrom", "start", "end", "strand"]
PROMOTER_SITE_COLUMNS = ["family", "gene_id", "chrom", "start", "end", "strand", "motif_id", "score"]


@dataclass(frozen=True)
class Family:
    """A gene family and its promoter grammar."""

    name: str
    #: Added to the chromosome's GC in the promoter window (fraction).
    gc_shift: float
    #: CpG-island promoters: little CpG depletion.
    cpg_island: bool
    motifs: tuple[Pwm, ...]


def make_families(rng: np.random.Generator, n: int) -> list[Family]:
    """``n`` families ``FAM1..FAMn`` with random promoter grammars."""
    out = []
    for k in range(n):
        name = f"FAM{k + 1}"
        gc_shift = float(rng.uniform(-0.04, 0.14))
        n_motifs = int(rng.integers(1, 3))
        motifs = tuple(random_pwm(rng, int(rng.integers(6, 11)), f"{name}_m{j + 1}") for j in range(n_motifs))
        out.append(Family(name=name, gc_shift=gc_shift, cpg_island=gc_shift > 0.07, motifs=motifs))
    return out


def exon_model(rng: np.random.Generator, length: int, n_exons: int) -> np.ndarray:
    """Exons of a transcript spanning ``[0, length)``, shape ``(n_exons, 2)``, sorted, 0-based half-open.

    The span is cut into equal slots, one exon per slot: the first exon starts
    at 0 and the last ends at ``length`` (the transcript spans the gene), the
    others sit at random inside their slot, so exons never overlap.
    """
    edges = np.linspace(0, length, n_exons + 1).astype(np.int64)
    slot = int(np.diff(edges).min())
    ex = np.zeros((n_exons, 2), dtype=np.int64)
    ex[0] = [0, rng.integers(100, max(101, min(600, slot // 2)))]
    ex[-1] = [length - rng.integers(100, max(101, min(1200, slot // 2))), length]
    for k in range(1, n_exons - 1):
        ln = int(rng.integers(60, max(61, min(250, slot // 2))))
        a = int(rng.integers(edges[k] + 20, max(edges[k] + 21, edges[k + 1] - ln - 20)))
        ex[k] = [a, a + ln]
    return ex


def build_genes(ctx: SimContext) -> None:
    """Stage ``genes``: gene models on the layout's spans, promoter windows and family motifs.

    Fills ``ctx.genes``, ``ctx.exons``, ``ctx.promoter_sites`` and
    ``ctx.extra["families"]``; rewrites promoter windows in ``ctx.genome``.
    """
    s = ctx.settings
    rng = ctx.rng("genes")
    families = make_families(rng, int(s["n_gene_families"]))
    ctx.extra["families"] = families
    spans = [(chrom, a, b, strand) for chrom in ctx.chrom_names for a, b, strand in ctx.layout[chrom]]
    n = len(spans)
    # Every family gets members (when there are enough genes), in random order.
    fam_idx = rng.permutation(np.arange(n) % len(families))
    is_lnc = rng.random(n) < LNCRNA_FRACTION
    member = {f.name: 0 for f in families}
    genes, exons, sites = [], [], []
    for g, (chrom, a, b, strand) in enumerate(spans):
        fam = families[int(fam_idx[g])]
        member[fam.name] += 1
        gene_id = f"G{g + 1:04d}"
        n_ex = int(rng.integers(2, 4)) if is_lnc[g] else int(rng.integers(2, 9))
        model = exon_model(rng, b - a, n_ex) + a
        # Exon numbers follow transcription, i.e. run backwards on the minus strand.
        order = np.arange(1, n_ex + 1) if strand == "+" else np.arange(n_ex, 0, -1)
        for (ea, eb), num in zip(model, order, strict=True):
            exons.append([gene_id, f"{gene_id}.1", int(num), chrom, int(ea), int(eb), strand])
        genes.append(
            dict(
                gene_id=gene_id,
                gene_name=f"{fam.name}_{member[fam.name]}",
                chrom=chrom,
                start=a,
                end=b,
                strand=strand,
                tss=tss_of(a, b, strand),
                family=fam.name,
                biotype="lncRNA" if is_lnc[g] else "protein_coding",
                n_exons=n_ex,
            )
        )
        sites += _write_promoter(ctx, rng, fam, gene_id, chrom, a, b, strand)
    ctx.genes = pd.DataFrame(genes, columns=GENE_COLUMNS)
    ctx.exons = pd.DataFrame(exons, columns=EXON_COLUMNS)
    ctx.promoter_sites = pd.DataFrame(sites, columns=PROMOTER_SITE_COLUMNS)


def _write_promoter(
    ctx: SimContext, rng: np.random.Generator, fam: Family, gene_id: str, chrom: str, a: int, b: int, strand: str
) -> list[list]:
    """Rewrite the promoter window of one gene with its family's GC and motifs; return the planted sites."""
    seq, info = ctx.genome[chrom], ctx.chrom(chrom)
    pa, pb = promoter_window(a, b, strand)
    gc = float(np.clip(info.gc_target + fam.gc_shift, 0.2, 0.8))
    depletion = ISLAND_CPG_DEPLETION if fam.cpg_island else info.cpg_depletion
    window = random_bases(rng, gc_for_depletion(gc, depletion), pb - pa)
    deplete_cpg(rng, window, depletion)
    seq[pa:pb] = window
    tss = tss_of(a, b, strand)
    sign = 1 if strand == "+" else -1
    # Motif centres 20-480 bp upstream of the TSS, on the gene's strand.
    upstream_mid = tss - sign * (PROMOTER_UPSTREAM // 2)
    rows = []
    for pwm in fam.motifs:
        count = int(rng.integers(1, 4))
        centre, jitter = np.array([upstream_mid]), PROMOTER_UPSTREAM // 2 - 20
        _, starts, strands, scores = plant_near(
            rng, seq, ctx.planted[chrom], pwm, centre, np.array([count]), jitter, strands=np.array([strand])
        )
        for st, sd, sc in zip(starts, strands, scores, strict=True):
            rows.append([fam.name, gene_id, chrom, int(st), int(st) + pwm.width, str(sd), pwm.id, float(sc)])
    return rows


def _attrs(pairs: list[tuple[str, object]]) -> str:
    return " ".join(f'{k} "{v}";' if isinstance(v, str) else f"{k} {v};" for k, v in pairs)


def write_gtf(path: str | Path, genes: pd.DataFrame, exons: pd.DataFrame, source: str = "seqae_sim") -> None:
    """Write ``gene``, ``transcript`` and ``exon`` lines (1-based inclusive), genes in genome order."""
    by_gene = {gid: df for gid, df in exons.groupby("gene_id", sort=False)}
    lines = []
    for g in genes.itertuples(index=False):
        common = [
            ("gene_id", g.gene_id),
            ("gene_name", g.gene_name),
            ("gene_biotype", g.biotype),
            ("gene_family", g.family),
        ]
        tx = [("transcript_id", f"{g.gene_id}.1")]
        head = f"{g.chrom}\t{source}\t"
        span = f"\t{g.start + 1}\t{g.end}\t.\t{g.strand}\t.\t"
        lines.append(head + "gene" + span + _attrs(common))
        lines.append(head + "transcript" + span + _attrs(common[:1] + tx + common[1:]))
        for e in by_gene[g.gene_id].itertuples(index=False):
            attrs = common[:1] + tx + [("exon_number", int(e.exon_number))] + common[1:]
            lines.append(f"{head}exon\t{e.start + 1}\t{e.end}\t.\t{g.strand}\t.\t{_attrs(attrs)}")
    Path(path).write_text("\n".join(lines) + "\n")
