"""seqae.phylo.trees_table: trees.tsv, its gathering and its summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqae.errors import InputError
from seqae.figure import plt
from seqae.phylo.trees_table import TREES_COLUMNS, draw_tree_summary, gather_trees, summarise_trees, summary_line

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_rows_have_the_documented_columns_and_gather(family_run, tmp_path) -> None:
    out, _ = family_run
    one = pd.read_csv(out / "famA.tsv", sep="\t")
    assert tuple(one.columns) == TREES_COLUMNS and len(one) == 1
    assert one.loc[0, "n_taxa"] == 8 and one.loc[0, "n_sites"] == 200
    other = one.assign(family="famB")
    other.to_csv(tmp_path / "famB.tsv", sep="\t", index=False)
    table = gather_trees([out / "famA.tsv", tmp_path / "famB.tsv"], tmp_path / "trees.tsv")
    back = pd.read_csv(tmp_path / "trees.tsv", sep="\t")
    assert tuple(back.columns) == TREES_COLUMNS and back["family"].tolist() == ["famA", "famB"] and len(table) == 2
    with pytest.raises(InputError, match="more than one"):
        gather_trees([out / "famA.tsv", out / "famA.tsv"], tmp_path / "again.tsv")
    (tmp_path / "bad.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(InputError, match="columns"):
        gather_trees([tmp_path / "bad.tsv"], tmp_path / "again.tsv")
    assert not (tmp_path / "again.tsv").exists()


def test_summary_of_hand_made_rows(tmp_path) -> None:
    """Means per method and latent-vs-NJ-p counts; a family without reference has no nRF and is left out."""
    from PIL import Image

    table = pd.DataFrame({column: [np.nan] * 4 for column in TREES_COLUMNS})
    table["family"] = ["a", "b", "c", "d"]
    table["nrf_latent"] = [0.0, 0.2, 0.4, np.nan]
    table["nrf_nj_p"] = [0.2, 0.2, 0.2, np.nan]
    table["nrf_fasttree"] = [0.0, 0.0, 0.2, np.nan]
    table["disc_auc_before"], table["disc_auc_after"] = [0.8, 0.9, 0.7, 0.6], [0.6, 0.5, 0.7, 0.6]
    table["loglik_latent"] = [-100.0, -200.0, -300.0, -50.0]
    table["loglik_fasttree"] = [-100.005, -190.0, -310.0, np.nan]
    summary = summarise_trees(table)
    assert summary["n_families"] == 4 and summary["n_with_reference"] == 3
    assert summary["nrf_latent"]["mean"] == pytest.approx(0.2) and summary["nrf_latent"]["n"] == 3
    assert summary["nrf_latent"]["sem"] == pytest.approx(0.2 / np.sqrt(3))
    assert summary["nrf_nj_jc69"] == {"mean": None, "sem": None, "n": 0}
    assert summary["latent_vs_nj_p"] == {"better": 1, "tied": 1, "worse": 1, "latent_le_nj_p": True}
    assert summary["mean_disc_auc_before"] == pytest.approx(0.75) and summary["mean_disc_auc_after"] == pytest.approx(
        0.6
    )
    assert summary["loglik_latent_vs_fasttree"]["n"] == 3 and summary["loglik_latent_vs_fasttree"]["latent_ge"] == 2
    assert summary["loglik_latent_vs_fasttree"]["mean_difference"] == pytest.approx((0.005 - 10 + 10) / 3)
    assert summary["loglik_latent_vs_iqtree"] == {"n": 0, "latent_ge": 0, "mean_difference": None}
    path = draw_tree_summary(table, tmp_path / "nrf.png")
    pixels = np.asarray(Image.open(path).convert("L"))
    assert (pixels < 128).mean() > 0.005  # bars and axes drawn
    empty = draw_tree_summary(
        table.assign(nrf_latent=np.nan, nrf_nj_p=np.nan, nrf_fasttree=np.nan), tmp_path / "none.png"
    )
    assert empty.stat().st_size > 0
    # The terminal's line: the nRFs, else (no reference: it printed a dict of Nones) the log-likelihoods.
    assert summary_line(summary) == (
        "mean nRF over 3 families with a reference: latent 0.200, NJ-p 0.200 (latent better/tied/worse than NJ-p: 1/1/1)"
    )
    without = summarise_trees(table.assign(nrf_latent=np.nan, nrf_nj_p=np.nan, nrf_fasttree=np.nan))
    assert summary_line(without) == (
        "4 families, no reference tree: no nRF; the latent tree's log-likelihood minus FastTree's +0.00 "
        "(2 of 3 at least as likely)"
    )


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
