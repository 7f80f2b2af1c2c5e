"""Pairwise distances: between aligned sequences, along a tree, between latents.

Sequence distances take an alignment of codes ``[n, L]`` (see
:mod:`seqae.phylo.alphabet`; code 4 = gap/ambiguous/N) and compare each pair
only at the sites where both have a definite base ("pairwise deletion"). All
pairs are counted at once with one-hot matrix products, in chunks of sites so
that memory stays at ``O(n * chunk)``; there is no loop over pairs.

Units: p-distance is a fraction of compared sites; JC69 and tree (patristic)
distances are expected substitutions per site; latent distances are in the
latent space's own units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PairCounts",
    "euclidean_distances",
    "jc69_distance",
    "p_distance",
    "pair_counts",
    "patristic_distances",
    "poincare_distances",
]

# Transition partner of each base: A<->G, C<->T.
_TRANSITION_PARTNER = np.array([2, 3, 0, 1])


@dataclass(frozen=True)
class PairCounts:
    """Site counts for every pair of sequences, each ``[n, n]`` int64.

    Attributes:
        sites: sites where both sequences have a definite base (A/C/G/T).
        mismatches: of those, sites where the bases differ.
        transitions: of the mismatches, A<->G or C<->T differences; the rest
            (``mismatches - transitions``) are transversions.
    """

    sites: np.ndarray
    mismatches: np.ndarray
    transitions: np.ndarray

    @property
    def transversions(self) -> np.ndarray:
        """Mismatches that are not transitions, ``[n, n]``."""
        return self.mismatches - self.transitions


def _as_codes(codes: np.ndarray) -> np.ndarray:
    arr = np.asarray(codes)
    if arr.ndim != 2:
        raise ValueError(f"alignment codes must be [n, L], got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"alignment codes must be integers, got {arr.dtype}")
    return arr


def pair_counts(codes: np.ndarray, chunk: int = 4096) -> PairCounts:
    """Count compared sites, mismatches and transitions for all pairs.

    Args:
        codes: ``[n, L]`` integer codes, 0..3 = A, C, G, T; anything else
            (4 = gap/N) is left out of the pairs it occurs in.
        chunk: sites per one-hot block (memory ``~ 16 * n * chunk`` bytes).

    Returns:
        :class:`PairCounts` with ``[n, n]`` int64 matrices.
    """
    arr = _as_codes(codes)
    n, length = arr.shape
    sites = np.zeros((n, n))
    matches = np.zeros((n, n))
    transitions = np.zeros((n, n))
    # float32 products are exact for counts below 2**24 per chunk.
    for start in range(0, max(length, 1), chunk):
        block = arr[:, start : start + chunk]
        onehot = (block[:, :, None] == np.arange(4)).astype(np.float32)  # [n, c, 4]
        valid = onehot.sum(axis=2)  # [n, c]
        flat = onehot.reshape(n, -1)
        partner = onehot[:, :, _TRANSITION_PARTNER].reshape(n, -1)
        sites += valid @ valid.T
        matches += flat @ flat.T
        transitions += flat @ partner.T
    sites_i = np.rint(sites).astype(np.int64)
    return PairCounts(
        sites=sites_i,
        mismatches=sites_i - np.rint(matches).astype(np.int64),
        transitions=np.rint(transitions).astype(np.int64),
    )


def _check_overlap(counts: PairCounts, names: Sequence[str] | None) -> None:
    empty = counts.sites == 0
    np.fill_diagonal(empty, False)
    if empty.any():
        i, j = (int(x) for x in np.argwhere(empty)[0])
        who = f"{names[i]!r} and {names[j]!r}" if names is not None else f"sequences {i} and {j}"
        raise ValueError(f"{who} share no site where both have a definite base; their distance is undefined")


def p_distance(codes: np.ndarray, names: Sequence[str] | None = None) -> np.ndarray:
    """Proportion of differing sites for every pair, ``[n, n]`` in [0, 1].

    Args:
        codes: ``[n, L]`` alignment codes (missing codes skipped pairwise).
        names: used in the error message only.

    Raises:
        ValueError: a pair has no site where both have a definite base.
    """
    counts = pair_counts(codes)
    _check_overlap(counts, names)
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = counts.mismatches / counts.sites
    np.fill_diagonal(dist, 0.0)
    return dist


def jc69_distance(codes: np.ndarray, names: Sequence[str] | None = None, max_distance: float = 5.0) -> np.ndarray:
    """Jukes–Cantor (1969) distance, ``d = -3/4 ln(1 - 4p/3)``, ``[n, n]``.

    Expected substitutions per site under JC69. Pairs at or beyond saturation
    (``p >= 3/4``, where the formula has no finite value) and pairs whose
    distance would exceed ``max_distance`` get ``max_distance``.

    Args:
        codes: ``[n, L]`` alignment codes (missing codes skipped pairwise).
        names: used in the error message only.
        max_distance: cap, substitutions per site.
    """
    p = p_distance(codes, names)
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = -0.75 * np.log1p(-4.0 / 3.0 * np.minimum(p, 0.75))
    dist = np.minimum(np.nan_to_num(dist, nan=max_distance, posinf=max_distance), max_distance)
    np.fill_diagonal(dist, 0.0)
    return dist


def patristic_distances(tree, names: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Path lengths between all leaves of a tree (sum of ``dist`` on the path).

    O(n^2) work with one vectorised block per internal node: the leaves under
    each child form a contiguous range in post-order, and every pair whose
    lowest common ancestor is ``v`` gets ``depth(a) + depth(b) - 2 depth(v)``.

    Args:
        tree: an ete3 Tree (rooted or with a multifurcating root; the root's
            own ``dist`` is ignored).
        names: leaf order of the result; default: the tree's leaf order.

    Returns:
        ``(dist [n, n], names)``.
    """
    leaves = tree.get_leaves()
    leaf_names = [leaf.name for leaf in leaves]
    index = {id(leaf): k for k, leaf in enumerate(leaves)}
    depth_of: dict[int, float] = {}
    for node in tree.traverse("preorder"):
        depth_of[id(node)] = 0.0 if node.up is None or node is tree else depth_of[id(node.up)] + float(node.dist)
    leaf_depth = np.array([depth_of[id(leaf)] for leaf in leaves])
    n = len(leaves)
    dist = np.zeros((n, n))
    span: dict[int, tuple[int, int]] = {}
    for node in tree.traverse("postorder"):
        if node.is_leaf():
            k = index[id(node)]
            span[id(node)] = (k, k + 1)
            continue
        ranges = [span[id(child)] for child in node.children]
        span[id(node)] = (min(r[0] for r in ranges), max(r[1] for r in ranges))
        two_depth = 2.0 * depth_of[id(node)]
        for a in range(len(ranges)):
            sa = slice(*ranges[a])
            for b in range(a + 1, len(ranges)):
                sb = slice(*ranges[b])
                block = leaf_depth[sa, None] + leaf_depth[None, sb] - two_depth
                dist[sa, sb] = block
                dist[sb, sa] = block.T
    if names is None:
        return dist, leaf_names
    names = list(names)
    pos = {name: k for k, name in enumerate(leaf_names)}
    missing = [x for x in names if x not in pos]
    if missing or len(names) != n:
        raise ValueError(f"names do not match the tree's {n} leaves (not in the tree: {missing[:5]})")
    order = np.array([pos[x] for x in names])
    return dist[np.ix_(order, order)], names


def _squared_euclidean(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sq = np.einsum("ij,ij->i", x, x)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    return d2, sq


def euclidean_distances(latent: np.ndarray) -> np.ndarray:
    """Euclidean distances between latent vectors ``[n, k]`` -> ``[n, n]``."""
    x = np.asarray(latent, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"latents must be [n, k], got shape {x.shape}")
    d2, _ = _squared_euclidean(x)
    return np.sqrt(d2)


def poincare_distances(latent: np.ndarray, curvature: float = 1.0) -> np.ndarray:
    """Hyperbolic distances between points of the Poincaré ball, ``[n, n]``.

    For curvature ``-c`` (``c = curvature > 0``) and points with
    ``c |x|^2 < 1``::

        d(x, y) = arcosh(1 + 2 c |x - y|^2 / ((1 - c |x|^2) (1 - c |y|^2))) / sqrt(c)

    Trees embed in hyperbolic space with low distortion, which is why the
    tree autoencoder may place its latents there.

    Args:
        latent: ``[n, k]`` points strictly inside the ball of radius
            ``1 / sqrt(c)``.
        curvature: ``c``.
    """
    if curvature <= 0:
        raise ValueError(f"curvature must be > 0, got {curvature}")
    x = np.asarray(latent, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"latents must be [n, k], got shape {x.shape}")
    d2, sq = _squared_euclidean(x)
    room = 1.0 - curvature * sq
    if np.any(room <= 0):
        i = int(np.argmin(room))
        raise ValueError(
            f"point {i} has norm {np.sqrt(sq[i]):.6g}, outside the Poincaré ball of radius {1 / np.sqrt(curvature):.6g}"
        )
    arg = 1.0 + 2.0 * curvature * d2 / (room[:, None] * room[None, :])
    dist = np.arccosh(np.maximum(arg, 1.0)) / np.sqrt(curvature)
    np.fill_diagonal(dist, 0.0)
    return dist
