"""seqae.training.model: the model built for the windows' labels."""

from __future__ import annotations

import pytest

from seqae.training import train_model
from tests.training.conftest import make_config, tiny

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_training_warns_when_erasure_leaves_a_block_little_room(windows, tmp_path, caplog):
    """LEACE takes one direction per class beyond the first: a 2-coordinate block erased of the
    3-class chromosome keeps nothing, and the log says so, as for an unlabelled block left one
    coordinate; a roomy block gets no warning."""
    blocks = {
        "chrom": {"size": 8, "label": "chrom"},  # erased of gene_family (2 classes): 1 of 8
        "gene": {"size": 2, "label": "gene_family"},  # erased of chrom (3 classes): 2 of 2
        "residual": {"size": 4, "label": None},  # both: 3 of 4
    }
    config = make_config({"plain": tiny(blocks=blocks, erasure={"enabled": True})}, epochs=1, max_steps=1)
    with caplog.at_level("INFO", logger="seqae"):
        train_model(config, "plain", windows, tmp_path, progress=False)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "erasure" in r.getMessage()]
    assert len(warned) == 2, warned
    assert "2 of the 2 coordinates of block gene (chrom: 3 classes); its own label keeps 0" in warned[0]
    assert "erasure.labelled_blocks: false" in warned[0]  # a remedy for a labelled block only
    assert "3 of the 4 coordinates of block residual" in warned[1] and "coordinates left: 1" in warned[1]
    assert "labelled_blocks" not in warned[1] and "extract.chromosomes.exclude" in warned[1]
