"""Evaluation settings (``evaluate:`` in the config) and what metrics.json holds.

The definition of the evaluation settings: :data:`DEFAULT_EVALUATE_SETTINGS`
names every setting with its default (and, by the default's type, its type),
:data:`EVALUATE_SETTINGS_HELP` says what each does, and
:data:`EVALUATE_SETTINGS_CHOICES` and :data:`EVALUATE_SETTINGS_CONSTRAINTS` hold
what a default does not tell (choices, bounds, null). ``scripts/config_docs.py``
writes from them the configuration schema's ``evaluate`` properties and the
``evaluate`` table of config/README.md; :func:`evaluate_settings` checks
overrides against that schema. :data:`METRICS_KEYS` lists the dotted keys every
metrics.json carries.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from seqae.config import check_settings, config_schema
from seqae.errors import ConfigError

__all__ = [
    "DEFAULT_EVALUATE_SETTINGS",
    "EVALUATE_SETTINGS_CHOICES",
    "EVALUATE_SETTINGS_CONSTRAINTS",
    "EVALUATE_SETTINGS_HELP",
    "METRICS_FORMAT",
    "METRICS_FORMAT_VERSION",
    "METRICS_KEYS",
    "evaluate_settings",
    "kmer_row_name",
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
    "batch_size": "Windows per model forward pass; null: 512 on a GPU, 32 on the CPU (larger CPU batches are slower: 73 windows/s at 32 against 40 at 512 on 2 cores).",
    "blas_threads": "BLAS threads of the scikit-learn and NumPy metrics (probes, PCA, DCI); null leaves the libraries' default. One thread is fastest for these small problems and immune to oversubscription on a busy machine.",
    "figures": "Draw the figures (false: metrics.json and probe_matrix.tsv only, and an earlier run's figures in the folder are removed).",
    "markov_order": "Order k of the Markov-chain anomaly baseline: the likelihood ratio of an order-k to an order-1 chain fitted on the train windows (what k-mer statistics alone tell from shuffled windows).",
    "truth_sites": "Tab-separated table of known sites (columns chrom, start, end, 0-based half-open, and tf), e.g. the demo's planted motifs (`results/demo_data/truth/sites.tsv`, set in config/config.yaml): reconstruction accuracy on site bases against the other bases (beside PCA's), and the mutual information between the local code at each site and its TF (with a label-permutation baseline); null: not computed.",
    "seed": "Seed of every random draw (subsets, shuffles, foreign windows, donors, VAE samples).",
}

#: The values a string setting may take (the schema's ``enum``).
EVALUATE_SETTINGS_CHOICES: dict[str, tuple[str, ...]] = {
    "swap_decoding": ("sample", "argmax"),
    "dci_method": ("logistic", "gbt"),
}

_K = {"type": "integer", "minimum": 1, "maximum": 8}  # a k-mer length

#: JSON Schema keywords beyond the type a setting's default tells: bounds, list items, null.
EVALUATE_SETTINGS_CONSTRAINTS: dict[str, dict[str, Any]] = {
    **{
        key: {"minimum": 1}
        for key in (
            "test_max",
            "train_max",
            "pca_train_max",
            "judge_max",
            "swap_max",
            "probe_max_iter",
            "dci_max_train",
            "mig_bins",
        )
    },
    "generate_n": {"minimum": 0},
    "kmer_k": {**_K, "type": ["integer", "array"], "items": _K, "minItems": 1},
    "judge_k": {"items": _K, "minItems": 1},
    "spectrum_k": {"items": _K, "minItems": 1},
    "labels": {"type": ["array", "null"], "items": {"type": "string"}},
    "tss_bins": {"items": {"type": "number"}, "minItems": 1},  # and increasing
    "batch_size": {"type": ["integer", "null"], "minimum": 1},
    "blas_threads": {"type": ["integer", "null"], "minimum": 1},
    "markov_order": {"minimum": 1, "maximum": 8},
    "truth_sites": {"type": ["string", "null"], "minLength": 1},
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


@cache
def _settings_schema() -> dict[str, Any]:
    return config_schema()["properties"]["evaluate"]


def evaluate_settings(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Full evaluation settings: :data:`DEFAULT_EVALUATE_SETTINGS` updated by ``overrides``.

    ``overrides`` is checked against the configuration schema's ``evaluate``
    (a config file's are checked when it is read; this checks what the Python
    API is handed too).

    Raises:
        ConfigError: an unknown key or an impossible value, named as ``evaluate.<key>``.
    """
    overrides = copy.deepcopy(dict(overrides) if isinstance(overrides, Mapping) else overrides or {})
    check_settings(overrides, _settings_schema(), "evaluate")
    settings = copy.deepcopy(DEFAULT_EVALUATE_SETTINGS) | overrides
    edges = settings["tss_bins"]
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise ConfigError(f"evaluate.tss_bins: edges must increase, got {edges!r}")
    return settings


def kmer_row_name(k: int | Sequence[int]) -> str:
    """Name of the k-mer baseline row in the probe matrix: ``kmer4`` or ``kmer3+4+5``."""
    ks = [k] if isinstance(k, int) else list(k)
    return "kmer" + "+".join(str(x) for x in ks)
