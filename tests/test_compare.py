"""seqae.compare: the comparison table of several evaluations, on hand-made and on real metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from seqae.cli import main
from seqae.compare import compare_models
from tests.conftest import assert_non_blank_png

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _hand_metrics(
    name: str, kind: str, recon: float, chrom_probe: float, swap_donor: float | None, extra: dict
) -> dict:
    return {
        "model": {
            "name": name,
            "kind": kind,
            "blocks": {
                "chrom": {"size": 4, "label": "chrom"},
                "gene": {"size": 4, "label": "gene_family"},
                "residual": {"size": 8, "label": None},
            },
        },
        "data": {"n_test": 100},
        "reconstruction": {"base_accuracy": recon, "pca_base_accuracy": 0.4},
        "probes": {
            "accuracy": {"residual": {"chrom": 0.3, "gene_family": 0.2}},
            "blocks": {
                "chrom": {
                    "label": "chrom",
                    "probe": chrom_probe,
                    "kmer_baseline": 0.7,
                    "chance": 0.25,
                    "recoverable": True,
                    "residual": {"residual": 0.3},
                },
                "gene": {
                    "label": "gene_family",
                    "probe": 0.35,
                    "kmer_baseline": 0.2,
                    "chance": 0.2,
                    "recoverable": False,
                    "residual": {"residual": 0.2},
                },
            },
        },
        "swap": {
            "chrom": {
                "computed": swap_donor is not None,
                "donor_fraction": swap_donor,
                "recipient_fraction": 0.1 if swap_donor is not None else None,
                "recipient_base_agreement": 0.8 if swap_donor is not None else None,
                "donor_base_agreement": 0.35 if swap_donor is not None else None,
            },
            "gene": {"computed": False, "skipped": "judge cannot read"},
        },
        "disentanglement": {"mig": {"latent": 0.1}, "dci": {"latent": {"disentanglement": 0.5}}},
        "anomaly": {
            "auroc_shuffled": 0.8,
            "auroc_foreign": 0.95,
            "seq_gain_over_composition": {"real": 0.06, "shuffled": 0.05, "foreign": 0.01},
        },
        "vae": None,
        "vq": None,
        **extra,
    }


def test_compare_models_on_hand_made_metrics(tmp_path: Path) -> None:
    a = _hand_metrics("plain", "plain", 0.6, 0.9, 0.7, {})
    b = _hand_metrics(
        "vq",
        "vq",
        0.5,
        0.8,
        None,
        {
            "vq": {
                "perplexity": {"chrom": 4.0, "gene": 6.0, "residual": 8.0},
                "usage": {"chrom": 0.5, "gene": 1.0, "residual": 0.75},
            }
        },
    )
    paths = []
    for name, data in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        paths.append(tmp_path / name / "metrics.json")
        paths[-1].write_text(json.dumps(data))
    out = tmp_path / "comparison.tsv"
    assert main(["-q", "compare", "--metrics", *map(str, paths), "--out", str(out)]) == 0
    table = pd.read_csv(out, sep="\t")
    assert table["model"].tolist() == ["plain", "vq"] and table["kind"].tolist() == ["plain", "vq"]
    assert table["recon_accuracy"].tolist() == [0.6, 0.5]
    assert table["pca_recon_accuracy"].tolist() == [0.4, 0.4]
    assert table["chrom_probe"].tolist() == [0.9, 0.8]
    assert table["chrom_kmer"].tolist() == [0.7, 0.7]
    assert table["chrom_residual"].tolist() == [0.3, 0.3]
    assert table["chrom_chance"].tolist() == [0.25, 0.25]
    assert table["gene_recoverable"].tolist() == [False, False]
    assert table["swap_chrom_donor"].iloc[0] == 0.7 and np.isnan(table["swap_chrom_donor"].iloc[1])
    assert table["swap_chrom_kept"].iloc[0] == 0.8 and np.isnan(table["swap_chrom_kept"].iloc[1])
    assert table["swap_chrom_moved"].iloc[0] == 0.35 and np.isnan(table["swap_chrom_moved"].iloc[1])
    assert table["swap_gene_donor"].isna().all()
    assert table["auroc_shuffled"].tolist() == [0.8, 0.8] and table["auroc_foreign"].tolist() == [0.95, 0.95]
    assert table["seq_gain_real"].tolist() == [0.06, 0.06] and table["seq_gain_shuffled"].tolist() == [0.05, 0.05]
    assert np.isnan(table["vq_perplexity"].iloc[0]) and table["vq_perplexity"].iloc[1] == pytest.approx(6.0)
    assert table["vq_usage"].iloc[1] == pytest.approx(0.75)
    md = out.with_suffix(".md").read_text().splitlines()
    assert md[0].startswith("| model | kind |") and len(md) == 4
    assert "| plain | plain |" in md[2] and "0.900" in md[2]
    from matplotlib.image import imread

    assert_non_blank_png(out.with_suffix(".png"), imread)

    # A figure format matplotlib does not write is refused before the table is written.
    typo = tmp_path / "typo" / "comparison.tsv"
    assert main(["-q", "compare", "--metrics", *map(str, paths), "--out", str(typo), "--png", str(typo) + ".pgn"]) == 2
    assert not typo.parent.exists()
    # The same file twice (a repeated path, or through a link) made two rows of one model.
    (tmp_path / "link").symlink_to(tmp_path / "a")
    for twice in ([paths[0], paths[1], paths[0]], [paths[0], tmp_path / "link" / "metrics.json"]):
        assert main(["-q", "compare", "--metrics", *map(str, twice), "--out", str(typo)]) == 2
        assert not typo.parent.exists()


def test_compare_on_real_evaluations(evaluated: dict[str, Any], tmp_path: Path) -> None:
    # A second run of the plain model, in another folder: the two are told apart by their folders.
    (tmp_path / "run2").mkdir()
    rerun = tmp_path / "run2" / "metrics.json"
    rerun.write_bytes((evaluated["outdir"]["plain"] / "metrics.json").read_bytes())
    paths = [evaluated["outdir"][k] / "metrics.json" for k in ("plain", "vq", "vae")] + [rerun]
    table = compare_models(paths, tmp_path / "c.tsv", tmp_path / "c.png")
    assert table["kind"].tolist() == ["plain", "vq", "vae", "plain"]
    assert table["model"].tolist() == ["tiny_plain (eval_plain)", "tiny_vq", "tiny_vae", "tiny_plain (run2)"]
    assert table["chrom_probe"].between(0, 1).all()
    assert not np.isnan(table["vq_perplexity"].iloc[1]) and np.isnan(table["vq_perplexity"].iloc[0])
    assert "vae_spectrum_k4" in table.columns and not np.isnan(table["vae_spectrum_k4"].iloc[2])
