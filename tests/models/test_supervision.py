"""seqae.models.supervision: the supervised heads and adversaries of the model's blocks, and their gradients."""

from __future__ import annotations

import copy

import pytest
import torch

from seqae.errors import ConfigError
from seqae.models import SequenceAutoencoder, model_settings
from seqae.models.heads import confusion_loss, label_correlation_loss
from seqae.models.objectives import masked_cross_entropy
from tests.models.conftest import LABELS, batch, tiny_settings

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def adversaries_only(lam: float, **overrides: object) -> dict:
    """Tiny settings whose loss is the adversarial term alone, weighted ``lam`` from the first step, with no
    head gradient cap (there is no decoder gradient to cap against: the heads' gradient as it is)."""
    return tiny_settings(
        weights={"seq": 0.0, "tracks": 0.0, "supervised": 0.0, "adversarial": lam},
        adversarial_schedule={"warmup_steps": 0},
        head_gradient_cap=0.0,
        **overrides,
    )


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
    model = SequenceAutoencoder(adversaries_only(lam, adversarial_objective=objective), 2, 64, LABELS)
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
    model = SequenceAutoencoder(adversaries_only(lam), 2, 64, LABELS)
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


def test_supervised_loss_ignores_minus_one_in_the_model() -> None:
    model = SequenceAutoencoder(tiny_settings(), 2, 64, LABELS)
    seq, tracks, labels = batch(4, 64)
    unknown = {k: torch.full_like(v, -1) for k, v in labels.items()}
    out = model(seq, tracks, unknown)
    assert out.losses["supervised"].item() == 0.0 and out.losses["adversarial"].item() == 0.0
    assert torch.isfinite(out.loss)


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
