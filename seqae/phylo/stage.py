"""The tree stage: FASTAs in; per family a latent tree, figures and a summary row out.

:func:`run_families` is what ``seqae trees --batch/--all`` (and each
Snakemake batch job) runs for a batch of ``config["trees"]["families"]``: all
families are read and checked first (:mod:`seqae.phylo.inputs`), then their
latent trees are fitted together (:func:`seqae.phylo.hypertree.fit_latent_trees`,
one batched fit per number of taxa; ``trees.model: points`` fits the earlier
point-cloud model, :mod:`seqae.phylo.treeae`, family by family), then each
family's baselines, log-likelihoods, ancestral sequences and files follow
(:mod:`seqae.phylo.outputs`). :func:`run_family` is the same for one family
(``seqae trees --family``); :func:`~seqae.phylo.trees_table.gather_trees`
concatenates the families' rows into ``trees.tsv`` (``seqae trees-gather``).

Files written for a family ``F`` under ``outdir`` (each atomically: a
temporary file renamed into place; the summary row last, so its presence
means the family is complete):

=======================  ==========================================================
``F.nwk``                the latent tree, Newick with branch lengths (tree latent:
                         ML substitutions per site; points: units of the
                         distance target, differences per site for ``p``); unrooted
                         (neighbor joining's trifurcating root); internal nodes
                         named ``N1``, ``N2``, ... in pre-order
``F.nhx``                the same tree in NHX: ``loglik``, ``disc_score`` (and
                         ``geometry``) on the root, ``label`` on the leaves when
                         labels are given
``F.ancestral.fa``       marginal ancestral sequences of the latent tree's internal
                         nodes (most probable base per column), named as in
                         ``F.nwk``/``F.nhx``; ``N`` at columns without any base
``F.png``, ``F.svg``     the tree drawn by ete3, rectangular, midpoint-rooted
``F.circular.png/.svg``  the same, circular layout
``F.tsv``                one row, columns :data:`~seqae.phylo.trees_table.TREES_COLUMNS`
=======================  ==========================================================

Log-likelihoods (:func:`seqae.phylo.mlfit.score_trees`): every tree of the
family (the latent tree and each baseline's) is scored under **one** GTR +
Gamma(4) model, fitted once per family (rates, frequencies, alpha and branch
lengths by maximum likelihood) on the first of IQ-TREE's, FastTree's and the
latent tree that there is (:data:`~seqae.phylo.outputs.MODEL_TREE_ORDER`);
with the model then fixed, each tree's branch lengths are fitted and its
log-likelihood is the ``loglik_*`` column. The ancestral sequences are the marginal reconstruction
(:mod:`seqae.phylo.ancestral`) on the latent topology with those branch
lengths and that model. Ambiguity codes count as their bases, as in IQ-TREE.

Alignment columns that hold no base at all (only gaps, ``N`` or ``?``) add
nothing to a likelihood (each is a factor 1). As IQ-TREE does, they are kept
in the alignment (``n_sites`` counts them) with a warning naming the file and
the first such column; the likelihood code skips them and the ancestral
sequences have ``N`` there.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from seqae.config import default_seed, section_with_defaults
from seqae.errors import ConfigError, SeqaeError
from seqae.fileio import check_output_folder, remove_earlier_outputs
from seqae.phylo.alphabet import CODE_MISSING
from seqae.phylo.distance import patristic_distances
from seqae.phylo.hypertree import LatentTreeSettings, fit_latent_trees
from seqae.phylo.inputs import PreparedFamily, prepare_family
from seqae.phylo.io import read_tree
from seqae.phylo.outputs import FIGURE_SUFFIXES, finish_family
from seqae.phylo.treeae import TreeAESettings, fit_tree_autoencoder
from seqae.phylo.treejudge import JudgeCache

#: The files a family's run writes in its folder (suffixes after the family name).
OUTPUT_SUFFIXES = (".nwk", ".nhx", ".ancestral.fa", ".tsv", *FIGURE_SUFFIXES)

__all__ = [
    "run_families",
    "run_family",
    "stage_settings",
]

log = logging.getLogger("seqae")

#: The ``trees`` keys that are options of the stage itself (the schema defines them).
STAGE_OPTIONS = ("baselines", "render", "figure_width", "real_trees", "model", "adversary_check")


def stage_settings(settings: Mapping[str, Any] | None) -> tuple[TreeAESettings, dict[str, Any]]:
    """Split ``config["trees"]`` (plus ``seed``) into model settings and stage options.

    The keys left out take the configuration schema's defaults, as in a config
    file, ``seed`` the top-level one's.

    Raises:
        ConfigError: an unknown or invalid key, one line.
    """
    values = dict(settings or {})
    seed = values.pop("seed", None)
    trees = section_with_defaults(values, "trees")
    stage = {key: trees[key] for key in STAGE_OPTIONS}
    stage["seed"] = default_seed() if seed is None else int(seed)
    stage["latent_tree"] = LatentTreeSettings.from_mapping(trees["latent_tree"])
    return TreeAESettings.from_mapping({**trees, "seed": stage["seed"]}), stage


def run_family(
    fasta: str | os.PathLike[str],
    outdir: str | os.PathLike[str],
    settings: Mapping[str, Any] | None = None,
    reference_tree=None,
    labels: Mapping[str, str] | str | os.PathLike[str] | None = None,
    *,
    family: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fit the latent tree of one family and write its tree, figures and row (:func:`run_families` with one family).

    The family must be **aligned**: every sequence the same length (site
    ``k`` of every sequence homologous). Align unaligned families first,
    e.g. with MAFFT (``mafft --auto family.fa > family.aln.fa``). Gaps
    (``-``, ``.``) and ambiguity codes are allowed; they are treated as
    missing.

    Args:
        fasta: aligned FASTA of the family (at least 4 sequences).
        outdir: output folder (created).
        settings: ``config["trees"]`` plus ``seed`` (model, training,
            discriminator and stage keys; see config/README.md).
        reference_tree: the family's reference or true tree (Newick path or
            ``ete3.Tree``; leaves = the sequence names), used to report nRF.
            It is not shown to the discriminator (that would leak the answer);
            pass real trees for it as ``settings["real_trees"]``.
        labels: leaf labels (mapping or two-column TSV) for the figures and NHX.
        family: the family's name (default: the FASTA file's stem).
        progress: show the fit's progress bars.

    Returns:
        The summary row (:data:`~seqae.phylo.trees_table.TREES_COLUMNS`) plus ``paths``: output name -> path.

    Raises:
        InputError: bad FASTA (fewer than 4 sequences, unequal lengths,
            non-DNA characters, ...), reference tree or labels; one line,
            nothing written.
        ConfigError: a bad setting, one line, nothing written.
    """
    spec = {"fasta": fasta, "outdir": outdir, "reference": reference_tree, "labels": labels, "name": family}
    return run_families([spec], settings, progress=progress)[0]


def run_families(
    families: Sequence[Mapping[str, Any]], settings: Mapping[str, Any] | None = None, *, progress: bool = True
) -> list[dict[str, Any]]:
    """Fit many families together (one batch on one device per size) and write each family's outputs.

    Args:
        families: per family a mapping with ``fasta``, ``outdir`` and
            optionally ``reference``, ``labels`` and ``name`` (as :func:`run_family`).
        settings: ``config["trees"]`` plus ``seed``.
        progress: progress bars of the fit (both models).

    Every family is read and checked before any fitting, so bad input fails
    in seconds with one line naming its file. With ``model: tree_latent``
    (default) the families' latent trees are fitted by
    :func:`~seqae.phylo.hypertree.fit_latent_trees`: families with the same
    number of taxa share one batch (``latent_tree.batch_size`` at most), so
    a job of many small ortholog families runs a few batched fits, not one
    fit per family. Returns the rows (with ``paths``) in input order.
    """
    model_settings, stage = stage_settings(settings)
    prepared = [
        prepare_family(f["fasta"], f["outdir"], f.get("reference"), f.get("labels"), f.get("name")) for f in families
    ]
    twice = [p.name for k, p in enumerate(prepared) if p.name in {q.name for q in prepared[:k]}]
    if twice:
        raise ConfigError(f"family {twice[0]!r} is listed twice")
    for spec, fam in zip(families, prepared, strict=True):
        _check_outputs(spec, fam)
    real_trees = []
    for path in stage["real_trees"]:
        tree = read_tree(path)
        if len(tree) >= 4:
            real_trees.append(tree)
    t_fit = time.perf_counter()
    if stage["model"] == "tree_latent":
        import torch

        from seqae.runtime import resolve_device

        try:
            device = resolve_device(model_settings.device, "trees.latent_tree.device")
        except SeqaeError as exc:  # 'cuda' without a GPU
            raise ConfigError(str(exc)) from None
        before = torch.get_num_threads()
        if model_settings.cpu_threads and device.type == "cpu":
            torch.set_num_threads(int(model_settings.cpu_threads))
        try:
            fits = _fit_tree_latent(prepared, stage, real_trees, device, progress)
        finally:
            torch.set_num_threads(before)
    else:
        fits = []
        for fam in prepared:
            try:
                result = fit_tree_autoencoder(fam.codes, fam.names, model_settings,
                                              reference_trees=[patristic_distances(t)[0] for t in real_trees],
                                              progress=progress)  # fmt: skip
            except ValueError as exc:  # e.g. device 'cuda' without a GPU
                raise ConfigError(f"trees: {exc}") from None
            fits.append({"tree": result.tree, "geometry": model_settings.geometry, "device": result.device,
                         "disc_score": result.disc_score, "disc_auc_before": result.auc_before,
                         "disc_auc_after": result.auc_after, "disc_auc_after_cotrained": result.auc_after_cotrained,
                         "epochs": result.epochs_run, "seconds": result.seconds})  # fmt: skip
    seconds_fit = (time.perf_counter() - t_fit) / max(1, len(prepared))
    rows, failed = [], []
    for fam, fit in zip(prepared, fits):
        fit.setdefault("seconds", seconds_fit)
        try:
            rows.append(finish_family(fam, fit, stage, model_settings))
        except (SeqaeError, OSError) as exc:
            if len(prepared) == 1:
                raise
            # The batch's fit is done: one family failing to score, draw or write loses only its own outputs.
            remove_family_outputs(fam)
            log.error("%s: %s; its outputs are not written, the other families' are", fam.name, exc)
            failed.append(fam.name)
    if failed:
        raise SeqaeError(
            f"{len(failed)} of {len(prepared)} families failed after the fit ({', '.join(failed[:3])}"
            f"{', ...' if len(failed) > 3 else ''}: see the lines above); the other {len(rows)} were written"
        )
    return rows


def remove_family_outputs(fam: PreparedFamily) -> None:
    """Remove what a family that failed part-way through its outputs wrote (no half family is left)."""
    remove_earlier_outputs(fam.outdir, [f"{glob.escape(fam.name)}{suffix}" for suffix in OUTPUT_SUFFIXES])


def _check_outputs(spec: Mapping[str, Any], fam: PreparedFamily) -> None:
    """Before any fitting: the family's output folder can be made, and no output file is one of its inputs
    (a reference tree kept as ``outdir/F.nwk`` was replaced by the latent tree, and the next run scored
    against it)."""
    check_output_folder(fam.outdir)
    outputs = {
        os.path.realpath(fam.outdir / f"{fam.name}{suffix}"): f"{fam.name}{suffix}" for suffix in OUTPUT_SUFFIXES
    }
    for key in ("fasta", "reference", "labels"):
        given = spec.get(key)
        if isinstance(given, (str, os.PathLike)) and os.path.realpath(given) in outputs:
            raise ConfigError(
                f"{given}: the family's {key} input is also its output {outputs[os.path.realpath(given)]} in "
                f"{fam.outdir}, which would replace it; write the outputs to another folder"
            )


def _fit_tree_latent(
    prepared: Sequence[PreparedFamily], stage: Mapping[str, Any], real_trees: Sequence, device, progress: bool
) -> list[dict[str, Any]]:
    """The tree latent of every family, with and without the adversary (see ``adversary_check``)."""
    latent: LatentTreeSettings = stage["latent_tree"]
    data = []
    for fam in prepared:
        kept = np.flatnonzero(~(fam.partials == CODE_MISSING).all(axis=0))
        data.append((fam.partials[:, kept], fam.names))
    judges = JudgeCache()  # both fits below use the same judges (same sizes, seed and settings)
    main = fit_latent_trees(data, latent, device=device, seed=stage["seed"], user_trees=real_trees, progress=progress,
                            judges=judges)  # fmt: skip
    other_weight = 0.0 if latent.adversarial_weight > 0 else stage["adversary_check"]
    other = [None] * len(prepared)
    if latent.adversarial_weight > 0 or other_weight > 0:
        other_settings = LatentTreeSettings(**{**asdict(latent), "adversarial_weight": other_weight})
        log.info(
            "fitting again with adversarial_weight %g for the with/without-adversary columns "
            "(trees.adversary_check: 0 skips this)", other_settings.adversarial_weight,
        )  # fmt: skip
        other = fit_latent_trees(data, other_settings, device=device, seed=stage["seed"], user_trees=real_trees,
                                 progress=progress, judges=judges)  # fmt: skip
    fits = []
    for lat, alt in zip(main, other):
        with_adv, without = (lat, alt) if latent.adversarial_weight > 0 else (alt, lat)
        fits.append({
            "tree": lat.tree, "geometry": "poincare_nj", "device": str(device), "disc_score": lat.judge_score,
            "disc_auc_before": without.judge_auc if without is not None else float("nan"),
            "disc_auc_after": with_adv.judge_auc if with_adv is not None else float("nan"),
            "disc_auc_after_cotrained": float("nan"), "epochs": latent.epochs,
            "noadv_tree": without.tree if without is not None else None,
            "adv_tree": with_adv.tree if with_adv is not None else None,
            "adversarial_weight_adv": max(latent.adversarial_weight, other_weight) if with_adv is not None else float("nan"),
        })  # fmt: skip
    return fits
