"""Demo stage: several species evolved from the demo genome along a known species tree.

With ``simulate.species.n_species >= 2``, ``evolve_species(ctx)`` (the last
stage, after the ancestor's files are written) draws a Yule species tree of
``height`` substitutions per site, evolves the demo genome down it, and
writes for every species ``sp<k>``::

    species_tree.nwk                      the true species tree (leaves sp0, sp1, ...)
    species/sp<k>/genome.fa (+ .fai)      the species' genome
    species/sp<k>/genes.gtf               genes (the ancestor's coordinates: no indels)
    species/sp<k>/blacklist.bed
    species/sp<k>/peaks/<TF>.narrowPeak   the peaks this species kept or gained
    species/sp<k>/tracks/<TF>.bw          their signal
    species/sp<k>/truth/*.tsv             the ancestor's truth tables, restricted to this species' peaks
    truth/species_peaks.tsv               every TF peak x species: present (1) or absent (0)
    truth/orthologs.tsv                   the ortholog table: a row per gene, its gene_id per species
    truth/species.tsv                     per species: equilibrium GC of its branch, CpG loss,
                                          observed GC and CpG frequency

**Substitutions**: HKY85 (``kappa``, no rate heterogeneity) down every branch,
all sites of a branch in one draw. Each branch has its own equilibrium GC,
the parent branch's plus a normal step of sd ``gc_shift_sd * sqrt(t /
height)`` (the root's: the ancestor's GC), as lineages differ in mutational
bias; then each species loses a fraction, uniform in ``[0, cpg_loss]``, of
its CpGs to TpG or CpA (methylation-driven decay differs between lineages).
Both make species differ in composition, which is what lets a k-mer
profile of a 1 kb window tell species apart. Bases under ``ctx.planted`` (N
runs, the satellite, every planted TF and promoter motif instance) are
conserved, like functional sites under purifying selection, so that motif
instances stay true in every species.

**TF-site turnover**: each peak's presence is a two-state chain down the
tree. A peak present at the root is lost on a branch of length ``t`` with
probability ``1 - (1 - turnover) ** (t / height)`` (so about ``turnover`` of
the peaks are lost from root to tip); ``gain_fraction`` of the peaks start
absent at the root and are gained at the same per-branch rate. A species'
peak table holds the peaks present at its leaf; the motif instances of its
absent peaks are overwritten with random bases in that species (the site is
gone), and its tracks are simulated from its own peaks with a signal stream
of its own.

Orthologous regions share coordinates across species (no indels), which is
what ``truth/species_peaks.tsv`` records. The stage draws from
``ctx.rng("species")`` and runs after every writer, so the ancestor's files
(``genome.fa`` ...) are byte-identical with and without it.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any

import numpy as np
import pandas as pd

from seqae.fileio import atomic_output
from seqae.phylo.simulate import SubstitutionModel, birth_death_tree
from seqae.simulate.context import SimContext

__all__ = ["evolve_species"]


def _presence(
    n_nodes: int, parent: np.ndarray, length: np.ndarray, n_peaks: int, s: dict[str, Any], rng: np.random.Generator
) -> np.ndarray:
    """``bool [n_nodes, n_peaks]``: each peak's presence at every node (parents before children)."""
    present = np.empty((n_nodes, n_peaks), dtype=bool)
    present[0] = rng.random(n_peaks) >= float(s["gain_fraction"])
    per_unit = np.log1p(-float(s["turnover"])) / float(s["height"])  # log survival per substitution/site
    for node in range(1, n_nodes):
        flip = rng.random(n_peaks) < -np.expm1(per_unit * length[node])
        present[node] = present[parent[node]] ^ flip
    return present


def _branch_models(ctx: SimContext, tree, s: dict[str, Any], rng: np.random.Generator) -> list[SubstitutionModel]:
    """One HKY85 model per node (index 0, the root, unused): equilibrium GC drifting down the tree."""
    codes = np.concatenate([ctx.genome[c.name] for c in ctx.chromosomes])
    called = codes[codes < 4]
    gc = np.empty(tree.parent.size)
    gc[0] = np.isin(called, (1, 2)).mean()
    models = [SubstitutionModel.hky85(float(s["kappa"]))]
    for node in range(1, tree.parent.size):
        step = float(s["gc_shift_sd"]) * np.sqrt(tree.length[node] / float(s["height"]))
        gc[node] = np.clip(gc[tree.parent[node]] + rng.normal(0.0, step), 0.2, 0.8)
        at = 1.0 - gc[node]
        models.append(SubstitutionModel.hky85(float(s["kappa"]), freqs=(at / 2, gc[node] / 2, gc[node] / 2, at / 2)))
    return models


def _evolve_genome(
    ctx: SimContext, tree, models: list[SubstitutionModel], cpg_loss: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Chromosome -> ``uint8 [n_species, length]`` leaf genomes (tree.names order).

    Evolvable sites (called, not planted) change down each branch by that
    branch's model; then species ``k`` turns a fraction ``cpg_loss[k]`` of its
    evolvable CpGs into TpG or CpA.
    """
    # Cumulative transition rows per node: [m, 4, 3] (no rate categories).
    cumulative = np.stack(
        [np.cumsum(m.transition_matrices([t])[0, 0], axis=-1)[:, :3] for m, t in zip(models, tree.length, strict=True)]
    )
    leaves = {}
    for info in ctx.chromosomes:
        root = ctx.genome[info.name]
        evolvable = (root < 4) & ~ctx.planted[info.name]
        states = np.empty((tree.parent.size, int(evolvable.sum())), dtype=np.uint8)
        states[0] = root[evolvable]
        for node in range(1, tree.parent.size):
            bounds = cumulative[node][states[tree.parent[node]]]  # [L, 3]
            states[node] = (rng.random(states.shape[1])[:, None] >= bounds).sum(axis=1)
        out = np.repeat(root[None, :], len(tree.names), axis=0)
        out[:, evolvable] = states[tree.leaf_nodes]
        for k in range(len(tree.names)):
            seq = out[k]
            cpg = np.flatnonzero((seq[:-1] == 1) & (seq[1:] == 2) & evolvable[:-1] & evolvable[1:])
            hit = cpg[rng.random(cpg.size) < cpg_loss[k]]
            to_tpg = rng.random(hit.size) < 0.5  # C->T on this strand, or G->A (C->T on the other)
            seq[hit[to_tpg]] = 3
            seq[hit[~to_tpg] + 1] = 0
        leaves[info.name] = out
    return leaves


def _span_positions(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Every position of the half-open spans ``[starts[i], ends[i])``, concatenated (no loop per span)."""
    lengths = ends - starts
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return offsets + np.arange(lengths.sum())


def _site_spans(ctx: SimContext) -> pd.DataFrame:
    """Planted TF motif instances with their peak: ``tf, peak_name, chrom, start, end``."""
    if ctx.sites is None or ctx.sites.empty:
        return pd.DataFrame(columns=["tf", "peak_name", "chrom", "start", "end"])
    return ctx.sites[["tf", "peak_name", "chrom", "start", "end"]]


def evolve_species(ctx: SimContext) -> None:
    """Write the species' files (see the module docstring); a no-op when ``n_species`` is 0."""
    from seqae.simulate.outputs import WRITERS

    s = ctx.settings["species"]
    n_species = int(s["n_species"])
    if n_species == 0:
        return
    rng = ctx.rng("species")
    tree = birth_death_tree(n_species, rng, height=float(s["height"]), prefix="sp")
    models = _branch_models(ctx, tree, s, rng)
    leaf_gc = [float(models[node].freqs[1] * 2) for node in tree.leaf_nodes]
    cpg_loss = rng.uniform(0.0, float(s["cpg_loss"]), size=n_species)
    genomes = _evolve_genome(ctx, tree, models, cpg_loss, rng)

    peaks = pd.concat(list(ctx.peaks.values()), ignore_index=True)
    present_nodes = _presence(tree.parent.size, tree.parent, tree.length, len(peaks), s, rng)
    present = present_nodes[tree.leaf_nodes]  # [n_species, n_peaks]
    sites = _site_spans(ctx)
    site_peak = pd.Index(peaks["name"]).get_indexer(sites["peak_name"])

    rows = []
    for k, name in enumerate(tree.names):
        genome = {chrom: codes[k].copy() for chrom, codes in genomes.items()}
        # The motif instances of the peaks this species does not have are gone.
        gone = sites[(site_peak >= 0) & ~present[k, np.maximum(site_peak, 0)]]
        for chrom, spans in gone.groupby("chrom", sort=False):
            idx = _span_positions(spans["start"].to_numpy(), spans["end"].to_numpy())
            genome[chrom][idx] = rng.integers(0, 4, idx.size, dtype=np.uint8)
        seq = np.concatenate([genome[c.name] for c in ctx.chromosomes])
        called = seq[seq < 4]
        rows.append({"species": name, "equilibrium_gc": leaf_gc[k], "cpg_loss": float(cpg_loss[k]),
                     "gc_observed": float(np.isin(called, (1, 2)).mean()),
                     "cpg_per_kb": float(((seq[:-1] == 1) & (seq[1:] == 2)).sum() / called.size * 1000)})  # fmt: skip
        kept_names = set(peaks["name"][present[k]])
        child = dataclasses.replace(
            ctx,
            # A seed of its own: the species' signal noise differs from the ancestor's.
            settings={**ctx.settings, "seed": (ctx.seed + zlib.crc32(name.encode())) % 2**32},
            outdir=ctx.outdir / "species" / name,
            genome=genome,
            peaks={tf: frame[frame["name"].isin(kept_names)].reset_index(drop=True) for tf, frame in ctx.peaks.items()},
            sites=None
            if ctx.sites is None
            else ctx.sites[ctx.sites["peak_name"].isin(kept_names)].reset_index(drop=True),
            outputs={},
        )
        for writer in WRITERS:
            writer(child)
        ctx.outputs.update({f"species/{name}/{key}": path for key, path in child.outputs.items()})

    tree_path = ctx.outdir / "species_tree.nwk"
    with atomic_output(tree_path) as tmp:
        tmp.write_text(tree.newick() + "\n")
    ctx.outputs["species_tree"] = tree_path
    table = peaks[["tf", "name", "chrom", "start", "end", "summit"]].copy()
    for k, name in enumerate(tree.names):
        table[name] = present[k].astype(np.int8)
    table_path = ctx.outdir / "truth" / "species_peaks.tsv"
    with atomic_output(table_path) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    ctx.outputs["truth_species_peaks"] = table_path
    # Every species keeps every ancestral gene under the ancestor's gene id.
    orthologs = pd.DataFrame({"family": ctx.genes["gene_id"], **{name: ctx.genes["gene_id"] for name in tree.names}})
    orthologs_path = ctx.outdir / "truth" / "orthologs.tsv"
    with atomic_output(orthologs_path) as tmp:
        orthologs.to_csv(tmp, sep="\t", index=False)
    ctx.outputs["truth_orthologs"] = orthologs_path
    species_path = ctx.outdir / "truth" / "species.tsv"
    with atomic_output(species_path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False, float_format="%.5f")
    ctx.outputs["truth_species"] = species_path
    ctx.extra["species_tree"] = tree
    ctx.extra["species_cpg_loss"] = dict(zip(tree.names, cpg_loss.tolist(), strict=True))
