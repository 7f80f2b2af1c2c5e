"""seqae.models.layout: named latent blocks, and labels nested in others."""

from __future__ import annotations

import pytest
import torch

from seqae.models import LatentLayout, SequenceAutoencoder
from tests.models.conftest import tiny_settings

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
