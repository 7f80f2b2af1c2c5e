"""Anomaly scores: real test windows against dinucleotide-shuffled and foreign windows, beside
PCA's error and Markov-chain baselines; for an autoregressive decoder, the latent's own contribution.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from seqae.alphabet import CODE_N
from seqae.evaluation.data import EvaluationData
from seqae.evaluation.passes import pca_apply, score_windows

__all__ = ["evaluate_anomaly"]


def evaluate_anomaly(
    model: Any,
    data: EvaluationData,
    test_out: Mapping[str, Any],
    pca: Mapping[str, Any],
    cfg: Mapping[str, Any],
    device: torch.device,
) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """AUROC of real test windows vs dinucleotide-shuffled and foreign windows.

    Returns:
        (metrics, scores, sequence scores, chain scores): the per-window scores of the real
        windows and of each control; the chain scores (the decoder's error with its latent
        off, nats per base) only for an autoregressive decoder, else None.
    """
    from seqae.metrics import auroc, composition_entropy, dinucleotide_shuffle, fit_markov, foreign_windows

    rng = np.random.default_rng([cfg["seed"], 5])
    shuffled = dinucleotide_shuffle(data.test_seq, rng)
    called = int((data.train_seq < CODE_N).sum())
    gc = float(np.isin(data.train_seq, (1, 2)).sum() / max(1, called))
    foreign = foreign_windows(data.test_seq.shape[0], data.test_seq.shape[1], gc=gc, rng=rng)
    # Foreign windows carry real tracks, drawn from other test windows: all-zero
    # tracks are reconstructed almost perfectly, so they would make foreign
    # windows look *more* normal than real ones and the control would measure
    # the tracks rather than the sequence.
    foreign_tracks = data.test_tracks[rng.permutation(data.test_tracks.shape[0])]
    bs = cfg["batch_size"]
    score_shuf, seq_shuf, chain_shuf = score_windows(model, shuffled, data.test_tracks, bs, device)
    score_foreign, seq_foreign, chain_foreign = score_windows(model, foreign, foreign_tracks, bs, device)
    scores = {"real": test_out["score"], "shuffled": score_shuf, "foreign": score_foreign}
    seq_scores = {"real": test_out["seq_score"], "shuffled": seq_shuf, "foreign": seq_foreign}
    pca_err = {
        "real": pca["test_err"],
        "shuffled": pca_apply(pca["pca"], shuffled)[1],
        "foreign": pca_apply(pca["pca"], foreign)[1],
    }
    order = cfg["markov_order"]
    high, low = fit_markov(data.train_seq, order), fit_markov(data.train_seq, 1)
    controls = {"real": data.test_seq, "shuffled": shuffled, "foreign": foreign}
    low_ll = {k: low.log_likelihood(codes) for k, codes in controls.items()}  # nats per base, used twice below
    high_ll = {k: high.log_likelihood(codes) for k, codes in controls.items()}
    markov = {k: low_ll[k] - high_ll[k] for k in controls}  # = markov_ratio_score
    # The order-k chain's own error, without the order-1 correction: what a model's raw
    # sequence error (seq_auroc_*) is to be read against.
    markov_raw = {k: -high_ll[k] for k in controls}
    # The sequence error less an order-1 chain's (both nats per base): the
    # background-model correction of likelihood-ratio OOD detection. A window
    # and its dinucleotide shuffle have the same order-1 likelihood, so this
    # only removes the between-window spread that composition puts into the
    # raw error (AT-rich windows are easy to rebuild, shuffled or not).
    corrected = {k: seq_scores[k] + low_ll[k] for k in controls}
    families = (
        ("", scores),
        ("seq_", seq_scores),
        ("seq_corrected_", corrected),
        ("pca_", pca_err),
        ("markov_", markov),
        ("markov_raw_", markov_raw),
    )
    metrics: dict[str, Any] = {"markov_order": order}
    for prefix, values in families:
        for control in ("shuffled", "foreign"):
            metrics[f"{prefix}auroc_{control}"] = auroc(values["real"], values[control])
    # Per kind of window (peak / background), each window against its own shuffle:
    # background windows have little beyond dinucleotides to tell them from one.
    metrics["by_kind"] = {}
    if data.test_kind is not None:
        for kind in sorted(set(data.test_kind)):
            rows = data.test_kind == kind
            entry: dict[str, Any] = {"n": int(rows.sum())}
            for prefix, values in families:
                entry[f"{prefix}auroc_shuffled"] = auroc(values["real"][rows], values["shuffled"][rows])
            metrics["by_kind"][kind] = entry
    metrics["mean_score"] = {k: float(np.mean(v)) for k, v in scores.items()}
    metrics["mean_seq_score"] = {k: float(np.mean(v)) for k, v in seq_scores.items()}
    # Equal for a window and its shuffle, so gain(real) - gain(shuffled) is
    # what the model reads beyond composition, and the rest of its gain is
    # generic compression that helps a shuffled window just as much.
    composition = {k: float(np.nanmean(composition_entropy(codes))) for k, codes in controls.items()}
    metrics["composition_seq_score"] = composition
    metrics["seq_gain_over_composition"] = {k: composition[k] - metrics["mean_seq_score"][k] for k in controls}
    metrics["latent_contribution"] = None
    chain_scores: dict[str, np.ndarray] | None = None
    if getattr(model, "autoregressive", False):
        # Exact for a decoder that also learnt to run without its latent: the per-base
        # log-likelihood with the latent minus without it. A shuffle keeps the
        # dinucleotides, so real - shuffled is what the latent carries beyond them.
        tracks_of = {"real": data.test_tracks, "shuffled": data.test_tracks, "foreign": foreign_tracks}
        off = {
            k: score_windows(model, codes, tracks_of[k], bs, device, latent_off=True, sequence_only=True)[1]
            for k, codes in controls.items()
        }
        gain = {k: float(np.mean(off[k] - seq_scores[k])) for k in controls}
        order_k = getattr(model.decoder, "order_k", None) is not None
        # The decoder's own chain over its context and reach: the anomaly score. Where the
        # latent path reads only the k-base table, the chain is a separate, longer model.
        # The passes above already ran it wherever it is the anomaly score.
        chained = {"real": test_out.get("chain_seq_score"), "shuffled": chain_shuf, "foreign": chain_foreign}
        if not order_k:
            chain = off
        elif all(v is not None for v in chained.values()):
            chain = chained
        else:
            chain = {
                k: score_windows(model, codes, tracks_of[k], bs, device, chain=True, sequence_only=True)[1]
                for k, codes in controls.items()
            }
        chain_scores = chain
        chain_gain = {k: float(np.mean(chain[k] - seq_scores[k])) for k in controls}
        metrics["latent_contribution"] = {
            "baseline": "order_k_chain" if order_k else "chain",
            "nats_per_base": gain,
            "real_minus_shuffled": gain["real"] - gain["shuffled"],
            "baseline_mean_seq_score": {k: float(np.mean(v)) for k, v in off.items()},
            # What the latent path with its latent adds to the decoder's chain over the reach
            # (the same as above unless the latent path reads no reach).
            "vs_chain_nats_per_base": chain_gain,
            "vs_chain_real_minus_shuffled": chain_gain["real"] - chain_gain["shuffled"],
            "no_latent_mean_seq_score": {k: float(np.mean(v)) for k, v in chain.items()},
            "no_latent_auroc_shuffled": auroc(chain["real"], chain["shuffled"]),
            "no_latent_auroc_foreign": auroc(chain["real"], chain["foreign"]),
            # The decoder's own chain, less the order-1 chain's error: the counterpart
            # of seq_corrected_auroc_* and of the Markov ratio.
            "no_latent_corrected_auroc_shuffled": auroc(
                chain["real"] + low_ll["real"], chain["shuffled"] + low_ll["shuffled"]
            ),
            "no_latent_corrected_auroc_foreign": auroc(
                chain["real"] + low_ll["real"], chain["foreign"] + low_ll["foreign"]
            ),
        }
    metrics["pca_mean_error"] = {k: float(np.mean(v)) for k, v in pca_err.items()}
    metrics["foreign_gc"] = gc
    metrics["n"] = int(data.test_seq.shape[0])
    return metrics, scores, seq_scores, chain_scores
