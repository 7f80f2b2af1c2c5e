"""Linear probes of every latent block, the full latent, PCA and the k-mer baseline on every
label (probe_matrix.tsv, recoverability flags); MIG and DCI of the latent and of PCA.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqae.errors import SeqaeError
from seqae.evaluation.data import EvaluationData
from seqae.evaluation.labels import known
from seqae.evaluation.settings import kmer_row_name
from seqae.fileio import write_tsv

log = logging.getLogger("seqae")

__all__ = ["evaluate_disentanglement", "evaluate_probes"]


def evaluate_probes(
    data: EvaluationData,
    layout: Any,
    block_labels: Mapping[str, str],
    features: dict[str, tuple[np.ndarray, np.ndarray]],
    cfg: Mapping[str, Any],
    outdir: Path,
) -> tuple[dict[str, Any], Any, pd.DataFrame]:
    """The probe matrix (written as probe_matrix.tsv) and recoverability flags; returns (metrics, ProbeMatrix, flags)."""
    from seqae.metrics import kmer_baseline_features, probe_matrix, recoverability_flags

    kmer_name = kmer_row_name(cfg["kmer_k"])
    features[kmer_name] = (
        kmer_baseline_features(data.train_seq, cfg["kmer_k"]),
        kmer_baseline_features(data.test_seq, cfg["kmer_k"]),
    )
    labels = {}
    for name in data.label_names:
        if not known(data.y_train[name]).any() or not known(data.y_test[name]).any():
            log.warning("evaluate: label %r has no known value in the train or test windows; not probed", name)
            continue
        classes = np.unique(data.y_train[name][known(data.y_train[name])].astype(str))
        if len(classes) < 2:  # a probe of one class scores 1.0 against a chance of 1.0
            log.warning(
                "evaluate: label %r has one value (%r) in every train window; not probed", name, str(classes[0])
            )
            continue
        labels[name] = (data.y_train[name], data.y_test[name])
    if not labels:
        raise SeqaeError(f"{data.windows}: no label with known values in both the train and test windows")
    pm = probe_matrix(features, labels, max_iter=cfg["probe_max_iter"], seed=cfg["seed"], C=cfg["probe_C"])
    flags = recoverability_flags(pm.accuracy, kmer_name, pm.chance, margin=cfg["recoverable_margin"])
    long = pm.long.copy()
    kinds = {f: "block" if f in layout else "latent" if f == "latent" else "baseline" for f in features}
    long.insert(1, "feature_kind", long["features"].map(kinds))
    long["recoverable"] = long["label"].map(flags["recoverable"]).astype(bool)
    long["flag"] = long["label"].map(flags["flag"])
    write_tsv(long, outdir / "probe_matrix.tsv")

    acc = pm.accuracy
    bal = pm.long.pivot(index="features", columns="label", values="balanced_accuracy").reindex(
        index=acc.index, columns=acc.columns
    )
    unlabelled = [b for b in layout.names if b not in block_labels]
    blocks = {}
    for block, label in block_labels.items():
        if label not in acc.columns:
            continue
        blocks[block] = {
            "label": label,
            "probe": float(acc.loc[block, label]),
            "kmer_baseline": float(acc.loc[kmer_name, label]),
            "pca": float(acc.loc["pca", label]),
            "latent": float(acc.loc["latent", label]),
            "chance": float(pm.chance[label]),
            "recoverable": bool(flags.loc[label, "recoverable"]),
            # The other blocks read on this block's label: what the adversaries should have removed.
            "other_blocks": {other: float(acc.loc[other, label]) for other in layout.names if other != block},
            "residual": {other: float(acc.loc[other, label]) for other in unlabelled},
            # This block read on the other labels: leakage out of the block.
            "leakage": {other: float(acc.loc[block, other]) for other in acc.columns if other != label},
        }
    metrics = {
        "baseline_row": kmer_name,
        "feature_sets": list(acc.index),
        "labels": list(acc.columns),
        "chance": {k: float(v) for k, v in pm.chance.items()},
        "accuracy": {f: {lab: float(acc.loc[f, lab]) for lab in acc.columns} for f in acc.index},
        "balanced_accuracy": {f: {lab: float(bal.loc[f, lab]) for lab in bal.columns} for f in bal.index},
        "recoverable": {lab: bool(flags.loc[lab, "recoverable"]) for lab in flags.index},
        "flag": {lab: str(flags.loc[lab, "flag"]) for lab in flags.index},
        "margin": cfg["recoverable_margin"],
        "n_train": int(data.train_seq.shape[0]),
        "n_test": int(data.test_seq.shape[0]),
        "blocks": blocks,
    }
    return metrics, pm, flags


def evaluate_disentanglement(
    data: EvaluationData,
    factors: list[str],
    features: Mapping[str, tuple[np.ndarray, np.ndarray]],
    cfg: Mapping[str, Any],
) -> dict[str, Any]:
    """MIG (test rows) and DCI (fitted on train rows, scored on test rows) of the latent and of PCA."""
    from seqae.metrics import dci, mig_per_factor

    out: dict[str, Any] = {"factors": factors, "method": cfg["dci_method"], "mig": {}, "mig_per_factor": {}, "dci": {}}
    if not factors:
        return out
    f_tr = np.stack([data.y_train[f] for f in factors], axis=1)
    f_te = np.stack([data.y_test[f] for f in factors], axis=1)
    keep_tr = np.all([known(column) for column in f_tr.T], axis=0)
    keep_te = np.all([known(column) for column in f_te.T], axis=0)
    out["n_train"], out["n_test"] = int(keep_tr.sum()), int(keep_te.sum())
    if keep_tr.sum() < 2 or keep_te.sum() < 2:
        return out
    f_tr, f_te = f_tr[keep_tr].astype(str), f_te[keep_te].astype(str)
    for name in ("latent", "pca"):
        z_tr, z_te = features[name][0][keep_tr], features[name][1][keep_te]
        per = mig_per_factor(z_te, f_te, n_bins=cfg["mig_bins"])
        # mig() is the mean over non-constant factors of mig_per_factor.
        out["mig"][name] = float(np.nanmean(per)) if np.isfinite(per).any() else float("nan")
        out["mig_per_factor"][name] = dict(zip(factors, per.tolist(), strict=True))
        d = dci(z_tr, f_tr, z_te, f_te, method=cfg["dci_method"], max_train=cfg["dci_max_train"], seed=cfg["seed"])
        out["dci"][name] = {
            "disentanglement": d["disentanglement"],
            "completeness": d["completeness"],
            "informativeness": d["informativeness"],
            "accuracy_per_factor": dict(zip(factors, np.asarray(d["accuracy_per_factor"]).tolist(), strict=True)),
        }
    return out
