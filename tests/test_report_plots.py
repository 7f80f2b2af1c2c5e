"""seqae.report_plots: figure labels a reader needs: training length, plain log ticks, what the probe
heatmap's cells and colours show."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from seqae.figure import plt
from seqae.report_plots import PlainLogFormatter, draw_latent_embedding, model_training_note, training_note
from tests.conftest import training_info


def test_training_note_says_how_long_and_whether_under_trained(tmp_path: Path) -> None:
    assert training_note(training_info()) == "2 epochs (142 steps) on CPU, still improving: under-trained"
    assert training_note(training_info(stop_reason="early_stopping", best_epoch=1, device="cuda:0")) == (
        "2 epochs (142 steps) on GPU"
    )
    assert training_note(training_info(epochs_completed=1, finished=False, stop_reason=None)) == (
        "1 epoch (142 steps) on CPU of 2: training incomplete"
    )
    (tmp_path / "model.json").write_text(json.dumps(training_info()))
    assert model_training_note(tmp_path / "best.pt") == training_note(training_info())
    assert model_training_note(tmp_path / "elsewhere" / "best.pt") is None


def test_plain_log_formatter_keeps_the_inner_choice_of_ticks() -> None:
    fig, ax = plt.subplots()
    ax.plot([1, 2], [11.0, 13.0])
    ax.set_yscale("log")
    ax.yaxis.set_minor_formatter(PlainLogFormatter(ax.yaxis.get_minor_formatter()))
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels(minor=True) if t.get_text()]
    assert labels and all(s.replace(".", "").isdigit() for s in labels), labels
    plt.close(fig)


def test_probe_matrix_cells_show_what_the_colour_shows(tmp_path: Path, monkeypatch) -> None:
    from seqae.report_plots import draw_probe_matrix

    figures = []
    monkeypatch.setattr("seqae.report_plots.save_figure", lambda fig, path: figures.append(fig) or Path(path))
    accuracy = pd.DataFrame({"chrom": [0.75, 0.5]}, index=["latent", "kmer4"])
    draw_probe_matrix(accuracy, {"chrom": 0.25}, {"chrom": True}, tmp_path / "p.png")
    ax, bar = figures[0].axes
    texts = [t.get_text() for t in ax.texts]
    assert "+0.50" in texts and "+0.25" in texts  # accuracy - chance, the colour's quantity
    assert "acc 0.75" in texts  # the accuracy beneath
    assert "chance" in bar.get_ylabel() and "large number" in bar.get_ylabel()
    plt.close(figures[0])


def test_latent_figure_draws_umap_without_warnings_on_a_dozen_windows(tmp_path: Path) -> None:
    """umap warned about its thread count on every run and about its neighbours on small test sets."""
    import warnings

    import numpy as np
    import pytest

    pytest.importorskip("umap")
    rng = np.random.default_rng(0)
    embedding = rng.normal(size=(12, 4)).astype(np.float32)
    labels = {"chrom": np.array(["chr1", "chr2"] * 6)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=ImportWarning)  # umap's note that TensorFlow is absent
        draw_latent_embedding(embedding, labels, tmp_path / "latent.png", title="chrom block")
    assert not [str(w.message) for w in caught]
    assert (tmp_path / "latent.png").stat().st_size > 0
