"""seqae.training.plots: the loss curves' labels, ticks and note."""

from __future__ import annotations

from pathlib import Path

from seqae.figure import plt
from seqae.report_plots import training_note
from tests.conftest import training_info


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
