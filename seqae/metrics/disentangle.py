"""Disentanglement scores of a latent against known factors: MIG and DCI.

*MIG* (mutual information gap; Chen et al. 2018, as implemented in
disentanglement_lib, Locatello et al. 2019): every latent dimension is
discretised into ``n_bins`` equal-width bins (or equal-count bins); for each
factor ``k`` the mutual information ``I(z_j; v_k)`` is computed for every
dimension ``j``, and the gap between the largest and second-largest, divided
by the factor entropy ``H(v_k)``, is averaged over factors.  1 = every factor
is captured by one dimension alone; 0 = no dimension stands out.

*DCI* (Eastwood & Williams 2018): an importance matrix ``R [D, K]`` says how
much each latent dimension is used to predict each factor.  Here ``R`` comes
from one **gradient-boosted tree classifier per factor**
(``sklearn.ensemble.GradientBoostingClassifier``, impurity-based
``feature_importances_``), as in disentanglement_lib; ``method="logistic"``
uses instead the mean absolute coefficient of a multinomial logistic
regression on standardised latents (faster, linear only).
*Disentanglement* = importance-weighted mean over dimensions of
``1 - H_K(R_j. / sum R_j.)``; *completeness* = mean over factors of
``1 - H_D(R_.k / sum R_.k)``; *informativeness* = mean held-out accuracy of
the per-factor classifiers.

Factors are label arrays ``[N, K]`` (integers or strings; any column is
re-coded to ``0..n_k-1``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from seqae.metrics._common import as_2d_features

__all__ = ["discretize", "mutual_information_matrix", "mig", "mig_per_factor", "dci", "dci_from_importance"]


def _encode_factors(factors: Any, n_rows: int | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Factors ``[N, K]`` (or ``[N]``) -> integer codes ``int64 [N, K]`` and each column's classes."""
    arr = np.asarray(factors)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"factors must be [N, K], got shape {arr.shape}")
    if n_rows is not None and arr.shape[0] != n_rows:
        raise ValueError(f"factors have {arr.shape[0]} rows, latents {n_rows}")
    codes = np.empty(arr.shape, dtype=np.int64)
    classes = []
    for k in range(arr.shape[1]):  # one loop per factor
        cls, codes[:, k] = np.unique(arr[:, k], return_inverse=True)
        classes.append(cls)
    return codes, classes


def discretize(latents: np.ndarray, n_bins: int = 20, strategy: str = "uniform") -> np.ndarray:
    """Discretise each latent dimension into ``n_bins`` bins.

    Args:
        latents: ``[N, D]`` continuous codes.
        n_bins: bins per dimension.
        strategy: ``"uniform"`` (equal-width bins between the dimension's
            min and max, as disentanglement_lib) or ``"quantile"`` (equal-count
            bins, robust to outliers).

    Returns:
        ``int64 [N, D]`` bin indices in ``0..n_bins-1`` (a constant dimension is all 0).
    """
    z = as_2d_features(latents, "latents")
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    if strategy == "uniform":
        lo, hi = z.min(axis=0), z.max(axis=0)
        width = np.where(hi > lo, hi - lo, 1.0)
        bins = np.floor((z - lo) / width * n_bins).astype(np.int64)
    elif strategy == "quantile":
        ranks = np.argsort(np.argsort(z, axis=0, kind="stable"), axis=0)
        bins = (ranks * n_bins) // max(z.shape[0], 1)
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    return np.clip(bins, 0, n_bins - 1)


def _entropy_from_counts(counts: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy (nats) of count vectors along ``axis``."""
    total = counts.sum(axis=axis, keepdims=True)
    p = np.divide(counts, total, out=np.zeros(counts.shape, dtype=np.float64), where=total > 0)
    logp = np.log(p, out=np.zeros_like(p), where=p > 0)
    return -(p * logp).sum(axis=axis)


def mutual_information_matrix(discrete_latents: np.ndarray, factor_codes: np.ndarray) -> np.ndarray:
    """``float64 [D, K]``: plug-in mutual information (nats) between discrete latents and factors.

    Args:
        discrete_latents: ``int [N, D]`` bin indices (>= 0).
        factor_codes: ``int [N, K]`` factor codes (>= 0).
    """
    zb = np.asarray(discrete_latents, dtype=np.int64)
    fv = np.asarray(factor_codes, dtype=np.int64)
    n, d = zb.shape
    k = fv.shape[1]
    nz = int(zb.max()) + 1 if zb.size else 1
    mi = np.zeros((d, k))
    z_offsets = np.arange(d, dtype=np.int64) * nz
    h_z = _entropy_from_counts(np.bincount((zb + z_offsets).ravel(), minlength=d * nz).reshape(d, nz))
    for j in range(k):  # one loop per factor; all dimensions at once inside
        nv = int(fv[:, j].max()) + 1
        joint = np.bincount(((zb + z_offsets) * nv + fv[:, j][:, None]).ravel(), minlength=d * nz * nv)
        h_joint = _entropy_from_counts(joint.reshape(d, nz * nv))
        h_v = _entropy_from_counts(np.bincount(fv[:, j], minlength=nv))
        mi[:, j] = h_z + h_v - h_joint
    return np.maximum(mi, 0.0)


def mig_per_factor(latents: np.ndarray, factors: Any, n_bins: int = 20, strategy: str = "uniform") -> np.ndarray:
    """``float64 [K]``: the normalised MI gap of each factor (NaN for a constant factor).

    Arguments as :func:`mig`.
    """
    z = as_2d_features(latents, "latents")
    fv, _ = _encode_factors(factors, z.shape[0])
    mi = mutual_information_matrix(discretize(z, n_bins, strategy), fv)
    h_v = np.array([_entropy_from_counts(np.bincount(fv[:, j])) for j in range(fv.shape[1])])
    top = -np.sort(-mi, axis=0)
    second = top[1] if mi.shape[0] > 1 else np.zeros(mi.shape[1])
    gap = top[0] - second
    return np.divide(gap, h_v, out=np.full(h_v.shape, np.nan), where=h_v > 0)


def mig(latents: np.ndarray, factors: Any, n_bins: int = 20, strategy: str = "uniform") -> float:
    """Mutual information gap of a latent with respect to known factors.

    Args:
        latents: ``[N, D]`` latent codes (e.g. posterior means).
        factors: ``[N, K]`` (or ``[N]``) factor labels, integers or strings.
        n_bins: bins per latent dimension for the plug-in MI estimate.
            (The estimate is biased upwards by about
            ``(n_bins - 1)(n_classes - 1) / (2 N)`` nats: keep
            ``N`` well above ``n_bins * n_classes``.)
        strategy: ``"uniform"`` or ``"quantile"`` binning (:func:`discretize`).

    Returns:
        MIG in ``[0, 1]``, the mean over non-constant factors; NaN when every factor is constant.
    """
    per = mig_per_factor(latents, factors, n_bins=n_bins, strategy=strategy)
    return float(np.nanmean(per)) if np.isfinite(per).any() else float("nan")


def dci_from_importance(importance: np.ndarray) -> dict[str, Any]:
    """Disentanglement and completeness from an importance matrix ``R [D, K]`` (non-negative).

    With one factor, disentanglement is 1 by convention (every dimension
    serves at most one factor); with one dimension, completeness is 1.

    Returns:
        dict with ``disentanglement``, ``completeness`` (floats in [0, 1]),
        ``disentanglement_per_dim [D]``, ``completeness_per_factor [K]``,
        ``dim_weight [D]`` (share of the total importance per dimension).
    """
    r = np.abs(np.asarray(importance, dtype=np.float64))
    d, k = r.shape
    total = r.sum()
    if total <= 0:
        nan = float("nan")
        return {
            "disentanglement": nan,
            "completeness": nan,
            "disentanglement_per_dim": np.full(d, np.nan),
            "completeness_per_factor": np.full(k, np.nan),
            "dim_weight": np.full(d, np.nan),
        }
    dis_dim = 1.0 - _entropy_from_counts(r, axis=1) / np.log(k) if k > 1 else np.ones(d)
    comp_fac = 1.0 - _entropy_from_counts(r, axis=0) / np.log(d) if d > 1 else np.ones(k)
    rho = r.sum(axis=1) / total
    # A factor that no dimension predicts (column of zeros) has completeness 0.
    comp_fac = np.where(r.sum(axis=0) > 0, comp_fac, 0.0)
    return {
        "disentanglement": float(np.sum(rho * dis_dim)),
        "completeness": float(np.mean(comp_fac)),
        "disentanglement_per_dim": dis_dim,
        "completeness_per_factor": comp_fac,
        "dim_weight": rho,
    }


def dci(
    latents_train: np.ndarray,
    factors_train: Any,
    latents_test: np.ndarray,
    factors_test: Any,
    method: str = "gbt",
    n_estimators: int = 50,
    max_depth: int = 3,
    max_iter: int = 1000,
    max_train: int | None = 10000,
    seed: int = 0,
) -> dict[str, Any]:
    """DCI disentanglement, completeness and informativeness.

    Args:
        latents_train: ``[N_train, D]`` latent codes.
        factors_train: ``[N_train, K]`` (or ``[N_train]``) factor labels.
        latents_test: ``[N_test, D]``.
        factors_test: ``[N_test, K]``; classes unseen in training count as errors.
        method: ``"gbt"`` (gradient-boosted trees per factor, impurity
            importances; default, as in disentanglement_lib) or ``"logistic"``
            (mean |coefficient| over classes of a logistic regression on
            standardised latents).
        n_estimators, max_depth: tree settings for ``"gbt"`` (cost grows with
            ``N_train * n_classes * n_estimators``; subsample large sets first).
            Rough cost on one CPU core: ~7 s per 5-class factor for 4000 rows x 16
            dimensions at 50 trees; ``"logistic"`` is one to two orders of magnitude faster.
        max_iter: lbfgs limit for ``"logistic"``.
        max_train: fit the per-factor models on at most this many training
            rows (a random subset drawn with ``seed``); ``None`` uses all.
        seed: random state.

    Returns:
        dict with ``disentanglement``, ``completeness``, ``informativeness``
        (mean held-out accuracy over factors), ``informativeness_train``,
        ``accuracy_per_factor [K]``, ``importance [D, K]`` (each column sums
        to 1 for gbt), plus the per-dimension / per-factor terms of
        :func:`dci_from_importance`.
    """
    z_tr = as_2d_features(latents_train, "latents_train")
    z_te = as_2d_features(latents_test, "latents_test")
    if z_tr.shape[1] != z_te.shape[1]:
        raise ValueError(f"train latents have {z_tr.shape[1]} dimensions, test {z_te.shape[1]}")
    f_tr = np.asarray(factors_train)
    f_te = np.asarray(factors_test)
    f_tr = f_tr[:, None] if f_tr.ndim == 1 else f_tr
    f_te = f_te[:, None] if f_te.ndim == 1 else f_te
    if f_tr.shape[0] != z_tr.shape[0] or f_te.shape[0] != z_te.shape[0] or f_tr.shape[1] != f_te.shape[1]:
        raise ValueError("factors and latents do not line up (rows or factor count)")
    if method not in ("gbt", "logistic"):
        raise ValueError(f"method must be 'gbt' or 'logistic', got {method!r}")
    if max_train is not None and z_tr.shape[0] > max_train:
        keep = np.sort(np.random.default_rng(seed).choice(z_tr.shape[0], size=max_train, replace=False))
        z_tr, f_tr = z_tr[keep], f_tr[keep]
    d, k = z_tr.shape[1], f_tr.shape[1]
    importance = np.zeros((d, k))
    acc_test = np.zeros(k)
    acc_train = np.zeros(k)
    if method == "logistic":
        scaler = StandardScaler().fit(z_tr)
        x_tr, x_te = scaler.transform(z_tr), scaler.transform(z_te)
    else:
        x_tr, x_te = z_tr, z_te
    for j in range(k):  # one model per factor
        y_tr, y_te = f_tr[:, j], f_te[:, j]
        classes = np.unique(y_tr)
        if classes.size < 2:
            acc_train[j] = 1.0
            acc_test[j] = float(np.mean(y_te == classes[0]))
            continue  # a constant factor uses no dimension
        if method == "gbt":
            model = GradientBoostingClassifier(n_estimators=n_estimators, max_depth=max_depth, random_state=seed)
            model.fit(x_tr, y_tr)
            importance[:, j] = model.feature_importances_
        else:
            model = LogisticRegression(max_iter=max_iter, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=ConvergenceWarning)
                model.fit(x_tr, y_tr)
            importance[:, j] = np.abs(model.coef_).mean(axis=0)
        acc_train[j] = float(np.mean(model.predict(x_tr) == y_tr))
        acc_test[j] = float(np.mean(model.predict(x_te) == y_te))
    out = dci_from_importance(importance)
    out.update(
        {
            "informativeness": float(np.mean(acc_test)),
            "informativeness_train": float(np.mean(acc_train)),
            "accuracy_per_factor": acc_test,
            "importance": importance,
            "method": method,
        }
    )
    return out
