"""What the tree stage makes of one fitted family: baselines, log-likelihoods, ancestral sequences, files.

:func:`finish_family` takes a family read by
:func:`seqae.phylo.inputs.prepare_family` and its fitted latent tree, runs
the baseline trees (:mod:`seqae.phylo.baselines`), scores every tree under
the family's one GTR + Gamma(4) model, reconstructs the latent tree's
ancestral sequences, and writes the family's files (the list is in
:mod:`seqae.phylo.stage`), its summary row
(:data:`~seqae.phylo.trees_table.TREES_COLUMNS`) last.

Every tree of the family is scored under one model, fitted on the first of
the trees in :data:`MODEL_TREE_ORDER` that the family has (how, and what the
``loglik_*`` columns are: :mod:`seqae.phylo.stage`). Log-likelihoods are in
nats; alignment columns without any base are left out of the scoring and
are ``N`` in the ancestral sequences.
"""

from __future__ import annotations

import glob
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from seqae.errors import SeqaeError
from seqae.fileio import remove_earlier_outputs, write_tsv
from seqae.phylo.alphabet import CODE_MISSING
from seqae.phylo.ancestral import name_internal_nodes
from seqae.phylo.baselines import BASELINES, run_baselines
from seqae.phylo.compare import normalized_rf
from seqae.phylo.inputs import PreparedFamily
from seqae.phylo.io import write_family, write_newick, write_nhx
from seqae.phylo.trees_table import TREES_COLUMNS

if TYPE_CHECKING:
    from seqae.phylo.treeae import TreeAESettings

__all__ = ["BRANCH_UNITS", "MODEL_TREE_ORDER", "finish_family"]

log = logging.getLogger("seqae")

#: The figures of a family, after its name: rectangular and circular layouts, PNG and SVG.
FIGURE_SUFFIXES = (".png", ".svg", ".circular.png", ".circular.svg")

#: The shared model is fitted on the first of these trees that the family has.
MODEL_TREE_ORDER = ("iqtree", "fasttree", "latent")
#: Unit of the latent tree's branch lengths per trees.distance_target (the scale bar's unit).
BRANCH_UNITS = {"p": "differences/site (p-distance)", "jc69": "substitutions/site (JC69)",
                "ml": "substitutions/site (ML, GTR+G)"}  # fmt: skip


def _finite(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def finish_family(
    fam: PreparedFamily, fit: Mapping[str, Any], stage: Mapping[str, Any], model_settings: TreeAESettings
) -> dict[str, Any]:
    """Baselines, one-model log-likelihoods, ancestral sequences, figures and the row of one fitted family.

    Args:
        fam: the family, as :func:`~seqae.phylo.inputs.prepare_family` read it.
        fit: its fit: ``tree`` (``ete3.Tree``), ``geometry``, ``device``,
            ``disc_score``, ``disc_auc_before``, ``disc_auc_after``,
            ``disc_auc_after_cotrained``, ``epochs``, ``seconds`` (of the
            fit); the tree latent adds ``noadv_tree``, ``adv_tree`` (either
            may be ``tree`` itself, or None) and ``adversarial_weight_adv``.
        stage: the stage options of :func:`~seqae.phylo.stage.stage_settings`.
        model_settings: the model settings (``cpu_threads`` while scoring,
            ``distance_target`` for the points model's scale bar).

    Returns:
        The summary row (:data:`~seqae.phylo.trees_table.TREES_COLUMNS`) plus
        ``paths``: output name -> path.
    """
    t_start = time.perf_counter()
    name, codes, partials, reference = fam.name, fam.codes, fam.partials, fam.reference
    nrfs = {m: float("nan") for m in BASELINES}
    nrf_latent = float("nan")
    trees = {"latent": fit["tree"]}
    # The fits with and without the adversary: one of them is the written tree (scored as "latent").
    same = {key: fit.get(f"{key}_tree") is fit["tree"] for key in ("noadv", "adv")}
    for key in ("noadv", "adv"):
        if fit.get(f"{key}_tree") is not None and not same[key]:
            trees[f"latent_{key}"] = fit[f"{key}_tree"]
    for method in stage["baselines"]:
        # A line before and after each: IQ-TREE alone takes minutes on a large family.
        log.info("%s: baseline %s ...", name, method)
        try:
            (b,) = run_baselines(codes, fam.names, reference, [method], seed=stage["seed"], partials=partials)
        except SeqaeError as exc:  # FastTree or IQ-TREE failed: keep the other baselines
            log.warning("%s: %s; %s left out", name, exc, method)
            continue
        nrfs[b.method] = _finite(b.nrf)
        if b.tree is None:
            log.info("%s: %s; %s left out", name, b.reason, method)
        else:
            trees[method] = b.tree
            log.info("%s: baseline %s done in %.1f s", name, method, b.seconds)
    if reference is not None:
        nrf_latent = normalized_rf(fit["tree"], reference)

    t_loglik = time.perf_counter()
    log.info("%s: log-likelihoods of %d trees under one GTR + Gamma model, then ancestral states ...", name, len(trees))
    tree = name_internal_nodes(fit["tree"])  # the names the NHX and the ancestral FASTA share
    trees["latent"] = tree
    logliks, model_tree, ancestors = _score_and_reconstruct(
        partials, fam.names, trees, threads=model_settings.cpu_threads
    )
    seconds_loglik = time.perf_counter() - t_loglik
    side: dict[str, float] = {}
    for key in ("noadv", "adv"):
        other = fit.get(f"{key}_tree")
        if other is None:
            side[f"nrf_latent_{key}"] = side[f"loglik_latent_{key}"] = float("nan")
        elif same[key]:
            side[f"nrf_latent_{key}"], side[f"loglik_latent_{key}"] = nrf_latent, logliks["latent"]
        else:
            side[f"loglik_latent_{key}"] = logliks[f"latent_{key}"]
            side[f"nrf_latent_{key}"] = float("nan") if reference is None else normalized_rf(other, reference)

    out = fam.outdir
    tree.add_feature("loglik", f"{logliks['latent']:.4f}")
    tree.add_feature("disc_score", f"{fit['disc_score']:.4g}" if math.isfinite(fit["disc_score"]) else "NA")
    tree.add_feature("geometry", fit["geometry"])
    for leaf in tree.iter_leaves():
        if leaf.name in fam.labels:
            leaf.add_feature("label", fam.labels[leaf.name])
    paths: dict[str, Path] = {}
    if stage["render"]:
        unit = BRANCH_UNITS["ml"] if stage["model"] == "tree_latent" else BRANCH_UNITS[model_settings.distance_target]
        paths.update(_render(tree, out, name, fam.labels, stage["figure_width"], unit))
    else:
        stale = remove_earlier_outputs(out, [f"{glob.escape(name)}{suffix}" for suffix in FIGURE_SUFFIXES])
        if stale:
            log.info("%s: trees.render is false: removed %d figures of an earlier run", name, len(stale))
    paths["nwk"] = write_newick(tree, out / f"{name}.nwk")
    paths["nhx"] = write_nhx(tree, out / f"{name}.nhx", features=["loglik", "disc_score", "geometry", "label"])
    paths["ancestral"] = write_family(ancestors, out / f"{name}.ancestral.fa")
    row = {
        "family": name,
        "n_taxa": int(codes.shape[0]),
        "n_sites": int(codes.shape[1]),
        "geometry": fit["geometry"],
        "device": fit["device"],
        "nrf_latent": nrf_latent,
        "nrf_nj_p": nrfs["nj_p"],
        "nrf_bme_p": nrfs["bme_p"],
        "nrf_nj_jc69": nrfs["nj_jc69"],
        "nrf_fasttree": nrfs["fasttree"],
        "nrf_iqtree": nrfs["iqtree"],
        **{f"loglik_{m}": logliks.get(m, float("nan")) for m in ("latent", *BASELINES)},
        "loglik_model_tree": model_tree,
        **side,
        "adversarial_weight_adv": fit.get("adversarial_weight_adv", float("nan")),
        "disc_score": fit["disc_score"],
        "disc_auc_before": fit["disc_auc_before"],
        "disc_auc_after": fit["disc_auc_after"],
        "disc_auc_after_cotrained": fit["disc_auc_after_cotrained"],
        "epochs": fit["epochs"],
        "seconds": round(fit["seconds"], 3),
        "seconds_loglik": round(seconds_loglik, 3),
        "seconds_total": round(fit["seconds"] + time.perf_counter() - t_start, 3),
    }
    paths["tsv"] = write_tsv(pd.DataFrame([row], columns=list(TREES_COLUMNS)), out / f"{name}.tsv")
    adversary = (
        f"without/with the adversary {row['nrf_latent_noadv']:.3f}/{row['nrf_latent_adv']:.3f}; "
        if np.isfinite([row["nrf_latent_noadv"], row["nrf_latent_adv"]]).all() else ""
    )  # fmt: skip
    nrf_text = (
        f"nRF latent {nrf_latent:.3f} ({adversary}NJ-p {_shown(nrfs['nj_p'], '.3f')}, "
        f"FastTree {_shown(nrfs['fasttree'], '.3f')}, IQ-TREE {_shown(nrfs['iqtree'], '.3f')})"
        if np.isfinite(nrf_latent) else "no reference tree, so no nRF"
    )  # fmt: skip
    judge = (
        f", judge AUC without/with the adversary {_shown(row['disc_auc_before'], '.2f')}/"
        f"{_shown(row['disc_auc_after'], '.2f')}"
        if np.isfinite([row["disc_auc_before"], row["disc_auc_after"]]).any() else ""
    )  # fmt: skip
    log.info(
        "%s: %d taxa x %d sites, %s, log-likelihood latent %.2f (FastTree %s, IQ-TREE %s; model fitted on the %s "
        "tree)%s",
        name, row["n_taxa"], row["n_sites"], nrf_text, row["loglik_latent"], _shown(row["loglik_fasttree"], ".2f"),
        _shown(row["loglik_iqtree"], ".2f"), model_tree, judge,
    )  # fmt: skip
    return {**row, "paths": paths}


def _shown(value: float, spec: str) -> str:
    """``value`` formatted, or ``not run`` for NaN (a baseline left out, no judge)."""
    return format(value, spec) if math.isfinite(value) else "not run"


def _score_and_reconstruct(
    partials: np.ndarray, names: Sequence[str], trees: Mapping[str, Any], threads: int | None = 1
) -> tuple[dict[str, float], str, dict[str, str]]:
    """Every tree's log-likelihood under one GTR + Gamma(4), and the latent tree's ancestral sequences.

    Args:
        partials: ``[n, L]`` codes 0..14 (:func:`~seqae.phylo.alphabet.partial_codes`).
        names: the rows' names.
        trees: method -> ``ete3.Tree``; ``"latent"`` required, its internal
            nodes named (they name the ancestral sequences).
        threads: torch CPU threads while scoring (restored afterwards; None: torch's default).

    Returns:
        method -> log-likelihood; the method whose tree the model was fitted
        on; internal node name -> ancestral sequence (``L`` characters, ``N``
        at columns without any base).
    """
    import torch

    from seqae.phylo.ancestral import ancestral_states
    from seqae.phylo.mlfit import score_trees

    kept = np.flatnonzero(~(partials == CODE_MISSING).all(axis=0))
    columns = partials[:, kept]
    methods = list(trees)
    model_tree = next(m for m in MODEL_TREE_ORDER if m in trees)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        scores = score_trees(columns, names, [trees[m] for m in methods], reference=methods.index(model_tree))
        fitted = scores.fit.ete_trees()[methods.index("latent")]  # ML branch lengths, internal names kept
        states = ancestral_states(columns, list(names), fitted, model=scores.model.substitution_model(0))
    finally:
        torch.set_num_threads(before)
    inferred = states.sequences()
    sequences = {}  # in the written tree's pre-order (N1, N2, ...)
    for node in trees["latent"].traverse("preorder"):
        if node.name in inferred:
            full = np.full(partials.shape[1], ord("N"), dtype=np.uint8)
            full[kept] = np.frombuffer(inferred[node.name].encode("ascii"), dtype=np.uint8)
            sequences[node.name] = full.tobytes().decode("ascii")
    logliks = {m: float(v) for m, v in zip(methods, scores.log_likelihood)}
    return logliks, model_tree, sequences


def _render(tree, out: Path, name: str, labels: Mapping[str, str], width: int, unit: str) -> dict[str, Path]:
    from seqae.phylo.render import render_tree

    drawn = tree.copy()
    outgroup = drawn.get_midpoint_outgroup()
    if outgroup is not None and outgroup is not drawn:
        drawn.set_outgroup(outgroup)
    paths = {}
    for suffix in FIGURE_SUFFIXES:  # ".png" -> key "png", ".circular.svg" -> key "circular_svg"
        layout = "circular" if suffix.startswith(".circular") else "rectangular"
        paths[suffix[1:].replace(".", "_")] = render_tree(drawn, out / f"{name}{suffix}", labels=labels or None,
                                                          layout=layout, title=name, width=width,
                                                          scale_unit=unit)  # fmt: skip
    return paths
