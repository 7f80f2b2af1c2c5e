"""seqae.plots: the extraction's QC figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from seqae.figure import plt


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
