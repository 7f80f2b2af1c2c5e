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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from seqae.phylo.io import _few

__all__ = ["TreeBatch", "UnrootedTree", "tree_batch", "unrooted_tree"]


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
