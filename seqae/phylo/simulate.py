"""Families of homologous DNA sequences evolved along known trees.

Two steps, each deterministic given a ``numpy.random.Generator``:

1. A tree with ``n`` leaves: a birth–death tree (:func:`birth_death_tree`) or
   a Kingman coalescent (:func:`coalescent_tree`), ultrametric, rescaled so
   that the root-to-tip height is ``height`` expected substitutions per site.
   Optionally a relaxed clock multiplies each branch by a log-normal factor.
2. Sequences along the tree (:func:`evolve`) under a time-reversible model
   (:class:`SubstitutionModel`: JC69, HKY85 with transition/transversion rate
   ratio ``kappa``, or GTR), with optional discrete-Gamma rate heterogeneity
   across sites (Yang 1994; ``alpha``, 4 categories by default, category
   means). Transition matrices come from one eigendecomposition of the rate
   matrix; each branch samples all sites of the child at once from the
   cumulative transition probabilities of the parent's states.

:func:`simulate_family` does both and returns a :class:`SimulatedFamily`.

Families are alignments: the simulation has substitutions only, no
insertions or deletions, so every sequence has the same length and site
``k`` of each sequence descends from site ``k`` of the root. Unaligned
families with indels are not simulated (the tree stage reads aligned
families).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from seqae.phylo.alphabet import decode

__all__ = [
    "EXCHANGE_PAIRS",
    "SimulatedFamily",
    "SubstitutionModel",
    "TreeArrays",
    "birth_death_tree",
    "coalescent_tree",
    "evolve",
    "evolve_sites",
    "gamma_category_rates",
    "simulate_family",
]

#: Exchangeability order: AC, AG, AT, CG, CT, GT (transitions: AG, CT).
EXCHANGE_PAIRS = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))


def gamma_category_rates(alpha: float | np.ndarray, n_categories: int = 4) -> np.ndarray:
    """Mean rate of each equal-probability category of Gamma(alpha, rate alpha).

    The discrete-Gamma approximation of Yang (1994) with category means (as
    IQ-TREE's ``+G`` by default); the rates average to 1. Small ``alpha`` =
    strong heterogeneity.

    Args:
        alpha: the shape, a number or an array ``[...]`` of shapes (each > 0).
        n_categories: categories, >= 1.

    Returns:
        ``[n_categories]`` rates, increasing (``[..., n_categories]`` for an
        array of shapes).
    """
    from scipy.special import gammainc, gammaincinv

    a = np.asarray(alpha, dtype=np.float64)
    if np.any(~(a > 0)):
        raise ValueError(f"gamma shape alpha must be > 0, got {alpha}")
    if n_categories < 1:
        raise ValueError(f"n_categories must be >= 1, got {n_categories}")
    if n_categories == 1:
        return np.ones(a.shape + (1,))
    probs = np.arange(1, n_categories) / n_categories
    # Category bounds x_k of Gamma(alpha, 1) (the rate-alpha scale cancels):
    # the mean over a category is K * [P(alpha + 1, x_k) - P(alpha + 1, x_{k-1})].
    shape = a[..., None]
    bounds = gammaincinv(shape, probs)
    cdf1 = gammainc(shape + 1.0, bounds)
    edges = np.concatenate([np.zeros(a.shape + (1,)), cdf1, np.ones(a.shape + (1,))], axis=-1)
    rates = n_categories * np.diff(edges, axis=-1)
    return rates / rates.mean(axis=-1, keepdims=True)


@dataclass(frozen=True)
class SubstitutionModel:
    """A time-reversible nucleotide model, rate-normalised.

    Attributes:
        name: e.g. ``"HKY85"``, ``"GTR+G4"``.
        freqs: ``[4]`` stationary base frequencies (A, C, G, T), sum 1.
        exchangeabilities: ``[6]`` symmetric rates for AC, AG, AT, CG, CT, GT.
        alpha: Gamma shape for rate heterogeneity across sites; None = equal
            rates.
        n_categories: discrete-Gamma categories.

    The rate matrix is scaled to one expected substitution per unit time at
    equilibrium, so branch lengths are expected substitutions per site
    (averaged over the rate categories, whose mean rate is 1).
    """

    name: str
    freqs: np.ndarray
    exchangeabilities: np.ndarray
    alpha: float | None = None
    n_categories: int = 4

    def __post_init__(self) -> None:
        freqs = np.asarray(self.freqs, dtype=np.float64)
        rates = np.asarray(self.exchangeabilities, dtype=np.float64)
        if freqs.shape != (4,) or np.any(freqs <= 0) or not np.isclose(freqs.sum(), 1.0):
            raise ValueError(f"base frequencies must be 4 positive numbers summing to 1, got {freqs.tolist()}")
        if rates.shape != (6,) or np.any(rates <= 0):
            raise ValueError(f"exchangeabilities must be 6 positive numbers, got {rates.tolist()}")
        object.__setattr__(self, "freqs", freqs / freqs.sum())
        object.__setattr__(self, "exchangeabilities", rates)

    @classmethod
    def jc69(cls, alpha: float | None = None, n_categories: int = 4) -> SubstitutionModel:
        """Jukes–Cantor: equal frequencies and rates."""
        return cls(_name("JC69", alpha, n_categories), np.full(4, 0.25), np.ones(6), alpha, n_categories)

    @classmethod
    def hky85(
        cls,
        kappa: float,
        freqs: Sequence[float] = (0.25, 0.25, 0.25, 0.25),
        alpha: float | None = None,
        n_categories: int = 4,
    ) -> SubstitutionModel:
        """HKY85: transitions (A<->G, C<->T) at ``kappa`` times the transversion rate."""
        rates = np.array([1.0, kappa, 1.0, 1.0, kappa, 1.0])
        return cls(_name("HKY85", alpha, n_categories), np.asarray(freqs, dtype=np.float64), rates, alpha, n_categories)

    @classmethod
    def gtr(
        cls,
        exchangeabilities: Sequence[float],
        freqs: Sequence[float],
        alpha: float | None = None,
        n_categories: int = 4,
    ) -> SubstitutionModel:
        """GTR with exchangeabilities for AC, AG, AT, CG, CT, GT."""
        return cls(
            _name("GTR", alpha, n_categories),
            np.asarray(freqs, dtype=np.float64),
            np.asarray(exchangeabilities, dtype=np.float64),
            alpha,
            n_categories,
        )

    def rate_matrix(self) -> np.ndarray:
        """``[4, 4]`` generator Q (rows sum to 0), one substitution per unit time."""
        q = np.zeros((4, 4))
        for (a, b), r in zip(EXCHANGE_PAIRS, self.exchangeabilities):
            q[a, b] = r * self.freqs[b]
            q[b, a] = r * self.freqs[a]
        np.fill_diagonal(q, -q.sum(axis=1))
        return q / -(self.freqs @ np.diagonal(q))

    def category_rates(self) -> np.ndarray:
        """``[C]`` relative rates of the site categories (``[1]`` without Gamma)."""
        return np.ones(1) if self.alpha is None else gamma_category_rates(self.alpha, self.n_categories)

    def transition_matrices(self, lengths: np.ndarray) -> np.ndarray:
        """P(t) = exp(Q r t) for each branch length and rate category.

        One symmetric eigendecomposition of ``diag(sqrt(pi)) Q diag(1/sqrt(pi))``
        serves every branch.

        Args:
            lengths: ``[B]`` branch lengths, expected substitutions per site.

        Returns:
            ``[B, C, 4, 4]``; row ``a`` is the distribution of the child's base
            given the parent's base ``a``.
        """
        t = np.asarray(lengths, dtype=np.float64).reshape(-1)
        sqrt_pi = np.sqrt(self.freqs)
        sym = sqrt_pi[:, None] * self.rate_matrix() / sqrt_pi[None, :]
        eigval, eigvec = np.linalg.eigh(0.5 * (sym + sym.T))
        left = eigvec / sqrt_pi[:, None]  # diag(1/sqrt(pi)) U
        right = eigvec.T * sqrt_pi[None, :]  # U^T diag(sqrt(pi))
        scaled = t[:, None, None] * self.category_rates()[None, :, None] * eigval[None, None, :]  # [B, C, 4]
        p = np.einsum("ik,bck,kj->bcij", left, np.exp(scaled), right)
        np.clip(p, 0.0, None, out=p)
        p /= p.sum(axis=-1, keepdims=True)
        return p

    def params(self) -> dict[str, object]:
        """Plain-Python description (for JSON/TSV)."""
        return {
            "model": self.name,
            "freqs": self.freqs.tolist(),
            "exchangeabilities": self.exchangeabilities.tolist(),
            "alpha": self.alpha,
            "n_categories": self.n_categories if self.alpha is not None else 1,
        }


def _name(base: str, alpha: float | None, n_categories: int) -> str:
    return base if alpha is None else f"{base}+G{n_categories}"


@dataclass(frozen=True)
class TreeArrays:
    """A rooted tree as arrays; nodes are numbered so that parents come first.

    Attributes:
        parent: ``[m]`` parent of each node, -1 for the root (node 0).
        length: ``[m]`` branch length above each node (0 for the root),
            expected substitutions per site.
        leaf_nodes: ``[n]`` node index of each leaf, in ``names`` order.
        names: the ``n`` leaf names.
    """

    parent: np.ndarray
    length: np.ndarray
    leaf_nodes: np.ndarray
    names: list[str]

    def root_to_tip(self) -> np.ndarray:
        """``[n]`` path length from the root to each leaf."""
        depth = np.zeros(self.parent.size)
        for node in range(1, self.parent.size):  # parents come first
            depth[node] = depth[self.parent[node]] + self.length[node]
        return depth[self.leaf_nodes]

    def to_ete(self):
        """The tree as an ``ete3.Tree`` (rooted, binary; root ``dist`` 0)."""
        from seqae.phylo.ete import Tree

        nodes = [Tree(dist=0.0)]
        leaf_name = dict(zip(self.leaf_nodes.tolist(), self.names))
        for node in range(1, self.parent.size):
            child = nodes[self.parent[node]].add_child(dist=float(self.length[node]))
            if node in leaf_name:
                child.name = leaf_name[node]
            nodes.append(child)
        return nodes[0]

    def newick(self) -> str:
        """Newick text with branch lengths."""
        return self.to_ete().write(format=5, dist_formatter="%0.12g")


def _tree_from_merges(
    merges: np.ndarray,
    heights: np.ndarray,
    n: int,
    rng: np.random.Generator,
    height: float,
    clock_sd: float,
    prefix: str,
) -> TreeArrays:
    """Build :class:`TreeArrays` from ``n - 1`` merges of clusters (ids as in scipy linkage).

    ``merges[k]`` joins two clusters into cluster ``n + k`` at ``heights[k]``
    (increasing); leaves are clusters ``0..n-1`` at height 0.
    """
    total = 2 * n - 1
    node_height = np.concatenate([np.zeros(n), heights])
    up = np.full(total, -1)
    up[merges[:, 0]] = np.arange(n, total)
    up[merges[:, 1]] = np.arange(n, total)
    # Renumber so that parents come first: decreasing height, root first.
    order = np.argsort(-node_height, kind="stable")
    new_id = np.empty(total, dtype=np.int64)
    new_id[order] = np.arange(total)
    parent = np.where(up[order] >= 0, new_id[np.maximum(up[order], 0)], -1)
    length = np.where(parent >= 0, node_height[np.maximum(up[order], 0)] - node_height[order], 0.0)
    length = length * (height / node_height.max())
    if clock_sd > 0:
        # Relaxed clock: mean-one log-normal rate per branch, then rescale the
        # mean root-to-tip path to `height`.
        length = length * rng.lognormal(-0.5 * clock_sd**2, clock_sd, size=total)
        length[parent < 0] = 0.0
        arrays = TreeArrays(parent, length, new_id[:n], [])
        length = length * (height / arrays.root_to_tip().mean())
    # Leaf names in a random order, so that names carry no topology.
    labels = rng.permutation(n)
    names = [f"{prefix}{k}" for k in range(n)]
    leaf_nodes = np.empty(n, dtype=np.int64)
    leaf_nodes[labels] = new_id[:n]
    return TreeArrays(parent=parent, length=length, leaf_nodes=leaf_nodes, names=names)


def birth_death_tree(
    n: int,
    rng: np.random.Generator,
    height: float = 0.5,
    birth: float = 1.0,
    death: float = 0.0,
    clock_sd: float = 0.0,
    prefix: str = "t",
) -> TreeArrays:
    """Reconstructed tree of a constant-rate birth–death process with ``n`` tips.

    Uses the coalescent point process (Lambert & Stadler 2013): with a uniform
    prior on the time of origin, the ``n - 1`` node depths between adjacent
    tips are i.i.d. with ``P(H > t) = r / (birth e^{rt} - death)``,
    ``r = birth - death`` (Gernhard 2008), and the tree joins adjacent tips
    under the deepest node first. Pure birth (``death = 0``) gives a Yule tree.
    Only ``death / birth`` matters after rescaling to ``height``.

    Args:
        n: number of leaves, >= 2.
        rng: the random source.
        height: root-to-tip path length, expected substitutions per site
            (the mean over tips when ``clock_sd > 0``).
        birth, death: speciation and extinction rates, ``birth > death >= 0``
            (``birth == death`` is the critical process).
        clock_sd: standard deviation of the log-normal branch rate
            multipliers (0 = strict clock, ultrametric).
        prefix: leaf names are ``prefix + "0" .. prefix + str(n - 1)``.
    """
    if n < 2:
        raise ValueError(f"a tree needs at least 2 leaves, got {n}")
    if birth <= 0 or death < 0 or death > birth:
        raise ValueError(f"need birth > 0 and 0 <= death <= birth, got birth={birth}, death={death}")
    u = rng.random(n - 1)
    r = birth - death
    if r > 0:
        depths = np.log((r / (1.0 - u) + death) / birth) / r
    else:
        depths = u / ((1.0 - u) * birth)
    # Adjacent tips k, k+1 meet at depths[k]; merging in increasing depth
    # joins the two clusters that contain tips k and k+1 (union of
    # contiguous ranges, tracked by their ends).
    order = np.argsort(depths, kind="stable")
    merges = np.empty((n - 1, 2), dtype=np.int64)
    cluster_at = np.arange(n)  # cluster id, stored at both end tips of its range
    start_of = np.arange(n)  # for the tip at the end of a range: its start
    end_of = np.arange(n)  # for the tip at the start of a range: its end
    for k, gap in enumerate(order.tolist()):
        a_start = start_of[gap]
        b_end = end_of[gap + 1]
        merges[k] = cluster_at[a_start], cluster_at[gap + 1]
        new = n + k
        cluster_at[a_start] = new
        cluster_at[b_end] = new
        end_of[a_start] = b_end
        start_of[b_end] = a_start
    return _tree_from_merges(merges, depths[order], n, rng, height, clock_sd, prefix)


def coalescent_tree(
    n: int, rng: np.random.Generator, height: float = 0.5, clock_sd: float = 0.0, prefix: str = "t"
) -> TreeArrays:
    """Kingman coalescent with ``n`` leaves, rescaled to ``height``.

    With ``k`` lineages the waiting time is exponential with rate
    ``k (k - 1) / 2`` and a uniformly random pair merges.

    Args: as :func:`birth_death_tree`.
    """
    if n < 2:
        raise ValueError(f"a tree needs at least 2 leaves, got {n}")
    lineages = np.arange(n, 1, -1)
    waits = rng.exponential(2.0 / (lineages * (lineages - 1)))
    heights = np.cumsum(waits)
    active = list(range(n))
    merges = np.empty((n - 1, 2), dtype=np.int64)
    for k in range(n - 1):
        a, b = sorted(rng.choice(len(active), size=2, replace=False).tolist())
        merges[k] = active[a], active[b]
        active[a] = n + k
        active.pop(b)
    return _tree_from_merges(merges, heights, n, rng, height, clock_sd, prefix)


def evolve_sites(
    root: np.ndarray,
    tree: TreeArrays,
    model: SubstitutionModel,
    rng: np.random.Generator,
    category: np.ndarray | None = None,
) -> np.ndarray:
    """Evolve given root states down a tree.

    Each child draws all its sites at once from ``P(branch)[category, parent
    base, :]`` (one vectorised draw per branch, no loop over sites).

    Args:
        root: ``[L]`` root base codes (0..3).
        tree: the tree (parents numbered before children).
        model: substitution model.
        rng: the random source.
        category: ``[L]`` rate category of each site (default: all 0; needed
            only for a model with Gamma categories).

    Returns:
        ``uint8 [n_leaves, L]`` leaf states in ``tree.names`` order.
    """
    n_sites = root.size
    probs = model.transition_matrices(tree.length)  # [m, C, 4, 4]
    cumulative = np.cumsum(probs, axis=-1)[..., :3]  # the 4th bound is 1
    if category is None:
        category = np.zeros(n_sites, dtype=np.int64)
    states = np.empty((tree.parent.size, n_sites), dtype=np.uint8)
    states[0] = root
    for node in range(1, tree.parent.size):
        bounds = cumulative[node][category, states[tree.parent[node]]]  # [L, 3]
        states[node] = (rng.random(n_sites)[:, None] >= bounds).sum(axis=1)
    return states[tree.leaf_nodes]


def evolve(
    tree: TreeArrays, model: SubstitutionModel, n_sites: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Evolve sequences down a tree from a root drawn at the stationary frequencies.

    Each site draws a rate category (equal probabilities); see
    :func:`evolve_sites` for the branches.

    Args:
        tree: the tree (parents numbered before children).
        model: substitution model.
        n_sites: alignment length.
        rng: the random source.

    Returns:
        ``(codes [n, n_sites] uint8 in tree.names order, categories [n_sites])``.
    """
    if n_sites < 1:
        raise ValueError(f"n_sites must be >= 1, got {n_sites}")
    n_cat = model.category_rates().size
    category = rng.integers(n_cat, size=n_sites) if n_cat > 1 else np.zeros(n_sites, dtype=np.int64)
    root = np.searchsorted(np.cumsum(model.freqs)[:3], rng.random(n_sites), side="right").astype(np.uint8)
    return evolve_sites(root, tree, model, rng, category), category


@dataclass
class SimulatedFamily:
    """An aligned family with its true tree.

    Attributes:
        names: ``n`` sequence names (the leaves of ``tree``).
        codes: ``[n, L]`` uint8 codes, A=0 C=1 G=2 T=3.
        tree: the true rooted tree (``ete3.Tree``, branch lengths in
            expected substitutions per site).
        tree_arrays: the same tree as arrays.
        model: the substitution model.
        params: everything needed to reproduce or describe the family.
    """

    names: list[str]
    codes: np.ndarray
    tree: object
    tree_arrays: TreeArrays
    model: SubstitutionModel
    params: dict[str, object] = field(default_factory=dict)

    def sequences(self) -> dict[str, str]:
        """name -> DNA text."""
        return {name: decode(row) for name, row in zip(self.names, self.codes)}

    def newick(self) -> str:
        """The true tree as Newick text with branch lengths."""
        return self.tree_arrays.newick()


def simulate_family(
    n: int,
    n_sites: int,
    rng: np.random.Generator,
    model: SubstitutionModel | None = None,
    height: float = 0.5,
    tree_kind: str = "birth_death",
    birth: float = 1.0,
    death: float = 0.0,
    clock_sd: float = 0.0,
    prefix: str = "t",
) -> SimulatedFamily:
    """A tree and an alignment evolved along it.

    Args:
        n: sequences (leaves).
        n_sites: alignment length.
        rng: the random source; the same seed gives the same family.
        model: default HKY85 with kappa 2, equal frequencies, no Gamma.
        height: root-to-tip path, expected substitutions per site.
        tree_kind: ``"birth_death"`` or ``"coalescent"``.
        birth, death, clock_sd, prefix: see :func:`birth_death_tree`.
    """
    model = model or SubstitutionModel.hky85(kappa=2.0)
    if tree_kind == "birth_death":
        arrays = birth_death_tree(n, rng, height=height, birth=birth, death=death, clock_sd=clock_sd, prefix=prefix)
    elif tree_kind == "coalescent":
        arrays = coalescent_tree(n, rng, height=height, clock_sd=clock_sd, prefix=prefix)
    else:
        raise ValueError(f"tree_kind must be 'birth_death' or 'coalescent', got {tree_kind!r}")
    codes, _ = evolve(arrays, model, n_sites, rng)
    params: dict[str, object] = {
        "n": n,
        "n_sites": n_sites,
        "height": height,
        "tree_kind": tree_kind,
        "clock_sd": clock_sd,
        **model.params(),
    }
    if tree_kind == "birth_death":
        params.update(birth=birth, death=death)
    return SimulatedFamily(
        names=list(arrays.names), codes=codes, tree=arrays.to_ete(), tree_arrays=arrays, model=model, params=params
    )
