"""The evaluation figures: probe-matrix heatmap, per-block latent embeddings and anomaly-score
histograms (drawn by :mod:`seqae.report_plots`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FIGURE_PATTERNS", "draw_figures"]

#: The files :func:`draw_figures` writes under the output folder (globs: one latent figure per block).
FIGURE_PATTERNS = ("probe_matrix.png", "anomaly_scores.png", "latent/latent_*.png")


def _chain_panel(
    chain_scores: Mapping[str, np.ndarray] | None, contribution: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The anomaly figure's chain panel (keyword arguments of ``draw_anomaly_scores``): the
    chain's per-window error and its AUROCs, raw and less an order-1 chain's; empty without
    a chain."""
    if chain_scores is None or not contribution:
        return {}
    return {
        "chain_scores": chain_scores,
        "chain_aurocs": {c: contribution.get(f"no_latent_auroc_{c}") for c in ("shuffled", "foreign")},
        "chain_corrected_aurocs": {
            c: contribution.get(f"no_latent_corrected_auroc_{c}") for c in ("shuffled", "foreign")
        },
    }


def draw_figures(
    outdir: Path,
    model: Any,
    name: str,
    probes: Any,
    flags: pd.DataFrame,
    colours: Mapping[str, np.ndarray],
    test_latent: np.ndarray,
    scores: Mapping[str, np.ndarray],
    seq_scores: Mapping[str, np.ndarray],
    anomaly: Mapping[str, Any],
    seed: int,
    chain_scores: Mapping[str, np.ndarray] | None = None,
) -> dict[str, str]:
    """Draw the evaluation figures; returns figure key -> file name. ``chain_scores``: the
    decoder's error with its latent off (an autoregressive decoder's anomaly score), drawn
    as a third panel of the anomaly figure."""
    from seqae import report_plots

    figures: dict[str, str] = {}
    figures["probe_matrix"] = report_plots.draw_probe_matrix(
        probes.accuracy, probes.chance, flags["recoverable"], outdir / "probe_matrix.png", title=name
    ).name
    for block in model.layout.names:
        # One folder for the per-block figures: their number depends on the model's blocks.
        path = report_plots.draw_latent_embedding(
            test_latent[:, model.layout.slice(block)], colours, outdir / "latent" / f"latent_{block}.png",
            title=f"{name} block {block!r} (test windows)", seed=seed,
        )  # fmt: skip
        figures[f"latent_{block}"] = f"latent/{path.name}"
    figures["anomaly_scores"] = report_plots.draw_anomaly_scores(
        scores,
        {"shuffled": anomaly["auroc_shuffled"], "foreign": anomaly["auroc_foreign"]},
        outdir / "anomaly_scores.png",
        seq_scores=seq_scores,
        seq_aurocs={"shuffled": anomaly["seq_auroc_shuffled"], "foreign": anomaly["seq_auroc_foreign"]},
        title=f"{name}: real test windows vs controls".strip(),
        baseline=_markov_line(anomaly),
        **_chain_panel(chain_scores, anomaly.get("latent_contribution")),
    ).name
    return figures


def _markov_line(anomaly: Mapping[str, Any]) -> str | None:
    """The anomaly figure's baseline line: the Markov likelihood ratio's AUROCs of the same run
    (no training), the figure to beat for the scores less an order-1 chain's error."""
    order = anomaly.get("markov_order")
    values = {c: anomaly.get(f"markov_auroc_{c}") for c in ("shuffled", "foreign")}
    parts = [f"{c} {v:.3f}" for c, v in values.items() if v is not None and np.isfinite(v)]
    if order is None or not parts:
        return None
    return (
        f"baseline, same test windows: order-{order} / order-1 Markov likelihood ratio (no training), "
        f'AUROC {", ".join(parts)}; compare with the scores "less order-1"'
    )
