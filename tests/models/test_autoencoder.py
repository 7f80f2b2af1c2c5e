"""Neural-network package: layout, nets, heads, VQ, VAE, objectives, augmentation and the autoencoder.

Tiny models (16 channels, L = 64-128, batch 4-8) so that the whole file runs in seconds on a CPU.
"""

from __future__ import annotations

import copy
import math
import random

import pytest
import torch
from conftest import tiny_model
from torch.nn import functional as F

from seqae.errors import ConfigError
from seqae.models import DEFAULT_MODEL_SETTINGS, LatentLayout, SequenceAutoencoder, model_settings
from seqae.models.augment import centre_crop, corrupt, random_crop, random_reverse_complement, reverse_complement
from seqae.models.decoder import bases_from_logits
from seqae.models.encoder import SequenceEncoder, kmer_spectrum, one_hot
from seqae.models.heads import (
    AdversarialHead,
    GradientReversal,
    adversarial_lambda,
    cap_head_gradient,
    confusion_loss,
    label_correlation_loss,
    reverse_gradient,
)
from seqae.models.objectives import (
    CPCHead,
    InfoMaxDiscriminator,
    masked_cross_entropy,
    reconstruction_error,
    sequence_error,
    sequence_loss,
    track_error,
    tracks_to_stored,
)
from seqae.models.quantize import VectorQuantizer
from seqae.models.variational import GaussianBottleneck, kl_standard_normal

LABELS = {"chrom": 3, "gene_family": 4}
TINY = tiny_model(
    vq={"codebook_size": 8, "n_groups": 2, "decay": 0.9},  # fast EMA: codes keep up within a few steps
    infomax={"hidden": 16},
    cpc={"chunk": 16, "n_future": 2, "dim": 8},
)
CODES = {b: i for i, b in enumerate("ACGTN")}


# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_settings(**overrides: object) -> dict:
    settings = copy.deepcopy(TINY)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(settings.get(key), dict):
            settings[key].update(value)
        else:
            settings[key] = value
    return settings


def encode_str(text: str) -> torch.Tensor:
    return torch.tensor([CODES[c] for c in text])


def decode_codes(codes: torch.Tensor) -> str:
    return "".join("ACGTN"[int(c)] for c in codes)


def batch(b: int = 4, length: int = 64, n_tracks: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, dict]:
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(0, 4, (b, length), generator=g)
    seq[0, :3] = 4  # a few N bases
    tracks = torch.rand(b, n_tracks, length, generator=g)
    labels = {
        "chrom": torch.randint(0, 3, (b,), generator=g),
        "gene_family": torch.randint(0, 4, (b,), generator=g),
    }
    labels["gene_family"][0] = -1
    return seq, tracks, labels


# ---------------------------------------------------------------- layout


def test_layout_split_join_swap() -> None:
    layout = LatentLayout({"chrom": 2, "gene": 3, "residual": 4})
    assert layout.dim == 9 and layout.names == ("chrom", "gene", "residual")
    assert layout.slice("gene") == slice(2, 5)
    z = torch.arange(18.0).view(2, 9)
    parts = layout.split(z)
    assert [p.shape[-1] for p in parts.values()] == [2, 3, 4]
    assert torch.equal(layout.join(parts), z)
    z_b = -z
    swapped = layout.swap(z, z_b, "gene")
    assert torch.equal(swapped[:, 2:5], z_b[:, 2:5])
    assert torch.equal(swapped[:, :2], z[:, :2]) and torch.equal(swapped[:, 5:], z[:, 5:])
    assert torch.equal(z, torch.arange(18.0).view(2, 9))  # inputs untouched
    # one donor broadcast into a batch
    assert torch.equal(layout.swap(z, z_b[0], "chrom")[:, :2], z_b[0, :2].expand(2, 2))
    with pytest.raises(KeyError, match="no latent block"):
        layout.slice("nope")
    with pytest.raises(ValueError, match="missing"):
        layout.join({"chrom": z[:, :2]})
    with pytest.raises(ValueError, match="D = 9"):
        layout.split(torch.zeros(2, 8))


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


def test_encoder_any_length_with_position_free_pooling() -> None:
    encoder = SequenceEncoder(
        n_tracks=1, out_dim=6, channels=16, n_res_blocks=1, dilations=(1,), downsample=8, pooling="meanmax"
    )
    for length in (64, 100, 1000, 7):
        latent, features = encoder(torch.randint(0, 5, (2, length)), torch.rand(2, 1, length))
        assert latent.shape == (2, 6)
        assert features.shape == (2, 16, math.ceil(length / 8)) == (2, 16, encoder.output_length(length))


def test_positional_pooling_keeps_where_a_base_is() -> None:
    """The default pooling gives each position its own latent weights: moving a motif changes the latent."""
    torch.manual_seed(0)
    kwargs = dict(n_tracks=0, out_dim=8, channels=16, n_res_blocks=1, dilations=(1,), downsample=4, norm="group")
    positional = SequenceEncoder(**kwargs, window_len=64).eval()
    assert positional.pool.out_dim == 16 * 16  # width 16 x 64 / 4 positions
    background = torch.full((1, 64), 0)
    seqs = background.repeat(2, 1)
    seqs[0, 8:16] = encode_str("CGTGCGTG")
    seqs[1, 40:48] = encode_str("CGTGCGTG")
    with torch.no_grad():
        moved = positional(seqs)[0]
        assert not torch.allclose(moved[0], moved[1], atol=1e-4)
        with pytest.raises(ValueError, match="built for 16 positions"):
            positional(torch.zeros(1, 80, dtype=torch.long))


def test_positional_meanmax_pooling_reads_positions_and_composition() -> None:
    """positional_meanmax: the positional features plus mean and max over positions; a moved motif
    still changes the latent, and the pooled vector ends with the window's mean and max features."""
    torch.manual_seed(0)
    kwargs = dict(n_tracks=0, out_dim=8, channels=16, n_res_blocks=1, dilations=(1,), downsample=4, norm="group")
    encoder = SequenceEncoder(**kwargs, pooling="positional_meanmax", window_len=64).eval()
    assert encoder.pool.out_dim == 16 * 16 + 2 * 16
    seqs = torch.zeros(2, 64, dtype=torch.long)
    seqs[0, 8:16] = encode_str("CGTGCGTG")
    seqs[1, 40:48] = encode_str("CGTGCGTG")
    with torch.no_grad():
        latent, features = encoder(seqs)
        assert not torch.allclose(latent[0], latent[1], atol=1e-4)
        pooled = encoder.pool(features)
        torch.testing.assert_close(pooled[:, -32:-16], features.mean(-1))
        torch.testing.assert_close(pooled[:, -16:], features.amax(-1))
        with pytest.raises(ValueError, match="built for 16 positions"):
            encoder(torch.zeros(1, 80, dtype=torch.long))
    with pytest.raises(ValueError, match="positional_meanmax pooling needs the number of positions"):
        SequenceEncoder(**kwargs, pooling="positional_meanmax")


def test_kmer_spectrum_matches_the_baseline_frequencies() -> None:
    """The encoder's k-mer spectrum equals the k-mer baseline's frequencies (N-containing k-mers skipped)."""
    import numpy as np

    from seqae.metrics.kmers import kmer_frequencies

    gen = torch.Generator().manual_seed(3)
    seqs = torch.randint(0, 4, (5, 120), generator=gen)
    seqs[1, 10:14] = 4  # an N run
    seqs[2] = 4  # all N: no k-mer
    for k in (1, 2, 4):
        got = kmer_spectrum(seqs, k).numpy()
        want = kmer_frequencies(seqs.numpy().astype(np.uint8), k)
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert kmer_spectrum(seqs, 4)[2].sum() == 0 and torch.allclose(kmer_spectrum(seqs, 3)[0].sum(), torch.tensor(1.0))


def test_composition_pathway_feeds_the_latent() -> None:
    """composition_k: the spectrum joins the pooled features; the latent then moves with composition
    even where the convolutions are blind (zeroed), and bad k is a clear error."""
    torch.manual_seed(0)
    kwargs = dict(n_tracks=0, out_dim=8, channels=16, n_res_blocks=1, dilations=(1,), downsample=4, norm="group")
    encoder = SequenceEncoder(**kwargs, pooling="meanmax", composition_k=2).eval()
    assert encoder.to_latent.in_features == encoder.pool.out_dim + 16
    with torch.no_grad():
        encoder.to_latent.weight[:, : encoder.pool.out_dim] = 0.0
        gc = encode_str("GC" * 32).unsqueeze(0)
        at = encode_str("AT" * 32).unsqueeze(0)
        assert not torch.allclose(encoder(gc)[0], encoder(at)[0])
    model = SequenceAutoencoder(tiny_settings(composition_k=3), 2, 64, LABELS)
    seq, tracks, labels = batch(2, 64)
    assert model(seq, tracks, labels).loss.isfinite()
    with pytest.raises(ConfigError, match="composition_k"):
        model_settings({"composition_k": 7})


def test_scan_feeds_the_latent_standardised_across_windows() -> None:
    """scan.channels: learnt k-mer detectors, pooled over the window and standardised across the
    batch, join the pooled features; the latent then tells composition even where the tower is
    blind, and bad settings are clear errors."""
    torch.manual_seed(0)
    kwargs = dict(n_tracks=0, out_dim=8, channels=16, n_res_blocks=1, dilations=(1,), downsample=4, norm="group")
    encoder = SequenceEncoder(**kwargs, pooling="meanmax", scan_channels=6, scan_kernel_size=4)
    assert encoder.to_latent.in_features == encoder.pool.out_dim + 12
    seen = {}
    encoder.scan_norm.register_forward_hook(lambda _m, _i, out: seen.update(summary=out.detach()))
    gc = torch.stack([encode_str("".join(random.Random(i).choice("GGGCCCAT") for _ in range(64))) for i in range(8)])
    at = torch.stack([encode_str("".join(random.Random(i).choice("AAATTTGC") for _ in range(64))) for i in range(8)])
    encoder.train()(torch.cat([gc, at]))
    summary = seen["summary"]
    assert summary.shape == (16, 12)
    torch.testing.assert_close(summary.mean(0), torch.zeros(12), atol=1e-5, rtol=0)
    with torch.no_grad():
        encoder.to_latent.weight[:, : encoder.pool.out_dim] = 0.0
        encoder.eval()
        assert not torch.allclose(encoder(gc[:1])[0], encoder(at[:1])[0])
    model = SequenceAutoencoder(tiny_settings(scan={"channels": 4, "kernel_size": 6}), 2, 64, LABELS)
    assert model.encoder.scan.kernel_size == (6,)
    seq, tracks, labels = batch(2, 64)
    assert model(seq, tracks, labels).loss.isfinite()
    with pytest.raises(ConfigError, match="scan.channels"):
        model_settings({"scan": {"channels": -1}})
    with pytest.raises(ConfigError, match="scan.kernel_size"):
        model_settings({"scan": {"kernel_size": 0}})


def test_one_hot_n_is_all_zero() -> None:
    x = one_hot(encode_str("ACGTN").unsqueeze(0))
    assert x.shape == (1, 4, 5)
    assert torch.equal(x[0, :, :4], torch.eye(4)) and torch.equal(x[0, :, 4], torch.zeros(4))


def test_wrong_input_length_is_a_clear_error() -> None:
    model = SequenceAutoencoder(tiny_settings(), 2, 64, LABELS)
    seq, tracks, _ = batch(2, 80)
    with pytest.raises(ValueError, match="crop windows first"):
        model(seq, tracks)


# ---------------------------------------------------------------- gradient reversal and adversaries


def test_gradient_reversal_sign_exact() -> None:
    torch.manual_seed(0)
    x = torch.randn(5, 3, requires_grad=True)
    weights = torch.randn(5, 3)

    def f(t: torch.Tensor) -> torch.Tensor:
        return (torch.tanh(t) * weights).sum()

    (plain,) = torch.autograd.grad(f(x), x)
    layer = GradientReversal(1.0)
    for lam in (0.0, 0.3, 1.0, 2.5):
        layer.set_lambda(lam)
        y = layer(x)
        assert torch.equal(y, x)  # identity forward
        (reversed_,) = torch.autograd.grad(f(y), x)
        torch.testing.assert_close(reversed_, -lam * plain, rtol=0, atol=0)
    # in the middle of a graph: the upstream part sees -lambda x its ordinary gradient
    w_in = torch.randn(3, 3, requires_grad=True)
    (g_plain,) = torch.autograd.grad(f(x.detach() @ w_in), w_in)
    (g_rev,) = torch.autograd.grad(f(reverse_gradient(x.detach() @ w_in, 0.7)), w_in)
    torch.testing.assert_close(g_rev, -0.7 * g_plain)


def test_adversarial_head_trains_head_and_reverses_for_features() -> None:
    torch.manual_seed(0)
    head = AdversarialHead(4, 3, hidden=8, lambda_=0.5)
    z = torch.randn(6, 4, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    F.cross_entropy(head(z), y).backward()
    grads_head = [p.grad.clone() for p in head.classifier.parameters()]
    grad_z = z.grad.clone()
    head.zero_grad()
    z.grad = None
    F.cross_entropy(head.classifier(z), y).backward()
    for a, b in zip(grads_head, head.classifier.parameters(), strict=True):
        torch.testing.assert_close(a, b.grad)  # the head itself descends its loss
    torch.testing.assert_close(grad_z, -0.5 * z.grad)  # the features ascend it


def test_confusion_loss_is_zero_at_the_label_frequencies() -> None:
    target = torch.tensor([0, 0, 0, 1, -1, -1])  # frequencies 3/4, 1/4; unknown rows ignored
    prior_logits = torch.log(torch.tensor([0.75, 0.25, 1e-9])).expand(6, 3)
    assert confusion_loss(prior_logits, target).item() == pytest.approx(0.0, abs=1e-6)
    confident = torch.tensor([[9.0, 0.0, 0.0]] * 3 + [[0.0, 9.0, 0.0]] + [[0.0, 0.0, 9.0]] * 2)
    assert confusion_loss(confident, target).item() > 1.0  # a block that gives the label away
    assert confusion_loss(confident, torch.full((6,), -1)).item() == 0.0  # no known label: nothing to hide


def _encoder_term(model: SequenceAutoencoder, blocks, labels, objective: str) -> torch.Tensor:
    """What the encoder descends against the adversaries, by hand: the confusion KLs or the label correlations."""
    if objective == "confusion":
        terms = [confusion_loss(model.adversaries[key].classifier(blocks[block]), labels[label])
                 for key, block, label in model.adversary_pairs]  # fmt: skip
    else:
        terms = [label_correlation_loss(blocks[block], labels[label], model.label_classes[label])
                 for _, block, label in model.adversary_pairs]  # fmt: skip
    return torch.stack(terms).sum()


@pytest.mark.parametrize("objective", ["confusion", "decorrelation"])
def test_bounded_objectives_train_the_adversary_and_give_the_encoder_their_own_gradient(objective: str) -> None:
    """confusion / decorrelation: the adversaries descend their cross-entropy, as with reversal; the
    encoder gets lambda x the gradient of the KL to the label frequencies (confusion) or of the
    block-label correlations (decorrelation), and nothing of the adversaries' cross-entropy."""
    torch.manual_seed(0)
    lam = 0.8
    settings = tiny_settings(
        weights={"seq": 0.0, "tracks": 0.0, "supervised": 0.0, "adversarial": lam},
        adversarial_schedule={"warmup_steps": 0},
        head_gradient_cap=0.0,  # no decoder gradient to cap against: the heads' gradient as it is
        adversarial_objective=objective,
    )
    model = SequenceAutoencoder(settings, 2, 64, LABELS)
    seq, tracks, labels = batch(8, 64)
    model(seq, tracks, labels, step=1).loss.backward()
    enc_total = [p.grad.clone() for p in model.encoder.parameters()]
    head_total = [p.grad.clone() for p in model.adversaries.parameters()]

    model.zero_grad()
    _adversary_loss(model, seq, tracks, labels).backward()
    for a, p in zip(head_total, model.adversaries.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-7)

    model.zero_grad()
    h, _ = model.encoder(seq, tracks)
    (lam * _encoder_term(model, model.layout.split(h), labels, objective)).backward()
    for a, p in zip(enc_total, model.encoder.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-6)
    with pytest.raises(ConfigError, match="adversarial_objective"):
        model_settings({"adversarial_objective": "minimax"})


def test_label_correlation_loss_on_hand_made_blocks() -> None:
    """Zero when every class has the same mean on every coordinate; the block's size when each
    coordinate is a class indicator; unknown rows left out."""
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    balanced = torch.tensor([[1.0, 2.0], [-1.0, -2.0], [3.0, 0.5], [-3.0, -0.5], [0.2, 1.0], [-0.2, -1.0]])
    assert label_correlation_loss(balanced, y, 3).item() == pytest.approx(0.0, abs=1e-6)
    indicators = F.one_hot(y, 3).float()
    # Each indicator coordinate correlates fully with its class and partly with the others.
    want = sum(torch.corrcoef(torch.stack([indicators[:, j], indicators[:, c]]))[0, 1] ** 2
               for j in range(3) for c in range(3)) / 3  # fmt: skip
    assert label_correlation_loss(indicators, y, 3).item() == pytest.approx(float(want), rel=1e-5)
    noisy = torch.cat([balanced, torch.tensor([[50.0, 50.0]])])
    assert label_correlation_loss(noisy, torch.cat([y, torch.tensor([-1])]), 3).item() == pytest.approx(0.0, abs=1e-6)
    assert label_correlation_loss(balanced[:1], y[:1], 3).item() == 0.0
    # One class in the batch, or none known, and a constant coordinate: 0, with a finite gradient.
    z = torch.randn(6, 3, requires_grad=True)
    with_constant = torch.cat([z, torch.zeros(6, 1)], dim=1)
    for target in (torch.zeros(6, dtype=torch.long), torch.full((6,), -1)):
        loss = label_correlation_loss(with_constant, target, 3)
        loss.backward()
        assert loss.item() == 0.0 and torch.isfinite(z.grad).all()
    z.grad = None
    label_correlation_loss(with_constant, y, 3).backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_cap_head_gradient_scales_only_the_heads_share_and_only_down() -> None:
    """Forward is the identity; backward scales the heads' gradient to cap x the decoder's norm when
    it is larger, and leaves it alone when it is smaller; the decoder's gradient is never touched."""
    x = torch.randn(5, 3, requires_grad=True)
    decoder_grad = torch.randn(5, 3)
    for heads_factor, cap in ((100.0, 0.5), (0.01, 0.5)):
        heads_grad = heads_factor * torch.randn(5, 3)
        applied = torch.full((), float("nan"))
        dec, heads = cap_head_gradient(x, x, cap, applied)
        assert torch.equal(dec, x) and torch.equal(heads, x)
        x.grad = None
        ((dec * decoder_grad).sum() + (heads * heads_grad).sum()).backward()
        scale = min(1.0, cap * decoder_grad.norm().item() / heads_grad.norm().item())
        torch.testing.assert_close(x.grad, decoder_grad + scale * heads_grad)
        assert applied.item() == pytest.approx(scale)  # the factor applied, for the trainer's log
        assert (scale < 1.0) == (heads_factor == 100.0)
    with pytest.raises(ValueError, match="cap must be > 0"):
        cap_head_gradient(x, x, 0.0)
    with pytest.raises(ConfigError, match="head_gradient_cap"):
        model_settings({"head_gradient_cap": -1.0})


@pytest.mark.parametrize("kind", ["plain", "vae", "vq"])
def test_head_gradient_cap_in_the_model(kind: str) -> None:
    """A cap too high to bind changes no gradient at all; a vanishing cap leaves the encoder the
    gradient it gets without labels (the decoder's alone), while every head still learns from its
    full loss; the heads' own parameters never see the cap."""
    settings = tiny_settings(kind=kind, adversarial_schedule={"warmup_steps": 0}, dropout=0.0)
    seq, tracks, labels = batch(8, 64)

    def grads(cap: float, with_labels: bool = True) -> tuple[list, list]:
        torch.manual_seed(0)  # the same initial weights and VAE noise in every model
        model = SequenceAutoencoder({**settings, "head_gradient_cap": cap}, 2, 64, LABELS)
        out = model(seq, tracks, labels if with_labels else None, step=1)
        out.loss.backward()
        # The factor the cap applied is logged: 1 when it cannot bind, tiny when it binds hard, absent when off.
        scale = out.metric_floats().get("head_gradient_scale")
        assert (scale is None) == (cap == 0.0 or not with_labels)
        if cap == 1e30:
            assert scale == 1.0
        if cap == 1e-30:
            assert 0.0 <= scale < 1e-20
        heads = [*model.supervised_heads.parameters(), *model.adversaries.parameters()]
        return [p.grad for p in model.encoder.parameters()], [p.grad for p in heads]

    enc_free, heads_free = grads(0.0)
    enc_loose, heads_loose = grads(1e30)
    enc_tight, heads_tight = grads(1e-30)
    enc_unlabelled, _ = grads(0.0, with_labels=False)
    for a, b in zip(enc_free, enc_loose, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b, c in zip(heads_free, heads_loose, heads_tight, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(a, c, rtol=0, atol=0)
    for a, b in zip(enc_tight, enc_unlabelled, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-8)
    assert any(not torch.allclose(a, b) for a, b in zip(enc_free, enc_tight, strict=True))


def test_adversarial_ramp() -> None:
    assert adversarial_lambda(0, 0.5, 100) == 0.0
    assert adversarial_lambda(100, 0.5, 100) == pytest.approx(0.5, abs=1e-4)
    assert adversarial_lambda(10_000, 0.5, 100) == pytest.approx(0.5, abs=1e-4)
    assert adversarial_lambda(50, 0.5, 100, "linear") == pytest.approx(0.25)
    values = [adversarial_lambda(s, 1.0, 100) for s in range(0, 120, 10)]
    assert values == sorted(values)
    assert adversarial_lambda(5, 0.5, 0) == 0.5  # no warm-up


def _adversary_loss(model: SequenceAutoencoder, seq, tracks, labels) -> torch.Tensor:
    """Sum of the adversaries' cross-entropies, computed without gradient reversal."""
    h, _ = model.encoder(seq, tracks)
    blocks = model.layout.split(h)
    losses = [
        masked_cross_entropy(model.adversaries[key].classifier(blocks[block]), labels[label])[0]
        for key, block, label in model.adversary_pairs
    ]
    return torch.stack(losses).sum()


def test_model_adversaries_push_encoder_the_other_way() -> None:
    torch.manual_seed(0)
    lam = 0.8
    settings = tiny_settings(
        weights={"seq": 0.0, "tracks": 0.0, "supervised": 0.0, "adversarial": lam},
        adversarial_schedule={"warmup_steps": 0},
        head_gradient_cap=0.0,  # no decoder gradient to cap against: the heads' gradient as it is
    )
    model = SequenceAutoencoder(settings, 2, 64, LABELS)
    assert {(b, label) for _, b, label in model.adversary_pairs} == {
        ("chrom", "gene_family"),
        ("gene", "chrom"),
        ("residual", "chrom"),
        ("residual", "gene_family"),
    }
    seq, tracks, labels = batch(8, 64)
    out = model(seq, tracks, labels, step=1)
    out.loss.backward()
    enc_total = [p.grad.clone() for p in model.encoder.parameters()]
    head_total = [p.grad.clone() for p in model.adversaries.parameters()]
    model.zero_grad()
    _adversary_loss(model, seq, tracks, labels).backward()
    for a, p in zip(enc_total, model.encoder.parameters(), strict=True):
        torch.testing.assert_close(a, -lam * p.grad, rtol=1e-4, atol=1e-7)
    for a, p in zip(head_total, model.adversaries.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-7)

    # One plain gradient step on each side: the heads lower the adversary loss, the encoder raises it.
    def step(params) -> float:
        model.zero_grad()
        model(seq, tracks, labels, step=1).loss.backward()
        with torch.no_grad():
            for p in params:
                p -= 0.05 * p.grad
            return _adversary_loss(model, seq, tracks, labels).item()

    model.eval()  # fixed BatchNorm statistics so that only the stepped parameters change the loss
    with torch.no_grad():
        before = _adversary_loss(model, seq, tracks, labels).item()
    state = copy.deepcopy(model.state_dict())
    assert step(list(model.adversaries.parameters())) < before
    model.load_state_dict(state)
    assert step(list(model.encoder.parameters())) > before


# ---------------------------------------------------------------- vector quantisation


def _hand_quantizer(commitment: float = 0.25, dead_code_steps: int = 0) -> VectorQuantizer:
    vq = VectorQuantizer(dim=4, codebook_size=3, n_groups=2, commitment=commitment, dead_code_steps=dead_code_steps)
    book = torch.tensor(
        [
            [[0.0, 0.0], [1.0, 1.0], [-2.0, 0.5]],
            [[3.0, 0.0], [0.0, -1.0], [0.5, 0.5]],
        ]
    )
    vq.codebook.copy_(book)
    vq.ema_sum.copy_(book)
    vq.initialised.fill_(True)
    return vq


def test_vq_forward_is_nearest_code_and_gradient_is_straight_through() -> None:
    vq = _hand_quantizer(commitment=0.25)
    z = torch.tensor([[0.9, 1.2, 0.4, 0.6], [-1.5, 0.2, 2.0, 0.1]], requires_grad=True)
    out = vq(z, update=False)
    # brute force nearest code per group
    expected_codes = torch.tensor([[1, 2], [2, 0]])
    assert torch.equal(out.codes, expected_codes)
    expected_q = torch.stack([torch.cat([vq.codebook[g, expected_codes[b, g]] for g in range(2)]) for b in range(2)])
    torch.testing.assert_close(out.quantized, expected_q, rtol=0, atol=1e-6)
    torch.testing.assert_close(vq.lookup(out.codes), expected_q)
    # d/dz [sum(w * q_st) + beta * mean((z - sg(q))^2)] = w + 2 beta (z - q) / numel
    w = torch.tensor([[1.0, -2.0, 0.5, 3.0], [0.1, 0.2, -0.3, 0.4]])
    ((out.quantized * w).sum() + out.loss).backward()
    expected_grad = w + 2 * 0.25 * (z.detach() - expected_q) / z.numel()
    torch.testing.assert_close(z.grad, expected_grad)
    torch.testing.assert_close(out.loss, 0.25 * ((z.detach() - expected_q) ** 2).mean())


def test_vq_perplexity_of_uniform_usage_is_codebook_size() -> None:
    vq = _hand_quantizer()
    # each code of each group once: z row k = (code k of group 0, code k of group 1)
    z = vq.codebook.transpose(0, 1).reshape(3, 4).clone()
    out = vq(z, update=False)
    assert out.perplexity.item() == pytest.approx(3.0, rel=1e-5)
    assert out.usage.item() == 1.0
    collapsed = vq(z[:1].expand(6, 4), update=False)
    assert collapsed.perplexity.item() == pytest.approx(1.0) and collapsed.usage.item() == pytest.approx(1 / 3)


def test_vq_dead_code_is_restarted_from_encoder_outputs() -> None:
    vq = _hand_quantizer(dead_code_steps=2)
    vq.codebook[0, 2] = torch.tensor([1000.0, 1000.0])  # far from every input: never chosen
    vq.ema_sum[0, 2] = vq.codebook[0, 2]
    vq.train()
    g = torch.Generator().manual_seed(0)
    # group 0: inputs near codes 0 and 1 only; group 1: near each of its three codes
    near0 = vq.codebook[0, torch.tensor([0, 1] * 3)]
    near1 = vq.codebook[1, torch.tensor([0, 1, 2] * 2)]
    z = torch.cat([near0, near1], dim=1) + 0.05 * torch.randn(6, 4, generator=g)
    restarted = [vq(z).restarted.item() for _ in range(3)]
    assert restarted == [0, 0, 1]
    assert vq.codebook[0, 2].abs().max() < 5  # now among the encoder outputs
    assert vq.steps_unused[0, 2] == 0
    out = vq(z, update=False)
    assert (out.codes[:, 0] == 2).any()  # and in use


def test_vq_initialises_codebook_from_data_and_ema_moves_codes() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(dim=4, codebook_size=4, n_groups=2, decay=0.5)
    z = torch.randn(32, 4) + 10.0
    vq.train()
    out = vq(z)
    assert bool(vq.initialised) and out.restarted.item() == 0  # the data init is not a restart
    assert (vq.codebook > 5).all()  # codes now live where the data is
    for _ in range(10):
        vq(z)
    # EMA codes are means of their assigned inputs
    codes = vq(z, update=False).codes
    for g in range(2):
        for k in codes[:, g].unique():
            members = z[codes[:, g] == k][:, 2 * g : 2 * g + 2]
            torch.testing.assert_close(vq.codebook[g, k], members.mean(0), rtol=0.05, atol=0.05)


# ---------------------------------------------------------------- VAE


def test_vae_kl_zero_at_prior_and_positive_elsewhere() -> None:
    assert torch.equal(kl_standard_normal(torch.zeros(3, 5), torch.zeros(3, 5)), torch.zeros(3, 5))
    torch.testing.assert_close(kl_standard_normal(torch.ones(1), torch.zeros(1)), torch.tensor([0.5]))
    layout = LatentLayout({"a": 2, "b": 3})
    bottleneck = GaussianBottleneck(layout)
    zero = bottleneck(torch.zeros(4, 10), sample=True)
    assert torch.equal(zero.kl, torch.zeros(4))
    assert set(zero.kl_blocks) == {"a", "b"}
    h = torch.randn(4, 10)
    out = bottleneck(h, sample=False)
    assert (out.kl > 0).all() and torch.equal(out.z, out.mean)
    torch.testing.assert_close(out.kl, out.kl_blocks["a"] + out.kl_blocks["b"])
    assert bottleneck.sample_prior(7, torch.Generator().manual_seed(1)).shape == (7, 5)


def test_vae_encode_is_deterministic_and_generate_returns_valid_codes() -> None:
    model = SequenceAutoencoder(tiny_settings(kind="vae", track_loss="poisson"), 2, 64, LABELS).eval()
    seq, tracks, _ = batch(4, 64)
    torch.testing.assert_close(model.encode(seq, tracks), model.encode(seq, tracks), rtol=0, atol=0)
    codes, generated = model.generate(5, torch.Generator().manual_seed(3))
    assert codes.shape == (5, 64) and codes.dtype == torch.int64
    assert codes.min() >= 0 and codes.max() <= 3
    assert generated.shape == (5, 2, 64) and (generated >= 0).all()  # log1p of a rate
    again, _ = model.generate(5, torch.Generator().manual_seed(3))
    assert torch.equal(codes, again)
    greedy, _ = model.generate(2, sample_bases=False)
    assert greedy.shape == (2, 64)
    for kind in ("plain", "vq"):
        with pytest.raises(ValueError, match="prior of a VAE"):
            SequenceAutoencoder(tiny_settings(kind=kind), 2, 64, LABELS).generate(2)


def test_bases_from_logits_samples_the_softmax_or_takes_the_argmax() -> None:
    # 2 windows x 20,000 positions: P(A, C, G, T) = (0.7, 0.1, 0.1, 0.1) in the first, a near-certain G in the second.
    probs = torch.tensor([[0.7, 0.1, 0.1, 0.1], [1e-9, 1e-9, 1.0, 1e-9]])
    logits = probs.log()[:, :, None].expand(2, 4, 20_000)
    drawn = bases_from_logits(logits, generator=torch.Generator().manual_seed(0))
    assert drawn.shape == (2, 20_000) and drawn.dtype == torch.int64
    frequencies = torch.bincount(drawn[0], minlength=4).double() / 20_000
    torch.testing.assert_close(frequencies, probs[0].double(), atol=0.01, rtol=0)  # 4.6 SE of 0.7 at n = 20,000
    assert torch.equal(drawn[1], torch.full((20_000,), 2))
    assert torch.equal(drawn, bases_from_logits(logits, generator=torch.Generator().manual_seed(0)))  # seeded
    # The arg-max is one base everywhere: the spectrum no real window has that sampling avoids.
    assert torch.equal(bases_from_logits(logits, sample=False), torch.tensor([0, 2])[:, None].expand(2, 20_000))


# ---------------------------------------------------------------- objectives


def test_masked_cross_entropy_ignores_unknown_labels() -> None:
    logits = torch.randn(3, 4, requires_grad=True)
    target = torch.tensor([-1, 2, -1])
    loss, acc = masked_cross_entropy(logits, target)
    torch.testing.assert_close(loss, F.cross_entropy(logits[1:2], target[1:2]))
    loss.backward()
    assert torch.equal(logits.grad[[0, 2]], torch.zeros(2, 4))
    assert acc.item() == float(logits[1].argmax() == 2)
    none_known, none_acc = masked_cross_entropy(logits, torch.full((3,), -1))
    assert none_known.item() == 0.0 and none_acc.item() == 0.0  # not NaN


def test_supervised_loss_ignores_minus_one_in_the_model() -> None:
    model = SequenceAutoencoder(tiny_settings(), 2, 64, LABELS)
    seq, tracks, labels = batch(4, 64)
    unknown = {k: torch.full_like(v, -1) for k, v in labels.items()}
    out = model(seq, tracks, unknown)
    assert out.losses["supervised"].item() == 0.0 and out.losses["adversarial"].item() == 0.0
    assert torch.isfinite(out.loss)


def test_sequence_loss_ignores_n_positions() -> None:
    seq = encode_str("ACGNNT").unsqueeze(0)
    logits = torch.randn(1, 4, 6)
    changed = logits.clone()
    changed[..., 3:5] = 100.0 * torch.randn(4, 2)
    torch.testing.assert_close(sequence_loss(logits, seq), sequence_loss(changed, seq))
    manual = F.cross_entropy(logits[0, :, [0, 1, 2, 5]].T, seq[0, [0, 1, 2, 5]])
    torch.testing.assert_close(sequence_loss(logits, seq), manual)
    assert sequence_error(logits, torch.full((1, 6), 4)).item() == 0.0  # all N: 0, not NaN


def test_track_losses_and_inversion() -> None:
    stored = torch.rand(2, 3, 10) * 3  # log1p values
    assert track_error(stored, stored, "mse").abs().max() == 0
    raw = torch.expm1(stored)
    perfect_log_rate = torch.log(raw)
    torch.testing.assert_close(
        track_error(perfect_log_rate, stored, "poisson", "log1p"), torch.zeros(2), atol=1e-5, rtol=0
    )
    assert (track_error(perfect_log_rate + 0.5, stored, "poisson", "log1p") > 0).all()
    torch.testing.assert_close(tracks_to_stored(perfect_log_rate, "poisson", "log1p"), stored, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(tracks_to_stored(perfect_log_rate, "poisson", "none"), raw, atol=1e-4, rtol=1e-4)
    seq = torch.randint(0, 4, (2, 10))
    logits = torch.randn(2, 4, 10)
    score = reconstruction_error(logits, stored + 1, seq, stored, "mse", "log1p", track_weight=2.0)
    torch.testing.assert_close(score, sequence_error(logits, seq) + 2.0)


def test_infomax_and_cpc_objectives() -> None:
    torch.manual_seed(0)
    features = torch.randn(6, 16, 24, requires_grad=True)
    latent = torch.randn(6, 8, requires_grad=True)
    infomax = InfoMaxDiscriminator(16, 8, hidden=16)
    loss, acc = infomax(features, latent, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and 0 <= acc.item() <= 1
    loss.backward()
    assert latent.grad.abs().sum() > 0 and features.grad.abs().sum() > 0
    assert infomax(features[:1], latent[:1])[0].item() == 0.0  # no negatives in a batch of one

    cpc = CPCHead(16, n_future=3, chunk=4, dim=8)
    features.grad = None
    loss, acc = cpc(features)
    assert torch.isfinite(loss) and 0 <= acc.item() <= 1
    loss.backward()
    assert features.grad[..., :24].abs().sum() > 0
    assert cpc(torch.randn(2, 16, 7))[0].item() == 0.0  # a single chunk: nothing to predict
    # learnable: a few steps on a structured sequence of features raise the accuracy
    opt = torch.optim.Adam(cpc.parameters(), lr=1e-2)
    smooth = torch.cumsum(torch.randn(8, 16, 40), dim=-1).detach()
    first = cpc(smooth)[0].item()
    for _ in range(30):
        opt.zero_grad()
        loss, _ = cpc(smooth)
        loss.backward()
        opt.step()
    assert loss.item() < first


# ---------------------------------------------------------------- augmentation


def test_reverse_complement() -> None:
    seq = encode_str("ACGTNAAC").unsqueeze(0)
    tracks = torch.arange(16.0).view(1, 2, 8)
    rc_seq, rc_tracks = reverse_complement(seq, tracks)
    assert decode_codes(rc_seq[0]) == "GTTNACGT"
    assert torch.equal(rc_tracks, tracks.flip(-1))
    seq2, tracks2, _ = batch(5, 33)
    twice = reverse_complement(*reverse_complement(seq2, tracks2))
    assert torch.equal(twice[0], seq2) and torch.equal(twice[1], tracks2)
    mixed_seq, _ = random_reverse_complement(seq2, tracks2, p=0.5, generator=torch.Generator().manual_seed(1))
    rc_all, _ = reverse_complement(seq2, tracks2)
    for i in range(5):
        assert torch.equal(mixed_seq[i], seq2[i]) or torch.equal(mixed_seq[i], rc_all[i])


def test_random_crop_matches_a_loop_and_centre_crop() -> None:
    g = torch.Generator().manual_seed(0)
    seq = torch.randint(0, 5, (64, 30), generator=g)
    tracks = torch.randn(64, 3, 30, generator=g)
    out_seq, out_tracks, offsets = random_crop(seq, tracks, 20, torch.Generator().manual_seed(5), return_offsets=True)
    assert out_seq.shape == (64, 20) and out_tracks.shape == (64, 3, 20)
    assert offsets.min() >= 0 and offsets.max() <= 10
    assert offsets.unique().numel() > 5  # per-sample offsets, not one for the batch
    for i, o in enumerate(offsets.tolist()):
        assert torch.equal(out_seq[i], seq[i, o : o + 20])
        assert torch.equal(out_tracks[i], tracks[i, :, o : o + 20])
    # same generator state, same crops
    again = random_crop(seq, tracks, 20, torch.Generator().manual_seed(5))
    assert torch.equal(again[0], out_seq)
    c_seq, c_tracks = centre_crop(seq, tracks, 20)
    assert torch.equal(c_seq, seq[:, 5:25]) and torch.equal(c_tracks, tracks[..., 5:25])
    with pytest.raises(ValueError, match="cannot crop"):
        random_crop(seq, tracks, 31)


def test_corrupt_rates_and_clean_targets() -> None:
    g = torch.Generator().manual_seed(0)
    seq = torch.randint(0, 4, (64, 2000), generator=g)
    seq[:, :100] = 4
    tracks = torch.zeros(64, 2, 2000)
    seq_before, tracks_before = seq.clone(), tracks.clone()
    noisy_seq, noisy_tracks = corrupt(seq, tracks, 0.1, 0.05, 0.2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(seq, seq_before) and torch.equal(tracks, tracks_before)  # targets untouched
    masked = (noisy_seq == 4) & (seq < 4)
    substituted = (noisy_seq != seq) & (noisy_seq < 4)
    called = (seq < 4).sum().item()
    assert masked.sum().item() / called == pytest.approx(0.05, abs=0.005)
    assert substituted.sum().item() / called == pytest.approx(0.10, abs=0.007)
    assert (noisy_seq[:, :100] == 4).all()  # N is never substituted
    assert noisy_tracks.std().item() == pytest.approx(0.2, rel=0.05)
    same_seq, same_tracks = corrupt(seq, tracks, 0.0, 0.0, 0.0)
    assert torch.equal(same_seq, seq) and torch.equal(same_tracks, tracks)


def test_denoising_model_reconstructs_clean_targets() -> None:
    settings = tiny_settings(denoise={"enabled": True, "substitution_rate": 0.3, "mask_rate": 0.3})
    model = SequenceAutoencoder(settings, 2, 64, LABELS)
    seq, tracks, _ = batch(4, 64)
    seq_before = seq.clone()
    out = model(seq, tracks)
    assert torch.equal(seq, seq_before)
    torch.testing.assert_close(out.losses["seq"], sequence_loss(out.seq_logits, seq).detach())


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


def test_anomaly_score_is_higher_for_unfamiliar_windows() -> None:
    torch.manual_seed(0)
    model = SequenceAutoencoder(tiny_settings(), 1, 64, LABELS)
    # training windows: a repeated motif; strange windows: uniform random bases
    familiar = encode_str("ACGGT" * 13)[:64].repeat(8, 1)
    familiar_tracks = torch.full((8, 1, 64), 0.5)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(40):
        opt.zero_grad()
        model(familiar, familiar_tracks).loss.backward()
        opt.step()
    model.eval()
    strange = torch.randint(0, 4, (8, 64), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert (
            model.anomaly_score(strange, familiar_tracks).min() > model.anomaly_score(familiar, familiar_tracks).max()
        )


# ---------------------------------------------------------------- settings


def test_heads_follow_the_configured_blocks() -> None:
    """Blocks come from the config's list: a supervised head per labelled block, and an adversary
    for every block against every other block's label (the residual against all), for any label names."""
    blocks = {
        "species": {"size": 2, "label": "species"},
        "region": {"size": 3, "label": "region_class"},
        "tf": {"size": 2, "label": "tf"},
        "rest": {"size": 4, "label": None},
    }
    classes = {"species": 4, "region_class": 5, "tf": 3}
    blocked = tiny_settings()
    blocked["blocks"] = blocks
    model = SequenceAutoencoder(blocked, 1, 64, classes, "log1p")
    assert model.layout.names == ("species", "region", "tf", "rest") and model.layout.dim == 11
    assert {b: h.net[-1].out_features for b, h in model.supervised_heads.items()} == {
        "species": 4,
        "region": 5,
        "tf": 3,
    }
    pairs = {(block, label) for _key, block, label in model.adversary_pairs}
    labels = set(classes)
    assert pairs == {(b, lab) for b in blocks for lab in labels if blocks[b]["label"] != lab}
    assert len(pairs) == 3 * 2 + 3  # each labelled block against the two other labels; the residual against all
    out = model(*batch(b=4, length=64, n_tracks=1)[:2], {"species": torch.tensor([0, 1, 2, 3]),
                "region_class": torch.tensor([0, 4, -1, 2]), "tf": torch.tensor([2, 1, 0, -1])})  # fmt: skip
    assert torch.isfinite(out.loss) and {k: v.shape[1] for k, v in out.blocks.items()} == {
        "species": 2,
        "region": 3,
        "tf": 2,
        "rest": 4,
    }
    with pytest.raises(ValueError, match="tf"):
        SequenceAutoencoder(blocked, 1, 64, {"species": 4, "region_class": 5}, "log1p")


def test_model_settings_defaults_presets_and_errors() -> None:
    settings = model_settings()
    assert settings == DEFAULT_MODEL_SETTINGS and settings is not DEFAULT_MODEL_SETTINGS
    assert model_settings(settings) == settings  # idempotent
    large = model_settings({"size": "large", "channels": 128})
    assert large["channels"] == 128 and large["n_res_blocks"] == 8 and large["cpc"]["enabled"] is False
    two = model_settings({"blocks": {"chrom": {"size": 8, "label": "chrom"}, "rest": {"size": 8}}})
    assert list(two["blocks"]) == ["chrom", "rest"] and two["blocks"]["rest"]["label"] is None
    assert model_settings({"weights": {"kl": 1}})["weights"]["kl"] == 1.0
    bad = [
        ({"knd": "vae"}, "model.knd: unknown key"),
        ({"kind": "gan"}, "model.kind: 'gan' is not one of"),
        ({"weights": {"seq": "x"}}, "model.weights.seq"),
        ({"weights": {"kl": -1.0}}, "model.weights.kl: -1.0 is less than the minimum of 0"),
        ({"channels": True}, "model.channels"),
        ({"kernel_size": 4}, "model.kernel_size: must be odd"),
        ({"downsample": 12}, "model.downsample: must be a power of two"),
        ({"kind": "vq", "vq": {"n_groups": 3}}, "not divisible by vq.n_groups"),
        ({"cpc": {"chunk": 20}}, "model.cpc.chunk"),
        ({"blocks": {"a": {"size": 0}}}, "model.blocks.a.size"),
        ({"blocks": {"a": {"size": 4, "lable": "x"}}}, "model.blocks.a.lable: unknown key"),
        ({"denoise": {"mask_rate": 0.7, "substitution_rate": 0.5}}, "must not exceed 1"),
        ({"size": "huge"}, "model.size"),
    ]
    for overrides, message in bad:
        with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
            model_settings(overrides)
    with pytest.raises(ValueError, match="gene_family"):
        SequenceAutoencoder(tiny_settings(), 2, 64, {"chrom": 3})


def test_default_model_is_small_and_reports_its_parts() -> None:
    model = SequenceAutoencoder({}, 3, 1000, {"chrom": 24, "region_class": 3})
    n_params = sum(p.numel() for p in model.parameters())
    assert 2e5 < n_params < 3e6
    assert model.init_kwargs["settings"] == model.settings
    assert model.latent_dim == 64


def test_nested_labels_are_found_from_the_codes_and_leave_their_blocks_unguarded() -> None:
    """A chromosome tells its species: neither block is kept from the other's label, or erased of it."""
    import numpy as np

    from seqae.models.layout import nested_labels

    chrom = np.array([0, 0, 1, 1, 2, 2, 3, 3, -1])
    species = np.array([0, 0, 0, 0, 1, 1, 1, -1, 1])  # chromosomes 0, 1 in species 0; 2, 3 in species 1
    region = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0])  # across both
    pairs = nested_labels({"chrom": chrom, "species": species, "region_class": region})
    assert pairs == [("chrom", "species")]
    assert nested_labels({"a": np.array([0, 1, 1]), "b": np.array([1, 0, 0])}) == [("a", "b"), ("b", "a")]
    assert nested_labels({"a": np.array([0, 0, 0]), "b": np.array([0, 1, 2])}) == []  # one class: no nesting

    settings = tiny_settings(erasure={"enabled": True})
    settings["blocks"] = {
        "species": {"size": 2, "label": "species"},
        "chrom": {"size": 3, "label": "chrom"},
        "rest": {"size": 4, "label": None},
    }
    classes = {"species": 2, "chrom": 4, "region_class": 2}
    guarded = SequenceAutoencoder(settings, 0, 64, classes)
    model = SequenceAutoencoder(settings, 0, 64, classes, nested_labels=pairs)
    every = {(b, lab) for _, b, lab in guarded.adversary_pairs}
    kept = {(b, lab) for _, b, lab in model.adversary_pairs}
    assert every - kept == {("species", "chrom"), ("chrom", "species")}
    assert model.erased_labels == {"rest": ["species", "chrom"]}
    assert model.init_kwargs["nested_labels"] == [["chrom", "species"]]
    again = SequenceAutoencoder(**model.init_kwargs)
    assert {(b, lab) for _, b, lab in again.adversary_pairs} == kept
