"""seqae.training.outputs: the log lines of a run and its TensorBoard scalars."""

from __future__ import annotations

import pytest

from seqae.training import train_model
from tests.training.conftest import make_config

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


def test_bf16_training_on_the_cpu_runs_and_warns_where_bf16_is_emulated(windows, tmp_path, monkeypatch, caplog):
    """training.precision: bf16 on the CPU (config/cpu.yaml): a two-level model with erasure trains to
    finite losses, the log names the precision, and a CPU without bf16 instructions gets a warning."""
    import math

    import pandas as pd

    import seqae.training.loop
    from tests.training.conftest import tiny

    model = tiny(
        decoder={"kind": "autoregressive", "context": 3, "hidden": 16, "n_layers": 1, "reach": 8,
                 "latent_reach": False, "direct_positions": 0.5},
        local={"enabled": True, "dim": 4, "codebook_size": 16},
        weights={"direct": 1.0},
        erasure={"enabled": True},
    )  # fmt: skip
    config = make_config({"plain": model}, epochs=1, max_steps=2, precision="bf16")
    monkeypatch.setattr(seqae.training.loop, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level("INFO", logger="seqae"):
        train_model(config, "plain", windows, tmp_path, progress=False)
    assert "cpu bf16" in caplog.text
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("emulated" in m and "training.precision: fp32" in m for m in warned), warned
    history = pd.read_csv(tmp_path / "metrics.csv")
    assert all(math.isfinite(v) for v in history[["train_loss", "val_loss"]].iloc[-1])

    caplog.clear()
    monkeypatch.setattr(seqae.training.loop, "cpu_has_native_bf16", lambda: True)
    with caplog.at_level("INFO", logger="seqae"):
        train_model(
            make_config(epochs=1, max_steps=1, precision="bf16"), "plain", windows, tmp_path / "b", progress=False
        )
    assert not [r for r in caplog.records if r.levelname == "WARNING" and "emulated" in r.getMessage()]
