"""Demo stage: small families of homologous sequences with their true trees.

``simulate_families(ctx)`` writes, for ``i = 0 .. n_families - 1``::

    families/fam_<i>.fa    aligned FASTA (60 bp lines), sequences fam<i>_t0, fam<i>_t1, ...
    families/fam_<i>.nwk   the true tree (Newick, branch lengths in substitutions per site)

Each family is a birth–death (Yule) tree of ``n_taxa`` leaves scaled to
``height`` substitutions per site from root to tips, with sequences evolved
under HKY85 (``kappa``) + discrete Gamma (``gamma_alpha``, 4 categories) by
:func:`seqae.phylo.simulate.simulate_family`. Settings come from
``settings["families"]`` (``config["simulate"]["families"]``, filled with the
schema's defaults by :func:`seqae.simulate.fill_defaults`).

The stage draws only from ``ctx.rng("families")`` and does not touch the
genome, so adding it leaves every other demo file byte-identical for the same
seed. It is one of :data:`seqae.simulate.DEFAULT_STAGES`; ``n_families: 0``
writes no family.
"""

from __future__ import annotations

from seqae.fileio import atomic_output
from seqae.phylo.io import write_family
from seqae.phylo.simulate import SubstitutionModel, simulate_family
from seqae.simulate.context import SimContext

__all__ = ["simulate_families"]


def simulate_families(ctx: SimContext) -> None:
    """Write ``families/fam_<i>.fa`` and ``families/fam_<i>.nwk``; record them in ``ctx.outputs``."""
    s = ctx.settings["families"]
    rng = ctx.rng("families")
    model = SubstitutionModel.hky85(float(s["kappa"]), alpha=float(s["gamma_alpha"]))
    folder = ctx.outdir / "families"
    families = []
    for i in range(int(s["n_families"])):
        fam = simulate_family(
            int(s["n_taxa"]), int(s["n_sites"]), rng, model=model, height=float(s["height"]), prefix=f"fam{i}_t"
        )
        fasta = write_family(fam.sequences(), folder / f"fam_{i}.fa")
        tree = folder / f"fam_{i}.nwk"
        with atomic_output(tree) as tmp:
            tmp.write_text(fam.newick() + "\n")
        ctx.outputs[f"families/fam_{i}"] = fasta
        ctx.outputs[f"families/fam_{i}_tree"] = tree
        families.append({"name": f"fam_{i}", "fasta": fasta, "reference": tree, "params": fam.params})
    ctx.extra["sequence_families"] = families
