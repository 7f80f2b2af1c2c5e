"""seqae.evaluation.figures: the evaluation's figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from seqae.figure import plt
from tests.conftest import assert_non_blank_png

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_figures_are_non_blank_pngs(evaluated: dict[str, Any]) -> None:
    from matplotlib.image import imread

    outdir = evaluated["outdir"]["plain"]
    names = [
        "probe_matrix.png",
        "latent/latent_chrom.png",
        "latent/latent_gene.png",
        "latent/latent_residual.png",
        "anomaly_scores.png",
        "loss_curves.png",
    ]
    assert sorted(evaluated["metrics"]["plain"]["figures"].values()) == sorted(names)
    for name in names:
        assert_non_blank_png(outdir / name, imread)
    assert evaluated["metrics"]["vq"]["figures"] == {}  # figures: false


def test_anomaly_figure_draws_the_chain_panel_with_raw_and_corrected_auroc(tmp_path: Path, monkeypatch) -> None:
    from seqae.evaluation import figures as evaluation_figures
    from seqae.report_plots import draw_anomaly_scores

    figures = []
    monkeypatch.setattr("seqae.report_plots.save_figure", lambda fig, path: figures.append(fig) or Path(path))
    rng = np.random.default_rng(0)
    sets = {name: rng.normal(mu, 0.1, 50) for name, mu in (("real", 1.0), ("shuffled", 1.2), ("foreign", 1.4))}
    contribution = {
        "no_latent_auroc_shuffled": 0.901,
        "no_latent_auroc_foreign": 1.0,
        "no_latent_corrected_auroc_shuffled": 0.959,
        "no_latent_corrected_auroc_foreign": 0.983,
    }
    draw_anomaly_scores(
        sets, {"shuffled": 0.7, "foreign": 0.9}, tmp_path / "a.png", seq_scores=sets,
        seq_aurocs={"shuffled": 0.75}, **evaluation_figures._chain_panel(sets, contribution),
        baseline=evaluation_figures._markov_line({"markov_order": 5, "markov_auroc_shuffled": 0.932, "markov_auroc_foreign": None}),
    )  # fmt: skip
    axes = figures[0].axes
    assert len(axes) == 3 and "latent off" in axes[2].get_title()
    # The figure names the untrained baseline of the same run, so it says whether the model beats it.
    texts = [t.get_text() for t in figures[0].texts]
    assert any("order-5 / order-1 Markov" in t and "shuffled 0.932" in t and "foreign" not in t for t in texts), texts
    assert evaluation_figures._markov_line({"markov_order": 5}) is None
    legend = [t.get_text() for t in axes[2].get_legend().get_texts()]
    assert any("AUROC 0.901; less order-1: 0.959" in t for t in legend), legend
    plt.close(figures[0])
    # A model without a chain (not autoregressive): two panels, as before.
    draw_anomaly_scores(sets, {}, tmp_path / "b.png", seq_scores=sets, **evaluation_figures._chain_panel(None, None))
    assert len(figures[1].axes) == 2
    plt.close(figures[1])
