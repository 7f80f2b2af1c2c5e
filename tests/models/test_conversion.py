"""The converter (seqae.models.conversion): render swapped blocks, read the donors' labels back."""

from __future__ import annotations

import pytest
import torch

from seqae.errors import ConfigError
from seqae.models import SequenceAutoencoder, model_settings
from seqae.models.conversion import swapped_blocks
from seqae.models.layout import LatentLayout
from tests.conftest import tiny_model
from tests.models.conftest import seeded_model

L = 64
LABELS = {"chrom": 3, "region_class": 4}
TINY_CONVERSION = tiny_model(
    blocks={
        "chrom": {"size": 4, "label": "chrom"},
        "gene": {"size": 4, "label": "region_class"},
        "residual": {"size": 4, "label": None},
    },
    decoder={"kind": "autoregressive", "context": 3, "hidden": 16, "n_layers": 1, "latent_layers": 1},
    local={"enabled": True, "dim": 4, "codebook_size": 16},
    erasure={"enabled": True},
    weights={"direct": 1.0, "conversion": 1.0},
    conversion={"windows": 6},
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(**overrides: object) -> SequenceAutoencoder:
    return seeded_model(TINY_CONVERSION, LABELS, L, **overrides)


def _batch(n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    labels = {"chrom": torch.randint(0, 3, (n,), generator=g), "region_class": torch.randint(0, 4, (n,), generator=g)}
    labels["region_class"][1] = -1  # an unknown label is ignored
    return torch.randint(0, 4, (n, L), generator=g), torch.rand(n, 2, L, generator=g), labels


def _latents(model: SequenceAutoencoder, seq, tracks) -> tuple[torch.Tensor, torch.Tensor]:
    """The global latent the decoder reads and the local code vectors, in one encoder pass."""
    h, features = model.encoder(seq, tracks)
    return model._bottleneck(h, sample=False, update=False).decoder_input, model.local(features, update=False).quantized


def _conversion(model: SequenceAutoencoder, seq, latent, local, labels, metrics=None) -> torch.Tensor:
    """The donor-label term alone."""
    return model._conversion_terms(seq, latent, local, labels, None, {} if metrics is None else metrics)["conversion"]


def test_swapped_blocks_take_every_labelled_block_from_a_donor_and_keep_the_rest() -> None:
    layout = LatentLayout({"chrom": 2, "gene": 3, "residual": 4})
    latent = torch.arange(5 * 9, dtype=torch.float32).view(5, 9)
    swapped, donors = swapped_blocks(layout, latent, {"chrom": "chrom", "gene": "region_class"})
    assert set(donors) == {"chrom", "gene"}
    for block, rows in donors.items():
        assert sorted(rows.tolist()) == list(range(5))  # a permutation: every window is a donor once
        assert torch.equal(layout.split(swapped)[block], layout.split(latent)[block][rows])
    assert torch.equal(layout.split(swapped)["residual"], layout.split(latent)["residual"])


def test_only_the_converter_learns_and_the_reading_model_is_untouched() -> None:
    model = _model()
    model.train()
    seq, tracks, labels = _batch()
    model(seq, tracks, labels)
    latent, local = _latents(model, seq, tracks)
    # Running statistics the frozen reading must not move: the encoder's batch norms,
    # the local codebook, the erasers.
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    model.zero_grad()
    metrics: dict = {}
    terms = model._conversion_terms(seq, latent, local, labels, None, metrics)
    assert set(terms) == {"conversion_recon", "conversion"}
    assert all(torch.isfinite(t) for t in terms.values())
    assert 0.0 <= float(metrics["conversion_acc"]) <= 1.0 and float(metrics["conversion_recon_ce"]) > 0
    sum(terms.values()).backward()
    assert model.encoder.training  # put back after its evaluation-mode reading
    converter = {id(p) for p in model.converter.parameters()}
    moved = {id(p) for p in model.parameters() if p.grad is not None and p.grad.any()}
    assert moved and moved <= converter
    for key, value in model.named_buffers():
        assert torch.equal(value, buffers[key]), key


def test_the_converter_leaves_the_autoencoder_as_without_it() -> None:
    """Made last and trained on detached inputs, the converter changes no other weight's start or gradient."""
    seq, tracks, labels = _batch()
    with_it, without = _model(), _model(weights={"direct": 1.0})
    assert without.converter is None
    converter = {k for k in with_it.state_dict() if k.startswith("converter.")}
    assert converter and set(with_it.state_dict()) - converter == set(without.state_dict())
    for k, v in without.state_dict().items():
        assert torch.equal(v, with_it.state_dict()[k]), k
    for model in (with_it, without):
        model.train()
        torch.manual_seed(3)
        model(seq, tracks, labels).loss.backward()
    grads = dict(without.named_parameters())
    for name, p in with_it.named_parameters():
        if not name.startswith("converter."):
            g = grads[name].grad
            assert (p.grad is None) == (g is None), name
            assert p.grad is None or torch.allclose(p.grad, g, atol=1e-6), name


def _composition_batch(n: int = 12, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Windows whose chrom label is their composition: AT-rich, GC-rich or even."""
    g = torch.Generator().manual_seed(seed)
    chrom = torch.arange(n) % 3
    probs = torch.tensor([[0.4, 0.1, 0.1, 0.4], [0.1, 0.4, 0.4, 0.1], [0.25] * 4])[chrom]
    seq = torch.multinomial(probs, L, replacement=True, generator=g)
    labels = {"chrom": chrom, "region_class": torch.full((n,), -1)}
    return seq, torch.rand(n, 2, L, generator=g), labels


def test_converter_steps_make_the_heads_read_the_donors() -> None:
    """Steps on the donor-label term lower it: the gradient through the straight-through
    draws moves the converter towards windows the frozen heads read as the donors'."""
    model = _model()
    model.train()
    seq, tracks, labels = _composition_batch()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):  # the heads learn to read the composition first
        opt.zero_grad()
        model(seq, tracks, labels).loss.backward()
        opt.step()
    with torch.no_grad():
        latent, local = _latents(model.eval(), seq, tracks)  # fixed: only the converter moves below
    model.train()
    converter_opt = torch.optim.Adam(model.converter.parameters(), lr=1e-2)

    def mean_loss(seed: int) -> float:
        torch.manual_seed(seed)  # the same donors and Gumbel draws before and after
        with torch.no_grad():
            return float(torch.stack([_conversion(model, seq, latent, local, labels) for _ in range(8)]).mean())

    before = mean_loss(5)
    for step in range(30):
        torch.manual_seed(100 + step)
        converter_opt.zero_grad()
        _conversion(model, seq, latent, local, labels).backward()
        converter_opt.step()
    assert mean_loss(5) < 0.7 * before


def test_the_terms_are_in_training_passes_only_and_swaps_are_rendered_by_the_converter() -> None:
    model = _model()
    seq, tracks, labels = _batch()
    model.train()
    out = model(seq, tracks, labels)
    assert {"conversion", "conversion_recon"} <= set(out.losses) and "conversion_acc" in out.metrics
    unlabelled = model(seq, tracks).losses
    assert "conversion_recon" in unlabelled and "conversion" not in unlabelled  # no labels: nothing to read back
    model.eval()
    assert not {"conversion", "conversion_recon"} & set(model(seq, tracks, labels).losses)
    with torch.no_grad():
        latent, local = _latents(model, seq, tracks)
        rendered = model.convert_logits(latent, local)
    assert rendered.shape == (seq.shape[0], 4, L)
    with pytest.raises(ValueError, match="no converter"):
        _model(weights={"direct": 1.0}).convert_logits(latent, local)


def test_the_convolutional_decoder_has_no_converter() -> None:
    """As for weights.direct, the convolutional decoder ignores weights.conversion (overlays such as
    config/cpu.yaml set it for models that config/species.yaml makes convolutional)."""
    conv = _model(decoder={"kind": "conv"}, local={"enabled": False})
    assert conv.converter is None
    seq, tracks, labels = _batch()
    conv.train()
    assert not {"conversion", "conversion_recon"} & set(conv(seq, tracks, labels).losses)
    with pytest.raises(ConfigError, match="conversion.windows"):
        model_settings({**TINY_CONVERSION, "conversion": {"windows": 1}})
