"""The embedded demo data: a small genome with genes, TF peaks, tracks and ground truth.

:func:`simulate_demo` runs a list of *stages* over a shared
:class:`~seqae.simulate.context.SimContext`:

============  =========================================================
layout        chromosome GC targets; spans of genes, N runs, satellite
sequence      background (isochores, CpG depletion), interspersed (shared) and per-chromosome repeat families
genes         exon models, family promoter grammar (GC shift, motifs)
peaks         TF summits, planted motif instances, scores
families      homologous sequence families with their true trees (families/)
write_*       genome.fa(+.fai), genes.gtf, blacklist.bed, peaks/, tracks/, truth/
species       with simulate.species.n_species >= 2: species evolved from this
              genome along a species tree (species/<sp>/..., species_tree.nwk)
============  =========================================================

A further sub-generator plugs in as one more stage: a function ``stage(ctx) -> None`` that
draws from ``ctx.rng("<its name>")`` (a stream of its own, so the other
stages' output does not change), edits ``ctx.genome`` while respecting
``ctx.planted``, and writes its own files with ``atomic_output``, recording
them in ``ctx.outputs``. Add it with :func:`with_stage`, before
``write_genome`` if it edits the sequence.

Everything derives from ``settings["seed"]``: the same seed gives
byte-identical files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from seqae.config import section_with_defaults
from seqae.errors import ConfigError
from seqae.simulate.context import SimContext
from seqae.simulate.families import simulate_families
from seqae.simulate.genes import build_genes
from seqae.simulate.layout import plan_layout
from seqae.simulate.motifs import shipped_motifs
from seqae.simulate.outputs import (
    write_annotation,
    write_blacklist,
    write_genome,
    write_peaks,
    write_tracks,
    write_truth,
)
from seqae.simulate.peaks import MIN_SPACING, build_peaks
from seqae.simulate.sequence import simulate_sequence
from seqae.simulate.species import evolve_species

__all__ = ["DEFAULT_STAGES", "SimContext", "Stage", "check_settings", "fill_defaults", "simulate_demo", "with_stage"]

Stage = Callable[[SimContext], None]

#: The stages of the generator, in order, by name.
DEFAULT_STAGES: tuple[tuple[str, Stage], ...] = (
    ("layout", plan_layout),
    ("sequence", simulate_sequence),
    ("genes", build_genes),
    ("peaks", build_peaks),
    # Draws from its own stream and edits no genome: the other files stay byte-identical.
    ("families", simulate_families),
    # Stages that edit the genome go here, before it is written.
    ("write_genome", write_genome),
    ("write_annotation", write_annotation),
    ("write_blacklist", write_blacklist),
    ("write_peaks", write_peaks),
    ("write_tracks", write_tracks),
    ("write_truth", write_truth),
    # Last: the ancestor's files above are the same with and without species.
    ("species", evolve_species),
)


def with_stage(
    name: str, stage: Stage, *, before: str = "write_genome", stages: Sequence[tuple[str, Stage]] = DEFAULT_STAGES
) -> tuple[tuple[str, Stage], ...]:
    """``stages`` with ``(name, stage)`` inserted before the stage named ``before``."""
    names = [n for n, _ in stages]
    if name in names:
        raise ValueError(f"a stage named {name!r} is already in the list")
    i = names.index(before)
    return (*stages[:i], (name, stage), *stages[i:])


def fill_defaults(settings: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``settings`` with the schema's defaults for every missing ``simulate`` key, nested
    ones included, checked against the schema.

    ``seqae simulate`` passes validated settings, which are complete already;
    this lets tests and notebooks pass only the keys they change.

    Raises:
        ConfigError: one line naming the ``simulate`` key at fault.
    """
    return section_with_defaults(settings, "simulate")


def check_settings(settings: dict[str, Any]) -> None:
    """Checks the schema cannot express: one species, motif ids, TF names, room for the peaks.

    Raises:
        ConfigError: one line naming the ``simulate`` key at fault.
    """
    if settings["species"]["n_species"] == 1:
        raise ConfigError("simulate.species.n_species: one species has no tree (0 writes none, otherwise at least 2)")
    motifs = shipped_motifs()
    available = ", ".join(f"{m.id} ({m.name})" for m in motifs.values())
    seen: set[str] = set()
    usable = int(settings["n_chromosomes"]) * int(settings["chromosome_length"])
    for i, tf in enumerate(settings["tfs"]):
        if tf["motif"] not in motifs:
            raise ConfigError(
                f"simulate.tfs[{i}].motif: {tf['motif']!r} is not in the shipped JASPAR file (available: {available})"
            )
        if tf["name"] in seen:
            raise ConfigError(f"simulate.tfs[{i}].name: TF {tf['name']!r} is listed more than once")
        seen.add(tf["name"])
        # Summits of one TF are MIN_SPACING apart; asking for more than a
        # quarter of that packing cannot be placed at random in reasonable time.
        most = usable // (4 * MIN_SPACING)
        if int(tf["n_peaks"]) > most:
            raise ConfigError(
                f"simulate.tfs[{i}].n_peaks: {tf['n_peaks']} peaks do not fit on {settings['n_chromosomes']} "
                f"chromosomes of {settings['chromosome_length']} bp (at most {most}); "
                f"lower n_peaks or raise chromosome_length"
            )


def simulate_demo(
    settings: dict[str, Any], outdir: str | Path, *, stages: Sequence[tuple[str, Stage]] = DEFAULT_STAGES
) -> dict[str, Path]:
    """Write the demo data set under ``outdir``.

    Args:
        settings: ``config["simulate"]`` (validated; missing keys get the schema defaults).
        outdir: output folder, created if needed.
        stages: the generator's stages, see :data:`DEFAULT_STAGES` and :func:`with_stage`.
    Returns:
        output key -> path: ``fasta``, ``annotation``, ``blacklist``,
        ``peaks/<TF>``, ``tracks/<TF>``, ``truth_sites``, ``truth_peaks``,
        ``truth_chromosomes``, ``truth_genes``, ``truth_repeats``,
        ``truth_promoter_sites``, ``truth_families``, and ``families/fam_<i>``
        (FASTA) and ``families/fam_<i>_tree`` (Newick) per demo family; with
        species, ``species_tree``, ``truth_species_peaks``, ``truth_orthologs`` and
        ``species/<sp>/<key>`` (the keys above) per species.
    Raises:
        ConfigError: unknown motif id, duplicated TF, chromosomes too short.
        SeqaeError: ``outdir`` cannot be written.
    """
    settings = fill_defaults(settings)
    check_settings(settings)
    ctx = SimContext(settings=settings, outdir=Path(outdir))
    for _name, stage in stages:
        stage(ctx)
    return dict(ctx.outputs)
