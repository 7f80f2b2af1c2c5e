"""seqae.training.monitor: the selection loss, the shuffle monitor and the non-finite loss check."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from seqae.checkpoint import load_checkpoint
from seqae.errors import SeqaeError
from seqae.models import SequenceAutoencoder
from seqae.training import train_model
from tests.training.conftest import TIMING, make_config, metrics

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_selection_loss_leaves_out_the_heads_it_is_told_to():
    from seqae.training import selection_loss

    means = {"loss": 10.0, "loss/seq": 1.5, "loss/supervised": 3.0, "loss/adversarial": 5.0, "loss/kl": 0.5}
    assert selection_loss(means) == pytest.approx(2.0)  # seq + kl
    assert selection_loss(means, "autoencoder_and_heads") == pytest.approx(5.0)  # + supervised
    assert selection_loss({"loss": 4.0}) == 4.0  # no heads: the whole loss
    with pytest.raises(ValueError, match="selection must be one of"):
        selection_loss(means, "heads")


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
