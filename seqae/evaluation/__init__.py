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

One module per concern, from the bottom up (each imports only those above it):

* :mod:`~seqae.evaluation.settings` — the ``evaluate:`` settings, their checks, the metrics.json keys.
* :mod:`~seqae.evaluation.labels` — label columns as arrays, the TSS-distance bins.
* :mod:`~seqae.evaluation.data` — the test and train windows read, subsampled and cropped.
* :mod:`~seqae.evaluation.passes` — batched model passes (latents, reconstructions, scores), PCA's.
* :mod:`~seqae.evaluation.reconstruction`, :mod:`~seqae.evaluation.probes` (with MIG and DCI),
  :mod:`~seqae.evaluation.swaps`, :mod:`~seqae.evaluation.anomaly`, :mod:`~seqae.evaluation.sites`,
  :mod:`~seqae.evaluation.generative` (VAE spectra, VQ usage) — one section of metrics.json each.
* :mod:`~seqae.evaluation.figures` — the figures.
* :mod:`~seqae.evaluation.run` — :func:`evaluate_model`: every section in turn, metrics.json written.
"""

from seqae.evaluation.labels import TSS_BIN_NONE, tss_bin_names, tss_distance_bins
from seqae.evaluation.run import evaluate_model
from seqae.evaluation.settings import (
    DEFAULT_EVALUATE_SETTINGS,
    EVALUATE_SETTINGS_HELP,
    METRICS_KEYS,
    evaluate_settings,
    kmer_row_name,
)

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
