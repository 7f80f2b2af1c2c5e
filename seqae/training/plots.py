"""loss_curves.png: the loss per epoch of a training run, its components and the shuffle monitor."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def plot_loss_curves(
    history: list[Mapping[str, Any]], path: str | os.PathLike[str], title: str = "", note: str | None = None
) -> Path:
    """Train vs validation loss per epoch (left), the loss components (middle), log scale when positive,
    and, when validation shuffles were scored (``training.monitor_shuffled``), their AUROC and gap (right).
    ``note`` (how long the model trained, :func:`seqae.report_plots.training_note`) heads the figure."""
    from matplotlib.ticker import MaxNLocator

    from seqae.figure import plt, save_figure
    from seqae.report_plots import PlainLogFormatter

    table = pd.DataFrame(history)
    epochs = table["epoch"].to_numpy()
    monitored = "val_auroc_shuffled" in table
    fig, axes = plt.subplots(1, 3 if monitored else 2, figsize=(15 if monitored else 10, 3.8))
    for split, style in (("train", "-"), ("val", "--")):
        if f"{split}_loss" in table:
            axes[0].plot(epochs, table[f"{split}_loss"], style, marker="o", ms=3, color="black", label=split)
    axes[0].set_title(f"{title} total loss".strip())
    components = sorted({c.split("/", 1)[1] for c in table.columns if c.startswith("train_loss/")})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(components):
        colour = colours[i % len(colours)]
        for split, style in (("train", "-"), ("val", "--")):
            column = f"{split}_loss/{name}"
            if column in table:
                axes[1].plot(epochs, table[column], style, marker="o", ms=3, color=colour, label=f"{name} ({split})")
    axes[1].set_title("loss components (weighted; dashed: validation)")
    if monitored:
        _plot_shuffle_monitor(axes[2], epochs, table)
    axes[0].set_ylabel("loss (weighted sum of the terms)")
    axes[1].set_ylabel("loss term × its weight")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs 1, 2, not 1.2, 1.4
        if len(epochs) == 1:  # one epoch (the quick demo): the locator alone would tick 0.95, 1.00, ...
            ax.set_xticks(epochs)
            ax.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
    for ax in axes[:2]:
        ax.set_xlabel("epoch")
        values = [line.get_ydata() for line in ax.get_lines()]
        if values and all(np.all(np.asarray(v, float) > 0) for v in values):
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(PlainLogFormatter(ax.yaxis.get_major_formatter()))
            ax.yaxis.set_minor_formatter(PlainLogFormatter(ax.yaxis.get_minor_formatter()))
        if ax.get_lines():
            ax.legend(frameon=False, fontsize=7, ncols=2 if ax is axes[1] else 1)
    if note:
        fig.suptitle(f"{title}: trained {note}".strip(": "), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def _plot_shuffle_monitor(ax: Any, epochs: np.ndarray, table: pd.DataFrame) -> None:
    """Validation windows vs their dinucleotide shuffles: AUROC of the sequence error (left axis) and the
    mean gap in cross-entropy, nats per base (right axis)."""
    ax.plot(epochs, table["val_auroc_shuffled"], marker="o", ms=3, color="black", label="AUROC")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("epoch")
    ax.set_ylabel("AUROC, real vs shuffled")
    ax.set_title("validation vs its dinucleotide shuffles")
    if "val_shuffle_gap" in table:
        gap_ax = ax.twinx()
        gap_ax.plot(epochs, table["val_shuffle_gap"], "--", marker="o", ms=3, color="tab:red", label="CE gap")
        gap_ax.set_ylabel("shuffled - real seq CE (nats/base)", color="tab:red")
        # From 0 (or the lowest gap below it): the gap's size, not its jitter.
        gap_ax.set_ylim(bottom=float(np.nanmin(table["val_shuffle_gap"].to_numpy(float), initial=0.0)))
        ax.legend(handles=ax.get_lines()[:1] + gap_ax.get_lines(), frameon=False, fontsize=7, loc="upper left")
