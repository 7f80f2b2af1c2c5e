"""Neighbor joining (Saitou & Nei 1987), exact, vectorised with numpy.

The classic algorithm joins, at each step, the pair of clusters ``(i, j)``
that minimises

    Q(i, j) = (n - 2) d(i, j) - S(i) - S(j),     S(i) = sum_k d(i, k),

over the ``n`` clusters left. Scanning all of Q is O(n^2) per join and O(n^3)
in total. This implementation returns the same tree as that scan but looks at
far fewer entries, with an exact pruning rule (no heuristic):

* Work with ``q(i, j) = Q(i, j) / (n - 2) = d(i, j) - T(i) - T(j)`` where
  ``T = S / (n - 2)``; it has the same minimiser.
* For each row ``i`` keep ``m(i) = min_j [d(i, j) - T(j)]`` from the last join
  at which the row was scanned, and ``G``, the running total over joins of
  the largest rise of any ``T(j)``. Distances between clusters that are still
  there never change, so ``m(i) - (G_now - G_then) - T(i)`` is a lower bound
  on every ``q(i, j)`` whose partner ``j`` existed when row ``i`` was scanned;
  pairs with a newer cluster are covered by that cluster's own, newer row.
* An upper bound on the minimum is the smallest current ``q`` over the pairs
  ``(i, partner(i))`` found at each row's last scan (O(n) per join). Each
  join scans, as one ``[k, n]`` block, only the rows whose lower bound is
  below it; the minimum is among them. With random or simulated distances
  ``k`` is typically 10 to 40 rows instead of ``n``, and a whole run reads
  about 1/6 (n = 500) to 1/13 (n = 2000) of the entries that scanning the
  upper triangle of Q at every join reads.

The distance matrix is updated in place in one ``[N, N]`` buffer with an
infinite diagonal: the new cluster takes the first row of the pair and the
last active row moves into the second, so the active block stays the
``[n, n]`` corner, as in scikit-bio's implementation. One Python iteration per
join does a fixed number of O(n) numpy operations and one O(k n) block; there
is no Python loop over taxa. Memory: one copy of the matrix.

Exact ties in Q (absent with real-valued distances in general position, but
common with p-distances of short or identical sequences) are broken
deterministically, by row then column in the current row order.
:func:`neighbor_joining` first puts the taxa in the order of their names, so
ties are broken by name and the same matrix gives the same tree for every
order of the taxa (a reordered FASTA gives the same tree); :func:`nj_linkage`
alone breaks them by the index order it is given. scikit-bio and Biopython
may break ties differently and then return another, equally good tree.

Branch lengths can come out negative when the distances are not additive;
they are clipped to 0 by default (``clip_negative=True``), as scikit-bio does
(Biopython keeps them). Clipping never changes the topology.

Torch note: the same scheme maps onto torch tensors (gather rows, subtract,
argmin), which the tree autoencoder can use later on a GPU; the numpy version
is the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["NJLinkage", "linkage_to_tree", "neighbor_joining", "nj_linkage"]


@dataclass(frozen=True)
class NJLinkage:
    """The joins made by neighbor joining, in order.

    Attributes:
        children: ``[N - 1, 2]`` int. Row ``k < N - 2`` joins the two clusters
            it names into cluster ``N + k`` (clusters ``0..N-1`` are the taxa);
            row ``N - 3`` joins the last two of the three final clusters into
            the root, cluster ``2N - 3``. Row ``N - 2`` is
            ``(root_child, 2N - 3)``: the third final cluster hangs directly
            from the root, which is thus a trifurcation.
        lengths: ``[N - 1, 2]`` float, the branch lengths (units of the
            distances) from each child to its parent; ``lengths[N - 2]`` is
            ``(root_child's branch, 0)``. Not clipped.
        root_child: the third child of the root.
    """

    children: np.ndarray
    lengths: np.ndarray
    root_child: int


def _check_matrix(dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a distance matrix; return a C-contiguous float64 copy ``[n, n]`` and its row sums ``[n]``."""
    d = np.array(dist, dtype=np.float64, order="C", copy=True)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"distance matrix must be square, got shape {d.shape}")
    n = d.shape[0]
    if n < 3:
        raise ValueError(f"neighbor joining needs at least 3 taxa, got {n}")
    sums = d.sum(axis=1)
    if not np.isfinite(sums).all():  # any NaN or infinity shows in its row sum
        bad = np.argwhere(~np.isfinite(d))[0]
        raise ValueError(f"distance matrix has a non-finite value at {tuple(int(x) for x in bad)}")
    diagonal = np.diagonal(d)
    if diagonal.any():
        i = int(np.flatnonzero(diagonal)[0])
        raise ValueError(f"distance matrix diagonal must be 0; d[{i}, {i}] = {d[i, i]!r}")
    asym = d - d.T
    np.abs(asym, out=asym)
    worst = asym.argmax()
    if asym.flat[worst] > 0:
        scale = float(np.abs(d).max())
        if asym.flat[worst] > 1e-9 * scale:
            i, j = np.unravel_index(worst, asym.shape)
            raise ValueError(
                f"distance matrix is not symmetric: d[{i}, {j}] = {d[i, j]!r} but d[{j}, {i}] = {d[j, i]!r}"
            )
        # Exact symmetry keeps the row and column views of each pair identical.
        d += d.T
        d *= 0.5
        sums = d.sum(axis=1)
    return d, sums


def nj_linkage(dist: np.ndarray) -> NJLinkage:
    """Neighbor joining on a distance matrix, as a linkage (no tree objects).

    Args:
        dist: ``[n, n]`` symmetric, zero diagonal, finite distances, n >= 3
            (negative off-diagonal values are allowed but make little sense).

    Returns:
        The joins, see :class:`NJLinkage`. Cost: O(n^2) memory, at most
        O(n^2) time per join (usually much less, see the module docstring).
    """
    d, sums = _check_matrix(dist)  # sums: S(i) of the active rows
    big_n = d.shape[0]
    # Per join: the two clusters and their branch lengths (Python lists:
    # scalar stores into numpy arrays cost more than the appends).
    children: list[tuple[int, int]] = []
    lengths: list[tuple[float, float]] = []
    inf = np.inf
    # Rounding slack: the bounds only need to be conservative.
    slack = 1e-9 * max(float(np.abs(d).max()), 1e-300)
    # An infinite diagonal keeps a row's own entry out of every minimum.
    np.fill_diagonal(d, inf)
    cluster = np.arange(big_n)  # cluster id held by each active row
    # G (g_total): running sum of the largest rise of any T per join. Rows are
    # scanned against shifted[j] = T(j) - G, so a scan's row minimum is
    # m(i) + G_then directly, and cached[i] - G_now - T(i) bounds
    # min_j q(i, j) from below; q(i, j) = d(i, j) - shifted(i) - shifted(j) - 2G.
    shifted = sums / (big_n - 2)
    t_next = np.zeros(big_n)  # finite beyond the active rows, see `pair`
    rise = np.empty(big_n)
    cached = np.full(big_n, -inf)  # -inf: never scanned
    partner = np.zeros(big_n, dtype=np.int64)  # column of that minimum (a row index then)
    lower = np.empty(big_n)
    arange = np.arange(big_n)
    flat = d.reshape(-1)
    row_start = arange * big_n
    g_total = 0.0
    new_row = -1  # the row of the newest cluster, not yet scanned

    n = big_n
    for step in range(big_n - 3):
        dn = d[:n, :n]
        sn = shifted[:n]
        lo = lower[:n]
        np.subtract(cached[:n], sn, out=lo)  # lower bounds + 2G
        # An upper bound on the best q: the smallest current q over the pairs
        # (row, partner) found at each row's last scan. Any pair of active
        # rows bounds the minimum, so partners that have since been joined or
        # moved (or a row paired with itself: infinite) only weaken it.
        pair = partner[:n]
        q_pair = flat.take(row_start[:n] + pair)  # d(row, pair): inf for a gone pair
        q_pair -= sn
        q_pair -= shifted[pair]
        bound = q_pair.item(q_pair.argmin())
        if new_row >= 0:
            lo[new_row] = -inf  # never scanned: always scan it
        # Scan every row whose lower bound is below it, as one block: the
        # minimum is there (pairs of unscanned rows are covered by their own
        # or newer rows' bounds).
        rows = (lo < bound + slack).nonzero()[0]
        block = dn[rows]  # [k, n]
        block -= sn
        cols = block.argmin(axis=1)
        mins = block[arange[: rows.size], cols]
        cached[rows] = mins
        partner[rows] = cols
        mins -= sn[rows]
        p = mins.argmin()
        i, j = rows.item(p), cols.item(p)
        if i > j:
            i, j = j, i
        d_ij = dn.item(i, j)
        t_i, t_j = sn.item(i), sn.item(j)  # T - G: G cancels in t_i - t_j
        s_i, s_j = sums.item(i), sums.item(j)
        ci, cj = cluster.item(i), cluster.item(j)
        children.append((ci, cj))
        # Branch lengths: d/2 +- (S_i - S_j) / (2 (n - 2)).
        lengths.append((0.5 * (d_ij + t_i - t_j), 0.5 * (d_ij - t_i + t_j)))
        # New cluster u in row i: d(u, k) = (d(i, k) + d(j, k) - d(i, j)) / 2
        # (infinite at i and j, as the diagonal should be), and
        # S(k) <- S(k) - d(i, k) - d(j, k) + d(u, k) = S(k) - d(u, k) - d(i, j).
        row_u = dn[i]
        row_u += dn[j]
        row_u -= d_ij
        row_u *= 0.5
        sums_n = sums[:n]
        sums_n -= row_u  # -inf at i and j: replaced below
        sums_n -= d_ij
        dn[:, i] = row_u
        # T after the join; its largest rise (-inf at i and j, which are
        # rescanned or gone) bounds how far a cached row minimum can fall.
        tn_next = t_next[:n]
        np.divide(sums_n, n - 3, out=tn_next)
        rs = rise[:n]
        np.subtract(tn_next, sn, out=rs)  # rise + G
        g_total = max(rs.item(rs.argmax()), g_total)
        tn_next -= g_total
        # Move the last active row into row j (its diagonal entry comes along);
        # the column left behind becomes infinite, so a partner that points
        # there gives no bound.
        last = n - 1
        if j != last:
            dn[j, :] = dn[last, :]
            dn[:, j] = dn[:, last]
            sums[j] = sums[last]
            cluster[j] = cluster[last]
            cached[j] = cached[last]
            partner[j] = partner[last]
            tn_next[j] = tn_next[last]
        dn[:, last] = inf
        n -= 1
        # S(u) = sum over the other clusters k of d(u, k).
        s_u = 0.5 * (s_i + s_j - (n + 1) * d_ij)
        sums[i] = s_u
        cluster[i] = big_n + step
        shifted, t_next = t_next, shifted
        shifted[i] = s_u / (n - 2) - g_total
        cached[i] = inf  # kept out of the next argmin; scanned anyway
        new_row = i

    # Three clusters left (rows 0, 1, 2): the root joins them.
    d01, d02, d12 = float(d[0, 1]), float(d[0, 2]), float(d[1, 2])
    len0 = 0.5 * (d01 + d02 - d12)
    children.append((cluster[1], cluster[2]))
    lengths.append((d01 - len0, d02 - len0))
    children.append((cluster[0], 2 * big_n - 3))
    lengths.append((len0, 0.0))
    return NJLinkage(
        children=np.array(children, dtype=np.int64),
        lengths=np.array(lengths, dtype=np.float64),
        root_child=int(cluster[0]),
    )


def linkage_to_tree(link: NJLinkage, names: Sequence[str], clip_negative: bool = True):
    """Build an unrooted ete3 Tree (trifurcating root) from an NJ linkage.

    Args:
        link: from :func:`nj_linkage`, for ``len(names)`` taxa.
        names: taxon names, in the distance matrix's order.
        clip_negative: set negative branch lengths to 0.

    Returns:
        ``ete3.Tree``; leaves carry ``names``, ``dist`` holds branch lengths,
        the root's ``dist`` is 0.
    """
    from seqae.phylo.ete import Tree

    big_n = len(names)
    if link.children.shape != (big_n - 1, 2):
        raise ValueError(f"linkage has {link.children.shape[0]} joins, expected {big_n - 1} for {big_n} names")
    lengths = np.maximum(link.lengths, 0.0) if clip_negative else link.lengths
    nodes: list = [Tree(name=str(name), dist=0.0) for name in names]
    nodes.extend(Tree(dist=0.0) for _ in range(big_n - 2))
    lens = lengths.tolist()
    kids = link.children.tolist()
    for k in range(big_n - 2):
        parent = nodes[big_n + k]
        (a, b), (la, lb) = kids[k], lens[k]
        nodes[a].dist = la
        nodes[b].dist = lb
        parent.add_child(nodes[a])
        parent.add_child(nodes[b])
    root = nodes[2 * big_n - 3]
    # The last join put the two final clusters under `root`; hang the third.
    third = nodes[link.root_child]
    third.dist = lens[big_n - 2][0]
    root.add_child(third)
    root.dist = 0.0
    return root


def neighbor_joining(dist: np.ndarray, names: Sequence[str] | None = None, clip_negative: bool = True):
    """Neighbor-joining tree from a distance matrix.

    Args:
        dist: ``[n, n]`` symmetric distances with a zero diagonal, n >= 3
            (e.g. substitutions per site from :mod:`seqae.phylo.distance`).
        names: ``n`` distinct leaf names; default ``"t0" .. "t{n-1}"``.
        clip_negative: negative branch lengths (non-additive distances) are
            set to 0; the topology is unchanged either way.

    Returns:
        An unrooted ``ete3.Tree``: a root with three children, binary below,
        branch lengths in ``dist`` (units of ``dist``). The same for every
        order of the taxa: exact ties in the join criterion are broken by name.
    """
    d = np.asarray(dist)
    if names is None:
        names = [f"t{i}" for i in range(d.shape[0])]
    names = [str(x) for x in names]
    if d.ndim == 2 and len(names) != d.shape[0]:
        raise ValueError(f"{len(names)} names for a {d.shape[0]} x {d.shape[0]} distance matrix")
    if len(set(names)) != len(names):
        seen: set[str] = set()
        dup = next(x for x in names if x in seen or seen.add(x))
        raise ValueError(f"duplicate taxon name {dup!r}")
    # Name order: the computation (and so each tie's outcome) is then the same
    # whatever order the taxa came in, down to the rounding of every sum.
    # Checked first, so that an error names the caller's indices.
    d, _ = _check_matrix(d)
    order = sorted(range(len(names)), key=names.__getitem__)
    d = d[np.ix_(order, order)]
    return linkage_to_tree(nj_linkage(d), [names[i] for i in order], clip_negative=clip_negative)
