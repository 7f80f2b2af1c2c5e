"""Figure labels a reader needs: training length, plain log ticks, integer epochs, what the probe
heatmap's cells and colours show, the tree scale bar's unit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from seqae.figure import plt
from seqae.report_plots import PlainLogFormatter, model_training_note, training_note


def training_info(**changes) -> dict:
    base = {"epochs_completed": 2, "steps": 142, "device": "cpu", "training": {"epochs": 2},
            "finished": True, "stop_reason": "epochs", "best_epoch": 2}  # fmt: skip
    return base | changes


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


def test_loss_curves_have_y_labels_plain_log_ticks_integer_epochs_and_the_note(tmp_path: Path, monkeypatch) -> None:
    from seqae import training

    history = [
        {"epoch": 1, "train_loss": 12.1, "val_loss": 11.9, "train_loss/seq": 1.4, "val_loss/seq": 1.39},
        {"epoch": 2, "train_loss": 11.8, "val_loss": 11.7, "train_loss/seq": 1.38, "val_loss/seq": 1.37},
    ]
    figures = []
    monkeypatch.setattr("seqae.figure.save_figure", lambda fig, path: figures.append(fig) or Path(path))
    training.plot_loss_curves(history, tmp_path / "c.png", title="plain", note=training_note(training_info()))
    fig = figures[0]
    fig.canvas.draw()
    assert "2 epochs" in fig._suptitle.get_text() and "under-trained" in fig._suptitle.get_text()
    left, middle = fig.axes[:2]
    assert left.get_ylabel() and middle.get_ylabel()
    for ax in (left, middle):
        epochs = [t.get_position()[0] for t in ax.get_xticklabels() if t.get_text()]
        assert epochs and all(float(e).is_integer() for e in epochs), epochs
        labels = [t.get_text() for t in ax.get_yticklabels(minor=True) + ax.get_yticklabels() if t.get_text()]
        assert labels and not any("times" in s or "^" in s or "×" in s for s in labels), labels
    plt.close(fig)


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


def test_tree_summary_says_lower_is_better(tmp_path: Path, monkeypatch) -> None:
    from seqae.phylo import trees_table

    figures = []
    monkeypatch.setattr("seqae.figure.save_figure", lambda fig, path: figures.append(fig) or Path(path))
    table = pd.DataFrame({"family": ["a", "b"], "nrf_latent": [0.2, 0.4], "nrf_nj_p": [0.2, 0.6]})
    for column in [*trees_table.NRF_COLUMNS, "disc_auc_before", "disc_auc_after"]:
        if column not in table:
            table[column] = np.nan
    trees_table.draw_tree_summary(table, tmp_path / "t.png")
    ax = figures[0].axes[0]
    assert "lower is better" in ax.get_ylabel()
    assert all(t.get_rotation() > 0 for t in ax.get_xticklabels())
    plt.close(figures[0])


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


def test_extract_qc_wraps_its_panels_at_three_a_row(tmp_path: Path, monkeypatch) -> None:
    from seqae.plots import draw_extract_qc
    from seqae.windows.store import WindowsSchema

    figures = []
    monkeypatch.setattr("seqae.plots.save_figure", lambda fig, path: figures.append(fig) or Path(path))
    labels = pd.DataFrame(
        {"species": "s", "chrom": ["c1", "c2"] * 5, "kind": ["peak", "background"] * 5, "gc": np.linspace(0.3, 0.6, 10)}
    )
    schema = WindowsSchema(window_len=20, flank=2, track_names=("A", "B", "C"), track_transform="log1p")
    profiles = {"peak": np.ones((3, 24)), "background": np.zeros((3, 24))}
    draw_extract_qc(labels, profiles, schema, tmp_path / "qc.png")
    fig = figures[0]
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 5  # GC, windows per chromosome, three tracks
    assert fig.get_size_inches()[0] <= 3 * 4.2 + 1e-6  # five panels in one row were too wide to read
    assert {ax.get_title() for ax in shown} >= {"GC matching", "Track C"}
    plt.close(fig)
