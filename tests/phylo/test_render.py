"""seqae.phylo.render: tree figures."""

from __future__ import annotations

import re
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


def test_long_leaf_names_widen_the_figure_and_leave_the_branches_their_width(tmp_path: Path) -> None:
    """ete3 scaled the whole drawing to the width: 46-character names left the branches a third of it, and
    its scale bar reserved a blank band as tall as the bar was long."""
    import matplotlib.image

    from seqae.phylo.render import _names_width, render_tree

    family = simulate_family(10, 100, np.random.default_rng(1))
    tree = family.tree.copy()
    for k, leaf in enumerate(tree.iter_leaves()):
        leaf.name = f"ENSMUST{k:011d}.1_Mus_musculus_chr{k + 1}_GATA1_peak_{k}"
    short = render_tree(family.tree, tmp_path / "short.png", width=400)
    long = render_tree(tree, tmp_path / "long.png", width=400)
    assert matplotlib.image.imread(short).shape[1] == 400
    width = matplotlib.image.imread(long).shape[1]
    # The names at their own size beside branches of half the width: wider than asked, by about the names.
    assert width > 400 and abs(width - (200 + _names_width(tree, 10))) < 40, width
    # The scale bar is drawn in the legend with its length and unit, and the figure ends below it.
    svg = render_tree(family.tree, tmp_path / "short.svg", width=400, scale_unit="substitutions/site")
    assert re.search(r"\d(\.\d+)? substitutions/site", svg.read_text())
    rows = np.flatnonzero((matplotlib.image.imread(short)[..., :3] < 0.98).any(axis=(1, 2)))
    assert matplotlib.image.imread(short).shape[0] - rows.max() < 30  # no blank band at the bottom
