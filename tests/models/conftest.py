"""The model tests' tiny settings, labels and batches (16 channels, windows of 64-128 bp)."""

from __future__ import annotations

import copy

import torch

from tests.conftest import tiny_model

LABELS = {"chrom": 3, "gene_family": 4}
TINY = tiny_model(
    vq={"codebook_size": 8, "n_groups": 2, "decay": 0.9},  # fast EMA: codes keep up within a few steps
    infomax={"hidden": 16},
    cpc={"chunk": 16, "n_future": 2, "dim": 8},
)
CODES = {b: i for i, b in enumerate("ACGTN")}


def tiny_settings(**overrides: object) -> dict:
    settings = copy.deepcopy(TINY)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(settings.get(key), dict):
            settings[key].update(value)
        else:
            settings[key] = value
    return settings


def seeded_model(settings: dict, labels: dict[str, int], length: int, **overrides: object):
    """A :class:`~seqae.models.SequenceAutoencoder` of ``settings`` (top-level keys replaced by
    ``overrides``) with 2 tracks, built from torch seed 0."""
    from seqae.models import SequenceAutoencoder

    torch.manual_seed(0)
    return SequenceAutoencoder({**copy.deepcopy(settings), **copy.deepcopy(overrides)}, 2, length, labels)


def encode_str(text: str) -> torch.Tensor:
    return torch.tensor([CODES[c] for c in text])


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
