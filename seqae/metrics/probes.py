"""Linear probes: how much of a label a feature set (a latent block, the full
latent, the k-mer baseline, PCA) carries, read out by a held-out linear classifier.

A probe standardises the features on the training rows, fits a multinomial
logistic regression (L2, ``C``, lbfgs) and scores the test rows.  The chance
level is what a probe that always answers the most common *training* class
would score on the test rows.  :func:`recoverability_flags` then marks the
labels that even the sequence baseline cannot read: a latent block cannot be
asked to encode what the sequence does not carry.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from seqae.metrics._common import as_2d_features

__all__ = [
    "ProbeResult",
    "ProbeMatrix",
    "linear_probe",
    "probe_matrix",
    "recoverability_flags",
    "NOT_RECOVERABLE",
]

#: Flag text of a label that the sequence baseline cannot read above chance.
NOT_RECOVERABLE = "not recoverable from sequence"


@dataclass(frozen=True)
class ProbeResult:
    """Held-out scores of one linear probe.

    Attributes:
        accuracy: fraction of test rows predicted correctly (0..1).
        balanced_accuracy: mean over the classes present in the test rows of
            the per-class recall (0..1); test classes never seen in training
            have recall 0.
        chance: test frequency of the most common training class (0..1).
        n_classes: distinct labels in the training rows (what the probe can answer).
        n_train, n_test: rows used.
        majority_class: the most common training label (ties: the smallest).
        converged: whether lbfgs converged within ``max_iter`` (always True
            for a single-class training set, which needs no fit).
        classes: the training labels, sorted.
    """

    accuracy: float
    balanced_accuracy: float
    chance: float
    n_classes: int
    n_train: int
    n_test: int
    majority_class: Any
    converged: bool
    classes: tuple = field(default=(), repr=False)

    @property
    def above_chance(self) -> float:
        """``accuracy - chance``."""
        return self.accuracy - self.chance


def _as_labels(y: Any, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D labels, got shape {arr.shape}")
    return arr


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean per-class recall over the classes of ``y_true`` (vectorised with bincount)."""
    classes, inverse = np.unique(y_true, return_inverse=True)
    hits = np.bincount(inverse, weights=(y_pred == y_true).astype(np.float64), minlength=classes.size)
    totals = np.bincount(inverse, minlength=classes.size)
    return float(np.mean(hits / totals))


def linear_probe(
    x_train: np.ndarray,
    y_train: Any,
    x_test: np.ndarray,
    y_test: Any,
    max_iter: int = 1000,
    seed: int = 0,
    C: float = 1.0,
) -> ProbeResult:
    """Fit a multinomial logistic-regression probe and score it on held-out rows.

    Args:
        x_train: features ``[N_train, D]`` (``[N_train]`` is one feature).
        y_train: labels ``[N_train]``: integers or strings.
        x_test: features ``[N_test, D]``.
        y_test: labels ``[N_test]``; labels absent from ``y_train`` count as errors.
        max_iter: lbfgs iteration limit.
        seed: ``random_state`` of the classifier.
        C: inverse L2 strength (on standardised features).

    Returns:
        A :class:`ProbeResult`.  A training set with one class needs no fit:
        the probe answers that class everywhere (accuracy = chance).

    Raises:
        ValueError: mismatched lengths, empty train/test, non-finite features.
    """
    x_tr = as_2d_features(x_train, "x_train")
    x_te = as_2d_features(x_test, "x_test")
    y_tr = _as_labels(y_train, "y_train")
    y_te = _as_labels(y_test, "y_test")
    if x_tr.shape[0] != y_tr.shape[0] or x_te.shape[0] != y_te.shape[0]:
        raise ValueError(
            f"features and labels differ in length: train {x_tr.shape[0]} vs {y_tr.shape[0]}, "
            f"test {x_te.shape[0]} vs {y_te.shape[0]}"
        )
    if x_tr.shape[1] != x_te.shape[1]:
        raise ValueError(f"train has {x_tr.shape[1]} features, test {x_te.shape[1]}")
    if y_tr.size == 0 or y_te.size == 0:
        raise ValueError("linear_probe needs at least one training and one test row")

    classes, counts = np.unique(y_tr, return_counts=True)
    majority = classes[np.argmax(counts)]
    chance = float(np.mean(y_te == majority))
    converged = True
    if classes.size == 1:
        y_pred = np.full(y_te.shape, majority, dtype=y_tr.dtype)
    else:
        scaler = StandardScaler().fit(x_tr)
        model = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            model.fit(scaler.transform(x_tr), y_tr)
        converged = bool(np.all(np.asarray(model.n_iter_) < max_iter))
        y_pred = model.predict(scaler.transform(x_te))
    correct = y_pred == y_te
    return ProbeResult(
        accuracy=float(np.mean(correct)),
        balanced_accuracy=_balanced_accuracy(y_te, y_pred),
        chance=chance,
        n_classes=int(classes.size),
        n_train=int(y_tr.size),
        n_test=int(y_te.size),
        majority_class=majority.item() if hasattr(majority, "item") else majority,
        converged=converged,
        classes=tuple(classes.tolist()),
    )


class ProbeMatrix(NamedTuple):
    """What :func:`probe_matrix` returns (unpacks as ``accuracy, long, chance``).

    Attributes:
        accuracy: wide frame, rows = feature sets, columns = labels, values =
            held-out accuracy.
        long: one row per (feature set, label): ``features``, ``label``,
            ``accuracy``, ``balanced_accuracy``, ``chance``, ``above_chance``,
            ``n_classes``, ``n_train``, ``n_test``, ``converged``.
        chance: chance level per label (Series indexed by label); it depends
            on the labels only, so it is the same for every feature set.
    """

    accuracy: pd.DataFrame
    long: pd.DataFrame
    chance: pd.Series


def probe_matrix(
    features: Mapping[str, tuple[np.ndarray, np.ndarray]],
    labels: Mapping[str, tuple[Any, Any]],
    max_iter: int = 1000,
    seed: int = 0,
    C: float = 1.0,
) -> ProbeMatrix:
    """Probe every feature set for every label.

    Args:
        features: name -> ``(x_train [N_train, D], x_test [N_test, D])``, e.g.
            ``{"chrom": ..., "gene": ..., "residual": ..., "latent": ...,
            "kmer4": ..., "pca": ...}``; all share the same train/test rows.
        labels: name -> ``(y_train [N_train], y_test [N_test])``.  Rows whose
            label is missing (None or float NaN) are left out of that label's probes.
        max_iter, seed, C: as :func:`linear_probe`.

    Returns:
        A :class:`ProbeMatrix` ``(accuracy, long, chance)``.
    """
    if not features or not labels:
        raise ValueError("probe_matrix needs at least one feature set and one label")
    records = []
    chance: dict[str, float] = {}
    for label_name, (y_train, y_test) in labels.items():
        y_tr = _as_labels(y_train, f"labels[{label_name!r}] train")
        y_te = _as_labels(y_test, f"labels[{label_name!r}] test")
        keep_tr, keep_te = _present(y_tr), _present(y_te)
        for feat_name, (x_train, x_test) in features.items():
            x_tr, x_te = np.asarray(x_train), np.asarray(x_test)
            if x_tr.shape[0] != y_tr.shape[0] or x_te.shape[0] != y_te.shape[0]:
                raise ValueError(
                    f"feature set {feat_name!r} ({x_tr.shape[0]} train / {x_te.shape[0]} test rows) does not "
                    f"match label {label_name!r} ({y_tr.shape[0]} / {y_te.shape[0]})"
                )
            res = linear_probe(
                x_tr[keep_tr], y_tr[keep_tr], x_te[keep_te], y_te[keep_te], max_iter=max_iter, seed=seed, C=C
            )
            chance[label_name] = res.chance
            records.append(
                {
                    "features": feat_name,
                    "label": label_name,
                    "accuracy": res.accuracy,
                    "balanced_accuracy": res.balanced_accuracy,
                    "chance": res.chance,
                    "above_chance": res.above_chance,
                    "n_classes": res.n_classes,
                    "n_train": res.n_train,
                    "n_test": res.n_test,
                    "converged": res.converged,
                }
            )
    long = pd.DataFrame.from_records(records)
    wide = long.pivot(index="features", columns="label", values="accuracy")
    wide = wide.reindex(index=list(features), columns=list(labels))
    wide.index.name, wide.columns.name = "features", "label"
    return ProbeMatrix(wide, long, pd.Series(chance, name="chance").reindex(list(labels)))


def _present(y: np.ndarray) -> np.ndarray:
    """Mask of rows with a label (not None, not a float NaN)."""
    if y.dtype.kind == "f":
        return ~np.isnan(y)
    if y.dtype.kind == "O":
        return ~pd.isna(y)
    return np.ones(y.shape, dtype=bool)


def recoverability_flags(
    matrix: pd.DataFrame,
    baseline_row: str,
    chance: float | Mapping[str, float] | pd.Series,
    margin: float = 0.02,
) -> pd.DataFrame:
    """Flag the labels that the sequence baseline cannot read above chance.

    A label is recoverable when ``matrix.loc[baseline_row, label] > chance[label] + margin``.

    Args:
        matrix: wide accuracy frame (rows = feature sets, columns = labels),
            e.g. ``probe_matrix(...).accuracy``.
        baseline_row: the row of the sequence baseline (e.g. ``"kmer4"``).
        chance: chance level per label (``probe_matrix(...).chance``), or one
            number for all labels.
        margin: accuracy above chance required (absolute, 0..1).

    Returns:
        Frame indexed by label with ``baseline_accuracy``, ``chance``,
        ``recoverable`` (bool) and ``flag`` (:data:`NOT_RECOVERABLE` or ``""``).
    """
    if baseline_row not in matrix.index:
        raise KeyError(f"baseline row {baseline_row!r} not in the matrix rows {list(matrix.index)}")
    labels = list(matrix.columns)
    if isinstance(chance, (int, float, np.floating)):
        chance_s = pd.Series(float(chance), index=labels)
    else:
        chance_s = pd.Series(dict(chance) if not isinstance(chance, pd.Series) else chance).reindex(labels)
        missing = chance_s.index[chance_s.isna()].tolist()
        if missing:
            raise KeyError(f"no chance level for labels {missing}")
    base = matrix.loc[baseline_row, labels].astype(float)
    recoverable = base > chance_s.astype(float) + margin
    out = pd.DataFrame(
        {
            "baseline_accuracy": base.to_numpy(),
            "chance": chance_s.to_numpy(dtype=float),
            "recoverable": recoverable.to_numpy(dtype=bool),
        },
        index=pd.Index(labels, name="label"),
    )
    out["flag"] = np.where(out["recoverable"], "", NOT_RECOVERABLE)
    return out
