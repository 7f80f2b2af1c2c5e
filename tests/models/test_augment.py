"""seqae.models.augment: reverse complement, crops and denoising corruption (and the model's clean targets)."""

from __future__ import annotations

import pytest
import torch

from seqae.models import SequenceAutoencoder
from seqae.models.augment import centre_crop, corrupt, random_crop, random_reverse_complement, reverse_complement
from seqae.models.objectives import sequence_loss
from tests.models.conftest import LABELS, batch, encode_str, tiny_settings

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def decode_codes(codes: torch.Tensor) -> str:
    return "".join("ACGTN"[int(c)] for c in codes)


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
