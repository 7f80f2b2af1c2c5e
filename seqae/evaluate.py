"""Evaluation stage: judge a trained autoencoder, block by block, against what the sequence itself carries.

``evaluate_model("best.pt", "windows.h5", "results/eval/plain")`` scores the
model on the **test split** of a windows file (probes and judges are fitted on
the train split only) and writes into the output folder::

    metrics.json         every number below, each beside its baseline (see METRICS_KEYS)
    probe_matrix.tsv     the linear-probe matrix in long format (one row per feature set x label)
    probe_matrix.png     heatmap of held-out probe accuracy; chance and not-recoverable labels marked
    latent/latent_<block>.png  2-D PCA (and UMAP when ``umap`` imports) of each block's test embedding,
                         coloured by the block labels (chromosome, gene label)
    anomaly_scores.png   anomaly-score histograms: real vs dinucleotide-shuffled vs foreign windows
    loss_curves.png      copied from the training folder when it is there

What is measured, and against what:

* **Reconstruction**: per-base accuracy of the argmax bases and per-track
  Pearson r, beside **PCA with the same latent size** fitted on one-hot train
  windows (the lectures' reference point: an autoencoder that does not beat
  PCA has learnt nothing a linear map could not).
* **Linear probes** (:func:`seqae.metrics.probe_matrix`): rows = every latent
  block, the full latent, the PCA embedding and the **k-mer frequency
  baseline** of the raw sequence; columns = the blocks' labels plus
  ``peak_set`` (TF identity: which TF's peak, or background), ``region_class``
  and ``tss_bin`` (TSS distance in bins, :func:`tss_distance_bins`).
  A label the k-mer baseline cannot read above chance is flagged *not
  recoverable from sequence*: no block can be asked to encode it.
* **MIG and DCI** of the latent (and of PCA) against the block labels.
* **Swap success**: windows decoded with another window's block
  (:func:`seqae.swap.swap_latents`) are classified by a judge trained on raw
  train sequence (:func:`seqae.metrics.train_judge`); reported: the fraction
  assigned to the donor's label and the fraction still assigned to the
  recipient's, over pairs with different labels; the judge's ceiling: how
  often it still recognises the recipient's label in the plain
  reconstruction; and whether the rest of the recipient is kept: the share
  of positions where the swapped window's likeliest base is that of the
  recipient's own reconstruction, beside the share for the donor's. The
  judge reads bases sampled from the decoder's softmax (``swap_decoding``),
  as a generator's would be: the arg-max of a window reconstructed near its
  base composition is one base nearly everywhere, a k-mer spectrum the judge
  never saw. Only for labels the judge can read on real test windows above
  chance.
* **Anomaly AUROC**: the model's anomaly score of real test windows against
  dinucleotide-shuffled copies (same tracks) and against foreign i.i.d.
  windows at the train windows' GC (with the tracks of other real test
  windows). Beside it: the score's sequence part alone; that part less an
  order-1 Markov chain's error (``seq_corrected_``, the background correction
  of likelihood-ratio out-of-distribution detection); PCA's one-hot
  reconstruction error; and a model-free baseline, the likelihood ratio of an
  order-``markov_order`` to an order-1 Markov chain fitted on the train
  windows (:mod:`seqae.metrics.markov`). Also per kind of window (``peak`` /
  ``background``): a window made of order-1 background sequence cannot be
  told from its dinucleotide shuffle by any score. And the mean sequence
  error beside each window's own base-composition entropy: the model's gain
  over it on shuffled windows is position information any sequence can pass
  through the latent (as PCA's does); only its larger gain on real windows
  is structure the model learnt, and what the AUROC can rest on.
* **VAE**: k-mer spectrum distance (k = 3, 4, 5) of prior samples vs real test
  windows, with train vs test as the floor. **VQ**: per-block perplexity and
  code usage on the test windows.

Cost is bounded by ``test_max``, ``train_max`` and friends
(:data:`DEFAULT_EVALUATE_SETTINGS`); every random draw is seeded by ``seed``.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from seqae import __version__
from seqae.alphabet import CODE_N
from seqae.errors import ConfigError, InputError, SeqaeError
from seqae.fileio import atomic_output, require_file, write_tsv
from seqae.progress import progress_bar
from seqae.runtime import forward_batch_size, resolve_device
from seqae.windows.store import UNKNOWN_LABELS

log = logging.getLogger("seqae")

__all__ = [
    "DEFAULT_EVALUATE_SETTINGS",
    "EVALUATE_SETTINGS_HELP",
    "METRICS_KEYS",
    "TSS_BIN_NONE",
    "evaluate_model",
    "evaluate_settings",
    "kmer_row_name",
    "tss_bin_names",
    "tss_distance_bins",
]

METRICS_FORMAT = "seqae-evaluation"
METRICS_FORMAT_VERSION = 1

#: Evaluation settings and their defaults (``evaluate:`` in the config); see :data:`EVALUATE_SETTINGS_HELP`.
DEFAULT_EVALUATE_SETTINGS: dict[str, Any] = {
    "test_max": 5000,
    "train_max": 20000,
    "pca_train_max": 10000,
    "judge_max": 10000,
    "swap_max": 2000,
    "generate_n": 2000,
    "kmer_k": 4,
    "judge_k": [3, 4, 5],
    "swap_decoding": "sample",
    "spectrum_k": [3, 4, 5],
    "labels": None,
    "tss_bins": [-10000, -1000, 1000, 10000],
    "probe_C": 1.0,
    "probe_max_iter": 1000,
    "recoverable_margin": 0.02,
    "dci_method": "logistic",
    "dci_max_train": 3000,
    "mig_bins": 20,
    "batch_size": None,
    "blas_threads": 1,
    "figures": True,
    "markov_order": 5,
    "truth_sites": None,
    "seed": 0,
}

#: One line per evaluation setting.
EVALUATE_SETTINGS_HELP: dict[str, str] = {
    "test_max": "Test-split windows evaluated at most (a seeded random subset when there are more).",
    "train_max": "Train-split windows at most on which probes, DCI and the k-mer baseline are fitted.",
    "pca_train_max": "Train windows at most on which the PCA baseline is fitted (one-hot, 4 x window_len columns).",
    "judge_max": "Train windows at most on which each swap judge (raw-sequence classifier) is fitted.",
    "swap_max": "Recipient windows at most per swapped block (donors drawn among the test windows).",
    "generate_n": "VAE prior samples for the k-mer spectrum distance (at most the number of test windows).",
    "kmer_k": "k of the k-mer frequency baseline probed for every label: one k (e.g. 4) or a list (e.g. [3, 4, 5], concatenated).",
    "judge_k": "k-mer lengths whose frequencies the swap judge reads.",
    "swap_decoding": "How swapped (and, for the judge's ceiling, plain) reconstructions become bases for the judge: sample (each base drawn from the decoder's softmax, seeded) or argmax (the most likely base, which at composition-level confidence is one base nearly everywhere).",
    "spectrum_k": "k-mer lengths of the VAE spectrum distance.",
    "labels": "Label columns probed; null: the blocks' labels, peak_set (which TF's peak, or background), region_class and tss_bin (derived from tss_distance).",
    "tss_bins": "Increasing bin edges (bp) of the tss_bin label; windows without a gene get 'none'.",
    "probe_C": "Inverse L2 strength of the logistic-regression probes (standardised features).",
    "probe_max_iter": "lbfgs iteration limit of the probes.",
    "recoverable_margin": "Accuracy above chance the k-mer baseline (and a judge) must reach for a label to count as readable from sequence.",
    "dci_method": "DCI importance model: logistic (fast) or gbt (gradient-boosted trees, on dci_max_train rows).",
    "dci_max_train": "Train rows at most for the DCI models.",
    "mig_bins": "Bins per latent dimension for the MIG mutual-information estimate.",
    "batch_size": "Windows per model forward pass (null: 512 on a GPU, 32 on the CPU, where larger batches are slower).",
    "blas_threads": "BLAS threads of the scikit-learn and NumPy metrics (probes, PCA, DCI); null leaves the libraries' default. One thread is fastest for these small problems and immune to oversubscription on a busy machine.",
    "figures": "Draw the figures (false: metrics.json and probe_matrix.tsv only).",
    "markov_order": "Order k of the Markov-chain anomaly baseline: the likelihood ratio of an order-k to an order-1 chain fitted on the train windows (what k-mer statistics alone tell from shuffled windows).",
    "truth_sites": "Tab-separated table of known sites (columns chrom, start, end, 0-based half-open, and tf), e.g. the demo's planted motifs (results/demo_data/truth/sites.tsv): reconstruction accuracy on site bases against the other bases, and the mutual information between the local code at each site and its TF; null: not computed.",
    "seed": "Seed of every random draw (subsets, shuffles, foreign windows, donors, VAE samples).",
}

#: Keys always present in metrics.json (dotted paths); ``vae`` / ``vq`` are null for other kinds.
METRICS_KEYS: tuple[str, ...] = (
    "format",
    "format_version",
    "seqae_version",
    "model.name",
    "model.kind",
    "model.path",
    "model.latent_dim",
    "model.blocks",
    "data.windows",
    "data.window_len",
    "data.track_names",
    "data.n_test",
    "data.n_test_available",
    "data.n_train",
    "data.n_train_available",
    "data.n_pca_train",
    "data.labels",
    "settings",
    "device",
    "reconstruction.base_accuracy",
    "reconstruction.pca_base_accuracy",
    "reconstruction.pca_explained_variance",
    "reconstruction.bottleneck",
    "reconstruction.track_pearson",
    "probes.baseline_row",
    "probes.feature_sets",
    "probes.labels",
    "probes.chance",
    "probes.accuracy",
    "probes.balanced_accuracy",
    "probes.recoverable",
    "probes.flag",
    "probes.blocks",
    "disentanglement.factors",
    "disentanglement.mig",
    "disentanglement.mig_per_factor",
    "disentanglement.dci",
    "swap",
    "anomaly.auroc_shuffled",
    "anomaly.auroc_foreign",
    "anomaly.seq_auroc_shuffled",
    "anomaly.seq_auroc_foreign",
    "anomaly.pca_auroc_shuffled",
    "anomaly.pca_auroc_foreign",
    "anomaly.seq_corrected_auroc_shuffled",
    "anomaly.seq_corrected_auroc_foreign",
    "anomaly.markov_order",
    "anomaly.markov_auroc_shuffled",
    "anomaly.markov_auroc_foreign",
    "anomaly.markov_raw_auroc_shuffled",
    "anomaly.markov_raw_auroc_foreign",
    "anomaly.by_kind",
    "anomaly.mean_score",
    "anomaly.mean_seq_score",
    "anomaly.composition_seq_score",
    "anomaly.seq_gain_over_composition",
    "anomaly.latent_contribution",
    "anomaly.pca_mean_error",
    "anomaly.foreign_gc",
    "anomaly.n",
    "sites",
    "vae",
    "vq",
    "figures",
    "timings",
)

#: tss_bin of a window without a nearest gene (no TSS distance).
TSS_BIN_NONE = "none"


# ---------------------------------------------------------------------- settings


def evaluate_settings(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Full evaluation settings: :data:`DEFAULT_EVALUATE_SETTINGS` updated by ``overrides``.

    Raises:
        ConfigError: an unknown key or an impossible value, named as ``evaluate.<key>``.
    """
    settings = copy.deepcopy(DEFAULT_EVALUATE_SETTINGS)
    for key, value in dict(overrides or {}).items():
        if key not in settings:
            raise ConfigError(f"evaluate.{key}: unknown key (allowed: {', '.join(sorted(settings))})")
        settings[key] = copy.deepcopy(value)
    threads = settings["blas_threads"]
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"evaluate.blas_threads: must be null or a positive integer, got {threads!r}")
    for key in (
        "test_max",
        "train_max",
        "pca_train_max",
        "judge_max",
        "swap_max",
        "probe_max_iter",
        "mig_bins",
        "dci_max_train",
    ):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"evaluate.{key}: must be a positive integer, got {value!r}")
    if (
        isinstance(settings["generate_n"], bool)
        or not isinstance(settings["generate_n"], int)
        or settings["generate_n"] < 0
    ):
        raise ConfigError(f"evaluate.generate_n: must be a non-negative integer, got {settings['generate_n']!r}")
    batch = settings["batch_size"]
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ConfigError(f"evaluate.batch_size: must be null or a positive integer, got {batch!r}")
    order = settings["markov_order"]
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= 8:
        raise ConfigError(f"evaluate.markov_order: must be an integer from 1 to 8, got {order!r}")
    for key in ("kmer_k", "judge_k", "spectrum_k"):
        ks = _as_ks(settings[key], key)
        settings[key] = ks[0] if isinstance(settings[key], int) else ks
    edges = settings["tss_bins"]
    if (
        not isinstance(edges, list | tuple)
        or not edges
        or any(isinstance(e, bool) or not isinstance(e, int | float) for e in edges)
    ):
        raise ConfigError(f"evaluate.tss_bins: must be a non-empty list of numbers, got {edges!r}")
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise ConfigError(f"evaluate.tss_bins: edges must increase, got {edges!r}")
    if settings["swap_decoding"] not in ("sample", "argmax"):
        raise ConfigError(f"evaluate.swap_decoding: {settings['swap_decoding']!r} is not one of ['sample', 'argmax']")
    if settings["dci_method"] not in ("logistic", "gbt"):
        raise ConfigError(f"evaluate.dci_method: {settings['dci_method']!r} is not one of ['logistic', 'gbt']")
    labels = settings["labels"]
    if labels is not None and (not isinstance(labels, list | tuple) or not all(isinstance(x, str) for x in labels)):
        raise ConfigError(f"evaluate.labels: must be null or a list of label column names, got {labels!r}")
    if not isinstance(settings["figures"], bool):
        raise ConfigError(f"evaluate.figures: must be true or false, got {settings['figures']!r}")
    sites = settings["truth_sites"]
    if sites is not None and (not isinstance(sites, str) or not sites):
        raise ConfigError(f"evaluate.truth_sites: must be null or a file path, got {sites!r}")
    if not isinstance(settings["seed"], int) or isinstance(settings["seed"], bool):
        raise ConfigError(f"evaluate.seed: must be an integer, got {settings['seed']!r}")
    return settings


def _as_ks(value: Any, key: str) -> list[int]:
    ks = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(ks, list | tuple)
        or not ks
        or any(isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 8 for k in ks)
    ):
        raise ConfigError(f"evaluate.{key}: must be a k-mer length 1..8 or a list of them, got {value!r}")
    return [int(k) for k in ks]


def kmer_row_name(k: int | Sequence[int]) -> str:
    """Name of the k-mer baseline row in the probe matrix: ``kmer4`` or ``kmer3+4+5``."""
    ks = [k] if isinstance(k, int) else list(k)
    return "kmer" + "+".join(str(x) for x in ks)


# ---------------------------------------------------------------------- labels


def _format_bp(x: float) -> str:
    a = abs(x)
    if a >= 1000 and a % 1000 == 0:
        text = f"{int(a) // 1000}k"
    elif a >= 1000 and a % 100 == 0:
        text = f"{a / 1000:g}k"
    else:
        text = f"{a:g}"
    return f"-{text}" if x < 0 else text


def tss_bin_names(edges: Sequence[float] = (-10000, -1000, 1000, 10000)) -> list[str]:
    """Names of the TSS-distance bins for increasing ``edges``, e.g. ``<-10k, -10k..-1k, -1k..1k, 1k..10k, >10k``."""
    edges = list(edges)
    names = [f"<{_format_bp(edges[0])}"]
    names += [f"{_format_bp(a)}..{_format_bp(b)}" for a, b in itertools.pairwise(edges)]
    names.append(f">{_format_bp(edges[-1])}")
    return names


def tss_distance_bins(distance: Any, edges: Sequence[float] = (-10000, -1000, 1000, 10000)) -> np.ndarray:
    """Bin signed TSS distances (bp; negative = upstream) into named classes.

    Bins are closed towards the TSS: with the default edges, ``-1k..1k`` holds
    ``-1000 <= d <= 1000``, ``1k..10k`` holds ``1000 < d <= 10000``,
    ``-10k..-1k`` holds ``-10000 <= d < -1000``, ``>10k`` is ``d > 10000`` and
    ``<-10k`` is ``d < -10000``. A missing distance (NaN: no gene) is :data:`TSS_BIN_NONE`.

    Args:
        distance: ``[N]`` distances (float; NaN = none).
        edges: increasing bin edges.

    Returns:
        ``object [N]`` bin names (:func:`tss_bin_names`).
    """
    d = np.asarray(distance, dtype=np.float64).reshape(-1)
    e = np.asarray(edges, dtype=np.float64)
    names = np.array(tss_bin_names(edges) + [TSS_BIN_NONE], dtype=object)
    # Upstream distances close their bin on the right edge, downstream ones on the left (towards the TSS).
    index = np.where(d < 0, np.searchsorted(e, d, side="right"), np.searchsorted(e, d, side="left"))
    index = np.where(np.isnan(d), len(names) - 1, index)
    return names[index]


def _label_values(series: pd.Series) -> np.ndarray:
    """A label column as ``object [N]`` strings, unknown values (empty, NaN) as None."""
    values = np.array(series.astype(str).to_numpy(dtype=object), dtype=object)
    missing = series.isna().to_numpy() | np.isin(values, list(UNKNOWN_LABELS))
    values[missing] = None
    return values


def _derive_labels(
    table: pd.DataFrame, settings: Mapping[str, Any], block_labels: Sequence[str]
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Label names probed, and their values ``object [N_file]`` (None = unknown)."""
    available = set(table.columns)
    if "tss_distance" in available:
        available.add("tss_bin")
    if settings["labels"] is None:
        wanted = list(dict.fromkeys([*block_labels, "peak_set", "region_class", "tss_bin"]))
        skipped = [name for name in wanted if name not in available]
        if skipped:
            log.warning("evaluate: no label column %s in the windows file; not probed", ", ".join(map(repr, skipped)))
        wanted = [name for name in wanted if name in available]
    else:
        wanted = list(dict.fromkeys(settings["labels"]))
        missing = [name for name in wanted if name not in available]
        if missing:
            raise SeqaeError(f"evaluate.labels: no label column {missing[0]!r} in the windows file")
    values: dict[str, np.ndarray] = {}
    for name in wanted:
        if name == "tss_bin" and "tss_bin" not in table.columns:
            values[name] = tss_distance_bins(table["tss_distance"].to_numpy(dtype=np.float64), settings["tss_bins"])
        else:
            values[name] = _label_values(table[name])
    return wanted, values


# ---------------------------------------------------------------------- helpers


def _subsample(rows: np.ndarray, n_max: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``n_max`` of ``rows``, a sorted seeded random subset."""
    if rows.size <= n_max:
        return rows
    return np.sort(rng.choice(rows, size=n_max, replace=False))


def _centre(array: np.ndarray, window_len: int) -> np.ndarray:
    start = (array.shape[-1] - window_len) // 2
    return array[..., start : start + window_len]


def _read_crops(path: str, rows: np.ndarray, window_len: int, n_tracks: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre crops of some windows: ``seq uint8 [n, L]``, ``tracks [n, T, L]`` (stored dtype)."""
    from seqae.windows.reader import read_windows

    if rows.size == 0:
        return np.zeros((0, window_len), np.uint8), np.zeros((0, n_tracks, window_len), np.float16)
    seq, tracks = read_windows(path, rows)
    seq = np.ascontiguousarray(_centre(seq, window_len))
    if tracks is None:
        tracks = np.zeros((len(rows), 0, window_len), np.float16)
    else:
        tracks = np.ascontiguousarray(_centre(tracks, window_len))
    return seq, tracks


def _batches(n: int, batch_size: int) -> list[slice]:
    return [slice(lo, min(n, lo + batch_size)) for lo in range(0, n, batch_size)]


@torch.inference_mode()
def _model_pass(
    model: Any,
    seq: np.ndarray,
    tracks: np.ndarray,
    batch_size: int,
    device: torch.device,
    progress: bool,
    desc: str,
    sampler: torch.Generator | None = None,
) -> dict[str, np.ndarray | None]:
    """One eval-mode forward pass over windows, in batches; results gathered on the device, one transfer.

    Args:
        sampler: when given, a generator on ``device`` that also draws ``sampled`` bases.

    Returns:
        ``latent float32 [N, D]``, ``pred uint8 [N, L]`` (argmax bases),
        ``sampled uint8 [N, L]`` (bases drawn from the decoder's softmax; None without ``sampler``),
        ``tracks_pred float32 [N, T, L]`` (stored scale), ``score float32 [N]``
        (anomaly score, as ``model.anomaly_score``), ``seq_score float32 [N]``
        (its sequence part: cross-entropy per non-N base), ``codes int64 [N, G]`` (VQ) or None,
        ``local_codes int64 [N, L']`` (local latent sequence) or None and, for an autoregressive
        decoder, ``next_base_pred uint8 [N, L]`` (arg-max given the true previous bases; ``pred``
        and ``sampled`` are then decoded from the latent alone: by the direct head, or base after base).
    """
    from seqae.models.decoder import bases_from_logits

    parts: dict[str, list[torch.Tensor]] = {
        k: []
        for k in (
            "latent",
            "pred",
            "sampled",
            "tracks_pred",
            "score",
            "seq_score",
            "chain_seq_score",
            "codes",
            "local_codes",
            "next_base_pred",
        )
    }
    autoregressive = bool(getattr(model, "autoregressive", False))
    slices = _batches(seq.shape[0], batch_size)
    for sl in progress_bar(len(slices), desc, "batch", progress, slices):
        x = torch.from_numpy(seq[sl]).to(device, non_blocking=True).long()
        t = torch.from_numpy(tracks[sl]).to(device, non_blocking=True).float()
        out = model(x, t)
        parts["latent"].append(out.latent.float())
        if autoregressive:
            # Teacher-forced logits see the true previous bases: their arg-max is a
            # next-base prediction, not a reconstruction. Reconstructions are decoded
            # from the latent alone (the direct head, or base after base).
            parts["next_base_pred"].append(out.seq_logits.argmax(1).to(torch.uint8))
            if out.local_codes is not None:
                parts["local_codes"].append(out.local_codes)
            greedy, _, _ = model.decode_bases(out.latent, out.local_codes, sample=False)
            parts["pred"].append(greedy.to(torch.uint8))
            if sampler is not None:
                drawn, _, _ = model.decode_bases(out.latent, out.local_codes, sample=True, generator=sampler)
                parts["sampled"].append(drawn.to(torch.uint8))
        else:
            parts["pred"].append(out.seq_logits.argmax(1).to(torch.uint8))
            if sampler is not None:
                parts["sampled"].append(bases_from_logits(out.seq_logits, True, sampler).to(torch.uint8))
        parts["tracks_pred"].append(model.tracks_to_stored(out.tracks_pred).float())
        score, seq_score, chain_seq_score = _window_scores(
            model, out.seq_logits, out.tracks_pred, x, t, out.chain_logits
        )
        parts["score"].append(score)
        parts["seq_score"].append(seq_score)
        if chain_seq_score is not None:
            parts["chain_seq_score"].append(chain_seq_score)
        if out.codes is not None:
            parts["codes"].append(out.codes)
    result: dict[str, np.ndarray | None] = {}
    for key, values in parts.items():
        result[key] = torch.cat(values).cpu().numpy() if values else None
    return result


def _window_scores(
    model: Any,
    seq_logits: torch.Tensor,
    tracks_pred: torch.Tensor,
    x: torch.Tensor,
    t: torch.Tensor,
    chain_logits: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Anomaly score (as ``model.anomaly_score``), the sequence error through the latent and the
    chain's sequence error (None for a model whose score is not the chain's), ``float32 [B]`` each.

    The chain runs once per batch: its logits feed both the score and its own error.
    """
    from seqae.models.objectives import sequence_error

    chain_error = None
    if getattr(model, "chain_scores", False):
        if chain_logits is None:
            chain_logits = model.chain_reconstruct(x)[0]
        chain_error = sequence_error(chain_logits, x).float()
    score = model.window_score(x, t, seq_logits, tracks_pred, chain_logits=chain_logits)
    return score.float(), sequence_error(seq_logits, x).float(), chain_error


@torch.inference_mode()
def _latents(
    model: Any, seq: np.ndarray, tracks: np.ndarray, batch_size: int, device: torch.device, progress: bool
) -> np.ndarray:
    """Deterministic latents ``float32 [N, D]`` (encoder only)."""
    parts = []
    slices = _batches(seq.shape[0], batch_size)
    for sl in progress_bar(len(slices), "encode train", "batch", progress, slices):
        x = torch.from_numpy(seq[sl]).to(device, non_blocking=True).long()
        t = torch.from_numpy(tracks[sl]).to(device, non_blocking=True).float()
        parts.append(model.encode(x, t))
    if not parts:
        return np.zeros((0, model.layout.dim), np.float32)
    return torch.cat(parts).cpu().numpy()


@torch.inference_mode()
def _scores(
    model: Any,
    seq: np.ndarray,
    tracks: np.ndarray,
    batch_size: int,
    device: torch.device,
    latent_off: bool = False,
    chain: bool = False,
    sequence_only: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Anomaly scores, their sequence-only part and the chain's sequence error, ``float32 [N]`` each
    (encode + decode in batches; the last None unless the model's score is its chain's).

    ``latent_off``: an autoregressive decoder's latent path with its latent switched off
    (the baseline of the latent's contribution); ``chain``: the decoder's own chain over
    its context and reach (the same unless the latent path reads no reach).
    ``sequence_only``: only the sequence error is wanted (the other two come back empty),
    which spares the chain's pass.
    """
    from seqae.models.objectives import sequence_error

    scores, seq_scores, chain_scores = [], [], []
    for sl in _batches(seq.shape[0], batch_size):
        x = torch.from_numpy(seq[sl]).to(device).long()
        t = torch.from_numpy(tracks[sl]).to(device).float()
        chain_logits = None
        if chain:
            seq_logits, tracks_pred = model.chain_reconstruct(x)
            chain_logits = seq_logits
        else:
            seq_logits, tracks_pred = model.reconstruct(x, t, latent_off=latent_off)
        if sequence_only:
            seq_scores.append(sequence_error(seq_logits, x).float())
            continue
        score, seq_score, chain_score = _window_scores(model, seq_logits, tracks_pred, x, t, chain_logits)
        scores.append(score)
        seq_scores.append(seq_score)
        if chain_score is not None:
            chain_scores.append(chain_score)
    if not seq_scores:
        return np.zeros(0, np.float32), np.zeros(0, np.float32), None
    if sequence_only:
        return np.zeros(0, np.float32), torch.cat(seq_scores).cpu().numpy(), None
    chained = torch.cat(chain_scores).cpu().numpy() if chain_scores else None
    return torch.cat(scores).cpu().numpy(), torch.cat(seq_scores).cpu().numpy(), chained


def _pca_apply(pca: Any, codes: np.ndarray, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """PCA embedding ``float32 [N, K]`` and per-window reconstruction error (mean squared, one-hot) ``[N]``."""
    from seqae.metrics import one_hot

    n, length = codes.shape
    emb = np.zeros((n, pca.n_components_), np.float32)
    err = np.zeros(n, np.float64)
    for lo in range(0, n, block):  # blocks of rows bound the one-hot memory
        x = one_hot(codes[lo : lo + block]).reshape(-1, 4 * length)
        z = pca.transform(x)
        emb[lo : lo + block] = z
        err[lo : lo + block] = np.mean((pca.inverse_transform(z) - x) ** 2, axis=1)
    return emb, err


def _clean(value: Any) -> Any:
    """JSON-ready copy: numpy scalars and arrays to Python, NaN and infinities to None."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _write_json(data: Mapping[str, Any], path: Path) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(_clean(data), indent=2, allow_nan=False) + "\n")


def _majority_chance(y_train: np.ndarray, y_test: np.ndarray) -> float:
    classes, counts = np.unique(y_train, return_counts=True)
    return float(np.mean(y_test == classes[np.argmax(counts)])) if y_test.size else float("nan")


def _known(values: np.ndarray) -> np.ndarray:
    """Mask of the rows of an ``object`` label array whose label is known (not None)."""
    return np.array([v is not None for v in values], dtype=bool)


def _different_label_donors(labels: np.ndarray, rng: np.random.Generator, tries: int = 20) -> np.ndarray:
    """For every row, a random other row, preferably with a different label (``int64 [N]``)."""
    n = labels.shape[0]
    donors = rng.integers(0, n, size=n)
    for _ in range(tries):  # a few vectorised redraws of the rows that drew their own label
        same = labels[donors] == labels
        if not same.any():
            break
        donors[same] = rng.integers(0, n, size=int(same.sum()))
    return donors


def _stage(timings: dict[str, float], name: str, start: float) -> float:
    now = time.perf_counter()
    timings[name] = round(now - start, 3)
    log.info("evaluate: %s done in %.1f s", name, now - start)
    return now


@dataclass
class _Data:
    """The evaluated windows, cropped to the model's window: codes ``uint8 [n, L]``, tracks ``[n, T, L]``,
    labels ``object [n]`` (None = unknown) per label name."""

    windows: str
    schema: Any
    test_rows: np.ndarray
    train_rows: np.ndarray
    n_test_available: int
    n_train_available: int
    test_seq: np.ndarray
    test_tracks: np.ndarray
    train_seq: np.ndarray
    train_tracks: np.ndarray
    label_names: list[str]
    y_test: dict[str, np.ndarray]
    y_train: dict[str, np.ndarray]
    test_kind: np.ndarray | None = None
    # Genome position of each test window's first evaluated base: chromosome [n] and coordinate [n].
    test_chrom: np.ndarray | None = None
    test_first_base: np.ndarray | None = None


def _check_compatible(model: Any, meta: Mapping[str, Any], model_path: Any, windows: str, schema: Any) -> None:
    """One-line errors when the windows file cannot be read by the model."""
    if schema.seq_len < model.window_len:
        raise SeqaeError(
            f"{windows}: windows of {schema.seq_len} bp are shorter than the model's window_len {model.window_len}"
        )
    if len(schema.track_names) != model.n_tracks:
        raise SeqaeError(
            f"{windows}: has {len(schema.track_names)} tracks {list(schema.track_names)}, the model {model_path} reads {model.n_tracks}"
        )
    trained = (meta.get("data") or {}).get("schema") or {}
    if trained.get("track_names") not in (None, list(schema.track_names)):
        raise SeqaeError(
            f"{windows}: tracks {list(schema.track_names)} differ from those {model_path} was trained on ({trained['track_names']})"
        )
    if model.track_transform != schema.track_transform:
        raise SeqaeError(
            f"{windows}: track_transform {schema.track_transform!r}, the model expects {model.track_transform!r}"
        )


def _load_data(
    model: Any,
    meta: Mapping[str, Any],
    model_path: Any,
    windows: str,
    cfg: Mapping[str, Any],
    block_labels: Mapping[str, str],
) -> _Data:
    from seqae.windows.store import qualify_chromosomes, read_labels, read_schema

    schema = read_schema(windows)
    _check_compatible(model, meta, model_path, windows, schema)
    raw = read_labels(windows)
    raw_chrom = raw["chrom"].astype(str).to_numpy() if "chrom" in raw.columns else None  # as in the genome FASTA
    table = qualify_chromosomes(raw)  # as in training: species:chrom with several genomes
    if "split" not in table.columns:
        raise SeqaeError(f"{windows}: no 'split' label column")
    split = table["split"].astype(str).to_numpy()
    test_all = np.flatnonzero(split == "test")
    train_all = np.flatnonzero(split == "train")
    if test_all.size == 0:
        raise SeqaeError(f"{windows}: no windows in the test split (extract.split.test_fraction is 0?)")
    if train_all.size < 2:
        raise SeqaeError(f"{windows}: fewer than 2 windows in the train split")
    seed = cfg["seed"]
    test_rows = _subsample(test_all, cfg["test_max"], np.random.default_rng([seed, 0]))
    train_rows = _subsample(train_all, cfg["train_max"], np.random.default_rng([seed, 1]))
    test_seq, test_tracks = _read_crops(windows, test_rows, model.window_len, model.n_tracks)
    train_seq, train_tracks = _read_crops(windows, train_rows, model.window_len, model.n_tracks)
    names, values = _derive_labels(table, cfg, list(dict.fromkeys(block_labels.values())))
    return _Data(
        windows=windows,
        schema=schema,
        test_rows=test_rows,
        train_rows=train_rows,
        n_test_available=int(test_all.size),
        n_train_available=int(train_all.size),
        test_seq=test_seq,
        test_tracks=test_tracks,
        train_seq=train_seq,
        train_tracks=train_tracks,
        label_names=names,
        y_test={n: v[test_rows] for n, v in values.items()},
        y_train={n: v[train_rows] for n, v in values.items()},
        # peak / background: the anomaly AUROC is also reported per kind of window.
        test_kind=table["kind"].astype(str).to_numpy()[test_rows] if "kind" in table.columns else None,
        test_chrom=raw_chrom[test_rows] if raw_chrom is not None else None,
        # The stored sequence starts flank bp before the window; the evaluated crop is its centre.
        test_first_base=(
            table["start"].to_numpy(np.int64)[test_rows] - schema.flank + (schema.seq_len - model.window_len) // 2
            if "start" in table.columns
            else None
        ),
    )


def _reconstruction(
    data: _Data, test_out: Mapping[str, Any], model: Any, cfg: Mapping[str, Any]
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
    rows = _subsample(np.arange(data.train_seq.shape[0]), cfg["pca_train_max"], np.random.default_rng([seed, 2]))
    n_components = min(latent_dim, rows.size, 4 * data.test_seq.shape[1])
    res = pca_baseline(data.train_seq[rows], data.test_seq, n_components, seed=seed, svd_solver="randomized")
    train_emb, _ = _pca_apply(res["pca"], data.train_seq)
    test_emb, test_err = _pca_apply(res["pca"], data.test_seq)
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


def _probes(
    data: _Data,
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
        if not _known(data.y_train[name]).any() or not _known(data.y_test[name]).any():
            log.warning("evaluate: label %r has no known value in the train or test windows; not probed", name)
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


def _disentanglement(
    data: _Data, factors: list[str], features: Mapping[str, tuple[np.ndarray, np.ndarray]], cfg: Mapping[str, Any]
) -> dict[str, Any]:
    """MIG (test rows) and DCI (fitted on train rows, scored on test rows) of the latent and of PCA."""
    from seqae.metrics import dci, mig_per_factor

    out: dict[str, Any] = {"factors": factors, "method": cfg["dci_method"], "mig": {}, "mig_per_factor": {}, "dci": {}}
    if not factors:
        return out
    f_tr = np.stack([data.y_train[f] for f in factors], axis=1)
    f_te = np.stack([data.y_test[f] for f in factors], axis=1)
    keep_tr = np.all([_known(column) for column in f_tr.T], axis=0)
    keep_te = np.all([_known(column) for column in f_te.T], axis=0)
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


def _swaps(
    model: Any,
    data: _Data,
    block_labels: Mapping[str, str],
    probed: Sequence[str],
    test_out: Mapping[str, Any],
    cfg: Mapping[str, Any],
    device: torch.device,
) -> dict[str, Any]:
    """Swap success of every labelled block, judged by a raw-sequence classifier trained on train windows.

    Swapped and plain reconstructions are turned into bases the same way
    (``cfg["swap_decoding"]``), so the judge's ceiling (how often it still
    recognises the recipient's label in the plain reconstruction) is measured
    on the same kind of sequence as the swaps. The plain reconstructions are
    the test pass's (``test_out``: ``latent``, ``pred``, ``sampled``).
    """
    from seqae.metrics import swap_success, train_judge
    from seqae.models.decoder import bases_from_logits
    from seqae.swap import decode_latents, swap_latents

    sample = cfg["swap_decoding"] == "sample"
    seed = cfg["seed"]
    latent = torch.from_numpy(test_out["latent"]).to(device)
    test_judged = test_out["sampled"] if sample else test_out["pred"]
    out: dict[str, Any] = {}
    for i, (block, label) in enumerate(block_labels.items()):
        entry: dict[str, Any] = {"label": label, "computed": False, "skipped": None}
        out[block] = entry
        if label not in probed:
            entry["skipped"] = f"label {label!r} not available"
            continue
        y_tr, y_te = data.y_train[label], data.y_test[label]
        known_te = np.flatnonzero(_known(y_te))
        judge_rows = _subsample(np.flatnonzero(_known(y_tr)), cfg["judge_max"], np.random.default_rng([seed, 3]))
        if np.unique(y_tr[judge_rows].astype(str)).size < 2 or known_te.size < 2:
            entry["skipped"] = f"fewer than two {label!r} classes to judge"
            continue
        judge_y, test_y = y_tr[judge_rows].astype(str), y_te[known_te].astype(str)
        judge = train_judge(
            data.train_seq[judge_rows],
            judge_y,
            k=cfg["judge_k"],
            codes_heldout=data.test_seq[known_te],
            y_heldout=test_y,
            seed=seed,
        )
        chance = _majority_chance(judge_y, test_y)
        learns = bool(judge.heldout_accuracy > chance + cfg["recoverable_margin"])
        entry.update(
            judge_heldout_accuracy=judge.heldout_accuracy,
            judge_heldout_balanced_accuracy=judge.heldout_balanced_accuracy,
            judge_chance=chance,
            judge_learns=learns,
            n_judge_train=judge.n_train,
        )
        if not learns:
            entry["skipped"] = (
                f"the judge cannot read {label!r} from real test sequence "
                f"(accuracy {judge.heldout_accuracy:.3f}, chance {chance:.3f})"
            )
            continue
        rng = np.random.default_rng([seed, 4, i])
        recipients = _subsample(known_te, cfg["swap_max"], rng)
        recipient_y = y_te[recipients].astype(str)
        donors = _different_label_donors(recipient_y, rng)
        own = latent[torch.from_numpy(recipients).to(device)]
        swapped = swap_latents(model.layout, own, donors, block)
        generator = torch.Generator(device=device).manual_seed(int(rng.integers(2**62)))
        if getattr(model, "autoregressive", False):
            # Decoded from the recipient's local codes and the swapped global latent (by the
            # direct head where there is one, else base after base).
            local = test_out["local_codes"]
            own_local = torch.from_numpy(local[recipients]).to(device) if local is not None else None
            swapped_likeliest, swapped_codes = _decode_swapped(
                model, swapped, own_local, sample, generator, cfg["batch_size"]
            )
        else:
            logits, _ = decode_latents(model, swapped, cfg["batch_size"])
            swapped_likeliest = logits.argmax(1).to(torch.uint8).cpu().numpy()
            swapped_codes = (
                bases_from_logits(logits, True, generator).to(torch.uint8).cpu().numpy()
                if sample
                else swapped_likeliest
            )
        result = swap_success(judge, swapped_codes, recipient_y[donors], recipient_y)
        # The ceiling: how often the judge still recognises the recipient's label in its plain reconstruction.
        kept = judge.predict(test_judged[recipients]) == recipient_y
        own_likeliest = test_out["pred"][recipients]
        entry.update(
            {k: v for k, v in result.items() if not k.startswith("judge_")},
            computed=True,
            decoding=cfg["swap_decoding"],
            reconstruction_kept_fraction=float(np.mean(kept)),
            # Is the rest of the recipient kept? Per-base agreement of the swapped window's
            # likeliest bases with the recipient's own reconstruction and with the donor's.
            recipient_base_agreement=float(np.mean(swapped_likeliest == own_likeliest)),
            donor_base_agreement=float(np.mean(swapped_likeliest == own_likeliest[donors])),
        )
        kept_share = entry["recipient_base_agreement"]
        entry["real_mixture_donor_fraction"] = _real_mixture_frontier(
            judge, data.test_seq[recipients], donors, recipient_y, kept_share, np.random.default_rng([seed, 5, i])
        )
    return out


#: Shares of the recipient's real bases kept in the real-base mixtures that frame a swap's figure.
MIXTURE_KEPT_SHARES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)


def _real_mixture_frontier(
    judge: Any,
    recipient_seq: np.ndarray,
    donors: np.ndarray,
    recipient_y: np.ndarray,
    kept_share: float,
    rng: np.random.Generator,
) -> dict[str, float]:
    """How far a window can move to the donor while keeping a share of the recipient's bases.

    Each recipient's real test window keeps a random share ``k`` of its bases
    and takes the rest, position by position, from its donor's real window;
    the judge's donor fraction on these mixtures, over pairs with different
    labels, is what any swap that keeps ``k`` of the recipient could show
    with real bases. Measured at :data:`MIXTURE_KEPT_SHARES` and at the
    swap's own kept share (``at_kept``).

    Args:
        judge: the fitted swap judge.
        recipient_seq: ``uint8 [N, L]`` the recipients' real test windows.
        donors: ``int [N]`` row of each recipient's donor among them.
        recipient_y: ``[N]`` the recipients' labels.
        kept_share: the swap's ``recipient_base_agreement``.
        rng: random generator for the kept positions.

    Returns:
        ``{"<k>": donor fraction, ..., "at_kept": donor fraction}``.
    """
    scored = recipient_y[donors] != recipient_y
    out: dict[str, float] = {}
    if not scored.any():
        return out
    recipient = recipient_seq[scored]
    donor = recipient_seq[donors[scored]]
    donor_y = recipient_y[donors[scored]]
    u = rng.random(recipient.shape)  # one draw per position, shared by every share: nested mixtures
    for name, k in [*((f"{k:g}", k) for k in MIXTURE_KEPT_SHARES), ("at_kept", kept_share)]:
        mixed = np.where(u < k, recipient, donor)
        out[name] = float(np.mean(judge.predict(mixed) == donor_y))
    return out


@torch.inference_mode()
def _decode_swapped(
    model: Any,
    latent: torch.Tensor,
    local_codes: torch.Tensor | None,
    sample: bool,
    generator: torch.Generator,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """An autoregressive model's swapped windows: (likeliest ``uint8 [N, L]``, judged bases ``uint8 [N, L]``).

    The likeliest bases are decoded greedily; the judged ones are drawn when
    ``sample`` (each base given the bases drawn before it), else the greedy ones.
    """
    greedy, drawn = [], []
    for sl in _batches(latent.shape[0], batch_size):
        codes = None if local_codes is None else local_codes[sl]
        g, _, _ = model.decode_bases(latent[sl], codes, sample=False)
        greedy.append(g.to(torch.uint8))
        if sample:
            d, _, _ = model.decode_bases(latent[sl], codes, sample=True, generator=generator)
            drawn.append(d.to(torch.uint8))
    likeliest = torch.cat(greedy).cpu().numpy()
    return likeliest, (torch.cat(drawn).cpu().numpy() if sample else likeliest)


def _anomaly(
    model: Any,
    data: _Data,
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
    score_shuf, seq_shuf, chain_shuf = _scores(model, shuffled, data.test_tracks, bs, device)
    score_foreign, seq_foreign, chain_foreign = _scores(model, foreign, foreign_tracks, bs, device)
    scores = {"real": test_out["score"], "shuffled": score_shuf, "foreign": score_foreign}
    seq_scores = {"real": test_out["seq_score"], "shuffled": seq_shuf, "foreign": seq_foreign}
    pca_err = {
        "real": pca["test_err"],
        "shuffled": _pca_apply(pca["pca"], shuffled)[1],
        "foreign": _pca_apply(pca["pca"], foreign)[1],
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
            k: _scores(model, codes, tracks_of[k], bs, device, latent_off=True, sequence_only=True)[1]
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
                k: _scores(model, codes, tracks_of[k], bs, device, chain=True, sequence_only=True)[1]
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


def _sites(
    model: Any, data: _Data, test_out: Mapping[str, Any], pca: Mapping[str, Any], cfg: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Known sites (``cfg["truth_sites"]``): accuracy on site bases vs the rest, and code-TF information.

    Reconstructions are the test pass's (decoded from the latent alone); PCA's
    (arg-max of its inverse transform) are scored the same way beside them.
    With a local latent sequence, the code whose stride holds each site's
    centre is compared with the site's TF by mutual information.
    """
    from seqae.metrics.sites import accuracy_inside_outside, code_label_information, site_masks

    path = cfg["truth_sites"]
    if path is None:
        return None
    if data.test_chrom is None or data.test_first_base is None:
        raise SeqaeError(f"{data.windows}: no chrom and start label columns to place evaluate.truth_sites on")
    p = require_file(path, "evaluate.truth_sites")
    try:
        sites = pd.read_csv(p, sep="\t", dtype={"chrom": str})
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(p, f"not a tab-separated sites table ({exc})") from None
    missing = [c for c in ("chrom", "start", "end", "tf") if c not in sites.columns]
    if missing:
        raise InputError(p, f"no column {missing[0]!r} (needed: chrom, start, end, tf)")
    masks = site_masks(data.test_chrom, data.test_first_base, model.window_len, sites, "tf")
    length = data.test_seq.shape[1]
    pca_pred = (
        np.concatenate(
            [
                pca["pca"].inverse_transform(pca["test_emb"][lo : lo + 2048]).reshape(-1, length, 4).argmax(-1)
                for lo in range(0, data.test_seq.shape[0], 2048)
            ]
        )
        if data.test_seq.shape[0]
        else np.zeros_like(data.test_seq)
    )
    out: dict[str, Any] = {
        "path": str(path),
        "n_sites_in_windows": int(masks.window.size),
        "reconstruction": accuracy_inside_outside(test_out["pred"], data.test_seq, masks.mask),
        "pca_reconstruction": accuracy_inside_outside(pca_pred, data.test_seq, masks.mask),
        "next_base": None,
        "local_code_tf_information": None,
    }
    if test_out.get("next_base_pred") is not None:
        out["next_base"] = accuracy_inside_outside(test_out["next_base_pred"], data.test_seq, masks.mask)
    local = test_out.get("local_codes")
    if local is not None and masks.window.size:
        stride = model.settings["downsample"]
        codes = local[masks.window, np.minimum(masks.centre // stride, local.shape[1] - 1)]
        out["local_code_tf_information"] = code_label_information(codes, masks.label, seed=cfg["seed"])
    return out


def _vae_spectra(
    model: Any, data: _Data, reconstructed: np.ndarray, cfg: Mapping[str, Any], device: torch.device
) -> dict[str, Any]:
    """k-mer spectrum distances: VAE prior samples, train windows and reconstructions, each vs the test windows.

    ``reconstructed uint8 [N, L]``: the test windows' reconstructions, bases
    drawn from the decoder's softmax as the prior samples' are (an arg-max
    window's spectrum is dominated by runs of its most likely base).
    """
    from seqae.metrics import kmer_spectrum_distance

    seed = cfg["seed"]
    n_gen = min(cfg["generate_n"], data.test_seq.shape[0])
    generator = torch.Generator(device=device).manual_seed(seed)
    parts = []
    with torch.inference_mode():
        for sl in _batches(n_gen, cfg["batch_size"]):
            codes, _ = model.generate(sl.stop - sl.start, generator=generator)
            parts.append(codes.to(torch.uint8))
    generated = torch.cat(parts).cpu().numpy() if parts else np.zeros((0, data.test_seq.shape[1]), np.uint8)
    # Real vs real at the same sample size: the floor a generator can reach.
    reference = data.train_seq[
        _subsample(np.arange(data.train_seq.shape[0]), max(n_gen, 1), np.random.default_rng([seed, 6]))
    ]
    ks = cfg["spectrum_k"] if isinstance(cfg["spectrum_k"], list) else [cfg["spectrum_k"]]
    return {
        "n_generated": int(n_gen),
        "spectrum_distance": {
            str(k): {
                "generated_vs_test": kmer_spectrum_distance(generated, data.test_seq, k) if n_gen else float("nan"),
                "train_vs_test": kmer_spectrum_distance(reference, data.test_seq, k),
                "reconstruction_vs_test": kmer_spectrum_distance(reconstructed, data.test_seq, k),
            }
            for k in ks
        },
    }


def _vq_usage(model: Any, codes: np.ndarray) -> dict[str, Any]:
    """Per-block codebook perplexity and usage on the test windows (mean over each block's groups)."""
    from seqae.metrics import perplexity

    groups, size = model.settings["vq"]["n_groups"], model.settings["vq"]["codebook_size"]
    out: dict[str, Any] = {
        "codebook_size": size,
        "n_groups": groups,
        "perplexity": {},
        "usage": {},
        "perplexity_per_group": {},
    }
    for i, name in enumerate(model.layout.names):  # codes: blocks in layout order, n_groups columns each
        block = codes[:, i * groups : (i + 1) * groups]
        per_group = [perplexity(block[:, g], size) for g in range(groups)]
        out["perplexity"][name] = float(np.mean(per_group))
        out["usage"][name] = float(np.mean([np.unique(block[:, g]).size / size for g in range(groups)]))
        out["perplexity_per_group"][name] = per_group
    return out


def _chain_panel(
    chain_scores: Mapping[str, np.ndarray] | None, contribution: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The anomaly figure's chain panel (keyword arguments of ``draw_anomaly_scores``): the
    chain's per-window error and its AUROCs, raw and less an order-1 chain's; empty without
    a chain."""
    if chain_scores is None or not contribution:
        return {}
    return {
        "chain_scores": chain_scores,
        "chain_aurocs": {c: contribution.get(f"no_latent_auroc_{c}") for c in ("shuffled", "foreign")},
        "chain_corrected_aurocs": {
            c: contribution.get(f"no_latent_corrected_auroc_{c}") for c in ("shuffled", "foreign")
        },
    }


def _draw_figures(
    outdir: Path,
    model: Any,
    name: str,
    probes: Any,
    flags: pd.DataFrame,
    colours: Mapping[str, np.ndarray],
    test_latent: np.ndarray,
    scores: Mapping[str, np.ndarray],
    seq_scores: Mapping[str, np.ndarray],
    anomaly: Mapping[str, Any],
    seed: int,
    chain_scores: Mapping[str, np.ndarray] | None = None,
) -> dict[str, str]:
    """Draw the evaluation figures; returns figure key -> file name. ``chain_scores``: the
    decoder's error with its latent off (an autoregressive decoder's anomaly score), drawn
    as a third panel of the anomaly figure."""
    from seqae import report_plots

    figures: dict[str, str] = {}
    figures["probe_matrix"] = report_plots.draw_probe_matrix(
        probes.accuracy, probes.chance, flags["recoverable"], outdir / "probe_matrix.png", title=name
    ).name
    for block in model.layout.names:
        # One folder for the per-block figures: their number depends on the model's blocks.
        path = report_plots.draw_latent_embedding(
            test_latent[:, model.layout.slice(block)], colours, outdir / "latent" / f"latent_{block}.png",
            title=f"{name} block {block!r} (test windows)", seed=seed,
        )  # fmt: skip
        figures[f"latent_{block}"] = f"latent/{path.name}"
    figures["anomaly_scores"] = report_plots.draw_anomaly_scores(
        scores,
        {"shuffled": anomaly["auroc_shuffled"], "foreign": anomaly["auroc_foreign"]},
        outdir / "anomaly_scores.png",
        seq_scores=seq_scores,
        seq_aurocs={"shuffled": anomaly["seq_auroc_shuffled"], "foreign": anomaly["seq_auroc_foreign"]},
        title=f"{name}: real test windows vs controls".strip(),
        baseline=_markov_line(anomaly),
        **_chain_panel(chain_scores, anomaly.get("latent_contribution")),
    ).name
    return figures


def _markov_line(anomaly: Mapping[str, Any]) -> str | None:
    """The anomaly figure's baseline line: the Markov likelihood ratio's AUROCs of the same run
    (no training), the figure to beat for the scores less an order-1 chain's error."""
    order = anomaly.get("markov_order")
    values = {c: anomaly.get(f"markov_auroc_{c}") for c in ("shuffled", "foreign")}
    parts = [f"{c} {v:.3f}" for c, v in values.items() if v is not None and np.isfinite(v)]
    if order is None or not parts:
        return None
    return (
        f"baseline, same test windows: order-{order} / order-1 Markov likelihood ratio (no training), "
        f'AUROC {", ".join(parts)}; compare with the scores "less order-1"'
    )


# ---------------------------------------------------------------------- public API


def evaluate_model(
    model_path: str | os.PathLike[str],
    windows_path: str | os.PathLike[str],
    outdir: str | os.PathLike[str],
    settings: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a trained model on the test split of a windows file (see the module docstring).

    Args:
        model_path: ``best.pt`` (or ``checkpoint.pt``) written by training.
        windows_path: the windows HDF5 file (its ``train`` split fits the
            probes, baselines and judges; its ``test`` split is scored).
        outdir: output folder (created).
        settings: evaluation settings overriding :data:`DEFAULT_EVALUATE_SETTINGS`.
        device: ``cuda``, ``cpu`` or None / ``auto`` (the GPU when there is one).
        progress: show progress bars over the model passes.

    Returns:
        The metrics dict written to ``outdir/metrics.json`` (keys: :data:`METRICS_KEYS`;
        NaN written as null).

    Raises:
        SeqaeError: unreadable model or windows file, a windows file whose
            tracks differ from the model's, no test or train windows, bad settings.
    """
    cfg = evaluate_settings(settings)
    if cfg["blas_threads"] is None:
        return _evaluate(model_path, windows_path, outdir, cfg, device, progress)
    from threadpoolctl import threadpool_limits

    # Multithreaded BLAS on these small matrices is slower than one thread, and on a
    # busy machine oversubscribed BLAS threads make lbfgs up to ~100x slower.
    with threadpool_limits(limits=cfg["blas_threads"], user_api="blas"):
        return _evaluate(model_path, windows_path, outdir, cfg, device, progress)


def _evaluate(
    model_path: str | os.PathLike[str],
    windows_path: str | os.PathLike[str],
    outdir: str | os.PathLike[str],
    cfg: dict[str, Any],
    device: str | torch.device | None,
    progress: bool,
) -> dict[str, Any]:
    from seqae.checkpoint import load_model
    from seqae.metrics import NOT_RECOVERABLE

    t_total = t = time.perf_counter()
    timings: dict[str, float] = {}
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    cfg = {**cfg, "batch_size": forward_batch_size(cfg["batch_size"], dev)}
    model, meta = load_model(model_path, dev)
    model.eval()
    name = str(meta.get("model_name") or Path(model_path).parent.name)
    block_labels = {b: s["label"] for b, s in model.settings["blocks"].items() if s["label"] is not None}
    data = _load_data(model, meta, model_path, str(windows_path), cfg, block_labels)
    t = _stage(timings, "load", t)

    # A VAE's reconstructions are compared with its prior samples by k-mer spectrum: both are drawn from the softmax.
    # Reconstructions drawn from the softmax: what the swap judge reads (its ceiling) and
    # what a VAE's prior samples are compared with by k-mer spectrum.
    sampler = torch.Generator(device=dev).manual_seed(int(np.random.default_rng([cfg["seed"], 8]).integers(2**62)))
    test_out = _model_pass(
        model, data.test_seq, data.test_tracks, cfg["batch_size"], dev, progress, "evaluate test", sampler
    )
    train_latent = _latents(model, data.train_seq, data.train_tracks, cfg["batch_size"], dev, progress)
    test_latent = test_out["latent"]
    t = _stage(timings, "model_pass", t)

    reconstruction, pca = _reconstruction(data, test_out, model, cfg)
    t = _stage(timings, "reconstruction_pca", t)

    features = {
        b: (train_latent[:, model.layout.slice(b)], test_latent[:, model.layout.slice(b)]) for b in model.layout.names
    }
    features["latent"] = (train_latent, test_latent)
    features["pca"] = (pca["train_emb"], pca["test_emb"])
    probes, pm, flags = _probes(data, model.layout, block_labels, features, cfg, outdir)
    t = _stage(timings, "probes", t)

    factors = [lab for lab in dict.fromkeys(block_labels.values()) if lab in probes["labels"]]
    disentanglement = _disentanglement(data, factors, features, cfg)
    t = _stage(timings, "disentanglement", t)

    swap = _swaps(model, data, block_labels, probes["labels"], test_out, cfg, dev)
    t = _stage(timings, "swap", t)

    anomaly, scores, seq_scores, chain_scores = _anomaly(model, data, test_out, pca, cfg, dev)
    t = _stage(timings, "anomaly", t)

    sites = _sites(model, data, test_out, pca, cfg)
    t = _stage(timings, "sites", t)

    vae = _vae_spectra(model, data, test_out["sampled"], cfg, dev) if model.kind == "vae" else None
    vq = _vq_usage(model, test_out["codes"]) if model.kind == "vq" and test_out["codes"] is not None else None
    t = _stage(timings, "generative", t)

    figures: dict[str, str] = {}
    if cfg["figures"]:
        colour_labels = [lab for lab in dict.fromkeys(block_labels.values()) if lab in data.y_test] or (
            ["chrom"] if "chrom" in data.y_test else []
        )
        colours = {lab: data.y_test[lab] for lab in colour_labels}
        from seqae.report_plots import model_training_note

        trained = model_training_note(model_path)  # the figures' titles say how long the model trained
        titled = f"{name} ({trained})" if trained else name
        figures = _draw_figures(
            outdir, model, titled, pm, flags, colours, test_latent, scores, seq_scores, anomaly, cfg["seed"],
            chain_scores=chain_scores,
        )  # fmt: skip
    curves = Path(model_path).parent / "loss_curves.png"
    if curves.is_file() and curves.resolve() != (outdir / "loss_curves.png").resolve():
        with atomic_output(outdir / "loss_curves.png") as tmp:
            shutil.copyfile(curves, tmp)
        figures["loss_curves"] = "loss_curves.png"
    t = _stage(timings, "figures", t)

    timings["total"] = round(time.perf_counter() - t_total, 3)
    metrics: dict[str, Any] = {
        "format": METRICS_FORMAT,
        "format_version": METRICS_FORMAT_VERSION,
        "seqae_version": __version__,
        "model": {
            "name": name,
            "kind": model.kind,
            "path": str(model_path),
            "latent_dim": int(model.layout.dim),
            "blocks": {
                b: {"size": int(model.layout.sizes[b]), "label": block_labels.get(b)} for b in model.layout.names
            },
            "epoch": meta.get("epoch"),
            "n_parameters": int(sum(p.numel() for p in model.parameters())),
        },
        "data": {
            "windows": data.windows,
            "window_len": int(model.window_len),
            "track_names": list(data.schema.track_names),
            "n_test": int(data.test_seq.shape[0]),
            "n_test_available": data.n_test_available,
            "n_train": int(data.train_seq.shape[0]),
            "n_train_available": data.n_train_available,
            "n_pca_train": reconstruction["pca_n_train"],
            "labels": data.label_names,
        },
        "settings": cfg,
        "device": str(dev),
        "reconstruction": reconstruction,
        "probes": probes,
        "disentanglement": disentanglement,
        "swap": swap,
        "anomaly": anomaly,
        "sites": sites,
        "vae": vae,
        "vq": vq,
        "figures": figures,
        "timings": timings,
    }
    _write_json(metrics, outdir / "metrics.json")
    not_recoverable = [lab for lab, flag in probes["flag"].items() if flag == NOT_RECOVERABLE]
    log.info(
        "evaluate: %s on %d test windows: base accuracy %.3f (PCA %.3f); %s; written to %s",
        name,
        data.test_seq.shape[0],
        reconstruction["base_accuracy"],
        reconstruction["pca_base_accuracy"],
        f"not recoverable from sequence: {', '.join(not_recoverable)}"
        if not_recoverable
        else "every label recoverable from sequence",
        outdir,
    )
    return json.loads(json.dumps(_clean(metrics)))
