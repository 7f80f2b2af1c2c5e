"""Unrooted binary trees as post-order schedules that a batch of families shares.

Felsenstein's pruning visits internal nodes children first. For a batch of
families the visit order is the same array program for every family when the
trees have the same number of leaves ``N``, whatever their topologies:

* nodes ``0 .. N-1`` are the leaves, in the alignment's row order;
* nodes ``N .. 2N-3`` are the internal nodes in post-order; the last,
  ``2N-3``, is the root of the pruning (a trifurcation of the unrooted tree);
* every node but the root has one branch above it, so branch lengths are a
  ``[B, 2N-3]`` array indexed by node;
* step ``s`` computes node ``N + s`` from its two children
  ``children[:, s]`` (``s < N-3``); the root combines ``root_children``.

Only the child indices differ between families (gathered per family), so the
Python loop runs over the ``N-2`` internal nodes once for the whole batch,
never over sites or families. Families with fewer taxa are padded to ``N``
with all-missing leaves: a leaf whose partial likelihood is all ones
contributes a factor of exactly 1 whatever its branch, so padding leaves the
likelihood unchanged. Each pad leaf hangs from a new internal node inserted
with a zero-length branch above a child of the root (``edge_mask`` marks the
real branches; the others are forced to length 0). Padding was chosen over
bucketing by size because it keeps one program for any mix of family sizes;
a caller who wants less padding batches families of similar size.

Trees come in as ``ete3.Tree`` (rooted or not, any multifurcation): a
bifurcating root is removed (its two branches become one, lengths added, as
the likelihood of a reversible model cannot place a root), a node with one
child is removed the same way, and a multifurcation is resolved into a
caterpillar of zero-length branches, which leaves the likelihood unchanged.
Simulated trees (:class:`~seqae.phylo.simulate.TreeArrays`, rooted and
binary) can skip ete3: :func:`unrooted_from_arrays` gives the same schedules
from the arrays directly, vectorised over the trees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from seqae.phylo.io import _few
from seqae.phylo.simulate import TreeArrays

__all__ = ["TreeBatch", "UnrootedTree", "tree_batch", "unrooted_from_arrays", "unrooted_tree"]


@dataclass(frozen=True)
class UnrootedTree:
    """One unrooted binary tree in schedule order (see the module docstring).

    Attributes:
        n_taxa: real leaves ``n`` (before padding).
        children: ``[n-3, 2]`` children of internal nodes ``n .. 2n-4``.
        root_children: ``[3]`` children of the root ``2n-3``.
        lengths: ``[2n-3]`` branch length above each node (0 where the input
            had none), expected substitutions per site for ML trees.
        names: ``n`` leaf names (the alignment's rows, in order).
        internal_names: ``n-2`` names of internal nodes ``n .. 2n-3`` as the
            input tree had them ("" for unnamed nodes and for nodes made to
            resolve a multifurcation).
    """

    n_taxa: int
    children: np.ndarray
    root_children: np.ndarray
    lengths: np.ndarray
    names: list[str]
    internal_names: list[str]

    def to_ete(self, lengths: np.ndarray | None = None):
        """The tree as an ``ete3.Tree`` with a trifurcating root (internal names kept).

        Args:
            lengths: ``[2n-3]`` branch lengths to write (default ``self.lengths``).
        """
        from seqae.phylo.ete import Tree

        n = self.n_taxa
        ell = self.lengths if lengths is None else np.asarray(lengths, dtype=np.float64)
        nodes: dict[int, Tree] = {}
        root = Tree(name=self.internal_names[-1], dist=0.0)
        nodes[2 * n - 3] = root
        kids = {2 * n - 3: self.root_children.tolist()}
        for s, pair in enumerate(self.children.tolist()):
            kids[n + s] = pair
        stack = [2 * n - 3]
        while stack:  # pre-order from the root
            v = stack.pop()
            for u in kids[v]:
                name = self.names[u] if u < n else self.internal_names[u - n]
                nodes[u] = nodes[v].add_child(name=name, dist=float(ell[u]))
                if u >= n:
                    stack.append(u)
        return root


def unrooted_tree(tree, names: Sequence[str]) -> UnrootedTree:
    """An ``ete3.Tree`` as an :class:`UnrootedTree` whose leaves follow ``names``.

    Args:
        tree: rooted or unrooted, any multifurcations; leaves named exactly
            ``names``; branch lengths in ``dist``.
        names: the alignment's sequence names (row order), at least 3.

    Raises:
        ValueError: fewer than 3 names, duplicate names, or leaves that do not
            match ``names`` (a few of each side are named).
    """
    names = list(names)
    if len(names) < 3:
        raise ValueError(f"an unrooted tree needs at least 3 leaves, got {len(names)}")
    if len(set(names)) != len(names):
        seen: set[str] = set()
        dups = {x for x in names if x in seen or seen.add(x)}
        raise ValueError(f"duplicate sequence names: {_few(dups)}")
    ete_nodes = list(tree.traverse("preorder"))
    index = {id(node): k for k, node in enumerate(ete_nodes)}
    leaf_names = [node.name for node in ete_nodes if node.is_leaf()]
    if len(set(leaf_names)) != len(leaf_names) or set(leaf_names) != set(names):
        only_tree, only_aln = set(leaf_names) - set(names), set(names) - set(leaf_names)
        parts = [f"{len(only_tree)} only in the tree ({_few(only_tree)})"] if only_tree else []
        parts += [f"{len(only_aln)} only in the alignment ({_few(only_aln)})"] if only_aln else []
        parts = parts or ["duplicate leaf names"]
        raise ValueError("tree leaves do not match the alignment: " + "; ".join(parts))

    # Undirected adjacency: node -> {neighbour: branch length}.
    adj: list[dict[int, float]] = [{} for _ in ete_nodes]
    label = [node.name or "" for node in ete_nodes]
    is_leaf = [node.is_leaf() for node in ete_nodes]
    for k, node in enumerate(ete_nodes):
        if node.up is not None:
            p = index[id(node.up)]
            adj[k][p] = adj[p][k] = float(node.dist or 0.0)
    # Suppress internal nodes of degree 2 (a bifurcating root, one-child
    # nodes) and 1 (a root with a single child): lengths add.
    alive = set(range(len(ete_nodes)))
    pending = [k for k in alive if not is_leaf[k] and len(adj[k]) <= 2]
    while pending:
        k = pending.pop()
        if k not in alive or is_leaf[k] or len(adj[k]) > 2:
            continue
        nbrs = list(adj[k].items())
        for u, _ in nbrs:
            del adj[u][k]
        if len(nbrs) == 2:
            (a, ta), (b, tb) = nbrs
            adj[a][b] = adj[b][a] = ta + tb
        alive.discard(k)
        pending.extend(u for u, _ in nbrs if not is_leaf[u] and len(adj[u]) <= 2)
    # Resolve multifurcations: a node keeps two neighbours and passes the
    # rest to a new node below a zero-length branch, until degree 3.
    work = sorted(k for k in alive if len(adj[k]) > 3)
    while work:
        k = work.pop()
        nbrs = list(adj[k].items())
        new = len(adj)
        adj.append({})
        label.append("")
        is_leaf.append(False)
        alive.add(new)
        for u, t in nbrs[2:]:
            del adj[u][k]
            del adj[k][u]
            adj[new][u] = adj[u][new] = t
        adj[k][new] = adj[new][k] = 0.0
        if len(adj[new]) > 3:
            work.append(new)

    # Root the pruning at the input's root when it is a trifurcation, else at
    # the first trifurcation in the input's pre-order.
    root = next(k for k in sorted(alive) if not is_leaf[k])
    # Orient from the root; internal nodes in post-order (children first).
    parent = {root: -1}
    order: list[int] = []
    stack = [(root, False)]
    while stack:
        v, done = stack.pop()
        if done:
            order.append(v)
            continue
        stack.append((v, True))
        for u in sorted(adj[v]):
            if u != parent[v]:
                parent[u] = v
                if not is_leaf[u]:
                    stack.append((u, False))
    n = len(names)
    node_id = {k: names.index(label[k]) for k in alive if is_leaf[k]}
    node_id.update({k: n + s for s, k in enumerate(order)})
    lengths = np.zeros(2 * n - 3)
    for k, p in parent.items():
        if p >= 0:
            lengths[node_id[k]] = adj[k][p]
    kids = {node_id[v]: sorted(node_id[u] for u in adj[v] if u != parent[v]) for v in order}
    children = np.array([kids[n + s] for s in range(n - 3)], dtype=np.int64).reshape(n - 3, 2)
    return UnrootedTree(
        n_taxa=n,
        children=children,
        root_children=np.array(kids[2 * n - 3], dtype=np.int64),
        lengths=lengths,
        names=names,
        internal_names=[label[k] for k in order],
    )


def unrooted_from_arrays(trees: Sequence[TreeArrays]) -> list[UnrootedTree]:
    """Rooted binary trees given as arrays, as :class:`UnrootedTree` schedules, without ete3.

    Each result is identical, bit for bit (node numbering, child order, branch
    lengths), to ``unrooted_tree(t.to_ete(), sorted(t.names))``:

    * leaves ``0 .. n-1`` are the leaf names in sorted (string) order;
    * the root's two branches become one, lengths added;
    * internal nodes ``n .. 2n-3`` are the rooted tree's internal nodes but
      its root in reverse pre-order (children in array order, the lower index
      first, as :meth:`~seqae.phylo.simulate.TreeArrays.to_ete` adds them):
      the schedule's root ``2n-3`` is the root's first child if that is
      internal, else its second;
    * children pairs and root children are sorted by node id; internal names
      are all ``""``.

    Trees of the same size are converted together: one pass over the ``2n-1``
    node positions up the trees and one down, each step on ``[B]`` arrays.

    Args:
        trees: ``TreeArrays`` with ``n >= 3`` uniquely named leaves each (sizes
            may differ): ``parent [2n-1]`` (node 0 the root, parents before
            children, every internal node with two children), ``length
            [2n-1]``, ``leaf_nodes [n]``, ``names`` (``n``).

    Returns:
        One :class:`UnrootedTree` per tree, in input order: ``children
        [n-3, 2]`` and ``root_children [3]`` int64, ``lengths [2n-3]`` float64.

    Raises:
        ValueError: a tree that is not rooted and binary with parents first,
            fewer than 3 leaves, or leaves that are not its childless nodes
            with unique names.
    """
    out: list[UnrootedTree | None] = [None] * len(trees)
    groups: dict[int, list[int]] = {}
    for k, t in enumerate(trees):
        groups.setdefault(int(np.asarray(t.parent).size), []).append(k)
    for members in groups.values():
        for k, tree in zip(members, _unrooted_same_size([trees[k] for k in members])):
            out[k] = tree
    return out  # type: ignore[return-value]


def _unrooted_same_size(trees: Sequence[TreeArrays]) -> list[UnrootedTree]:
    """:func:`unrooted_from_arrays` for ``B`` trees of ``m = 2n-1`` nodes each."""
    m = int(np.asarray(trees[0].parent).size)
    n = (m + 1) // 2
    if m % 2 == 0 or n < 3:
        raise ValueError(f"need rooted binary trees with at least 3 leaves (2n-1 nodes), got {m} nodes")
    b = len(trees)
    rows = np.arange(b)
    col = rows[:, None]
    parent = np.stack([np.asarray(t.parent, dtype=np.int64) for t in trees])  # [B, m]
    if np.any(parent[:, 0] != -1) or np.any(parent[:, 1:] < 0) or np.any(parent[:, 1:] >= np.arange(1, m)):
        raise ValueError("tree arrays must have the root at node 0 and every parent before its children")
    # Each internal node's two children, the lower index first (ete3's child order in TreeArrays.to_ete).
    by_parent = np.argsort(parent[:, 1:], axis=1, kind="stable")  # [B, m-1]
    grouped = np.take_along_axis(parent[:, 1:], by_parent, axis=1)
    internal = grouped[:, 0::2]  # [B, n-1] internal nodes, increasing
    if np.any(grouped[:, 1::2] != internal) or np.any(np.diff(internal, axis=1) <= 0):
        raise ValueError("tree arrays must be binary: every internal node with exactly two children")
    first, second = by_parent[:, 0::2] + 1, by_parent[:, 1::2] + 1  # [B, n-1] children of `internal`
    is_internal = np.zeros((b, m), dtype=bool)
    is_internal[col, internal] = True

    # Leaves: the rank of their name in sorted order.
    new_id = np.zeros((b, m), dtype=np.int64)
    sorted_names: list[list[str]] = []
    for k, t in enumerate(trees):
        names = list(t.names)
        leaves = np.asarray(t.leaf_nodes, dtype=np.int64)
        if len(names) != n or leaves.shape != (n,) or len(set(names)) != n:
            raise ValueError(f"a tree of {m} nodes needs {n} leaf nodes with unique names")
        if np.any(is_internal[k, leaves]) or np.unique(leaves).size != n:
            raise ValueError("leaf_nodes must be the tree's childless nodes, each once")
        order = sorted(range(n), key=names.__getitem__)
        new_id[k, leaves[order]] = np.arange(n)
        sorted_names.append([names[i] for i in order])

    # Internal nodes below each node (itself included), children before parents.
    size = is_internal.astype(np.int64)
    for v in range(m - 1, 0, -1):
        size[rows, parent[:, v]] += size[:, v]
    # unrooted_tree's post-order visits the later child first: a node's second child starts where
    # it starts, its first child after the second's subtree; the root (node 0) would come last.
    offset = np.zeros((b, m), dtype=np.int64)
    offset[col, first] = size[col, second]
    start = np.zeros((b, m), dtype=np.int64)
    for v in range(1, m):
        start[:, v] = start[rows, parent[:, v]] + offset[:, v]
    post = start + size - 1  # internal nodes: 0 .. n-3 without the root, whose post is n-2
    new_id[col, internal] = n + post[col, internal]

    # Unroot: the root's children a (first) and c; the schedule's root r is a if internal, else c,
    # and the other one, o, hangs from r by the two root branches together.
    a, c = first[:, 0], second[:, 0]
    a_internal = is_internal[rows, a]
    r = np.where(a_internal, a, c)
    o = np.where(a_internal, c, a)
    raw = np.stack([np.asarray(t.length, dtype=np.float64) for t in trees])
    ell = np.where(raw == 0, 0.0, raw)  # as unrooted_tree's `dist or 0.0`: -0.0 becomes 0.0
    ell[rows, o] = ell[rows, a] + ell[rows, c]
    by_id = np.zeros((b, 2 * n - 2))  # column 2n-3 (the schedule's root) is dropped
    by_id[col, new_id[:, 1:]] = ell[:, 1:]
    lengths = by_id[:, : 2 * n - 3]

    pairs = np.zeros((b, n - 1, 2), dtype=np.int64)  # rows n-3 (r) and n-2 (the root) are dropped
    one, two = new_id[col, first], new_id[col, second]
    slot = post[col, internal]
    pairs[col, slot, 0] = np.minimum(one, two)
    pairs[col, slot, 1] = np.maximum(one, two)
    children = pairs[:, : n - 3]
    # r's children: its own two and o.
    kids = np.zeros((b, m, 2), dtype=np.int64)
    kids[col, internal, 0], kids[col, internal, 1] = first, second
    root_children = np.sort(
        np.stack([new_id[rows, kids[rows, r, 0]], new_id[rows, kids[rows, r, 1]], new_id[rows, o]], axis=1), axis=1
    )
    return [
        UnrootedTree(
            n_taxa=n,
            children=children[k],
            root_children=root_children[k],
            lengths=lengths[k],
            names=sorted_names[k],
            internal_names=[""] * (n - 2),
        )
        for k in range(b)
    ]


@dataclass(frozen=True)
class TreeBatch:
    """Trees of a batch padded to ``N`` leaves, as index arrays (numpy; move with :meth:`tensors`).

    Attributes:
        trees: the :class:`UnrootedTree` of each family (unpadded).
        n_taxa: ``N``, leaves per padded tree.
        children: ``[B, N-3, 2]`` children of internal nodes ``N .. 2N-4``.
        root_children: ``[B, 3]`` children of the root ``2N-3``.
        lengths: ``[B, 2N-3]`` branch lengths of the input trees (0 on pads).
        edge_mask: ``[B, 2N-3]`` True on real branches.
        node_map: ``[B, 2N-2]`` each family's node id (unpadded numbering) at
            each padded node, -1 for pad nodes.
    """

    trees: list[UnrootedTree]
    n_taxa: int
    children: np.ndarray
    root_children: np.ndarray
    lengths: np.ndarray
    edge_mask: np.ndarray
    node_map: np.ndarray

    def __len__(self) -> int:
        return len(self.trees)

    def real_lengths(self, lengths: np.ndarray) -> list[np.ndarray]:
        """Per family, its ``[2n-3]`` branch lengths out of padded ``[B, 2N-3]`` ones."""
        out = []
        for b, tree in enumerate(self.trees):
            ell = np.zeros(2 * tree.n_taxa - 3)
            real = self.edge_mask[b]
            ell[self.node_map[b, :-1][real]] = np.asarray(lengths)[b][real]
            out.append(ell)
        return out


def _pad(tree: UnrootedTree, big_n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One tree padded to ``big_n`` leaves: children, root children, lengths, mask, node map."""
    n = tree.n_taxa
    k = big_n - n
    # Renumber: leaves stay, pad leaves n .. N-1, old internal node v -> v + k
    # (the root -> 2N-3); the chain of new internal nodes (each joining the previous one and a pad
    # leaf, starting from the root's first child) comes just before the root.
    shift = np.concatenate([np.arange(n), np.arange(big_n, big_n + n - 3), [2 * big_n - 3]])
    node_map = np.full(2 * big_n - 2, -1, dtype=np.int64)
    node_map[shift] = np.arange(2 * n - 2)
    children = [shift[pair].tolist() for pair in tree.children]
    lengths = np.zeros(2 * big_n - 3)
    mask = np.zeros(2 * big_n - 3, dtype=bool)
    lengths[shift[:-1]] = tree.lengths
    mask[shift[:-1]] = True
    root_children = shift[tree.root_children].tolist()
    below = root_children[0]
    for j in range(k):
        chain = big_n + (n - 3) + j
        children.append([below, n + j])
        below = chain
    root_children[0] = below
    return (
        np.array(children, dtype=np.int64).reshape(big_n - 3, 2),
        np.array(root_children, dtype=np.int64),
        lengths,
        mask,
        node_map,
    )


def tree_batch(trees: Sequence[UnrootedTree], n_taxa: int | None = None) -> TreeBatch:
    """Stack trees into one :class:`TreeBatch`, padded to ``n_taxa`` leaves (default the largest)."""
    if not trees:
        raise ValueError("no trees to batch")
    big_n = max(t.n_taxa for t in trees) if n_taxa is None else int(n_taxa)
    if big_n < max(t.n_taxa for t in trees):
        raise ValueError(f"n_taxa={big_n} is below the largest tree's {max(t.n_taxa for t in trees)} leaves")
    parts = [_pad(t, big_n) for t in trees]
    return TreeBatch(
        trees=list(trees),
        n_taxa=big_n,
        children=np.stack([p[0] for p in parts]),
        root_children=np.stack([p[1] for p in parts]),
        lengths=np.stack([p[2] for p in parts]),
        edge_mask=np.stack([p[3] for p in parts]),
        node_map=np.stack([p[4] for p in parts]),
    )
