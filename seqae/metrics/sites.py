"""Known sites inside windows (e.g. the demo's planted TF motif instances): per-base masks and code specificity.

A simulator knows where it planted each TF's motif; real data may bring a
BED-like table of sites too (FIMO hits, footprints). These functions map such
sites onto windows so that a model can be judged where it matters:

* :func:`site_masks` — which bases of each window lie in a site, and each
  site's window, offset and TF, vectorised over sites (no loop per window);
* :func:`accuracy_inside_outside` — an agreement score on site bases beside
  the other bases of the same windows;
* :func:`code_label_information` — mutual information between a discrete
  code read at each site and the site's TF, with a permutation baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["SiteMasks", "accuracy_inside_outside", "code_label_information", "site_masks"]


@dataclass
class SiteMasks:
    """Sites mapped onto windows.

    Attributes:
        mask: ``bool [N, L]``, True on every base covered by a site.
        window: ``int64 [S]``, the window of each site wholly inside a window.
        centre: ``int64 [S]``, the site's centre as an offset in its window (bp).
        label: ``object [S]``, the site's label (e.g. its TF).
    """

    mask: np.ndarray
    window: np.ndarray
    centre: np.ndarray
    label: np.ndarray


def site_masks(
    chrom: np.ndarray, start: np.ndarray, window_len: int, sites: pd.DataFrame, label_column: str = "tf"
) -> SiteMasks:
    """Map sites (``chrom``, ``start``, ``end``, 0-based half-open, and a label column) onto windows.

    Args:
        chrom: ``[N]`` each window's chromosome.
        start: ``int [N]`` genome coordinate of each window's first base.
        window_len: L (bp).
        sites: one row per site.
        label_column: the column that labels a site.

    Returns:
        :class:`SiteMasks`. A site covers the bases it overlaps (partial overlaps
        too); only sites wholly inside a window are listed with a centre.
    """
    chrom = np.asarray(chrom).astype(str)
    start = np.asarray(start, dtype=np.int64)
    n = chrom.shape[0]
    coverage = np.zeros((n, window_len + 1), np.int32)
    windows, centres, labels = [], [], []
    site_chrom = sites["chrom"].astype(str).to_numpy()
    for name in np.intersect1d(np.unique(chrom), np.unique(site_chrom)):  # one pass per chromosome
        rows = np.flatnonzero(chrom == name)
        order = np.argsort(start[rows], kind="stable")
        rows, w_start = rows[order], start[rows][order]
        here = sites[site_chrom == name]
        s_start = here["start"].to_numpy(np.int64)
        s_end = here["end"].to_numpy(np.int64)
        s_label = here[label_column].astype(str).to_numpy()
        # Windows overlapping site i: starts in (s_start - L, s_end); windows may overlap one another.
        lo = np.searchsorted(w_start, s_start - window_len, side="right")
        hi = np.searchsorted(w_start, s_end, side="left")
        counts = np.maximum(hi - lo, 0)
        site_of_pair = np.repeat(np.arange(s_start.size), counts)
        window_of_pair = np.repeat(lo, counts) + (
            np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        )
        offset_lo = np.clip(s_start[site_of_pair] - w_start[window_of_pair], 0, window_len)
        offset_hi = np.clip(s_end[site_of_pair] - w_start[window_of_pair], 0, window_len)
        window_rows = rows[window_of_pair]
        np.add.at(coverage, (window_rows, offset_lo), 1)
        np.add.at(coverage, (window_rows, offset_hi), -1)
        inside = (s_start[site_of_pair] >= w_start[window_of_pair]) & (
            s_end[site_of_pair] <= w_start[window_of_pair] + window_len
        )
        windows.append(window_rows[inside])
        centres.append(((offset_lo + offset_hi) // 2)[inside])
        labels.append(s_label[site_of_pair][inside])
    mask = np.cumsum(coverage, axis=1)[:, :window_len] > 0
    cat = lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)  # noqa: E731
    return SiteMasks(mask, cat(windows, np.int64), cat(centres, np.int64), cat(labels, object))


def accuracy_inside_outside(predicted: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Share of called bases (target < 4) where ``predicted == target``, on site bases and on the others.

    Args:
        predicted, target: ``uint8 [N, L]`` base codes.
        mask: ``bool [N, L]`` site bases.

    Returns:
        ``{"sites", "background", "n_site_bases", "n_background_bases"}`` (NaN where a set is empty).
    """
    called = np.asarray(target) < 4
    right = (np.asarray(predicted) == np.asarray(target)) & called
    inside, outside = called & mask, called & ~mask
    n_in, n_out = int(inside.sum()), int(outside.sum())
    return {
        "sites": float(right[inside].sum() / n_in) if n_in else float("nan"),
        "background": float(right[outside].sum() / n_out) if n_out else float("nan"),
        "n_site_bases": n_in,
        "n_background_bases": n_out,
    }


def _plugin_mi(codes: np.ndarray, labels: np.ndarray) -> float:
    """Plug-in mutual information (bits) of two discrete arrays."""
    _, c = np.unique(codes, return_inverse=True)
    _, y = np.unique(labels, return_inverse=True)
    joint = np.zeros((c.max() + 1, y.max() + 1))
    np.add.at(joint, (c, y), 1.0)
    joint /= joint.sum()
    pc, py = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log2(joint[nz] / (pc @ py)[nz])).sum())


def code_label_information(
    codes: np.ndarray, labels: np.ndarray, n_permutations: int = 20, seed: int = 0
) -> dict[str, float]:
    """Mutual information between the code read at each site and the site's label.

    The plug-in estimate is biased upwards with many codes and few sites, so the
    mean over label permutations is reported beside it: only the excess is
    information.

    Args:
        codes: ``int [S]`` a code per site (e.g. the local code at its centre).
        labels: ``[S]`` each site's label.

    Returns:
        ``{"mi_bits", "mi_permuted_bits", "label_entropy_bits", "n_sites"}``.
    """
    codes, labels = np.asarray(codes), np.asarray(labels).astype(str)
    if codes.size == 0:
        return {
            "mi_bits": float("nan"),
            "mi_permuted_bits": float("nan"),
            "label_entropy_bits": float("nan"),
            "n_sites": 0,
        }
    rng = np.random.default_rng(seed)
    permuted = [_plugin_mi(codes, rng.permutation(labels)) for _ in range(n_permutations)]
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return {
        "mi_bits": _plugin_mi(codes, labels),
        "mi_permuted_bits": float(np.mean(permuted)),
        "label_entropy_bits": float(-(p * np.log2(p)).sum()),
        "n_sites": int(codes.size),
    }
