"""seqae.evaluation.probes: probe accuracies, chance and recoverability on the tiny evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from seqae.evaluation import evaluate_model
from seqae.metrics import NOT_RECOVERABLE
from tests.evaluation.helpers import FAST, model_file, train_windows

EXPECTED_REGION_CHANCE = 45 / 120  # majority train class is intergenic

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_probe_values_and_chance(evaluated: dict[str, Any]) -> None:
    metrics = evaluated["metrics"]["plain"]
    probes = metrics["probes"]
    assert probes["feature_sets"] == ["chrom", "gene", "residual", "latent", "pca", "kmer4"]
    assert probes["labels"] == ["chrom", "gene_family", "region_class", "tss_bin", "chrom_shuffled"]
    for row in probes["accuracy"].values():
        assert all(0.0 <= v <= 1.0 for v in row.values())
    assert probes["chance"]["region_class"] == pytest.approx(EXPECTED_REGION_CHANCE)
    # chrom: majority train chromosome's share of the test windows.
    labels = evaluated["labels"]
    train, test = labels[labels.split == "train"], labels[labels.split == "test"]
    majority = train["chrom"].value_counts().idxmax()
    assert probes["chance"]["chrom"] == pytest.approx(np.mean(test["chrom"] == majority))
    # gene_family: windows without a gene are left out of the probe.
    fam_train, fam_test = train["gene_family"][train.gene_family != ""], test["gene_family"][test.gene_family != ""]
    assert probes["chance"]["gene_family"] == pytest.approx(np.mean(fam_test == fam_train.value_counts().idxmax()))
    # The long-format TSV holds the same numbers.
    table = pd.read_csv(evaluated["outdir"]["plain"] / "probe_matrix.tsv", sep="\t")
    assert len(table) == 6 * 5
    row = table[(table.features == "kmer4") & (table.label == "chrom")].iloc[0]
    assert row["accuracy"] == pytest.approx(probes["accuracy"]["kmer4"]["chrom"])
    block = probes["blocks"]["chrom"]
    assert block["kmer_baseline"] == pytest.approx(probes["accuracy"]["kmer4"]["chrom"])
    assert block["residual"]["residual"] == pytest.approx(probes["accuracy"]["residual"]["chrom"])


def test_shuffled_label_is_not_recoverable(evaluated: dict[str, Any]) -> None:
    probes = evaluated["metrics"]["plain"]["probes"]
    assert probes["recoverable"]["chrom"] is True  # GC differs by chromosome: the k-mer baseline reads it
    assert probes["accuracy"]["kmer4"]["chrom"] > probes["chance"]["chrom"] + 0.15
    assert probes["recoverable"]["chrom_shuffled"] is False
    assert probes["flag"]["chrom_shuffled"] == NOT_RECOVERABLE
    table = pd.read_csv(evaluated["outdir"]["plain"] / "probe_matrix.tsv", sep="\t", keep_default_na=False)
    assert set(table.loc[table.label == "chrom_shuffled", "flag"]) == {NOT_RECOVERABLE}


def test_block_trained_on_shuffled_label_probes_at_chance(evaluated: dict[str, Any], tmp_path: Path) -> None:
    """A block whose supervised head is trained on a label with no sequence signal can only memorise the
    training windows: its held-out probe must stay at chance (it would not if probes were scored on the
    windows the model and the probe were fitted on, where both read the label well above chance)."""
    from seqae.checkpoint import load_model
    from seqae.metrics import linear_probe

    windows, labels = evaluated["windows"], evaluated["labels"]
    blocks = {"shuffled": {"size": 4, "label": "chrom_shuffled"}, "residual": {"size": 8, "label": None}}
    path = model_file(tmp_path / "best.pt", windows, labels, "plain", 100, blocks=blocks)
    run = {**FAST, "labels": ["chrom_shuffled"], "figures": False}
    (tmp_path / "eval" / "latent").mkdir(parents=True)
    for old in ("anomaly_scores.png", "latent/latent_chrom.png"):  # an earlier run's figures, which would look current
        (tmp_path / "eval" / old).write_bytes(b"old")
    probes = evaluate_model(path, windows, tmp_path / "eval", settings=run, device="cpu", progress=False)["probes"]
    assert not (tmp_path / "eval" / "anomaly_scores.png").exists()
    assert not (tmp_path / "eval" / "latent" / "latent_chrom.png").exists()
    block = probes["blocks"]["shuffled"]
    assert block["label"] == "chrom_shuffled" and block["recoverable"] is False
    assert block["probe"] == pytest.approx(probes["accuracy"]["shuffled"]["chrom_shuffled"])
    assert block["probe"] <= probes["chance"]["chrom_shuffled"] + 0.05
    # It did memorise: on its own training windows the head, and a probe scored there, beat chance by far.
    model, meta = load_model(path, "cpu")
    rows, seq, tracks = train_windows(windows, labels)
    y = labels["chrom_shuffled"].to_numpy()[rows]
    with torch.inference_mode():
        z = model.eval().encode(seq, tracks)[:, model.layout.slice("shuffled")]
        head = model.supervised_heads["shuffled"](z).argmax(1).numpy()
    cats = meta["data"]["label_categories"]["chrom_shuffled"]
    train_chance = pd.Series(y).value_counts(normalize=True).max()
    assert np.mean(np.asarray(cats)[head] == y) > train_chance + 0.2
    assert linear_probe(z.numpy(), y, z.numpy(), y).accuracy > train_chance + 0.2


def test_a_label_of_one_value_is_not_probed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Without any TSS distance every window's tss_bin was 'no gene': probed at 1.0 against a chance of 1.0,
    without a word."""
    from seqae.windows.store import WindowsSchema, WindowsWriter
    from tests.evaluation.helpers import FLANK, TRACKS, WINDOW_LEN, windows_file

    labels = windows_file(tmp_path / "w.h5")
    model = model_file(tmp_path / "m.pt", tmp_path / "w.h5", labels, "plain", 0)
    no_genes = labels.assign(tss_distance=np.nan)
    import h5py

    with h5py.File(tmp_path / "w.h5") as f:
        seq, tracks = f["seq"][:], f["tracks"][:]
    with WindowsWriter(tmp_path / "nogenes.h5", WindowsSchema(WINDOW_LEN, FLANK, TRACKS, "log1p"), "float16") as w:
        w.append(seq, tracks)
        w.write_labels(no_genes)
    settings = {**FAST, "labels": ["chrom", "tss_bin"], "figures": False}
    with caplog.at_level("WARNING", logger="seqae"):
        metrics = evaluate_model(model, tmp_path / "nogenes.h5", tmp_path / "e", settings=settings, device="cpu",
                                 progress=False)  # fmt: skip
    assert "tss_bin" not in metrics["probes"]["chance"] and "chrom" in metrics["probes"]["chance"]
    assert "label 'tss_bin' has one value ('none') in every train window; not probed" in caplog.text
