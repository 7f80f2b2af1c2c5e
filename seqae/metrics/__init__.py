"""Evaluation metrics: plain numpy / scikit-learn functions on arrays.

No model code and no file I/O here; one concern per module:

* :mod:`~seqae.metrics.kmers` — k-mer counts/frequencies, k-mer spectrum distance.
* :mod:`~seqae.metrics.probes` — linear probes, the probe matrix, recoverability flags.
* :mod:`~seqae.metrics.baselines` — PCA on one-hot windows, k-mer baseline features.
* :mod:`~seqae.metrics.disentangle` — MIG and DCI.
* :mod:`~seqae.metrics.anomaly` — AUROC, dinucleotide shuffle, foreign-genome windows.
* :mod:`~seqae.metrics.markov` — Markov chains of sequence; their likelihood ratio, the model-free anomaly baseline.
* :mod:`~seqae.metrics.judge` — a raw-sequence label classifier that judges block swaps.
* :mod:`~seqae.metrics.reconstruction` — base accuracy, track Pearson r, codebook perplexity, composition entropy.

Base codes everywhere: ``uint8`` A=0 C=1 G=2 T=3 N=4 (``seqae.genome``).
"""

from seqae.metrics.anomaly import auroc, dinucleotide_counts, dinucleotide_shuffle, foreign_windows
from seqae.metrics.baselines import kmer_baseline_features, one_hot, pca_baseline
from seqae.metrics.disentangle import (
    dci,
    dci_from_importance,
    discretize,
    mig,
    mig_per_factor,
    mutual_information_matrix,
)
from seqae.metrics.judge import Judge, swap_success, train_judge
from seqae.metrics.kmers import (
    canonical_kmer_indices,
    kmer_counts,
    kmer_frequencies,
    kmer_names,
    kmer_spectrum_distance,
    multi_k_frequencies,
    pooled_kmer_counts,
    reverse_complement_index,
)
from seqae.metrics.markov import MarkovModel, fit_markov, markov_ratio_score
from seqae.metrics.probes import (
    NOT_RECOVERABLE,
    ProbeMatrix,
    ProbeResult,
    linear_probe,
    probe_matrix,
    recoverability_flags,
)
from seqae.metrics.reconstruction import composition_entropy, perplexity, sequence_accuracy, track_pearson

__all__ = [
    "NOT_RECOVERABLE",
    "Judge",
    "MarkovModel",
    "ProbeMatrix",
    "ProbeResult",
    "auroc",
    "canonical_kmer_indices",
    "composition_entropy",
    "dci",
    "dci_from_importance",
    "dinucleotide_counts",
    "dinucleotide_shuffle",
    "discretize",
    "fit_markov",
    "foreign_windows",
    "kmer_baseline_features",
    "kmer_counts",
    "kmer_frequencies",
    "kmer_names",
    "kmer_spectrum_distance",
    "linear_probe",
    "markov_ratio_score",
    "mig",
    "mig_per_factor",
    "multi_k_frequencies",
    "mutual_information_matrix",
    "one_hot",
    "pca_baseline",
    "perplexity",
    "pooled_kmer_counts",
    "probe_matrix",
    "recoverability_flags",
    "reverse_complement_index",
    "sequence_accuracy",
    "swap_success",
    "track_pearson",
    "train_judge",
]
