"""seqae.phylo.distance: p, JC69, patristic and latent distances."""

from __future__ import annotations

import numpy as np
import pytest

from seqae.phylo.alphabet import encode
from seqae.phylo.distance import (
    euclidean_distances,
    jc69_distance,
    p_distance,
    pair_counts,
    patristic_distances,
    poincare_distances,
)
from seqae.phylo.ete import Tree


def test_p_and_jc69_distances_on_hand_made_alignment() -> None:
    aln = np.stack(
        [
            encode("ACGTACGTAC"),
            encode("ACGTACGTAA"),  # 1 transversion (C->A) of 10
            encode("GCGTAC-TNC"),  # vs row 0: 8 sites compared, 1 transition (A->G)
            encode("TGCATGCATG"),  # every site differs from row 0
        ]
    )
    counts = pair_counts(aln)
    assert counts.sites[0].tolist() == [10, 10, 8, 10]
    assert counts.mismatches[0].tolist() == [0, 1, 1, 10]
    assert counts.transitions[0, 2] == 1 and counts.transversions[0, 1] == 1
    assert (counts.sites == counts.sites.T).all()
    p = p_distance(aln)
    assert p[0, 1] == pytest.approx(0.1)
    assert p[0, 2] == pytest.approx(1 / 8)
    assert p[0, 3] == 1.0
    assert np.diagonal(p).tolist() == [0.0] * 4
    jc = jc69_distance(aln, max_distance=4.0)
    assert jc[0, 1] == pytest.approx(-0.75 * np.log(1 - 4 / 3 * 0.1))
    assert jc[0, 2] == pytest.approx(-0.75 * np.log(1 - 4 / 3 * 0.125))
    assert jc[0, 3] == 4.0  # p > 3/4: saturated, capped
    assert np.allclose(jc, jc.T)


def test_distance_without_shared_sites_is_an_error() -> None:
    aln = np.stack([encode("AC--"), encode("--GT"), encode("ACGT"), encode("ACGA")])
    with pytest.raises(ValueError, match="'a' and 'b' share no site"):
        p_distance(aln, names=["a", "b", "c", "d"])


def test_patristic_distances_match_ete3() -> None:
    tree = Tree("((a:1,b:2):0.5,(c:1,(d:0.25,e:3):0.5):1,f:2);")
    dist, names = patristic_distances(tree, ["f", "e", "d", "c", "b", "a"])
    for i, x in enumerate(names):
        for j, y in enumerate(names):
            want = 0.0 if x == y else tree.get_distance(x, y)
            assert dist[i, j] == pytest.approx(want)


def test_latent_distances() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3))
    eu = euclidean_distances(x)
    direct = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    assert np.allclose(eu, direct, atol=1e-9)
    ball = x / (np.linalg.norm(x, axis=1, keepdims=True) * 2.0)  # norm 0.5
    hyp = poincare_distances(ball)
    i, j = 1, 4
    want = np.arccosh(
        1 + 2 * np.sum((ball[i] - ball[j]) ** 2) / ((1 - np.sum(ball[i] ** 2)) * (1 - np.sum(ball[j] ** 2)))
    )
    assert hyp[i, j] == pytest.approx(want)
    # From the origin: d(0, x) = 2 artanh(|x|).
    pts = np.array([[0.0, 0.0], [0.3, 0.4], [0.0, -0.9]])
    assert poincare_distances(pts)[0, 1:] == pytest.approx(2 * np.arctanh([0.5, 0.9]))
    # Curvature -c: the ball has radius 1/sqrt(c).
    assert poincare_distances(pts * 0.5, curvature=4.0)[0, 1] == pytest.approx(2 * np.arctanh(0.5) / 2)
    with pytest.raises(ValueError, match="outside the Poincaré ball"):
        poincare_distances(np.array([[0.0, 0.0], [1.0, 0.0]]))
