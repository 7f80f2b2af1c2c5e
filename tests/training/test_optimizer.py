"""seqae.training.optimizer: the learning-rate schedule and the gradient clipping groups."""

from __future__ import annotations

import pytest
import torch

from seqae.models import SequenceAutoencoder
from seqae.runtime import epoch_seed
from seqae.training import lr_factor
from tests.conftest import tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_gradient_clipping_groups_keep_the_decoder_apart_from_the_heads() -> None:
    from seqae.training.optimizer import clip_groups

    torch.manual_seed(0)
    two_level = tiny_model(
        decoder={"kind": "autoregressive", "context": 3, "hidden": 16, "n_layers": 1, "latent_layers": 2},
        local={"enabled": True, "dim": 4, "codebook_size": 16},
    )
    model = SequenceAutoencoder(two_level, 2, 64, {"chrom": 3, "gene_family": 4})
    groups = clip_groups(model)
    ids = [id(p) for g in groups for p in g]
    assert sorted(ids) == sorted(id(p) for p in model.parameters() if p.requires_grad)  # each once
    group_of = {id(p): i for i, g in enumerate(groups) for p in g}
    decoder = {group_of[id(p)] for p in model.decoder.parameters()}
    heads = {group_of[id(p)] for p in model.supervised_heads.parameters()}
    assert len(decoder) == 1 and decoder.isdisjoint(heads)


def test_lr_schedule_and_epoch_seeds():
    assert lr_factor(0, 4, 100, "cosine") == pytest.approx(0.25)
    assert lr_factor(3, 4, 100, "cosine") == pytest.approx(1.0)
    assert lr_factor(4, 4, 100, "cosine") == pytest.approx(1.0)
    assert lr_factor(52, 4, 100, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 4, 100, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(99, 4, 100, "constant") == 1.0
    assert lr_factor(0, 0, 10, "cosine") == 1.0
    seeds = {epoch_seed(7, e, s) for e in range(1, 4) for s in range(3)}
    assert len(seeds) == 9 and epoch_seed(7, 1, 0) == epoch_seed(7, 1, 0)
