"""An independent judge of latent block swaps: a label classifier on raw sequence.

When a model's ``chrom`` block of window *r* (the recipient) is replaced by
that of window *d* (the donor) and the result decoded, the swap worked if a
classifier that never saw the autoencoder now assigns the decoded sequence to
the donor's label.  The judge is deliberately simple and separate from the
model: concatenated k-mer frequencies (k = 3, 4, 5 by default) of the raw
sequence, standardised, and a multinomial logistic regression.

Its held-out accuracy is kept beside it: a swap success rate means little
when the judge itself cannot tell the labels apart on real windows.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from seqae.metrics._common import as_codes
from seqae.metrics.kmers import multi_k_frequencies

__all__ = ["Judge", "train_judge", "swap_success"]


@dataclass
class Judge:
    """A fitted sequence classifier (k-mer frequencies + logistic regression).

    Attributes:
        ks: k-mer lengths whose frequencies are concatenated.
        canonical: whether reverse complements are merged.
        scaler: feature standardiser fitted on the judge's training rows.
        model: the fitted ``LogisticRegression`` (``None`` for a single-class judge).
        classes: ``[C]`` labels, the column order of :meth:`predict_proba`.
        heldout_accuracy: accuracy on the held-out rows (NaN if none).
        heldout_balanced_accuracy: mean per-class recall on the held-out rows.
        n_train, n_heldout: rows used to fit and to score.
    """

    ks: tuple[int, ...]
    canonical: bool
    scaler: StandardScaler
    model: LogisticRegression | None
    classes: np.ndarray
    heldout_accuracy: float
    heldout_balanced_accuracy: float
    n_train: int
    n_heldout: int

    def features(self, codes: np.ndarray) -> np.ndarray:
        """``float32 [N, F]``: the judge's k-mer frequency features of ``codes [N, L]``."""
        return multi_k_frequencies(as_codes(codes), self.ks, canonical=self.canonical)

    def predict_proba(self, codes: np.ndarray) -> np.ndarray:
        """``float64 [N, C]``: class probabilities of windows ``codes uint8 [N, L]`` (columns = :attr:`classes`)."""
        x = self.features(codes)
        if self.model is None:
            return np.ones((x.shape[0], 1))
        return self.model.predict_proba(self.scaler.transform(x))

    def predict(self, codes: np.ndarray) -> np.ndarray:
        """``[N]``: the most probable label of each window."""
        return self.classes[np.argmax(self.predict_proba(codes), axis=1)]


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    classes, inverse = np.unique(y_true, return_inverse=True)
    hits = np.bincount(inverse, weights=(y_pred == y_true).astype(np.float64), minlength=classes.size)
    return float(np.mean(hits / np.bincount(inverse, minlength=classes.size)))


def train_judge(
    codes_train: np.ndarray,
    y_train: Any,
    k: int | Iterable[int] = (3, 4, 5),
    codes_heldout: np.ndarray | None = None,
    y_heldout: Any = None,
    heldout_fraction: float = 0.2,
    canonical: bool = False,
    C: float = 1.0,
    max_iter: int = 2000,
    seed: int = 0,
) -> Judge:
    """Train a label classifier on raw sequence.

    Args:
        codes_train: base codes ``uint8 [N, L]``.
        y_train: labels ``[N]`` (e.g. chromosome names).
        k: k-mer length(s); frequencies of each are concatenated
            (k = 3, 4, 5: 64 + 256 + 1024 features).
        codes_heldout, y_heldout: rows to score the judge on.  When not given,
            ``heldout_fraction`` of the training rows are held out
            (stratified when every class has at least 2 rows) and the judge
            is fitted on the rest only.
        heldout_fraction: share held out when no held-out set is given (0 = none: accuracy NaN).
        canonical: merge reverse complements (a strand-blind judge).
        C: inverse L2 strength of the logistic regression (standardised features).
        max_iter: lbfgs iteration limit.
        seed: random state of the split and the classifier.

    Returns:
        A fitted :class:`Judge`.
    """
    ks = (int(k),) if isinstance(k, (int, np.integer)) else tuple(int(x) for x in k)
    codes_train = as_codes(codes_train, "codes_train")
    y = np.asarray(y_train)
    if y.ndim != 1 or y.shape[0] != codes_train.shape[0]:
        raise ValueError(f"y_train must be [N] with N = {codes_train.shape[0]}, got shape {y.shape}")
    x = multi_k_frequencies(codes_train, ks, canonical=canonical)
    if codes_heldout is not None:
        if y_heldout is None:
            raise ValueError("codes_heldout given without y_heldout")
        x_tr, y_tr = x, y
        x_ho = multi_k_frequencies(as_codes(codes_heldout, "codes_heldout"), ks, canonical=canonical)
        y_ho = np.asarray(y_heldout)
    elif heldout_fraction > 0:
        _, counts = np.unique(y, return_counts=True)
        stratify = y if counts.min() >= 2 else None
        x_tr, x_ho, y_tr, y_ho = train_test_split(
            x, y, test_size=heldout_fraction, random_state=seed, stratify=stratify
        )
    else:
        x_tr, y_tr, x_ho, y_ho = x, y, x[:0], y[:0]

    classes = np.unique(y_tr)
    scaler = StandardScaler().fit(x_tr)
    model: LogisticRegression | None = None
    if classes.size > 1:
        model = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            model.fit(scaler.transform(x_tr), y_tr)
        classes = model.classes_
    judge = Judge(
        ks=ks,
        canonical=canonical,
        scaler=scaler,
        model=model,
        classes=np.asarray(classes),
        heldout_accuracy=float("nan"),
        heldout_balanced_accuracy=float("nan"),
        n_train=int(y_tr.shape[0]),
        n_heldout=int(y_ho.shape[0]),
    )
    if y_ho.shape[0]:
        if model is None:
            pred = np.full(y_ho.shape, classes[0])
        else:
            pred = model.predict(scaler.transform(x_ho))
        judge.heldout_accuracy = float(np.mean(pred == y_ho))
        judge.heldout_balanced_accuracy = _balanced_accuracy(y_ho, pred)
    return judge


def swap_success(judge: Judge, swapped_codes: np.ndarray, donor_labels: Any, recipient_labels: Any) -> dict[str, Any]:
    """How often the judge assigns swapped windows to the donor's label.

    Rows whose donor and recipient labels are equal say nothing about the
    swap and are left out of the fractions (counted in ``n_same_label``).

    Args:
        judge: a fitted :class:`Judge`.
        swapped_codes: decoded windows after the block swap, codes ``uint8 [N, L]``.
        donor_labels: ``[N]`` label of the window the swapped block came from.
        recipient_labels: ``[N]`` label of the window that received it.

    Returns:
        dict with ``donor_fraction`` (judged = donor label),
        ``recipient_fraction`` (judged = recipient label), ``other_fraction``
        (neither), ``mean_donor_probability`` (judge's probability of the
        donor label; 0 for labels the judge does not know), ``n`` (rows
        scored), ``n_same_label`` (rows left out), ``judge_heldout_accuracy``
        and ``judge_heldout_balanced_accuracy`` (for reference); fractions
        are NaN when no row is scored.
    """
    donor = np.asarray(donor_labels)
    recipient = np.asarray(recipient_labels)
    codes = as_codes(swapped_codes, "swapped_codes")
    if not (donor.shape == recipient.shape == (codes.shape[0],)):
        raise ValueError(
            f"donor_labels {donor.shape} and recipient_labels {recipient.shape} must both be [N] with N = {codes.shape[0]}"
        )
    scored = donor != recipient
    n = int(scored.sum())
    out: dict[str, Any] = {
        "n": n,
        "n_same_label": int((~scored).sum()),
        "judge_heldout_accuracy": judge.heldout_accuracy,
        "judge_heldout_balanced_accuracy": judge.heldout_balanced_accuracy,
    }
    if n == 0:
        nan = float("nan")
        out.update(donor_fraction=nan, recipient_fraction=nan, other_fraction=nan, mean_donor_probability=nan)
        return out
    proba = judge.predict_proba(codes[scored])
    pred = judge.classes[np.argmax(proba, axis=1)]
    d, r = donor[scored], recipient[scored]
    # Probability of the donor label: its column, or 0 when the judge never saw that label.
    col = np.searchsorted(judge.classes, d)
    col = np.minimum(col, judge.classes.size - 1)
    known = judge.classes[col] == d
    p_donor = np.where(known, proba[np.arange(n), col], 0.0)
    is_donor = pred == d
    is_recipient = pred == r
    out.update(
        donor_fraction=float(is_donor.mean()),
        recipient_fraction=float(is_recipient.mean()),
        other_fraction=float((~is_donor & ~is_recipient).mean()),
        mean_donor_probability=float(p_donor.mean()),
    )
    return out
