"""seqae.phylo.render: tree figures."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from seqae.phylo.simulate import simulate_family


def test_render_png_and_svg(tmp_path: Path) -> None:
    import matplotlib.image

    from seqae.phylo.render import render_tree

    family = simulate_family(12, 100, np.random.default_rng(0))
    labels = {name: f"chr{k % 3}" for k, name in enumerate(family.names[:10])}
    png = render_tree(family.tree, tmp_path / "fig" / "tree.png", labels=labels, title="family 1", width=400)
    pixels = matplotlib.image.imread(png)
    assert pixels.shape[1] == 400 and pixels.shape[0] > 100
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 10  # not blank
    svg = render_tree(family.tree, tmp_path / "fig" / "tree.svg", labels=labels, layout="circular")
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert "chr1" in svg.read_text()  # the legend
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == ["tree.png", "tree.svg"]
    assert not hasattr(family.tree.get_leaves()[0], "_faces") or not family.tree.get_leaves()[0]._faces
    with pytest.raises(ValueError, match="format"):
        render_tree(family.tree, tmp_path / "tree.jpg")
    with pytest.raises(ValueError, match="layout"):
        render_tree(family.tree, tmp_path / "tree.png", layout="radial")
