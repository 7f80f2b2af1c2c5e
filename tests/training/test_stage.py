"""Training stage: outputs, learning, exact resumption, clear errors, the CLI and every demo model kind.

Windows are written directly (96 windows of 64 bp + 8 bp flanks, two tracks,
labels with empty gene families) and the models are tiny (16 channels, one
residual block), so each epoch takes a fraction of a second on a CPU.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_model

from seqae.checkpoint import first_difference, load_checkpoint, load_model
from seqae.cli import main
from seqae.config import config_schema, config_to_json, load_config, validate_config
from seqae.errors import ConfigError, SeqaeError
from seqae.models import DEFAULT_MODEL_SETTINGS, SequenceAutoencoder
from seqae.runtime import epoch_seed
from seqae.training import lr_factor, resolve_model, train_model
from seqae.windows.store import WindowsSchema, WindowsWriter

TINY: dict[str, Any] = tiny_model(adversarial_schedule={"warmup_steps": 10})
TRAINING: dict[str, Any] = {"batch_size": 16, "epochs": 4, "warmup_steps": 2, "lr": 3e-3, "log_every_steps": 2}
# Columns of metrics.csv that measure time, not training.
TIMING = ["seconds", "samples_per_s"]


def make_windows(
    path: Path,
    n: int = 96,
    window_len: int = 64,
    flank: int = 8,
    tracks: tuple[str, ...] = ("TFA", "TFB"),
    seed: int = 0,
) -> Path:
    """A windows file: four repeated 8-mer families with 10 % mutations, a chromosome-specific prefix,
    tracks scaled by family; splits by row (60 train, 24 val, 12 test); a third of gene families empty."""
    rng = np.random.default_rng(seed)
    seq_len = window_len + 2 * flank
    chroms = np.array(["chr1", "chr2", "chr3"])[rng.integers(0, 3, n)]
    families = np.array(["F1", "F2", ""])[rng.integers(0, 3, n)]
    motifs = rng.integers(0, 4, (4, 8))
    family = rng.integers(0, 4, n)
    seq = np.tile(motifs[family], (1, seq_len // 8 + 1))[:, :seq_len].astype(np.uint8)
    mutate = rng.random(seq.shape) < 0.1
    seq[mutate] = rng.integers(0, 4, int(mutate.sum()))
    seq[:, : flank + 4] = np.searchsorted(["chr1", "chr2", "chr3"], chroms)[:, None]
    signal = None
    if tracks:
        signal = np.abs(rng.normal(size=(n, len(tracks), seq_len))) * (0.5 + 0.5 * family[:, None, None])
    split = np.where(np.arange(n) % 4 == 0, "val", np.where(np.arange(n) % 8 == 1, "test", "train"))
    schema = WindowsSchema(window_len=window_len, flank=flank, track_names=tracks, track_transform="log1p")
    with WindowsWriter(path, schema) as writer:
        writer.append(seq, signal)
        writer.write_labels(
            pd.DataFrame(
                {
                    "chrom": chroms,
                    "start": np.arange(n) * 1000,
                    "end": np.arange(n) * 1000 + window_len,
                    "gene_family": families,
                    "split": split,
                }
            )
        )
    return path


def make_config(models: dict[str, Any] | None = None, **training: Any) -> dict[str, Any]:
    """A validated config with tiny models (``plain`` by default) and tiny training settings."""
    config = {
        "genomes": [{"species": "s", "fasta": "g.fa", "tfs": [{"name": "A", "peaks": "a.bed"}]}],
        "models": copy.deepcopy(models if models is not None else {"plain": TINY}),
        "training": {**TRAINING, **training},
    }
    return validate_config(config)


def tiny(**overrides: Any) -> dict[str, Any]:
    return {**copy.deepcopy(TINY), **overrides}


# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def windows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_windows(tmp_path_factory.mktemp("data") / "windows.h5")


def metrics(outdir: Path) -> pd.DataFrame:
    return pd.read_csv(outdir / "metrics.csv")


def assert_same_run(a: Path, b: Path) -> None:
    """Identical parameters and buffers in checkpoint.pt and best.pt, identical metrics.csv but for the timings."""
    for name in ("checkpoint.pt", "best.pt"):
        state_a, state_b = load_checkpoint(a / name)["model_state"], load_checkpoint(b / name)["model_state"]
        assert state_a.keys() == state_b.keys()
        for key in state_a:
            assert torch.equal(state_a[key], state_b[key]), f"{name}: {key} differs"
    pd.testing.assert_frame_equal(metrics(a).drop(columns=TIMING), metrics(b).drop(columns=TIMING), check_exact=True)


# ---------------------------------------------------------------------- settings


def test_schema_models_match_default_model_settings():
    """The generated `models` schema has exactly the keys (and choices) of DEFAULT_MODEL_SETTINGS."""
    from seqae.models.settings import MODEL_SETTINGS_CHOICES

    model = config_schema()["$defs"]["model"]["properties"]

    def tree(schema: dict) -> dict:
        return {k: tree(v["properties"]) if "properties" in v else None for k, v in schema.items()}

    def defaults_tree(settings: dict) -> dict:
        return {k: defaults_tree(v) if isinstance(v, dict) and k != "blocks" else None for k, v in settings.items()}

    expected = defaults_tree(DEFAULT_MODEL_SETTINGS)
    actual = tree({k: v for k, v in model.items() if k != "training"})
    assert actual == expected
    for key, choices in MODEL_SETTINGS_CHOICES.items():
        node = model
        parts = key.split(".")
        for part in parts[:-1]:
            node = node[part]["properties"]
        assert node[parts[-1]]["enum"] == list(choices), key
    # A model's training overrides: the same keys as the top-level training, without defaults.
    top = config_schema()["properties"]["training"]["properties"]
    override = model["training"]["properties"]
    assert tree(override) == tree(top)
    assert not any("default" in v for v in override.values())


def test_config_defaults_and_model_errors_name_the_key():
    config = make_config()
    assert config["training"]["precision"] == "auto" and config["training"]["augment"]["jitter"] is True
    assert validate_config({"genomes": config["genomes"]})["models"] == {"plain": {}}
    bad = copy.deepcopy(config)
    bad["models"]["vq"] = {"kind": "vq", "vq": {"codebook_size": "many"}}
    with pytest.raises(ConfigError, match=r"^config: models\.vq\.vq\.codebook_size: 'many' is not of type integer$"):
        validate_config(bad)
    bad["models"]["vq"] = {"vq": {"codebok_size": 8}}
    with pytest.raises(ConfigError, match=r"models\.vq\.vq\.codebok_size: unknown key"):
        validate_config(bad)
    # Checks beyond types (odd kernels, divisibility) come from model_settings, named the same way.
    bad["models"]["vq"] = {"kind": "vq", "blocks": {"a": {"size": 6, "label": None}}}
    with pytest.raises(ConfigError, match=r"^models\.vq\.blocks\.a\.size: 6 is not divisible by vq\.n_groups = 4$"):
        resolve_model(validate_config(bad), "vq")


def test_per_model_training_override():
    config = make_config({"plain": tiny(), "vq": tiny(kind="vq", training={"epochs": 7, "augment": {"jitter": False}})})
    _, plain = resolve_model(config, "plain")
    settings, vq = resolve_model(config, "vq")
    assert settings["kind"] == "vq" and settings["channels"] == 16
    assert plain["epochs"] == 4 and vq["epochs"] == 7
    assert vq["augment"] == {"reverse_complement": True, "jitter": False}
    with pytest.raises(SeqaeError, match=r"no model 'nope' in the config \(configured models: plain, vq\)"):
        resolve_model(config, "nope")


def test_selection_loss_leaves_out_the_heads_it_is_told_to():
    from seqae.training import selection_loss

    means = {"loss": 10.0, "loss/seq": 1.5, "loss/supervised": 3.0, "loss/adversarial": 5.0, "loss/kl": 0.5}
    assert selection_loss(means) == pytest.approx(2.0)  # seq + kl
    assert selection_loss(means, "autoencoder_and_heads") == pytest.approx(5.0)  # + supervised
    assert selection_loss({"loss": 4.0}) == 4.0  # no heads: the whole loss
    with pytest.raises(ValueError, match="selection must be one of"):
        selection_loss(means, "heads")


def test_lr_schedule_and_epoch_seeds():
    assert lr_factor(0, 4, 100, "cosine") == pytest.approx(0.25)
    assert lr_factor(3, 4, 100, "cosine") == pytest.approx(1.0)
    assert lr_factor(4, 4, 100, "cosine") == pytest.approx(1.0)
    assert lr_factor(52, 4, 100, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 4, 100, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(99, 4, 100, "constant") == 1.0
    assert lr_factor(0, 0, 10, "cosine") == 1.0
    seeds = {epoch_seed(7, e, s) for e in range(1, 4) for s in range(3)}
    assert len(seeds) == 9 and epoch_seed(7, 1, 0) == epoch_seed(7, 1, 0)


# ---------------------------------------------------------------------- a run


def test_run_writes_documented_outputs(windows, tmp_path):
    out = tmp_path / "plain"
    result = train_model(make_config(), "plain", windows, out, progress=False)
    assert {p.name for p in out.iterdir()} >= {
        "checkpoint.pt",
        "best.pt",
        "model.json",
        "metrics.csv",
        "loss_curves.png",
    }
    assert result["finished"] and result["stop_reason"] == "epochs"
    assert result["epochs_completed"] == 4 and result["steps"] == 4 * 3  # 60 train windows // 16

    table = metrics(out)
    assert list(table["epoch"]) == [1, 2, 3, 4] and list(table["step"]) == [3, 6, 9, 12]
    for column in [
        "lr",
        "train_loss",
        "train_loss/seq",
        "train_loss/tracks",
        "train_loss/supervised",
        "train_loss/adversarial",
        "train_seq_ce",
        "train_supervised_acc/chrom",
        "val_loss",
        "val_loss/seq",
        "val_track_error",
        "val_adversary_acc/gene/chrom",
        "val_shuffled_seq_ce",
        "val_shuffle_gap",
        "val_auroc_shuffled",
        "seconds",
        "samples_per_s",
    ]:
        assert column in table, column
    assert np.isfinite(table.drop(columns=["lr"]).to_numpy(float)).all()
    assert result["val_loss"] == pytest.approx(table["val_loss"].iloc[-1])

    ckpt = load_checkpoint(out / "checkpoint.pt")
    for key in [
        "model_state",
        "optimizer_state",
        "scheduler_state",
        "rng",
        "epoch",
        "step",
        "best_val_loss",
        "epochs_without_improvement",
        "model_init",
        "training",
        "data",
        "seqae_version",
        "history",
    ]:
        assert key in ckpt, key
    assert ckpt["epoch"] == 4 and ckpt["step"] == 12 and ckpt["finished"]
    assert ckpt["data"]["schema"] == {
        "window_len": 64,
        "flank": 8,
        "track_names": ["TFA", "TFB"],
        "track_transform": "log1p",
        "schema_version": 1,
    }
    # Empty gene families are unknown (-1), not a category.
    assert ckpt["data"]["label_categories"] == {"chrom": ["chr1", "chr2", "chr3"], "gene_family": ["F1", "F2"]}
    assert ckpt["model_init"]["label_classes"] == {"chrom": 3, "gene_family": 2}
    assert ckpt["training"]["batch_size"] == 16 and ckpt["model_init"]["settings"]["channels"] == 16
    assert set(ckpt["rng"]) == {"torch", "cuda", "numpy", "python"}

    model, info = load_model(out / "best.pt")
    assert isinstance(model, SequenceAutoencoder) and not model.training
    # best.pt follows the selection loss: the validation loss without the heads' terms (training.selection).
    heads = table["val_loss/adversarial"] + table["val_loss/supervised"]
    np.testing.assert_allclose(table["selection_loss"], table["val_loss"] - heads, rtol=1e-6)
    assert info["epoch"] == table.loc[table["selection_loss"].idxmin(), "epoch"]
    assert info["val_loss"] == pytest.approx(table["selection_loss"].min())
    with torch.no_grad():
        assert model.encode(torch.zeros(2, 64, dtype=torch.long), torch.zeros(2, 2, 64)).shape == (2, 16)

    summary = json.loads((out / "model.json").read_text())
    assert summary["n_parameters"] == sum(p.numel() for p in model.parameters())
    assert summary["schema"]["window_len"] == 64 and summary["label_categories"]["gene_family"] == ["F1", "F2"]
    assert summary["settings"]["kind"] == "plain" and summary["finished"] and summary["best_epoch"] == info["epoch"]
    assert (out / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_loss_goes_down(windows, tmp_path):
    train_model(make_config(epochs=8, lr=1e-2), "plain", windows, tmp_path, progress=False)
    table = metrics(tmp_path)
    # 24 steps on random bases and labels: only the tracks can be learned (the bases and heads
    # stay near chance on validation windows). The adversaries' own cross-entropy is left out: it
    # sits near its starting value while they learn and the encoder works against them.
    learned = table["val_loss"] - table["val_loss/adversarial"]
    assert learned.iloc[-1] < learned.iloc[0]
    # The tracks term falls by 38% (by 52% without the head gradient cap): ask for a third.
    assert table["val_loss/tracks"].iloc[-1] < 0.67 * table["val_loss/tracks"].iloc[0]
    assert table["train_loss"].iloc[-1] < table["train_loss"].iloc[0]


def test_quiet_training_reports_progress_and_eta(windows, tmp_path, monkeypatch, caplog):
    """Without progress bars (the workflow's --quiet) the log has a line per epoch with the
    losses, windows/s and ETA, and a line on the progress within an epoch (here after every step)."""
    import re

    import seqae.training.epoch

    monkeypatch.setattr(seqae.training.epoch, "PROGRESS_EVERY_SECONDS", 0.0)
    with caplog.at_level("INFO", logger="seqae"):
        train_model(make_config(epochs=2), "plain", windows, tmp_path, progress=False)
    assert re.search(r"plain epoch 1/2: step 1/\d+, \d+ windows/s, epoch ETA \d+ s", caplog.text), caplog.text
    assert re.search(r"plain epoch 1/2: train loss .*windows/s, ETA \d+ s\)", caplog.text), caplog.text
    last = [line for line in caplog.text.splitlines() if "plain epoch 2/2: train loss" in line]
    assert len(last) == 1 and "ETA" not in last[0]


def test_shuffle_monitor_changes_nothing_but_its_columns(windows, tmp_path):
    on, off = tmp_path / "on", tmp_path / "off"
    train_model(make_config(epochs=2), "plain", windows, on, progress=False)
    train_model(make_config(epochs=2, monitor_shuffled=False), "plain", windows, off, progress=False)
    added = ["val_shuffled_seq_ce", "val_shuffle_gap", "val_auroc_shuffled"]
    assert not set(added) & set(metrics(off).columns)
    table = metrics(on)
    assert table["val_auroc_shuffled"].between(0, 1).all() and np.isfinite(table["val_shuffle_gap"]).all()
    # The gap is the shuffles' error less the real windows' (both means over windows).
    real = table["val_shuffled_seq_ce"] - table["val_shuffle_gap"]
    np.testing.assert_allclose(real, table["val_seq_ce"], atol=0.05)
    for name in ("checkpoint.pt", "best.pt"):  # an eval-mode pass on its own generator: training is untouched
        a, b = load_checkpoint(on / name)["model_state"], load_checkpoint(off / name)["model_state"]
        assert all(torch.equal(a[k], b[k]) for k in a), name
    pd.testing.assert_frame_equal(
        table.drop(columns=TIMING + added), metrics(off).drop(columns=TIMING), check_exact=True
    )


def test_shuffle_errors_on_a_hand_made_decoder(windows, tmp_path, monkeypatch):
    """A decoder that always predicts one window W, sure of each base (logit 10): W scores the
    cross-entropy of a right base, and its shuffles score it plus 10 nats per base moved."""
    from seqae.metrics import dinucleotide_counts
    from seqae.training.data import open_run_data
    from seqae.training.loop import TrainingRun
    from seqae.training.monitor import ShuffleMonitor
    from seqae.training.settings import block_labels, resolve_model

    config = make_config()
    settings, training = resolve_model(config, "plain")
    data = open_run_data(str(windows), training, block_labels(settings), torch.device("cpu"))
    run = TrainingRun(config, "plain", data, tmp_path, resume=False, progress=False)
    try:
        length, batch = 64, 6
        pattern = torch.from_numpy(np.random.default_rng(3).integers(0, 4, length)).long()
        logits = 10.0 * torch.nn.functional.one_hot(pattern, 4).T.float()  # [4, L]
        seen: list[torch.Tensor] = []
        monkeypatch.setattr(run.module, "encode", lambda x, t: seen.append(x.clone()) or torch.zeros(x.shape[0], 16))
        monkeypatch.setattr(run.module, "decode", lambda z: (logits.expand(z.shape[0], 4, length), None))
        seq = pattern.expand(batch, length).clone()
        tracks = torch.zeros(batch, 2, length)
        rng_before = torch.get_rng_state()
        monitor = ShuffleMonitor(run.module, run.seed, run.amp_dtype, run.ctx)
        real, shuffled = monitor.errors(seq, tracks, torch.arange(10, 10 + batch), logits.expand(batch, 4, length))
        again = monitor.errors(seq, tracks, torch.arange(10, 10 + batch), logits.expand(batch, 4, length))[1]
        assert torch.equal(torch.get_rng_state(), rng_before)
        right = math.log1p(3 * math.exp(-10.0))  # -log softmax of the sure base
        np.testing.assert_allclose(real.numpy(), right, atol=1e-6)
        moved = (seen[0] != pattern).float().mean(1)
        assert (moved > 0).all()
        np.testing.assert_allclose(shuffled.numpy(), (right + 10.0 * moved).numpy(), rtol=1e-4)
        assert torch.equal(seen[0], seen[1]) and torch.equal(shuffled, again)  # the same control every epoch
        np.testing.assert_array_equal(
            dinucleotide_counts(seen[0].numpy().astype(np.uint8)), dinucleotide_counts(seq.numpy().astype(np.uint8))
        )
    finally:
        run.close()


def test_staged_and_streamed_data_train_identically(windows, tmp_path):
    staged, streamed = tmp_path / "staged", tmp_path / "streamed"
    train_model(make_config(epochs=2, stage_on_device=True), "plain", windows, staged, progress=False)
    train_model(make_config(epochs=2, stage_on_device=False, num_workers=1), "plain", windows, streamed, progress=False)
    assert json.loads((staged / "model.json").read_text())["n_train"] == 60
    assert_same_run(staged, streamed)


def test_tensorboard_events_when_available(windows, tmp_path, monkeypatch):
    """With torch.utils.tensorboard importable, step and epoch scalars go to outdir/tensorboard."""
    import sys
    import types

    calls: list[tuple[str, float, int]] = []

    class SummaryWriter:
        def __init__(self, log_dir: str, purge_step: int | None = None):
            self.log_dir = log_dir
            calls.append(("open", float(purge_step or 0), 0))

        def add_scalar(self, tag: str, value: float, step: int) -> None:
            calls.append((tag, value, step))

        def flush(self) -> None:
            pass

        def close(self) -> None:
            calls.append(("close", 0.0, 0))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=SummaryWriter))
    train_model(make_config(epochs=2, log_every_steps=2), "plain", windows, tmp_path, progress=False)
    tags = {tag for tag, _, _ in calls}
    assert {"open", "close", "train_step/loss", "train_step/lr", "epoch/val_loss", "epoch/train_loss/seq"} <= tags
    assert [step for tag, _, step in calls if tag == "train_step/loss"] == [2, 4, 6]
    assert [step for tag, _, step in calls if tag == "epoch/val_loss"] == [1, 2]


def test_max_steps_and_early_stopping(windows, tmp_path, monkeypatch):
    result = train_model(make_config(max_steps=5), "plain", windows, tmp_path / "steps", progress=False)
    assert result["stop_reason"] == "max_steps" and result["steps"] == 5 and result["epochs_completed"] == 2

    from seqae.training.loop import TrainingRun

    calls = iter(range(100))
    monkeypatch.setattr(TrainingRun, "_validate", lambda self: {"loss": 10.0 + next(calls)})
    result = train_model(
        make_config(epochs=10, early_stopping_patience=2), "plain", windows, tmp_path / "early", progress=False
    )
    assert result["stop_reason"] == "early_stopping" and result["epochs_completed"] == 3
    assert result["best_epoch"] == 1 and load_checkpoint(tmp_path / "early" / "best.pt")["epoch"] == 1


# ---------------------------------------------------------------------- resumption

# Dropout, a VAE's sampling and denoising corruption all draw from the global
# RNG, VQ restarts too: resumption must restore it exactly.
RESUME_MODELS = {
    # Erasure: running statistics in the steps and the exact refit after each epoch both resume exactly.
    "vae": tiny(kind="vae", dropout=0.1, denoise={"enabled": True}, erasure={"enabled": True}),
    "vq": tiny(kind="vq", vq={"codebook_size": 8, "n_groups": 2, "dead_code_steps": 2}),
}


@pytest.fixture(scope="module")
def uninterrupted(windows, tmp_path_factory) -> dict[str, Path]:
    """Each RESUME_MODELS model trained for 4 epochs in one go."""
    runs = {}
    for name in RESUME_MODELS:
        out = tmp_path_factory.mktemp(f"whole_{name}")
        train_model(make_config(RESUME_MODELS), name, windows, out, progress=False)
        runs[name] = out
    return runs


def test_resume_after_stop_is_exact(windows, tmp_path, uninterrupted):
    config = make_config(RESUME_MODELS)
    partial = train_model(config, "vae", windows, tmp_path, progress=False, stop_after=2)
    assert not partial["finished"] and partial["epochs_completed"] == 2 and len(metrics(tmp_path)) == 2
    resumed = train_model(config, "vae", windows, tmp_path, resume=True, progress=False)
    assert resumed["finished"] and resumed["epochs_completed"] == 4
    assert_same_run(uninterrupted["vae"], tmp_path)


class Killed(BaseException):
    """Stands for the process being killed (not an Exception: nothing may catch it on the way)."""


def test_resume_after_kill_mid_epoch_is_exact(windows, tmp_path, uninterrupted, monkeypatch):
    forward = SequenceAutoencoder.forward

    def killed_at_step_7(self, seq, tracks, labels=None, step=0):
        if self.training and step == 7:  # the second step of epoch 3
            raise Killed
        return forward(self, seq, tracks, labels, step)

    config = make_config(RESUME_MODELS)
    monkeypatch.setattr(SequenceAutoencoder, "forward", killed_at_step_7)
    with pytest.raises(Killed):
        train_model(config, "vq", windows, tmp_path, progress=False)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 2
    train_model(config, "vq", windows, tmp_path, resume=True, progress=False)
    assert_same_run(uninterrupted["vq"], tmp_path)


def test_resume_replays_epochs_after_the_last_checkpoint(windows, tmp_path, uninterrupted):
    """Checkpoints every 2 epochs, stopped after 3: epoch 3 is replayed on resumption, its row replaced."""
    config = make_config(RESUME_MODELS, checkpoint_every_epochs=2)
    train_model(config, "vae", windows, tmp_path, progress=False, stop_after=3)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 2 and len(metrics(tmp_path)) == 3
    train_model(config, "vae", windows, tmp_path, resume=True, progress=False)
    assert_same_run(uninterrupted["vae"], tmp_path)


def test_resume_a_finished_run_reports_it_complete(windows, tmp_path, uninterrupted, caplog):
    out = uninterrupted["vae"]
    before = (out / "checkpoint.pt").stat().st_mtime_ns
    with caplog.at_level("INFO", logger="seqae"):
        result = train_model(make_config(RESUME_MODELS), "vae", windows, out, resume=True, progress=False)
    assert result["finished"] and result["epochs_completed"] == 4
    assert "already complete" in caplog.text
    assert (out / "checkpoint.pt").stat().st_mtime_ns == before


def test_resume_rewrites_a_deleted_best_model(windows, tmp_path, uninterrupted):
    """Snakemake deletes a failed job's outputs, best.pt among them, before retrying it:
    the resumed run writes best.pt again even when no later epoch improves on it."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(uninterrupted["vae"], out)
    original = load_checkpoint(out / "best.pt")
    (out / "best.pt").unlink()
    train_model(make_config(RESUME_MODELS), "vae", windows, out, resume=True, progress=False)
    restored = load_checkpoint(out / "best.pt")
    assert restored["epoch"] == original["epoch"] and restored["step"] == original["step"]
    assert restored["val_loss"] == original["val_loss"]
    for key, value in original["model_state"].items():
        assert torch.equal(restored["model_state"][key], value), key


def test_existing_run_is_not_overwritten_without_resume(windows, uninterrupted):
    with pytest.raises(SeqaeError, match=r"checkpoint\.pt: a training run is already here; pass --resume"):
        train_model(make_config(RESUME_MODELS), "vae", windows, uninterrupted["vae"], progress=False)


def test_resume_with_another_config_is_refused(windows, uninterrupted):
    out = uninterrupted["vae"]
    other_kind = copy.deepcopy(RESUME_MODELS)
    other_kind["vae"]["kind"] = "vq"
    with pytest.raises(SeqaeError) as err:
        train_model(make_config(other_kind), "vae", windows, out, resume=True, progress=False)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(str(out / "checkpoint.pt"))
    assert "was trained with models.vae.kind='vae', this config says 'vq'" in message

    with pytest.raises(SeqaeError, match=r"was trained with training\.lr=0\.003, this config says 0\.01"):
        train_model(make_config(RESUME_MODELS, lr=0.01), "vae", windows, out, resume=True, progress=False)
    reordered = copy.deepcopy(RESUME_MODELS)
    reordered["vae"]["blocks"] = dict(reversed(list(reordered["vae"]["blocks"].items())))
    with pytest.raises(SeqaeError, match=r"latent blocks \['chrom', 'gene', 'residual'\] \(models\.vae\.blocks\)"):
        train_model(make_config(reordered), "vae", windows, out, resume=True, progress=False)
    with pytest.raises(SeqaeError, match=r"is a checkpoint of model 'vae', not 'vq'"):
        train_model(make_config(RESUME_MODELS), "vq", windows, out, resume=True, progress=False)
    # Settings that do not change what is computed may differ.
    result = train_model(
        make_config(RESUME_MODELS, num_workers=3, log_every_steps=5), "vae", windows, out, resume=True, progress=False
    )
    assert result["finished"]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"tracks": ("TFA",)}, r"track_names \['TFA', 'TFB'\] there, \['TFA'\] here"),
        ({"window_len": 48}, r"window_len 64 there, 48 here"),
    ],
)
def test_resume_with_other_windows_is_refused(windows, uninterrupted, tmp_path, kwargs, expected):
    other = make_windows(tmp_path / "other.h5", **kwargs)
    with pytest.raises(
        SeqaeError, match=r"windows file schema differs from the one .*checkpoint\.pt was trained on: " + expected
    ):
        train_model(make_config(RESUME_MODELS), "vae", other, uninterrupted["vae"], resume=True, progress=False)


def test_first_difference_names_the_dotted_key():
    assert first_difference({"a": {"b": 1, "c": [1, 2]}}, {"a": {"b": 1.0, "c": (1, 2)}}) is None
    assert first_difference({"a": {"b": 1}}, {"a": {"b": 2}}, "models.x") == ("models.x.a.b", 1, 2)
    assert first_difference({"a": True}, {"a": 1}) == ("a", True, 1)


# ---------------------------------------------------------------------- non-finite loss


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(windows, tmp_path, monkeypatch):
    forward = SequenceAutoencoder.forward

    def nan_at_step_5(self, seq, tracks, labels=None, step=0):
        out = forward(self, seq, tracks, labels, step)
        if self.training and step == 4:  # the 5th optimiser step, in epoch 2
            out.loss = out.loss * math.nan
        return out

    monkeypatch.setattr(SequenceAutoencoder, "forward", nan_at_step_5)
    with pytest.raises(SeqaeError) as err:
        train_model(make_config(log_every_steps=50), "plain", windows, tmp_path, progress=False)
    assert str(err.value) == f"loss is nan at step 5 (epoch 2); last good checkpoint: {tmp_path / 'checkpoint.pt'}"
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["epoch"] == 1 and ckpt["step"] == 3 and not ckpt["finished"]
    assert all(torch.isfinite(v).all() for v in ckpt["model_state"].values() if v.is_floating_point())
    assert list(metrics(tmp_path)["epoch"]) == [1]


def test_nan_in_the_first_epoch_is_reported_at_its_step(windows, tmp_path, monkeypatch):
    forward = SequenceAutoencoder.forward

    def inf_at_step_2(self, seq, tracks, labels=None, step=0):
        out = forward(self, seq, tracks, labels, step)
        if self.training and step == 1:
            out.loss = out.loss * math.inf
        return out

    monkeypatch.setattr(SequenceAutoencoder, "forward", inf_at_step_2)
    with pytest.raises(SeqaeError, match=r"^loss is inf at step 2 \(epoch 1\); no checkpoint was written"):
        train_model(make_config(log_every_steps=1), "plain", windows, tmp_path, progress=False)
    assert not (tmp_path / "checkpoint.pt").exists()


# ---------------------------------------------------------------------- CLI and demo models


def test_cli_unknown_model_lists_the_configured_ones(windows, tmp_path, capsys):
    config = make_config({"plain": TINY, "vq": tiny(kind="vq")})
    argv = ["train", "--config-json", config_to_json(config), "--windows", str(windows), "--outdir", str(tmp_path)]
    assert main([*argv, "--model", "vae"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "seqae train: error: no model 'vae' in the config (configured models: plain, vq)"


def test_cli_block_with_a_missing_label_column_is_one_line(windows, tmp_path, capsys):
    blocks = {"tf": {"size": 4, "label": "tf_name"}, "residual": {"size": 4, "label": None}}
    config = make_config({"plain": tiny(blocks=blocks)}, epochs=1)
    argv = ["train", "--config-json", config_to_json(config), "--model", "plain", "--windows", str(windows)]
    assert main([*argv, "--outdir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{windows}: no label column 'tf_name' for a latent block (columns: chrom," in err[0]
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_cli_trains_and_resumes(windows, tmp_path, capsys):
    config = make_config(epochs=1, log_every_steps=1)
    argv = ["train", "--config-json", config_to_json(config), "--model", "plain", "--windows", str(windows)]
    assert main([*argv, "--outdir", str(tmp_path)]) == 0  # with the progress bar
    assert "plain 1/1" in capsys.readouterr().err
    assert (tmp_path / "best.pt").exists() and len(metrics(tmp_path)) == 1
    assert main([*argv, "--outdir", str(tmp_path)]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main([*argv, "--outdir", str(tmp_path), "--resume"]) == 0


DEMO_MODELS = load_config("config/config.yaml")["models"]


def test_demo_config_lists_every_model_kind():
    assert {"plain", "denoising", "vae", "vq"} <= set(DEMO_MODELS)
    config = load_config("config/config.yaml")
    kinds = {name: resolve_model(config, name)[0] for name in DEMO_MODELS}
    assert kinds["plain"]["kind"] == "plain" and kinds["vae"]["kind"] == "vae" and kinds["vq"]["kind"] == "vq"
    assert kinds["denoising"]["kind"] == "plain" and kinds["denoising"]["denoise"]["enabled"]


@pytest.mark.parametrize("name", list(DEMO_MODELS))
def test_demo_models_train_one_tiny_epoch(windows, tmp_path, name):
    entry = copy.deepcopy(DEMO_MODELS[name])
    entry.update({k: v for k, v in TINY.items() if k != "vq"})  # shrink, keep the kind and objectives
    entry.setdefault("vq", {})["codebook_size"] = 8
    result = train_model(make_config({name: entry}, epochs=1), name, windows, tmp_path, progress=False)
    assert result["finished"] and math.isfinite(result["val_loss"])
    table = metrics(tmp_path)
    kind = resolve_model(make_config({name: entry}), name)[0]["kind"]
    if kind == "vae":
        assert "train_loss/kl" in table and "val_kl/chrom" in table
    if kind == "vq":
        assert "train_loss/vq_commitment" in table and "train_vq_perplexity/residual" in table


def test_windows_from_extraction_train(tiny_inputs):
    """The real extraction output (200 bp windows, 20 bp flanks, empty gene labels) trains end to end."""
    from seqae.extract import extract_windows

    windows = tiny_inputs["dir"] / "windows.h5"
    extract_windows(tiny_inputs["config"], windows, progress=False)
    config = copy.deepcopy(tiny_inputs["config"])
    config["models"] = {"plain": TINY}
    config["training"] = {**TRAINING, "epochs": 1}
    result = train_model(config, "plain", windows, tiny_inputs["dir"] / "model", progress=False)
    assert result["finished"] and math.isfinite(result["train_loss"])
    ckpt = load_checkpoint(tiny_inputs["dir"] / "model" / "best.pt")
    assert ckpt["data"]["schema"]["window_len"] == 200 and ckpt["data"]["schema"]["flank"] == 20
    assert "" not in ckpt["data"]["label_categories"]["gene_family"]


def test_training_warns_when_erasure_leaves_a_block_little_room(windows, tmp_path, caplog):
    """LEACE takes one direction per class beyond the first: a 2-coordinate block erased of the
    3-class chromosome keeps nothing, and the log says so; a roomy block gets no warning."""
    blocks = {
        "chrom": {"size": 8, "label": "chrom"},  # erased of gene_family (2 classes): 1 of 8
        "gene": {"size": 2, "label": "gene_family"},  # erased of chrom (3 classes): 2 of 2
        "residual": {"size": 8, "label": None},  # both: 3 of 8
    }
    config = make_config({"plain": tiny(blocks=blocks, erasure={"enabled": True})}, epochs=1, max_steps=1)
    with caplog.at_level("INFO", logger="seqae"):
        train_model(config, "plain", windows, tmp_path, progress=False)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "erasure" in r.getMessage()]
    assert len(warned) == 1, warned
    assert "2 of the 2 coordinates of block gene (chrom: 3 classes); its own label keeps 0" in warned[0]


def test_label_values_that_mean_no_label_are_no_class(tmp_path):
    """ "NaN", "nan", "None" and "" are one set of unknowns for training, as for evaluation."""
    import h5py

    from seqae.windows.store import UNKNOWN_LABELS

    path = make_windows(tmp_path / "windows.h5")
    with h5py.File(path, "r+") as f:
        families = f["labels/gene_family"][:].astype(str)
        unknown = ["NaN", "nan", "None", ""]
        families = np.array([unknown[i % 4] if v == "" else v for i, v in enumerate(families)])
        del f["labels/gene_family"]
        f["labels/gene_family"] = families.astype("S")
    train_model(make_config(epochs=1, max_steps=1), "plain", path, tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "model.json").read_text())
    assert saved["label_categories"]["gene_family"] == ["F1", "F2"]
    assert set(unknown) == UNKNOWN_LABELS
