"""seqae.training.checkpoint: exact resumption after a stop or a kill, and the runs it refuses to resume."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from seqae.checkpoint import load_checkpoint
from seqae.errors import SeqaeError
from seqae.models import SequenceAutoencoder
from seqae.training import train_model
from tests.training.conftest import assert_same_run, make_config, make_windows, metrics, tiny

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Dropout, a VAE's sampling and denoising corruption all draw from the global
# RNG, VQ restarts too: resumption must restore it exactly.
RESUME_MODELS = {
    # Erasure: running statistics in the steps and the exact refit after each epoch both resume exactly.
    "vae": tiny(kind="vae", dropout=0.1, denoise={"enabled": True}, erasure={"enabled": True}),
    "vq": tiny(kind="vq", vq={"codebook_size": 8, "n_groups": 2, "dead_code_steps": 2}),
    # The converter draws its donors and its bases from the global RNG at every step.
    "converter": tiny(
        decoder={"kind": "autoregressive", "context": 3, "hidden": 16, "n_layers": 1, "latent_layers": 1},
        local={"enabled": True, "dim": 4, "codebook_size": 16},
        weights={"direct": 1.0, "conversion": 1.0},
        conversion={"windows": 4},
    ),
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


def test_resume_of_a_model_with_a_converter_is_exact(windows, tmp_path, uninterrupted):
    config = make_config(RESUME_MODELS)
    train_model(config, "converter", windows, tmp_path, progress=False, stop_after=2)
    train_model(config, "converter", windows, tmp_path, resume=True, progress=False)
    assert_same_run(uninterrupted["converter"], tmp_path)


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


def test_resume_on_rebuilt_windows_is_refused(windows, uninterrupted, tmp_path):
    """A finished run is not handed on when its windows were rebuilt with other splits (Snakemake reruns training
    then, and keeps checkpoint.pt): same schema and label classes, other label table."""
    import shutil

    import h5py

    out = tmp_path / "run"
    shutil.copytree(uninterrupted["vae"], out)
    rebuilt = tmp_path / "windows.h5"
    shutil.copy(windows, rebuilt)
    with h5py.File(rebuilt, "r+") as f:
        split = f["labels"]["split"].asstr()[()]
        split[[0, 1]] = split[[1, 0]]  # a val and a test window trade places
        del f["labels"]["split"]
        f["labels"].create_dataset("split", data=split.astype(object), dtype=h5py.string_dtype())
    assert (load_labels_split(rebuilt) != load_labels_split(windows)).any()
    with pytest.raises(SeqaeError) as err:
        train_model(make_config(RESUME_MODELS), "vae", rebuilt, out, resume=True, progress=False)
    assert str(err.value) == (
        f"{rebuilt}: holds other windows than {out / 'checkpoint.pt'} was trained on (other peaks, signal, genome, "
        f"splits or extraction settings); delete {out / 'checkpoint.pt'}, or train with a new --outdir, to start "
        "afresh"
    )
    result = train_model(make_config(RESUME_MODELS), "vae", windows, out, resume=True, progress=False)
    assert result["finished"]  # the same windows: nothing to do

    # Same labels, other signal (a bigWig rescaled in place): the tracks' mean profiles differ.
    for scale in (1.0, 5.0):
        shutil.copy(windows, rebuilt)
        with h5py.File(rebuilt, "r+") as f:
            f.create_dataset("summary/mean_profile/peak", data=np.ones((2, 80), np.float32) * scale)
        if scale == 1.0:
            first = out / "first"
            train_model(make_config(RESUME_MODELS), "vae", rebuilt, first, progress=False, stop_after=1)
        else:
            with pytest.raises(SeqaeError, match=r"holds other windows than .* \(other peaks, signal"):
                train_model(make_config(RESUME_MODELS), "vae", rebuilt, first, resume=True, progress=False)

    # A checkpoint written before fingerprints were recorded is checked by its split sizes.
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    del state["data"]["windows_fingerprint"]
    torch.save(state, out / "checkpoint.pt")
    with pytest.raises(SeqaeError, match=r"holds other windows than .* \(other peaks, signal"):
        with h5py.File(rebuilt, "r+") as f:
            split = f["labels"]["split"].asstr()[()]
            split[2] = "test"  # a train window to test: the counts differ too
            del f["labels"]["split"]
            f["labels"].create_dataset("split", data=split.astype(object), dtype=h5py.string_dtype())
        train_model(make_config(RESUME_MODELS), "vae", rebuilt, out, resume=True, progress=False)
    assert train_model(make_config(RESUME_MODELS), "vae", windows, out, resume=True, progress=False)["finished"]


def load_labels_split(path: Path):
    from seqae.windows.store import read_labels

    return read_labels(path, ["split"])["split"].to_numpy()


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
    assert message.endswith("; delete it, or train with a new --outdir, to start afresh")

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


def test_a_training_checkpoint_given_as_the_model_is_said_to_be_the_last_epoch(uninterrupted, tmp_path, caplog):
    """`seqae embed --model checkpoint.pt` embedded the last epoch's weights, not the best, without a word."""
    from seqae.checkpoint import load_model, save_checkpoint

    state = load_checkpoint(uninterrupted["vae"] / "checkpoint.pt")
    state["best_epoch"] = state["epoch"] - 1  # a run whose last epoch was not its best
    save_checkpoint(state, tmp_path / "checkpoint.pt")
    with caplog.at_level("WARNING", logger="seqae"):
        _, metadata = load_model(uninterrupted["vae"] / "best.pt")
        assert not caplog.records
        _, metadata = load_model(tmp_path / "checkpoint.pt")
    assert f"the weights of its last epoch ({state['epoch']}), not of the best ({state['epoch'] - 1}" in caplog.text
    assert "best_model_state" not in metadata  # metadata holds no tensors
