"""Figures of the evaluation stage (PNG/SVG, headless Agg backend, written atomically).

* :func:`draw_probe_matrix` — heatmap of held-out linear-probe accuracy.
* :func:`draw_latent_embedding` — 2-D PCA (and UMAP when ``umap`` imports) of a latent block.
* :func:`draw_anomaly_scores` — anomaly-score histograms of real vs control windows.
* :func:`draw_comparison` — grouped bars of the headline numbers of several models.
* :func:`training_note` — how long a model trained, for the figures' titles.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.ticker
import numpy as np
import pandas as pd

from seqae.figure import plt, save_figure

__all__ = [
    "PlainLogFormatter",
    "draw_anomaly_scores",
    "draw_comparison",
    "draw_latent_embedding",
    "draw_probe_matrix",
    "model_training_note",
    "training_note",
]


def training_note(info: Mapping[str, Any]) -> str:
    """How long a model trained, from its ``model.json``: e.g. "2 epochs (142 steps) on CPU, still
    improving: under-trained". Under-trained: the run ended at its epoch or step limit with the
    validation loss still at its best in the last epoch, or it did not finish."""
    epochs = int(info.get("epochs_completed") or 0)
    planned = (info.get("training") or {}).get("epochs")
    device = "GPU" if str(info.get("device", "")).startswith("cuda") else "CPU"
    text = f"{epochs} epoch{'' if epochs == 1 else 's'} ({info.get('steps', '?')} steps) on {device}"
    if not info.get("finished"):
        return text + (f" of {planned}: training incomplete" if planned else ": training incomplete")
    if info.get("stop_reason") in ("epochs", "max_steps") and info.get("best_epoch") == epochs:
        return text + ", still improving: under-trained"
    return text


def model_training_note(model_path: str | os.PathLike[str]) -> str | None:
    """:func:`training_note` of the model whose ``best.pt`` (or folder) is ``model_path``, from the
    ``model.json`` beside it; None without one (e.g. a model file copied elsewhere)."""
    import json

    path = Path(model_path)
    info = (path if path.is_dir() else path.parent) / "model.json"
    try:
        return training_note(json.loads(info.read_text()))
    except (OSError, ValueError):
        return None


class PlainLogFormatter(matplotlib.ticker.Formatter):
    """Log-axis tick labels as plain numbers ("12", "0.5"), not "1.2×10¹": the ticks matplotlib's
    log formatter labels (``inner``), written with three significant digits."""

    def __init__(self, inner: matplotlib.ticker.Formatter) -> None:
        self.inner = inner

    def set_axis(self, axis: Any) -> None:
        super().set_axis(axis)
        self.inner.set_axis(axis)

    def set_locs(self, locs: Any) -> None:
        super().set_locs(locs)
        self.inner.set_locs(locs)

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:.3g}" if self.inner(x, pos) else ""


# Categories shown in their own colour in a latent scatter; the rarer ones are pooled as "other".
MAX_CATEGORIES = 12
_MISSING = "(none)"


def draw_probe_matrix(
    accuracy: pd.DataFrame,
    chance: Mapping[str, float] | pd.Series,
    recoverable: Mapping[str, bool] | pd.Series,
    path: str | os.PathLike[str],
    title: str = "",
) -> Path:
    """Heatmap of held-out probe accuracy: rows = feature sets, columns = labels.

    Each cell's colour and its large number are the accuracy above chance
    (``accuracy - chance``, so that labels with different chance levels
    compare), the small number beneath it the accuracy itself;
    each column header gives the label's chance level, and a label the k-mer
    baseline cannot read above chance is hatched and marked *not recoverable*.

    Args:
        accuracy: wide frame (``probe_matrix(...).accuracy``), values in [0, 1].
        chance: chance level per label.
        recoverable: per label, whether the sequence baseline reads it above chance.
        path: figure path (format from the extension).
        title: figure title prefix (e.g. the model name).
    """
    acc = accuracy.astype(float)
    labels = list(acc.columns)
    rows = list(acc.index)
    chance_v = np.array([float(pd.Series(chance).get(lab, np.nan)) for lab in labels])
    rec = np.array([bool(pd.Series(recoverable).get(lab, True)) for lab in labels])
    above = acc.to_numpy() - chance_v[None, :]
    fig, ax = plt.subplots(figsize=(1.5 + 1.45 * len(labels), 1.3 + 0.5 * len(rows)))
    limit = max(0.05, float(np.nanmax(np.abs(above))) if np.isfinite(above).any() else 0.05)
    image = ax.imshow(above, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for i in range(len(rows)):
        for j in range(len(labels)):
            value = acc.iat[i, j]
            if not np.isfinite(value):
                continue
            colour = "white" if np.isfinite(above[i, j]) and abs(above[i, j]) > 0.6 * limit else "black"
            if np.isfinite(above[i, j]):
                ax.text(j, i - 0.08, f"{above[i, j]:+.2f}", ha="center", va="center", fontsize=8, color=colour)
            ax.text(j, i + 0.25, f"acc {value:.2f}", ha="center", va="center", fontsize=6, color=colour)
    for j in np.flatnonzero(~rec):
        ax.add_patch(plt.Rectangle((j - 0.5, -0.5), 1, len(rows), fill=False, hatch="///", edgecolor="#7f8c8d", lw=0))
    ticks = [
        f"{lab}\nchance {c:.2f}" + ("" if r else "\nnot recoverable")
        for lab, c, r in zip(labels, chance_v, rec, strict=True)
    ]
    ax.set_xticks(range(len(labels)), ticks, fontsize=8)
    for tick, r in zip(ax.get_xticklabels(), rec, strict=True):
        if not r:
            tick.set_color("#c0392b")
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    # A line between the model's rows and the baselines (pca, k-mers).
    baseline_rows = [i for i, r in enumerate(rows) if r == "pca" or r.startswith("kmer")]
    if baseline_rows:
        ax.axhline(min(baseline_rows) - 0.5, color="black", lw=1)
    ax.set_xlabel("label (held-out accuracy above chance; hatched: not recoverable from sequence)", fontsize=8)
    ax.set_title(f"{title} linear probes on test windows".strip(), fontsize=10)
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("accuracy − chance (the cells' large number)", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def _pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First two principal coordinates ``[N, 2]`` (zeros where the block has fewer dimensions) and their variance share."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    out = np.zeros((x.shape[0], 2))
    share = np.zeros(2)
    if x.shape[0] >= 2 and x.shape[1] >= 1:
        u, s, _ = np.linalg.svd(x, full_matrices=False)
        k = min(2, s.size)
        out[:, :k] = u[:, :k] * s[:k]
        total = float((s**2).sum())
        if total > 0:
            share[:k] = s[:k] ** 2 / total
    return out, share


def _umap_2d(x: np.ndarray, seed: int) -> np.ndarray | None:
    try:
        import umap  # optional dependency
    except Exception:  # noqa: BLE001 - any import problem means: no UMAP panel
        return None
    if x.shape[0] < 10:
        return None
    try:
        # A seeded UMAP runs on one thread; asking for that, and for no more neighbours than there
        # are other points, keeps umap's warnings about both off the user's terminal.
        reducer = umap.UMAP(n_components=2, n_neighbors=min(15, x.shape[0] - 1), random_state=seed, n_jobs=1)
        return reducer.fit_transform(np.asarray(x, dtype=np.float32))
    except Exception:  # noqa: BLE001 - UMAP is a nicety; the PCA panels are the figure
        return None


def _categories(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Labels as display strings (missing -> "(none)", rare -> "other") and the categories by frequency."""
    shown = np.array(
        [_MISSING if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values], dtype=object
    )
    counts = pd.Series(shown).value_counts()
    keep = list(counts.index[:MAX_CATEGORIES])
    if len(counts) > MAX_CATEGORIES:
        shown = np.where(np.isin(shown, keep), shown, "other")
        keep.append("other")
    return shown, sorted(keep, key=lambda c: (c in (_MISSING, "other"), c))


def _scatter(ax: Any, xy: np.ndarray, values: np.ndarray, title: str, xlabel: str, ylabel: str) -> None:
    shown, cats = _categories(values)
    cmap = plt.get_cmap("tab20" if len(cats) > 10 else "tab10")
    size = 6 if xy.shape[0] > 2000 else 12
    for i, cat in enumerate(cats):
        mask = shown == cat
        colour = "#bdc3c7" if cat in (_MISSING, "other") else cmap(i % cmap.N)
        ax.scatter(xy[mask, 0], xy[mask, 1], s=size, alpha=0.7, color=colour, label=f"{cat} ({int(mask.sum())})", lw=0)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(frameon=False, fontsize=6, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5))


def draw_latent_embedding(
    embedding: np.ndarray,
    colour_by: Mapping[str, np.ndarray],
    path: str | os.PathLike[str],
    title: str = "",
    seed: int = 0,
) -> Path:
    """2-D PCA of one latent block, one panel per colouring label, side by side.

    When ``umap`` imports, a second row shows a UMAP of the same embedding;
    otherwise it is left out silently.

    Args:
        embedding: ``[N, d]`` block embedding of the test windows.
        colour_by: label name -> ``[N]`` values (None = unknown), e.g.
            ``{"chrom": ..., "gene_family": ...}``; at least one.
        path: figure path.
        title: figure title.
        seed: UMAP random state.
    """
    emb = np.asarray(embedding, dtype=np.float64)
    if not colour_by:
        colour_by = {"all windows": np.full(emb.shape[0], "window", dtype=object)}
    xy, share = _pca_2d(emb)
    projections = [("PCA", xy, f"PC1 ({share[0]:.0%})", f"PC2 ({share[1]:.0%})")]
    umap_xy = _umap_2d(emb, seed)
    if umap_xy is not None:
        projections.append(("UMAP", umap_xy, "UMAP 1", "UMAP 2"))
    n_cols = len(colour_by)
    fig, axes = plt.subplots(len(projections), n_cols, figsize=(5.2 * n_cols, 4.0 * len(projections)), squeeze=False)
    for r, (method, coords, xlabel, ylabel) in enumerate(projections):
        for c, (label, values) in enumerate(colour_by.items()):
            _scatter(
                axes[r, c], coords, np.asarray(values, dtype=object), f"{method}, coloured by {label}", xlabel, ylabel
            )
    fig.suptitle(f"{title} (d = {emb.shape[1]}, n = {emb.shape[0]})".strip(), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def _histograms(
    ax: Any,
    scores: Mapping[str, np.ndarray],
    aurocs: Mapping[str, float | None],
    title: str,
    xlabel: str,
    corrected: Mapping[str, float | None] | None = None,
) -> None:
    """Overlaid histograms of each set's scores on ``ax``; a control's legend entry gives its
    AUROC against the real windows and, with ``corrected``, the AUROC of the score less an
    order-1 chain's error."""
    colours = {"real": "#2c3e50", "shuffled": "#e67e22", "foreign": "#8e44ad"}
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    values = [np.asarray(v, dtype=np.float64) for v in scores.values() if len(v)]
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(1)
    lo, hi = np.quantile(finite, [0.001, 0.999]) if finite.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    bins = np.linspace(lo, hi, 61)
    for i, (name, v) in enumerate(scores.items()):
        v = np.asarray(v, dtype=np.float64)
        v = v[np.isfinite(v)]
        if not v.size:
            continue
        a = aurocs.get(name)
        extra = f", AUROC {a:.3f}" if a is not None and np.isfinite(a) else ""
        c = (corrected or {}).get(name)
        if extra and c is not None and np.isfinite(c):
            extra += f"; less order-1: {c:.3f}"
        colour = colours.get(name, cycle[i % len(cycle)])
        clipped = np.clip(v, lo, hi)
        ax.hist(clipped, bins=bins, density=True, alpha=0.35, color=colour, label=f"{name} (n={v.size}{extra})")
        ax.hist(clipped, bins=bins, density=True, histtype="step", lw=1.2, color=colour)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel("density", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.legend(frameon=False, fontsize=7)


def draw_anomaly_scores(
    scores: Mapping[str, np.ndarray],
    aurocs: Mapping[str, float],
    path: str | os.PathLike[str],
    seq_scores: Mapping[str, np.ndarray] | None = None,
    seq_aurocs: Mapping[str, float] | None = None,
    title: str = "",
    chain_scores: Mapping[str, np.ndarray] | None = None,
    chain_aurocs: Mapping[str, float | None] | None = None,
    chain_corrected_aurocs: Mapping[str, float | None] | None = None,
    baseline: str | None = None,
) -> Path:
    """Overlaid histograms of anomaly scores of real windows and the controls.

    Args:
        scores: set name -> ``[N]`` scores, e.g. ``{"real": ..., "shuffled": ..., "foreign": ...}``.
        aurocs: control name -> AUROC against the real windows (shown in the legend).
        path: figure path.
        seq_scores, seq_aurocs: the same for the sequence part of the score alone
            (drawn in a second panel when given).
        title: figure title.
        chain_scores, chain_aurocs: the same for an autoregressive decoder's chain, its
            error with the latent off (drawn in a panel of its own when given);
            chain_corrected_aurocs: the chain's AUROCs less an order-1 chain's error.
        baseline: one line on the untrained baseline of the same run (e.g. the Markov
            ratio's AUROCs), printed under the panels so that the figure says whether
            the model beats it.
    """
    panels = 1 + bool(seq_scores) + bool(chain_scores)
    fig, axes = plt.subplots(1, panels, figsize=((6.2 if panels < 3 else 5.4) * panels, 3.9), squeeze=False)
    score_axis = (
        "chain's sequence error + track error per window"
        if chain_scores
        else ("reconstruction error per window (sequence + tracks)")
    )
    _histograms(axes[0, 0], scores, aurocs, "anomaly score", score_axis)
    if seq_scores:
        # With a chain the anomaly score's sequence part is the chain's; this panel is then the
        # error through the latent, which is what seq_scores holds either way.
        seq_title = "sequence error through the latent" if chain_scores else "sequence part"
        _histograms(axes[0, 1], seq_scores, seq_aurocs or {}, seq_title, "cross-entropy per base (nats)")
    if chain_scores:
        _histograms(
            axes[0, panels - 1], chain_scores, chain_aurocs or {}, "the decoder's chain (latent off)",
            "cross-entropy per base (nats), latent off", corrected=chain_corrected_aurocs,
        )  # fmt: skip
    if title:
        fig.suptitle(title, fontsize=10)
    if baseline:
        fig.text(0.5, 0.01, baseline, ha="center", va="bottom", fontsize=8)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
    else:
        fig.tight_layout()
    return save_figure(fig, path)


def draw_comparison(
    table: pd.DataFrame,
    columns: Sequence[tuple[str, str]],
    path: str | os.PathLike[str],
    model_column: str = "model",
    title: str = "model comparison",
    notes: Mapping[str, str | None] | None = None,
) -> Path:
    """Grouped bars: one group per metric, one bar per model (values on a 0..1 scale).

    Args:
        table: one row per model.
        columns: ``(column, display name)`` of the metrics to draw, in order; missing or
            all-NaN columns are left out.
        path: figure path.
        model_column: column with the model names (legend).
        title: axes title.
        notes: model name -> how long it trained (:func:`training_note`), shown in the legend.
    """
    cols = [
        (c, name)
        for c, name in columns
        if c in table.columns and pd.to_numeric(table[c], errors="coerce").notna().any()
    ]
    n_models = len(table)
    fig, ax = plt.subplots(figsize=(min(16.0, max(6.0, 2.0 + 0.28 * max(1, len(cols)) * max(1, n_models))), 4.4))
    width = 0.8 / max(1, n_models)
    x = np.arange(len(cols))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (_, row) in enumerate(table.iterrows()):
        heights = np.array([float(pd.to_numeric(row[c], errors="coerce")) for c, _ in cols], dtype=np.float64)
        ax.bar(
            x - 0.4 + width * (i + 0.5),
            np.nan_to_num(heights, nan=0.0),
            width,
            color=colours[i % len(colours)],
            label=str(row[model_column])
            + (f": {notes[row[model_column]]}" if notes and notes.get(row[model_column]) else ""),
        )
    ax.set_xticks(x, [name for _, name in cols], rotation=35, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("value (0..1)")
    ax.axhline(0.5, color="#bdc3c7", lw=0.8, ls="--", zorder=0)
    # The legend above the bars (a bar may reach 1), headed by the title.
    legend = ax.legend(frameon=False, fontsize=8, ncols=1 if notes else min(4, max(1, n_models)), title=title,
                       loc="lower center", bbox_to_anchor=(0.5, 1.0))  # fmt: skip
    legend.get_title().set_fontsize(10)
    fig.tight_layout()
    return save_figure(fig, path)
