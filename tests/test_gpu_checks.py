"""scripts/gpu_checks.py: the config merge and the quality bars read from a comparison row."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location("gpu_checks", REPO / "scripts" / "gpu_checks.py")
gpu_checks = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = gpu_checks
_spec.loader.exec_module(gpu_checks)


def test_overlay_merges_like_snakemake():
    base = {"training": {"epochs": 2, "batch_size": 64}, "models": {"plain": {"kind": "plain"}}, "genomes": [1, 2]}
    overlay = {"training": {"epochs": 30}, "models": {"plain": {"size": "large"}}, "genomes": [3]}
    merged = gpu_checks.merge_configs(base, overlay)
    assert merged == {
        "training": {"epochs": 30, "batch_size": 64},
        "models": {"plain": {"kind": "plain", "size": "large"}},
        "genomes": [3],
    }
    assert base["training"]["epochs"] == 2  # inputs untouched


def test_relocate_moves_only_paths_under_the_results_folder():
    config = {"results": "results", "genomes": [{"fasta": "results/demo_data/genome.fa", "peaks": "data/p.bed"}],
              "note": "results_elsewhere/x"}  # fmt: skip
    moved = gpu_checks.relocate(config, "results", "/scratch/run/results")
    assert moved["genomes"][0] == {"fasta": "/scratch/run/results/demo_data/genome.fa", "peaks": "data/p.bed"}
    assert moved["note"] == "results_elsewhere/x" and moved["results"] == "results"


def test_quality_bars_pass_fail_and_missing():
    row = {
        "model": "vq", "kind": "vq", "recon_accuracy": 0.9, "pca_recon_accuracy": 0.5,
        "chrom_label": "chrom", "chrom_probe": 0.60, "chrom_kmer": 0.55, "chrom_residual": 0.31, "chrom_chance": 0.25,
        "gene_label": "gene_family", "gene_probe": 0.10, "gene_kmer": 0.20, "gene_residual": 0.20, "gene_chance": 0.20,
        "swap_chrom_donor": float("nan"), "swap_chrom_judge": 0.5, "auroc_shuffled": 0.6, "vq_perplexity": 10.0,
        "seq_corrected_auroc_shuffled": 0.95, "markov_auroc_shuffled": 0.93,
        "latent_gain_real": 0.30, "latent_gain_shuffled": 0.295,
    }  # fmt: skip
    bars = {b["bar"]: b for b in gpu_checks.quality_bars(row, codebook_size=64)}
    assert bars["chrom block probe on chrom >= k-mer"]["passed"] is True
    assert bars["residual probe on chrom <= chance + 0.02"]["passed"] is False  # 0.31 > 0.27
    assert bars["gene block probe on gene_family >= k-mer"]["passed"] is False
    assert bars["residual probe on gene_family <= chance + 0.02"]["passed"] is True
    assert bars["reconstruction accuracy >= PCA (same dims)"]["passed"] is True
    swap = bars["swap: donor's chromosome >= 0.9 x judge"]
    assert swap["passed"] is None and math.isnan(swap["value"])
    assert bars["anomaly AUROC vs shuffled (order-1 corrected) >= Markov"]["passed"] is True  # 0.95 >= 0.93
    assert bars["latent contribution real - shuffled >= 0.01 nats/base"]["passed"] is False  # 0.005
    # PCA at the same number of dimensions is the bar when the row has it.
    same = {b["bar"]: b for b in gpu_checks.quality_bars({**row, "pca_same_dims_recon_accuracy": 0.95})}
    assert same["reconstruction accuracy >= PCA (same dims)"]["passed"] is False
    assert bars["VQ perplexity >= 0.3 x codebook"]["passed"] is False  # 10 < 19.2
    plain = gpu_checks.quality_bars({**row, "kind": "plain"}, codebook_size=None)
    assert not any(b["bar"].startswith("VQ") for b in plain)


def test_models_part_runs_models_concurrently_each_in_order(tmp_path, monkeypatch):
    """--model-jobs 2: two models train at once; each model's train -> embed -> evaluate stays in order."""
    import threading
    import time

    import pandas as pd

    events: list[tuple[str, str, str]] = []  # (model, step, start|end)
    lock = threading.Lock()
    results = tmp_path / "results"

    def fake_run(cmd, log, env=None):
        step = cmd[cmd.index("--quiet") + 1]
        if step == "compare":
            rows = [{"model": m, "kind": "plain", "recon_accuracy": 0.5} for m in ("a", "b", "c")]
            rows[0].update(seq_gain_real=0.06, seq_gain_shuffled=0.05)
            pd.DataFrame(rows).to_csv(cmd[cmd.index("--out") + 1], sep="\t", index=False)
            return 0.0
        model = Path(cmd[cmd.index("--outdir") + 1]).relative_to(results / "models").parts[0]
        with lock:
            events.append((model, step, "start"))
        time.sleep(0.2 if step == "train" else 0.01)
        if step == "train":
            (results / "models" / model).mkdir(parents=True, exist_ok=True)
            history = {"samples_per_s": [10.0, 20.0], "val_seq_ce": [1.38, 1.30], "val_auroc_shuffled": [0.51, 0.62]}
            if model == "a":  # the only model trained with head_gradient_cap on
                history["train_head_gradient_scale"] = [0.5, 0.25]
            pd.DataFrame(history).to_csv(results / "models" / model / "metrics.csv", index=False)
        if step == "evaluate":
            (results / "models" / model / "evaluate").mkdir(parents=True, exist_ok=True)
            (results / "models" / model / "evaluate" / "metrics.json").write_text(json.dumps({}))
        with lock:
            events.append((model, step, "end"))
        return 0.2

    monkeypatch.setattr(gpu_checks, "_run", fake_run)
    config = {"results": str(results), "models": {"a": {}, "b": {}, "c": {}}}
    out = gpu_checks.part_models(tmp_path, config, tmp_path / "config.yaml", jobs=2)

    assert sorted(out["bars"]) == ["a", "b", "c"] and out["train_samples_per_s"] == {"a": 20.0, "b": 20.0, "c": 20.0}
    assert out["last_epoch"]["a"] == {
        "val_seq_ce": 1.30,
        "train_head_gradient_scale": 0.25,
        "val_auroc_shuffled": 0.62,
        "seq_gain_real": 0.06,
        "seq_gain_shuffled": 0.05,
        "epochs": 2,
        **{
            key: out["last_epoch"]["a"][key]
            for key in out["last_epoch"]["a"]
            if key.startswith(
                ("latent_", "pca_", "recon_", "local_", "seq_auroc", "seq_corrected", "chain_", "markov_")
            )
        },  # fmt: skip
    }
    assert math.isnan(out["last_epoch"]["b"]["seq_gain_real"])
    assert out["last_epoch"]["b"]["val_seq_ce"] == 1.30 and math.isnan(
        out["last_epoch"]["b"]["train_head_gradient_scale"]
    )
    for model in "abc":
        steps = [step for m, step, what in events if m == model and what == "start"]
        assert steps == ["train", "embed", "evaluate"]
    running, most = 0, 0
    for _, step, what in events:
        if step == "train":
            running += 1 if what == "start" else -1
            most = max(most, running)
    assert most == 2  # two trainings overlapped, never three


def test_loss_weights_sweep_overlay_is_a_valid_config():
    """benchmarks/loss_weights_sweep.yaml merges onto the GPU demo and validates (14 models)."""
    import yaml

    from seqae.config import validate_config
    from seqae.models import model_settings

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for overlay in ("config/gpu.yaml", "benchmarks/loss_weights_sweep.yaml"):
        config = gpu_checks.merge_configs(config, yaml.safe_load((REPO / overlay).read_text()))
    config = validate_config(config)
    assert len(config["models"]) == 14
    for name, settings in config["models"].items():
        model_settings({k: v for k, v in settings.items() if k != "training"}, where=f"models.{name}")


def test_two_level_sweep_overlay_is_a_valid_config():
    """benchmarks/two_level_sweep.yaml merges onto the GPU demo and validates (12 models, every ablation one setting)."""
    import yaml

    from seqae.config import validate_config
    from seqae.models import model_settings

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for overlay in ("config/gpu.yaml", "benchmarks/two_level_sweep.yaml"):
        config = gpu_checks.merge_configs(config, yaml.safe_load((REPO / overlay).read_text()))
    config = validate_config(config)
    assert len(config["models"]) == 12
    settings = {
        name: model_settings({k: v for k, v in s.items() if k != "training"}, where=f"models.{name}")
        for name, s in config["models"].items()
    }
    assert settings["plain"]["decoder"]["kind"] == "autoregressive" and settings["plain"]["local"]["enabled"]
    assert settings["conv"]["decoder"]["kind"] == "conv" and not settings["conv"]["local"]["enabled"]
    assert settings["ctx0"]["decoder"]["context"] == 0 and settings["k64"]["local"]["codebook_size"] == 64


def test_write_summary_lists_bars_and_last_epoch(tmp_path):
    bar = {"bar": "reconstruction accuracy > PCA", "value": 0.36, "target": "> 0.351", "passed": True}
    last = {
        "val_seq_ce": 1.3119,
        "train_head_gradient_scale": 0.02,
        "val_auroc_shuffled": 0.603,
        "seq_gain_real": 0.0590,
        "seq_gain_shuffled": 0.0541,
    }
    models = {
        "seconds": {"a": 5.0},
        "bars": {"a": [bar]},
        "train_samples_per_s": {"a": 110.0},
        "last_epoch": {"a": last},
    }
    gpu_checks.write_summary(tmp_path, {"device": "cpu", "parts": {"models": models}})
    text = (tmp_path / "gpu_checks.md").read_text()
    assert "| a | reconstruction accuracy > PCA | 0.360 | > 0.351 | yes |" in text
    assert "| a | 1.3119 | 0.02 | 0.603 | 0.0590 | 0.0541 |" in text
    assert json.loads((tmp_path / "gpu_checks.json").read_text())["parts"]["models"]["last_epoch"]["a"] == last
