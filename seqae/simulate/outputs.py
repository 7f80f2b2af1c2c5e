"""Writer stages: the files under ``outdir`` and their layout.

::

    genome.fa, genome.fa.fai      chr1..chrN, 60 bp lines
    genes.gtf                     gene / transcript / exon lines
    blacklist.bed                 BED3
    peaks/<TF>.narrowPeak         sorted by chromosome (genome order) and start
    tracks/<TF>.bw                per-base signal
    truth/*.tsv                   ground truth, tab-separated with a header;
                                  0-based half-open coordinates

Every file is written through :func:`seqae.fileio.atomic_output`, so a failed
run never leaves a half-written file behind.
"""

from __future__ import annotations

import pandas as pd
import pyfaidx

from seqae.fileio import atomic_output
from seqae.simulate.context import SimContext
from seqae.simulate.genes import write_gtf
from seqae.simulate.layout import blacklist_regions
from seqae.simulate.peaks import SITE_COLUMNS, write_narrowpeak
from seqae.simulate.sequence import gc_fraction, write_fasta
from seqae.simulate.signal import track_of, write_bigwig


def write_genome(ctx: SimContext) -> None:
    """``genome.fa`` and its pyfaidx index ``genome.fa.fai``."""
    path = ctx.outdir / "genome.fa"
    with atomic_output(path) as tmp:
        write_fasta(tmp, ctx.genome)
    # Index the renamed file; build into a temporary name too, so that a stale
    # index of an earlier genome is never left beside the new one.
    with atomic_output(path.with_name(path.name + ".fai")) as tmp:
        tmp.unlink()
        pyfaidx.Faidx(str(path), indexname=str(tmp)).close()
    ctx.outputs["fasta"] = path


def write_annotation(ctx: SimContext) -> None:
    """``genes.gtf``."""
    path = ctx.outdir / "genes.gtf"
    with atomic_output(path) as tmp:
        write_gtf(tmp, ctx.genes, ctx.exons)
    ctx.outputs["annotation"] = path


def write_blacklist(ctx: SimContext) -> None:
    """``blacklist.bed`` (BED3)."""
    path = ctx.outdir / "blacklist.bed"
    with atomic_output(path) as tmp:
        tmp.write_text("".join(f"{c}\t{a}\t{b}\n" for c, a, b in blacklist_regions(ctx)))
    ctx.outputs["blacklist"] = path


def write_peaks(ctx: SimContext) -> None:
    """``peaks/<TF>.narrowPeak`` for every TF."""
    for tf, peaks in ctx.peaks.items():
        path = ctx.outdir / "peaks" / f"{tf}.narrowPeak"
        with atomic_output(path) as tmp:
            write_narrowpeak(tmp, peaks)
        ctx.outputs[f"peaks/{tf}"] = path


def write_tracks(ctx: SimContext) -> None:
    """``tracks/<TF>.bw`` for every TF (one TF's coverage in memory at a time)."""
    sizes = [(c.name, c.length) for c in ctx.chromosomes]
    for tf in ctx.peaks:
        path = ctx.outdir / "tracks" / f"{tf}.bw"
        track = track_of(ctx, tf)
        with atomic_output(path) as tmp:
            write_bigwig(tmp, sizes, track)
        ctx.outputs[f"tracks/{tf}"] = path


def _tsv(ctx: SimContext, key: str, name: str, frame: pd.DataFrame) -> None:
    path = ctx.outdir / "truth" / name
    with atomic_output(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    ctx.outputs[key] = path


def chromosome_table(ctx: SimContext) -> pd.DataFrame:
    """One row per chromosome: length, GC target and observed, N bp, repeat families and coverage."""
    rows = []
    for c in ctx.chromosomes:
        seq = ctx.genome[c.name]
        fams = list(c.repeat_families)
        rows.append(
            {
                "chrom": c.name,
                "length": c.length,
                "gc_target": c.gc_target,
                "gc_observed": gc_fraction(seq),
                "cpg_depletion": c.cpg_depletion,
                "n_bp": int((seq == 4).sum()),
                "repeat_families": ",".join(fams),
                "repeat_consensus_bp": ",".join(str(c.repeat_families[f]) for f in fams),
                "repeat_bp": ",".join(str(c.repeat_bp[f]) for f in fams),
                "repeat_fraction": sum(c.repeat_bp.values()) / c.length,
                "interspersed_fraction": c.interspersed_bp / c.length,
                "satellite": f"{c.satellite[0]}-{c.satellite[1]}" if c.satellite else "",
            }
        )
    return pd.DataFrame(rows)


def family_table(ctx: SimContext) -> pd.DataFrame:
    """One row per gene family: its promoter grammar."""
    return pd.DataFrame(
        [
            {
                "family": f.name,
                "gc_shift": f.gc_shift,
                "cpg_island": f.cpg_island,
                "motifs": ",".join(m.id for m in f.motifs),
                "consensus": ",".join(m.consensus() for m in f.motifs),
            }
            for f in ctx.extra["families"]
        ]
    )


def write_truth(ctx: SimContext) -> None:
    """``truth/{sites,peaks,chromosomes,genes,repeats,promoter_sites,families}.tsv``."""
    # Sites are already in TF (config) order, then genome order.
    sites = ctx.sites if ctx.sites is not None else pd.DataFrame(columns=SITE_COLUMNS)
    _tsv(ctx, "truth_sites", "sites.tsv", sites)
    peaks = pd.concat(list(ctx.peaks.values()), ignore_index=True)
    peak_cols = [
        "tf",
        "name",
        "chrom",
        "start",
        "end",
        "summit",
        "score",
        "strength",
        "kind",
        "weak",
        "has_motif",
        "n_sites",
        "cobound_with",
        "nearest_gene",
        "tss_distance",
        "promoter_family",
    ]
    _tsv(ctx, "truth_peaks", "peaks.tsv", peaks[peak_cols])
    _tsv(ctx, "truth_chromosomes", "chromosomes.tsv", chromosome_table(ctx))
    _tsv(ctx, "truth_genes", "genes.tsv", ctx.genes)
    _tsv(ctx, "truth_repeats", "repeats.tsv", ctx.repeats)
    _tsv(ctx, "truth_promoter_sites", "promoter_sites.tsv", ctx.promoter_sites)
    _tsv(ctx, "truth_families", "families.tsv", family_table(ctx))


#: The writer stages in order: the demo generator's last stages, and what the
#: species stage runs on each species' copy of the context.
WRITERS = (write_genome, write_annotation, write_blacklist, write_peaks, write_tracks, write_truth)
