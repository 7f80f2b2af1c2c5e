"""Linear concept erasure (seqae.models.erasure) and its place in the autoencoder."""

from __future__ import annotations

import pytest
import torch

from seqae.errors import ConfigError
from seqae.metrics.probes import linear_probe
from seqae.models import SequenceAutoencoder, model_settings
from seqae.models.erasure import BlockEraser
from tests.models.conftest import LABELS, batch, tiny_settings


def _labelled_cloud(n: int, dim: int, n_classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Correlated Gaussian points whose class shifts the mean: ``([n, dim], int [n])``."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, n_classes, (n,), generator=g)
    class_means = 2.0 * torch.randn(n_classes, dim, generator=g)
    mixing = torch.randn(dim, dim, generator=g)
    return torch.randn(n, dim, generator=g) @ mixing + class_means[y], y


def test_erased_block_tells_no_linear_probe_its_label() -> None:
    x, y = _labelled_cloud(4000, 12, 4, seed=0)
    eraser = BlockEraser(12, [4], momentum=1.0)
    eraser.update(x[:2000], [y[:2000]])
    before = linear_probe(x[:2000].numpy(), y[:2000].numpy(), x[2000:].numpy(), y[2000:].numpy())
    erased = eraser(x)
    after = linear_probe(erased[:2000].numpy(), y[:2000].numpy(), erased[2000:].numpy(), y[2000:].numpy())
    assert before.accuracy > 0.9
    assert after.accuracy < after.chance + 0.05
    # Every class has the same mean afterwards (on the rows the statistics came from).
    class_means = torch.stack([erased[:2000][y[:2000] == c].mean(0) for c in range(4)])
    assert torch.allclose(class_means, class_means.mean(0).expand_as(class_means), atol=1e-3)


def test_erasure_changes_only_the_label_directions() -> None:
    """A label that spans C - 1 = 1 direction leaves the block's rank minus one untouched: the erasing map has rank 1."""
    x, y = _labelled_cloud(3000, 8, 2, seed=1)
    eraser = BlockEraser(8, [2], momentum=1.0)
    eraser.update(x, [y])
    assert torch.linalg.matrix_rank(eraser.projection()).item() == 1
    # Idempotent: erasing twice is erasing once.
    once = eraser(x)
    assert torch.allclose(eraser(once), once, atol=1e-3)


def test_eraser_is_the_identity_before_any_update_and_ignores_unknown_rows() -> None:
    x, y = _labelled_cloud(500, 6, 3, seed=2)
    eraser = BlockEraser(6, [3], momentum=0.5)
    assert torch.equal(eraser(x), x)
    unknown = torch.full_like(y, -1)
    eraser.update(x, [unknown])  # no known label: nothing to erase
    assert torch.allclose(eraser(x), x)
    assert int(eraser.updates) == 1


def test_running_statistics_follow_batches_with_momentum() -> None:
    x, y = _labelled_cloud(400, 4, 2, seed=3)
    eraser = BlockEraser(4, [2], momentum=0.25)
    eraser.update(x[:200], [y[:200]])
    first = eraser.mean.clone()
    eraser.update(x[200:] + 10.0, [y[200:]])
    expected = 0.75 * first + 0.25 * (x[200:] + 10.0).mean(0)
    assert torch.allclose(eraser.mean, expected, atol=1e-5)


def test_statistics_under_bf16_autocast_are_the_float32_ones() -> None:
    """A bf16 training step (CUDA's default, and training.precision: bf16 on the CPU) folds the batch into
    the float32 running statistics as a float32 step would: the products are not left to autocast."""
    x, y = _labelled_cloud(256, 6, 3, seed=4)
    full = BlockEraser(6, [3], momentum=0.5)
    half = BlockEraser(6, [3], momentum=0.5)
    full.update(x, [y])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half.update(x, [y])
    for name in ("mean", "covariance", "cross_covariance"):
        assert getattr(half, name).dtype == torch.float32
        assert torch.allclose(getattr(half, name), getattr(full, name), rtol=1e-5, atol=1e-5)


def test_a_bf16_training_step_with_erasure_runs() -> None:
    model = SequenceAutoencoder(tiny_settings(erasure={"enabled": True}), 2, 64, LABELS)
    model.train()
    seq, tracks, labels = batch(4, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(seq, tracks, labels)
    out.loss.backward()
    assert torch.isfinite(out.loss)


def test_model_erases_foreign_labels_and_embeds_the_erased_blocks() -> None:
    settings = tiny_settings(erasure={"enabled": True, "momentum": 1.0})
    torch.manual_seed(0)
    model = SequenceAutoencoder(settings, 2, 64, LABELS)
    assert model.erasers is not None
    # Every block against every label that is not its own; the residual against both.
    assert model.erased_labels == {"chrom": ["gene_family"], "gene": ["chrom"], "residual": ["chrom", "gene_family"]}
    seq, tracks, labels = batch(16, 64)
    model.train()
    model(seq, tracks, labels, step=1).loss.backward()
    assert all(int(e.updates) == 1 for e in model.erasers.values())
    # The encoder still gets gradient through the erased latent.
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    model.eval()
    with torch.no_grad():
        z = model.encode(seq, tracks)
        blocks = model.layout.split(z)
        # Embedding = the stored eraser applied to the bottleneck: the residual's chrom classes share one mean.
        residual = blocks["residual"]
        y = labels["chrom"]
        means = torch.stack([residual[y == c].mean(0) for c in y.unique()])
    assert int(model.erasers["residual"].updates) == 1  # evaluation folds nothing in
    # The training pass ran BatchNorm in training mode, so eval-mode latents differ
    # from the ones the statistics came from; the eraser still applies the same map.
    assert means.shape[0] >= 2
    raw, _ = model.encoder(seq, tracks)
    parts = model.layout.split(raw)
    expected = model.erasers["residual"](parts["residual"])
    assert torch.allclose(residual, expected, atol=1e-5)


def test_erasure_momentum_is_validated() -> None:
    with pytest.raises(ConfigError, match="erasure.momentum"):
        model_settings({"erasure": {"enabled": True, "momentum": 0.0}})


def test_labelled_blocks_false_erases_only_the_unlabelled_blocks() -> None:
    """With erasure.labelled_blocks false only the residual gets an eraser; the adversaries still guard every pair."""
    every = SequenceAutoencoder(tiny_settings(erasure={"enabled": True}), 2, 64, LABELS)
    residual_only = SequenceAutoencoder(
        tiny_settings(erasure={"enabled": True, "labelled_blocks": False}), 2, 64, LABELS
    )
    assert set(every.erasers) > {"residual"}
    assert residual_only.erasers is not None and set(residual_only.erasers) == {"residual"}
    assert residual_only.erased_labels["residual"] == every.erased_labels["residual"]
    assert residual_only.adversary_pairs == every.adversary_pairs


def test_erasure_off_builds_no_erasers() -> None:
    model = SequenceAutoencoder(tiny_settings(), 2, 64, LABELS)
    assert model.erasers is None


def test_forward_returns_the_chain_the_anomaly_score_reads() -> None:
    """The chain logits of a forward pass are the chain's own (so evaluate and embed need not run it again)."""
    settings = tiny_settings(
        decoder={"kind": "autoregressive", "context": 3, "reach": 8, "latent_reach": False},
        local={"enabled": True, "codebook_size": 16},
    )
    torch.manual_seed(0)
    model = SequenceAutoencoder(settings, 2, 64, LABELS).eval()
    seq, tracks, _ = batch(4, 64)
    seq = seq.clamp_max(3)
    with torch.no_grad():
        out = model(seq, tracks)
        assert out.chain_logits is not None
        chain = model.chain_reconstruct(seq)[0]
        assert torch.allclose(out.chain_logits, chain, atol=1e-5)
        given = model.window_score(seq, tracks, out.seq_logits, out.tracks_pred, chain_logits=out.chain_logits)
        computed = model.window_score(seq, tracks, out.seq_logits, out.tracks_pred)
    assert torch.allclose(given, computed, atol=1e-6)


def test_exact_fit_over_batches_matches_one_batch_fit() -> None:
    """Streaming sums over several batches give the statistics of one pass over all rows."""
    x, y = _labelled_cloud(900, 6, 3, seed=4)
    y[::7] = -1  # unknown rows
    whole = BlockEraser(6, [3], momentum=1.0)
    whole.update(x, [y])
    streamed = BlockEraser(6, [3], momentum=0.02)
    streamed.begin_fit()
    for lo in range(0, 900, 128):
        streamed.accumulate(x[lo : lo + 128], [y[lo : lo + 128]])
    streamed.end_fit()
    for name in ("mean", "covariance", "cross_covariance"):
        assert torch.allclose(getattr(streamed, name), getattr(whole, name), atol=1e-4), name
    assert torch.allclose(streamed(x), whole(x), atol=1e-4)


def test_model_fit_erasers_reads_evaluation_mode_latents() -> None:
    """After fit_erasers on a set of windows, the residual's chrom classes share one mean in the
    embedding of those same windows (evaluation mode), whatever the training batches did."""
    settings = tiny_settings(erasure={"enabled": True, "momentum": 0.5})
    torch.manual_seed(0)
    model = SequenceAutoencoder(settings, 2, 64, LABELS)
    seq, tracks, labels = batch(48, 64, seed=3)
    model.train()
    model(seq[:16], tracks[:16], {k: v[:16] for k, v in labels.items()}, step=1)
    n = model.fit_erasers(
        (seq[lo : lo + 16], tracks[lo : lo + 16], {k: v[lo : lo + 16] for k, v in labels.items()})
        for lo in range(0, 48, 16)
    )
    assert n == 48 and model.training  # the mode is restored
    model.eval()
    with torch.no_grad():
        residual = model.layout.split(model.encode(seq, tracks))["residual"]
    y = labels["chrom"]
    means = torch.stack([residual[y == c].mean(0) for c in y.unique()])
    assert torch.allclose(means, means.mean(0).expand_as(means), atol=1e-3)
