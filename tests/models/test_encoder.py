"""seqae.models.encoder: one-hot input, poolings, the k-mer spectrum and the learnt scan beside the tower."""

from __future__ import annotations

import math
import random

import pytest
import torch

from seqae.errors import ConfigError
from seqae.models import SequenceAutoencoder, model_settings
from seqae.models.encoder import SequenceEncoder, kmer_spectrum, one_hot
from seqae.models.layers import TowerShape
from tests.models.conftest import LABELS, batch, encode_str, tiny_settings

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_encoder_any_length_with_position_free_pooling() -> None:
    encoder = SequenceEncoder(
        n_tracks=1, out_dim=6, tower=TowerShape(16, 1, dilations=(1,)), downsample=8, pooling="meanmax"
    )
    for length in (64, 100, 1000, 7):
        latent, features = encoder(torch.randint(0, 5, (2, length)), torch.rand(2, 1, length))
        assert latent.shape == (2, 6)
        assert features.shape == (2, 16, math.ceil(length / 8)) == (2, 16, encoder.output_length(length))


def test_positional_pooling_keeps_where_a_base_is() -> None:
    """The default pooling gives each position its own latent weights: moving a motif changes the latent."""
    torch.manual_seed(0)
    kwargs = dict(n_tracks=0, out_dim=8, tower=TowerShape(16, 1, dilations=(1,), norm="group"), downsample=4)
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
    kwargs = dict(n_tracks=0, out_dim=8, tower=TowerShape(16, 1, dilations=(1,), norm="group"), downsample=4)
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
    kwargs = dict(n_tracks=0, out_dim=8, tower=TowerShape(16, 1, dilations=(1,), norm="group"), downsample=4)
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
    kwargs = dict(n_tracks=0, out_dim=8, tower=TowerShape(16, 1, dilations=(1,), norm="group"), downsample=4)
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
