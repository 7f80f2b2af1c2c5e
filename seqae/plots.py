"""Figures (PNG/SVG) of the extraction stage; headless (see :mod:`seqae.figure`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from seqae.figure import figure_path, plt, save_figure

if TYPE_CHECKING:
    from seqae.windows.store import WindowsSchema

KIND_COLOURS = {"peak": "#c0392b", "background": "#7f8c8d"}


def plot_extract_qc(windows_path: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Draw the extraction QC figure of a windows file (see :func:`draw_extract_qc`)."""
    from seqae.windows.store import read_labels, read_schema, read_summary

    path = figure_path(path)
    summary = read_summary(windows_path)
    profiles = {key.split("/", 1)[1]: value for key, value in summary.items() if key.startswith("mean_profile/")}
    labels = read_labels(windows_path, columns=["species", "chrom", "kind", "gc"])
    return draw_extract_qc(labels, profiles, read_schema(windows_path), path)


#: Panels per row of the extraction QC figure.
QC_COLUMNS = 3


def draw_extract_qc(
    labels: pd.DataFrame, profiles: dict[str, np.ndarray], schema: WindowsSchema, path: str | os.PathLike[str]
) -> Path:
    """Extraction QC: GC of peak vs background windows, windows per chromosome, mean track profiles.

    Args:
        labels: the window label table (columns ``kind``, ``gc``, ``chrom``, ``species``).
        profiles: window kind -> mean per-base track profile ``[T, seq_len]``.
        schema: window length, flank and track names (x axis of the profiles).
    """
    n_tracks = len(schema.track_names)
    n_panels = 2 + n_tracks
    # At most QC_COLUMNS panels a row: a row of five is too wide to read in a report or a page.
    ncols = min(QC_COLUMNS, n_panels)
    nrows = -(-n_panels // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.6 * nrows), squeeze=False)
    axes = grid.ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)

    gc_all = labels["gc"].dropna()
    lo, hi = np.quantile(gc_all, [0.001, 0.999]) if len(gc_all) else (0.0, 1.0)
    pad = max(0.02, 0.1 * (hi - lo))
    bins = np.linspace(max(0.0, lo - pad), min(1.0, hi + pad), 41)
    for kind, colour in KIND_COLOURS.items():
        gc = labels.loc[labels["kind"] == kind, "gc"].dropna()
        if len(gc):
            axes[0].hist(gc, bins=bins, density=True, alpha=0.55, color=colour, label=f"{kind} (n={len(gc)})")
    axes[0].set_xlabel("GC fraction of window")
    axes[0].set_ylabel("density")
    axes[0].set_title("GC matching")
    axes[0].legend(frameon=False, fontsize=8)

    chrom_label = labels["chrom"] if labels["species"].nunique() == 1 else labels["species"] + ":" + labels["chrom"]
    counts = pd.crosstab(chrom_label, labels["kind"]).reindex(pd.unique(chrom_label))
    bottom = np.zeros(len(counts))
    for kind, colour in KIND_COLOURS.items():
        if kind in counts:
            axes[1].bar(range(len(counts)), counts[kind], bottom=bottom, color=colour, label=kind)
            bottom += counts[kind].to_numpy()
    axes[1].set_xticks(range(len(counts)), counts.index, rotation=90 if len(counts) > 8 else 0, fontsize=8)
    axes[1].set_ylabel("windows")
    axes[1].set_title("Windows per chromosome")
    axes[1].set_ylim(0, bottom.max() * 1.2 if len(bottom) else 1)
    axes[1].legend(frameon=False, fontsize=8, ncols=2, loc="upper center")

    x = np.arange(schema.seq_len) - schema.flank - schema.window_len // 2
    for t, name in enumerate(schema.track_names):
        ax = axes[2 + t]
        for kind, colour in KIND_COLOURS.items():
            if kind in profiles:
                ax.plot(x, profiles[kind][t], color=colour, lw=1, label=kind)
        ax.axvspan(-schema.window_len // 2, schema.window_len // 2, color="#ecf0f1", zorder=0)
        ax.set_xlabel("position relative to summit (bp)")
        ax.set_ylabel(f"mean signal ({schema.track_transform})")
        ax.set_title(f"Track {name}")
        ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
