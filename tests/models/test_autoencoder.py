"""seqae.models.autoencoder: the sequence autoencoder of every kind (plain, VAE, VQ) end to end on tiny batches."""

from __future__ import annotations

import pytest
import torch

from seqae.models import SequenceAutoencoder
from tests.models.conftest import LABELS, batch, tiny_settings

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("kind", ["plain", "vae", "vq"])
@pytest.mark.parametrize("length", [64, 100])  # divisible by downsample 8, and not
def test_shapes_every_kind(kind: str, length: int) -> None:
    torch.manual_seed(0)
    settings = tiny_settings(kind=kind, denoise={"enabled": True}, infomax={"enabled": True}, cpc={"enabled": True})
    model = SequenceAutoencoder(settings, n_tracks=2, window_len=length, label_classes=LABELS)
    seq, tracks, labels = batch(4, length)
    out = model(seq, tracks, labels, step=3)
    assert out.latent.shape == (4, 16)
    assert {k: v.shape for k, v in out.blocks.items()} == {
        "chrom": (4, 4),
        "gene": (4, 4),
        "residual": (4, 8),
    }
    assert out.seq_logits.shape == (4, 4, length)
    assert out.tracks_pred.shape == (4, 2, length)
    expected = {"seq", "tracks", "supervised", "adversarial", "infomax", "cpc"}
    expected |= {"vae": {"kl"}, "vq": {"vq_commitment"}, "plain": set()}[kind]
    assert set(out.losses) == expected
    assert out.loss.shape == () and torch.isfinite(out.loss)
    torch.testing.assert_close(out.loss, torch.stack(list(out.losses.values())).sum())
    out.loss.backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    floats = out.metric_floats()
    assert all(isinstance(v, float) for v in floats.values())
    assert {"seq_ce", "track_error", "supervised_acc/chrom", "adversary_acc/residual/chrom", "grl_lambda"} <= set(
        floats
    )
    if kind == "vq":
        assert out.codes is not None and out.codes.shape == (4, 3 * 2)
        assert "vq_perplexity/gene" in floats
    model.eval()
    assert model.encode(seq, tracks).shape == (4, 16)
    assert model.anomaly_score(seq, tracks).shape == (4,)
    logits, pred = model.decode(torch.zeros(3, 16))
    assert logits.shape == (3, 4, length) and pred.shape == (3, 2, length)


@pytest.mark.parametrize("kind", ["plain", "vae", "vq"])
def test_autocast_bfloat16_keeps_losses_float32(kind: str) -> None:
    settings = tiny_settings(kind=kind, infomax={"enabled": True}, cpc={"enabled": True}, track_loss="poisson")
    model = SequenceAutoencoder(settings, 2, 64, LABELS)
    seq, tracks, labels = batch(4, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(seq, tracks, labels)
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    assert all(v.dtype == torch.float32 for v in out.losses.values())
    if kind == "vq":
        assert out.latent.dtype == torch.float32  # quantised in float32
    out.loss.backward()


def test_no_tracks_and_other_architecture_options() -> None:
    settings = tiny_settings(norm="group", pooling="attention", upsample_mode="transposed", downsample=16)
    settings["cpc"].update(enabled=True, chunk=32)
    model = SequenceAutoencoder(settings, n_tracks=0, window_len=100, label_classes=LABELS)
    seq, tracks, _ = batch(4, 100, n_tracks=0)
    out = model(seq, tracks)  # no labels: no head losses
    assert out.tracks_pred.shape == (4, 0, 100) and set(out.losses) == {"seq", "cpc"}
    out.loss.backward()


def test_wrong_input_length_is_a_clear_error() -> None:
    model = SequenceAutoencoder(tiny_settings(), 2, 64, LABELS)
    seq, tracks, _ = batch(2, 80)
    with pytest.raises(ValueError, match="crop windows first"):
        model(seq, tracks)


# ---------------------------------------------------------------- learning


@pytest.mark.parametrize("kind", ["plain", "vae", "vq"])
def test_a_few_steps_lower_the_loss(kind: str) -> None:
    torch.manual_seed(0)
    settings = tiny_settings(kind=kind, weights={"kl": 0.001}, infomax={"enabled": True}, cpc={"enabled": True})
    model = SequenceAutoencoder(settings, 2, 64, LABELS)
    seq, tracks, labels = batch(8, 64)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for step in range(20):
        opt.zero_grad()
        out = model(seq, tracks, labels, step=step)
        out.loss.backward()
        opt.step()
        # The adversarial term is the adversaries' loss, which the encoder (through gradient
        # reversal) drives up as it wins; every other term is minimised.
        losses.append(sum(v.item() for k, v in out.losses.items() if k != "adversarial"))
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3


def test_default_model_is_small_and_reports_its_parts() -> None:
    model = SequenceAutoencoder({}, 3, 1000, {"chrom": 24, "region_class": 3})
    n_params = sum(p.numel() for p in model.parameters())
    assert 2e5 < n_params < 3e6
    assert model.init_kwargs["settings"] == model.settings
    assert model.latent_dim == 64
