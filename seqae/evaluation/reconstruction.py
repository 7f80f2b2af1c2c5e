"""Reconstruction: the model's base accuracy and track Pearson r beside PCA with the same
number of dimensions (and, with a local latent sequence, PCA at the model's full bottleneck).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from seqae.evaluation.data import EvaluationData, subsample
from seqae.evaluation.passes import pca_apply

__all__ = ["evaluate_reconstruction"]


def evaluate_reconstruction(
    data: EvaluationData, test_out: Mapping[str, Any], model: Any, cfg: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Model vs PCA reconstruction; returns the metrics and the PCA pieces (``pca``, embeddings, test error).

    PCA is fitted at the latent's size (its embedding is also the probes'
    baseline). A model with a local latent sequence carries ``D`` global
    coordinates plus one code per ``downsample`` bases; PCA is then also
    fitted with ``D + L'`` components (one per local code), reported as
    ``bottleneck.pca_same_dims_base_accuracy``, and the model's capacity is
    given in bits per base.
    """
    from seqae.metrics import pca_baseline, sequence_accuracy, track_pearson

    seed = cfg["seed"]
    latent_dim = model.layout.dim
    rows = subsample(np.arange(data.train_seq.shape[0]), cfg["pca_train_max"], np.random.default_rng([seed, 2]))
    n_components = min(latent_dim, rows.size, 4 * data.test_seq.shape[1])
    res = pca_baseline(data.train_seq[rows], data.test_seq, n_components, seed=seed, svd_solver="randomized")
    train_emb, _ = pca_apply(res["pca"], data.train_seq)
    test_emb, test_err = pca_apply(res["pca"], data.test_seq)
    local_codes = test_out.get("local_codes")
    n_local = int(local_codes.shape[1]) if local_codes is not None else 0
    bottleneck: dict[str, Any] = {
        "global_coordinates": int(latent_dim),
        "global_kind": model.kind,
        "local_codes": n_local,
        "local_bits_per_base": float(getattr(model, "local_bits_per_base", 0.0)),
        "decoder": model.settings.get("decoder", {}).get("kind", "conv"),
        "decoding": "base after base from the latent alone"
        if getattr(model, "autoregressive", False) and not getattr(model, "has_direct_head", False)
        else "every base from the latent at once",
    }
    if n_local:
        same = min(latent_dim + n_local, rows.size, 4 * data.test_seq.shape[1])
        res_same = pca_baseline(data.train_seq[rows], data.test_seq, same, seed=seed, svd_solver="randomized")
        bottleneck["pca_same_dims_n_components"] = int(same)
        bottleneck["pca_same_dims_base_accuracy"] = res_same["base_accuracy"]
    if test_out.get("next_base_pred") is not None:
        # Given the true previous bases: how well the decoder predicts the next one (not a reconstruction).
        bottleneck["next_base_accuracy"] = sequence_accuracy(test_out["next_base_pred"], data.test_seq)
    track_names = list(data.schema.track_names)
    pearson = track_pearson(test_out["tracks_pred"], data.test_tracks.astype(np.float32)) if track_names else None
    metrics = {
        "base_accuracy": sequence_accuracy(test_out["pred"], data.test_seq),
        "pca_base_accuracy": res["base_accuracy"],
        "pca_n_components": int(n_components),
        "pca_n_train": int(rows.size),
        "pca_explained_variance": float(np.sum(res["explained_variance_ratio"])),
        "bottleneck": bottleneck,
        "track_pearson": {
            name: {
                "mean_window_r": float(pearson["mean_window_r"][i]),
                "pooled_r": float(pearson["pooled_r"][i]),
                "n_windows": int(pearson["n_windows"][i]),
            }
            for i, name in enumerate(track_names)
        }
        if pearson is not None
        else {},
    }
    return metrics, {"pca": res["pca"], "train_emb": train_emb, "test_emb": test_emb, "test_err": test_err}
