"""The tree stage: FASTAs in; per family a latent tree, figures and a summary row out.

:func:`run_families` is what ``seqae trees --batch/--all`` (and each
Snakemake batch job) runs for a batch of ``config["trees"]["families"]``: all
families are read and checked first, then their latent trees are fitted
together (:func:`seqae.phylo.hypertree.fit_latent_trees`, one batched fit per
number of taxa; ``trees.model: points`` fits the earlier point-cloud model
family by family), then each family's baselines, log-likelihoods, ancestral
sequences and files follow. :func:`run_family` is the same for one family
(``seqae trees --family``); :func:`gather_trees` concatenates the families'
rows into ``trees.tsv`` (``seqae trees-gather``).

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
``F.tsv``                one row, columns :data:`TREES_COLUMNS`
=======================  ==========================================================

Log-likelihoods (:func:`seqae.phylo.mlfit.score_trees`): every tree of the
family (the latent tree and each baseline's) is scored under **one** GTR +
Gamma(4) model, fitted once per family (rates, frequencies, alpha and branch
lengths by maximum likelihood) on the first of IQ-TREE's, FastTree's and the
latent tree that there is (:data:`MODEL_TREE_ORDER`); with the model then
fixed, each tree's branch lengths are fitted and its log-likelihood is the
``loglik_*`` column. The ancestral sequences are the marginal reconstruction
(:mod:`seqae.phylo.ancestral`) on the latent topology with those branch
lengths and that model. Ambiguity codes count as their bases, as in IQ-TREE.

Alignment columns that hold no base at all (only gaps, ``N`` or ``?``) add
nothing to a likelihood (each is a factor 1). As IQ-TREE does, they are kept
in the alignment (``n_sites`` counts them) with a warning naming the file and
the first such column; the likelihood code skips them and the ancestral
sequences have ``N`` there.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqae.errors import ConfigError, InputError, SeqaeError
from seqae.fileio import require_file, write_tsv
from seqae.phylo.alphabet import CODE_MISSING, partial_codes
from seqae.phylo.ancestral import name_internal_nodes
from seqae.phylo.baselines import BASELINES, run_baselines
from seqae.phylo.compare import normalized_rf
from seqae.phylo.distance import patristic_distances
from seqae.phylo.hypertree import LatentTreeSettings, fit_latent_trees
from seqae.phylo.io import read_family, read_tree, write_family, write_newick, write_nhx
from seqae.phylo.treeae import TreeAESettings, fit_tree_autoencoder

__all__ = [
    "BASELINE_METHODS",
    "TREES_COLUMNS",
    "draw_tree_summary",
    "gather_trees",
    "read_batch",
    "read_labels",
    "run_families",
    "run_family",
    "stage_settings",
    "summarise_trees",
]

log = logging.getLogger("seqae")

#: Columns of ``<family>.tsv`` and ``trees.tsv``, in order.
TREES_COLUMNS = (
    "family",  # family name
    "n_taxa",  # sequences
    "n_sites",  # alignment columns
    "geometry",  # latent geometry
    "device",  # where the tree-AE trained
    "nrf_latent",  # nRF of the latent tree to the reference tree (empty without one)
    "nrf_nj_p",  # nRF of NJ on p-distances
    "nrf_bme_p",  # nRF of NJ on p-distances refined by BME NNIs (the latent tree's search, on raw distances)
    "nrf_nj_jc69",  # nRF of NJ on JC69 distances
    "nrf_fasttree",  # nRF of FastTree -gtr -gamma (empty when not installed)
    "nrf_iqtree",  # nRF of IQ-TREE -m GTR+G (empty when not installed)
    "loglik_latent",  # log-likelihood of the latent topology under the family's one GTR+G4 model (ML branch lengths)
    "loglik_nj_p",  # the same for each baseline tree
    "loglik_bme_p",
    "loglik_nj_jc69",
    "loglik_fasttree",
    "loglik_iqtree",
    "loglik_model_tree",  # the tree the shared GTR+G4 model was fitted on (iqtree, fasttree or latent)
    "nrf_latent_noadv",  # tree_latent: nRF of the family's latent tree fitted without the adversary
    "nrf_latent_adv",  # the same family fitted with the adversary (weight adversarial_weight_adv)
    "loglik_latent_noadv",  # their log-likelihoods under the family's one model
    "loglik_latent_adv",
    "adversarial_weight_adv",  # the adversarial weight of the fit with it (empty when there was none)
    "disc_score",  # the judge's probability that the written latent tree (points: latent metric) is a real tree's
    "disc_auc_before",  # the judge's held-out AUC, real trees vs the latent, without the adversary (points: before it)
    "disc_auc_after",  # the same with the adversary (closer to 0.5: more like a real tree)
    "disc_auc_after_cotrained",  # points: the co-trained adversary's AUC on the final latent
    "epochs",  # training steps run (warm-up + adversarial)
    "seconds",  # wall-clock seconds of the tree-AE fit
    "seconds_loglik",  # scoring every tree under the shared model, and the ancestral sequences
    "seconds_total",  # the whole family: reading, fit, baselines, likelihoods, figures, files
)
BASELINE_METHODS = BASELINES
#: Log-likelihoods closer than this count as equal in the summary (the fits stop at 1e-6 per site).
LOGLIK_TIE = 0.01
#: The shared model is fitted on the first of these trees that the family has.
MODEL_TREE_ORDER = ("iqtree", "fasttree", "latent")
#: nRF columns of trees.tsv and the names the summary gives them.
NRF_COLUMNS = {
    "nrf_latent": "latent",
    "nrf_latent_adv": "latent, with adversary",
    "nrf_nj_p": "NJ p-distance",
    "nrf_bme_p": "BME-NNI p-distance",
    "nrf_nj_jc69": "NJ JC69",
    "nrf_fasttree": "FastTree",
    "nrf_iqtree": "IQ-TREE",
}
#: Unit of the latent tree's branch lengths per trees.distance_target (the scale bar's unit).
BRANCH_UNITS = {"p": "differences/site (p-distance)", "jc69": "substitutions/site (JC69)",
                "ml": "substitutions/site (ML, GTR+G)"}  # fmt: skip
_FAMILY_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_NHX_RESERVED = re.compile(r"[()\[\]:;,=\s]+")
#: Keys of ``config["trees"]`` that belong to the stage, not to the model.
STAGE_KEYS = (
    "families",
    "baselines",
    "render",
    "figure_width",
    "real_trees",
    "model",
    "latent_tree",
    "adversary_check",
)
#: trees.model values: the tree latent (default) and the earlier point-cloud autoencoder.
MODELS = ("tree_latent", "points")


def stage_settings(settings: Mapping[str, Any] | None) -> tuple[TreeAESettings, dict[str, Any]]:
    """Split ``config["trees"]`` (plus ``seed``) into model settings and stage options.

    Raises:
        ConfigError: an unknown or invalid key, one line.
    """
    values = dict(settings or {})
    stage = {
        "seed": int(values["seed"]) if values.get("seed") is not None else 1,
        "baselines": list(values.get("baselines", BASELINE_METHODS)),
        "render": bool(values.get("render", True)),
        "figure_width": int(values.get("figure_width", 800)),
        "real_trees": list(values.get("real_trees", []) or []),
        "model": str(values.get("model", "tree_latent")),
        "adversary_check": float(values.get("adversary_check", 0.3)),
    }
    if stage["model"] not in MODELS:
        raise ConfigError(f"trees.model: {stage['model']!r} is not one of {', '.join(MODELS)}")
    try:
        stage["latent_tree"] = LatentTreeSettings.from_mapping(values.get("latent_tree") or {})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"trees.{exc}") from None
    unknown = [m for m in stage["baselines"] if m not in BASELINE_METHODS]
    if unknown:
        raise ConfigError(f"trees.baselines: unknown method {unknown[0]!r} (choose from {', '.join(BASELINE_METHODS)})")
    model_values = {k: v for k, v in values.items() if k not in STAGE_KEYS}
    try:
        model = TreeAESettings.from_mapping(model_values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"trees: {exc}") from None
    return model, stage


def read_labels(labels: Mapping[str, str] | str | os.PathLike[str] | None, names: Sequence[str]) -> dict[str, str]:
    """Leaf labels from a mapping or a two-column TSV (name, label; no header).

    Labels are made safe for NHX (reserved characters and whitespace -> ``_``).

    Raises:
        InputError: a TSV line without two fields, or a name not in the family.
    """
    if labels is None:
        return {}
    if isinstance(labels, Mapping):
        raw = {str(k): str(v) for k, v in labels.items()}
        source: str | Path = "labels"
    else:
        source = require_file(labels, "labels file")
        raw = {}
        for number, line in enumerate(Path(source).read_text().splitlines(), start=1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 2 or not fields[0]:
                raise InputError(source, "expected two tab-separated fields: sequence name, label", number)
            raw[fields[0]] = fields[1]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise InputError(source, f"labels name sequences not in the family: {', '.join(map(repr, unknown[:3]))}{more}")
    return {k: (_NHX_RESERVED.sub("_", v).strip("_") or "_") for k, v in raw.items()}


def _finite(x: float | None) -> float:
    return float("nan") if x is None else float(x)


@dataclass
class _Family:
    """One family read and checked, waiting for its fit."""

    name: str
    fasta: Path
    outdir: Path
    names: list[str]
    codes: np.ndarray
    partials: np.ndarray
    reference: Any
    labels: dict[str, str]


def _prepare(fasta, outdir, reference_tree, labels, family: str | None) -> _Family:
    """Read and check one family (one-line InputError/ConfigError naming the file on bad input)."""
    fasta = Path(fasta)
    name = family if family is not None else fasta.name.split(".")[0]
    if not _FAMILY_NAME.match(name or ""):
        raise ConfigError(f"family name {name!r} may hold only letters, digits, '_', '.' and '-'")
    fam = read_family(fasta, aligned_required=True)
    codes = fam.codes()
    overlap = _check_overlap(codes, fam.names)
    if overlap:
        raise InputError(fasta, overlap)
    partials = partial_codes(fam.sequences)  # read_family checked the characters
    empty = np.flatnonzero((partials == CODE_MISSING).all(axis=0))
    if empty.size:
        log.warning(
            "%s: %d alignment column%s (first: column %d) hold only gaps or N; kept, as IQ-TREE keeps them, but they "
            "add nothing to the likelihood and are N in the ancestral sequences",
            fasta, empty.size, "s" if empty.size > 1 else "", int(empty[0]) + 1,
        )  # fmt: skip
    reference = None
    if reference_tree is not None:
        if isinstance(reference_tree, (str, os.PathLike)):
            reference = read_tree(reference_tree, leaf_names=fam.names)
        else:
            reference = reference_tree
            leaves = {leaf.name for leaf in reference.get_leaves()}
            if leaves != set(fam.names):
                raise InputError(fasta, "the reference tree's leaves do not match the FASTA's sequence names")
    return _Family(
        name, fasta, Path(outdir), list(fam.names), codes, partials, reference, read_labels(labels, fam.names)
    )


def read_batch(path: str | os.PathLike[str], outdir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Families of a batch from a TSV with a header: ``name``, ``fasta`` and optionally ``reference``, ``labels``.

    Relative paths are taken as they are (from the working directory); empty
    cells mean none. Each family's outputs go to ``outdir/name/``.

    Raises:
        InputError: not such a table, a missing column, or no rows.
    """
    source = require_file(path, "batch table")
    try:
        table = pd.read_csv(source, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(source, f"not a tab-separated table ({str(exc).splitlines()[0]})") from None
    missing = [c for c in ("name", "fasta") if c not in table.columns]
    if missing or table.empty:
        raise InputError(
            source, f"needs a header with name and fasta and at least one row (missing: {missing or 'rows'})"
        )
    specs = []
    for record in table.to_dict("records"):
        specs.append({
            "name": record["name"], "fasta": record["fasta"], "outdir": Path(outdir) / record["name"],
            "reference": record.get("reference") or None, "labels": record.get("labels") or None,
        })  # fmt: skip
    return specs


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
        progress: show the training progress bar (``model: points``).

    Returns:
        The summary row (:data:`TREES_COLUMNS`) plus ``paths``: output name -> path.

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
        progress: progress bars of the ``points`` model.

    Every family is read and checked before any fitting, so bad input fails
    in seconds with one line naming its file. With ``model: tree_latent``
    (default) the families' latent trees are fitted by
    :func:`~seqae.phylo.hypertree.fit_latent_trees`: families with the same
    number of taxa share one batch (``latent_tree.batch_size`` at most), so
    a job of many small ortholog families runs a few batched fits, not one
    fit per family. Returns the rows (with ``paths``) in input order.
    """
    model_settings, stage = stage_settings(settings)
    prepared = [_prepare(f["fasta"], f["outdir"], f.get("reference"), f.get("labels"), f.get("name")) for f in families]
    twice = [p.name for k, p in enumerate(prepared) if p.name in {q.name for q in prepared[:k]}]
    if twice:
        raise ConfigError(f"family {twice[0]!r} is listed twice")
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
            fits = _fit_tree_latent(prepared, stage, real_trees, device)
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
    rows = []
    for fam, fit in zip(prepared, fits):
        fit.setdefault("seconds", seconds_fit)
        rows.append(_finish_family(fam, fit, stage, model_settings))
    return rows


def _fit_tree_latent(
    prepared: Sequence[_Family], stage: Mapping[str, Any], real_trees: Sequence, device
) -> list[dict[str, Any]]:
    """The tree latent of every family, with and without the adversary (see ``adversary_check``)."""
    latent: LatentTreeSettings = stage["latent_tree"]
    data = []
    for fam in prepared:
        kept = np.flatnonzero(~(fam.partials == CODE_MISSING).all(axis=0))
        data.append((fam.partials[:, kept], fam.names))
    main = fit_latent_trees(data, latent, device=device, seed=stage["seed"], user_trees=real_trees)
    other_weight = 0.0 if latent.adversarial_weight > 0 else stage["adversary_check"]
    other = [None] * len(prepared)
    if latent.adversarial_weight > 0 or other_weight > 0:
        other_settings = LatentTreeSettings(**{**asdict(latent), "adversarial_weight": other_weight})
        other = fit_latent_trees(data, other_settings, device=device, seed=stage["seed"], user_trees=real_trees)
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


def _finish_family(
    fam: _Family, fit: Mapping[str, Any], stage: Mapping[str, Any], model_settings: TreeAESettings
) -> dict[str, Any]:
    """Baselines, one-model log-likelihoods, ancestral sequences, figures and the row of one fitted family."""
    t_start = time.perf_counter()
    name, codes, partials, reference = fam.name, fam.codes, fam.partials, fam.reference
    nrfs = {m: float("nan") for m in BASELINE_METHODS}
    nrf_latent = float("nan")
    trees = {"latent": fit["tree"]}
    # The fits with and without the adversary: one of them is the written tree (scored as "latent").
    same = {key: fit.get(f"{key}_tree") is fit["tree"] for key in ("noadv", "adv")}
    for key in ("noadv", "adv"):
        if fit.get(f"{key}_tree") is not None and not same[key]:
            trees[f"latent_{key}"] = fit[f"{key}_tree"]
    for method in stage["baselines"]:
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
    if reference is not None:
        nrf_latent = normalized_rf(fit["tree"], reference)

    t_loglik = time.perf_counter()
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
        **{f"loglik_{m}": logliks.get(m, float("nan")) for m in ("latent", *BASELINE_METHODS)},
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
    log.info(
        "%s: %d taxa x %d sites, nRF latent %.3f (without/with the adversary %.3f/%.3f; NJ-p %.3f, FastTree %.3f, IQ-TREE %.3f), "
        "log-likelihood latent %.2f (FastTree %.2f, IQ-TREE %.2f; model fitted on the %s tree), judge AUC %.2f / %.2f",
        name, row["n_taxa"], row["n_sites"], nrf_latent, row["nrf_latent_noadv"], row["nrf_latent_adv"], nrfs["nj_p"], nrfs["fasttree"], nrfs["iqtree"],
        row["loglik_latent"], row["loglik_fasttree"], row["loglik_iqtree"], model_tree,
        row["disc_auc_before"], row["disc_auc_after"],
    )  # fmt: skip
    return {**row, "paths": paths}


def _score_and_reconstruct(
    partials: np.ndarray, names: Sequence[str], trees: Mapping[str, Any], threads: int | None = 1
) -> tuple[dict[str, float], str, dict[str, str]]:
    """Every tree's log-likelihood under one GTR + Gamma(4), and the latent tree's ancestral sequences.

    Args:
        partials: ``[n, L]`` codes 0..14 (:func:`~seqae.phylo.patterns.partial_codes`).
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


def _check_overlap(codes: np.ndarray, names: Sequence[str]) -> str | None:
    from seqae.phylo.distance import pair_counts

    sites = pair_counts(codes).sites
    np.fill_diagonal(sites, 1)
    if (sites == 0).any():
        i, j = (int(x) for x in np.argwhere(sites == 0)[0])
        return f"sequences {names[i]!r} and {names[j]!r} share no site where both have a definite base"
    return None


def _render(tree, out: Path, name: str, labels: Mapping[str, str], width: int, unit: str) -> dict[str, Path]:
    from seqae.phylo.render import render_tree

    drawn = tree.copy()
    outgroup = drawn.get_midpoint_outgroup()
    if outgroup is not None and outgroup is not drawn:
        drawn.set_outgroup(outgroup)
    paths = {}
    for layout, stem in (("rectangular", name), ("circular", f"{name}.circular")):
        for ext in (".png", ".svg"):
            key = f"{'' if layout == 'rectangular' else 'circular_'}{ext[1:]}"
            paths[key] = render_tree(drawn, out / f"{stem}{ext}", labels=labels or None, layout=layout, title=name,
                                     width=width, scale_unit=unit)  # fmt: skip
    return paths


def gather_trees(rows: Sequence[str | os.PathLike[str]], out_tsv: str | os.PathLike[str]) -> pd.DataFrame:
    """Concatenate one-row family TSVs (from :func:`run_family`) into ``trees.tsv``.

    Raises:
        InputError: no rows given, a file that is not a family row (columns
            differ from :data:`TREES_COLUMNS`), or a family listed twice.
    """
    if not rows:
        raise InputError(out_tsv, "no family rows to gather")
    frames = []
    for path in rows:
        p = require_file(path, "family row file")
        try:
            frame = pd.read_csv(p, sep="\t")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise InputError(p, f"not a tab-separated table ({str(exc).splitlines()[0]})") from None
        if tuple(frame.columns) != TREES_COLUMNS:
            raise InputError(p, f"columns are not those of a family row ({', '.join(TREES_COLUMNS[:3])}, ...)")
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    twice = table["family"][table["family"].duplicated()].tolist()
    if twice:
        raise InputError(out_tsv, f"family {twice[0]!r} appears in more than one row file")
    write_tsv(table, out_tsv)
    return table


def summarise_trees(table: pd.DataFrame) -> dict[str, Any]:
    """Mean nRF to the reference per method, and how the latent trees fare against NJ on p-distances.

    Args:
        table: ``trees.tsv`` (:data:`TREES_COLUMNS`).

    Returns:
        ``n_families``, ``n_with_reference``; per nRF column ``mean``, ``sem``
        and ``n`` (families with a value); ``latent_vs_nj_p``: families where
        the latent tree is ``better``, ``tied`` or ``worse`` than NJ-p, and
        ``latent_le_nj_p`` (mean latent nRF <= mean NJ-p nRF; None without a
        reference); the mean discriminator AUC before and after;
        ``loglik_latent_vs_fasttree`` and ``loglik_latent_vs_iqtree``: over
        the families with both log-likelihoods, ``n``, ``latent_ge`` (the
        latent tree's is at least the method's, within :data:`LOGLIK_TIE`
        units) and ``mean_difference`` (latent minus the method; None
        without families).
    """
    summary: dict[str, Any] = {"n_families": len(table),
                               "n_with_reference": int(table["nrf_latent"].notna().sum())}  # fmt: skip
    for column in NRF_COLUMNS:
        values = table[column].dropna().to_numpy(float) if column in table else np.zeros(0)  # older tables lack some
        sem = float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else float("nan")
        summary[column] = {"mean": float(values.mean()) if values.size else None,
                           "sem": sem if math.isfinite(sem) else None, "n": int(values.size)}  # fmt: skip
    both = table[["nrf_latent", "nrf_nj_p"]].dropna()
    diff = both["nrf_latent"] - both["nrf_nj_p"]
    summary["latent_vs_nj_p"] = {
        "better": int((diff < -1e-9).sum()),
        "tied": int((diff.abs() <= 1e-9).sum()),
        "worse": int((diff > 1e-9).sum()),
        "latent_le_nj_p": bool(diff.mean() <= 1e-9) if len(both) else None,
    }
    for column in ("disc_auc_before", "disc_auc_after"):
        values = table[column].dropna()
        summary[f"mean_{column}"] = float(values.mean()) if len(values) else None
    for method in ("fasttree", "iqtree"):
        columns = ["loglik_latent", f"loglik_{method}"]
        if not set(columns) <= set(table.columns):  # a table written before these columns
            summary[f"loglik_latent_vs_{method}"] = {"n": 0, "latent_ge": 0, "mean_difference": None}
            continue
        pair = table[columns].dropna()
        diff = pair["loglik_latent"] - pair[f"loglik_{method}"]
        summary[f"loglik_latent_vs_{method}"] = {
            "n": len(pair),
            "latent_ge": int((diff >= -LOGLIK_TIE).sum()),
            "mean_difference": float(diff.mean()) if len(pair) else None,
        }
    return summary


def draw_tree_summary(table: pd.DataFrame, path: str | os.PathLike[str], title: str = "Trees") -> Path:
    """Bar figure of the mean nRF to the reference per method (± s.e.m.), one point per family.

    Families without a reference have no nRF; with none at all the figure
    says so instead of drawing empty bars.
    """
    from seqae.figure import plt, save_figure

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    summary = summarise_trees(table)
    columns = [c for c in NRF_COLUMNS if summary[c]["n"]]
    if not columns:
        ax.text(0.5, 0.5, "no reference trees: no nRF to show", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        rng = np.random.default_rng(0)  # fixed jitter: the same table draws the same figure
        for i, column in enumerate(columns):
            values = table[column].dropna().to_numpy(float)
            ax.bar(i, summary[column]["mean"], yerr=summary[column]["sem"] or 0.0, edgecolor="black", capsize=4,
                   color="#2c7fb8" if column == "nrf_latent" else "#bdbdbd", zorder=1)  # fmt: skip
            ax.scatter(i + rng.uniform(-0.25, 0.25, values.size), values, s=10, color="black", alpha=0.6, zorder=2)
        ax.set_xticks(range(len(columns)), [NRF_COLUMNS[c] for c in columns], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("normalised RF to the reference\n(lower is better; 0 = same topology)", fontsize=9)
        ax.set_ylim(0, 1.05)  # nRF lies in [0, 1]; the margin keeps dots at 1 whole
    ax.set_title(f"{title}\n{len(table)} families: mean ± s.e.m., a dot per family", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
