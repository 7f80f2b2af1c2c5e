"""Neighbour joining in torch, batched over families, as a tree decoder.

:func:`decode_nj` turns distance matrices ``D [B, n, n]`` (every family of
the batch has the same ``n``) into unrooted binary trees in the pruning
schedule of :mod:`seqae.phylo.schedule`: NJ's merge ``s`` creates internal
node ``n + s`` from the two nodes it joins, so the merge order *is* a
post-order, and the three nodes left at the end are the root's children.
The topology is chosen by the usual ``argmin Q`` (piecewise constant in
``D``); the branch lengths are NJ's formulas, differentiable in ``D``. A
likelihood of the decoded tree therefore has a gradient with respect to the
distances through the branch lengths, and the topology moves when the
distances cross an NJ decision boundary: the hard (straight-through) decoder
of Dodonaphy (Macaulay & Fourment 2023, arXiv:2309.11732).

Ties in ``Q`` go to the first pair in row order (``torch.argmin`` over the
flattened upper triangle); callers that want independence from the input
order sort the taxa by name first (:func:`seqae.phylo.hypertree.fit_latent_trees`
does).

One Python step per merge (``n - 3``), each vectorised over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["DecodedTrees", "decode_nj"]

#: Shortest branch a decoded tree gets (IQ-TREE's minimum).
MIN_BRANCH = 1e-6


@dataclass
class DecodedTrees:
    """NJ trees of a batch, in schedule order.

    Attributes:
        children: ``[B, n-3, 2]`` long, children of internal nodes ``n .. 2n-4``.
        root_children: ``[B, 3]`` long.
        lengths: ``[B, 2n-3]`` branch length above each node (same units as
            ``D``), clamped to at least :data:`MIN_BRANCH`; differentiable in ``D``.
    """

    children: torch.Tensor
    root_children: torch.Tensor
    lengths: torch.Tensor


def decode_nj(dist: torch.Tensor) -> DecodedTrees:
    """Neighbour joining of ``dist [B, n, n]`` (symmetric, zero diagonal, ``n >= 3``).

    Returns:
        :class:`DecodedTrees`; ``lengths`` carries gradient to ``dist``.
    """
    if dist.dim() != 3 or dist.shape[1] != dist.shape[2] or dist.shape[1] < 3:
        raise ValueError(f"distances must be [B, n, n] with n >= 3, got {tuple(dist.shape)}")
    b, n, _ = dist.shape
    dev = dist.device
    rows = torch.arange(b, device=dev)
    slot_node = torch.arange(n, device=dev).expand(b, n).clone()  # node id held by each slot
    active = torch.ones(b, n, dtype=torch.bool, device=dev)
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=dev), diagonal=1)
    inf = torch.tensor(float("inf"), dtype=dist.dtype, device=dev)
    d = dist
    ids: list[torch.Tensor] = []
    values: list[torch.Tensor] = []
    children = torch.empty(b, max(n - 3, 0), 2, dtype=torch.long, device=dev)
    for s in range(n - 3):
        k = n - s  # active nodes
        act = active.to(d.dtype)
        r = (d * act[:, None, :]).sum(-1)  # [B, n]
        q = (k - 2) * d - r[:, :, None] - r[:, None, :]
        ok = upper & active[:, :, None] & active[:, None, :]
        flat = torch.where(ok, q.detach(), inf).view(b, -1).argmin(-1)
        i, j = flat // n, flat % n  # i < j
        dij = d[rows, i, j]
        li = 0.5 * dij + (r[rows, i] - r[rows, j]) / (2 * (k - 2))
        lj = dij - li
        ids += [slot_node[rows, i], slot_node[rows, j]]
        values += [li, lj]
        children[:, s, 0] = slot_node[rows, i]
        children[:, s, 1] = slot_node[rows, j]
        # The new node takes slot i; slot j retires.
        new_row = 0.5 * (d[rows, i] + d[rows, j] - dij[:, None])  # [B, n]
        new_row = new_row.scatter(1, i[:, None], 0.0)
        sel_i = torch.nn.functional.one_hot(i, n).to(torch.bool)
        d = torch.where(sel_i[:, :, None], new_row[:, None, :], d)
        d = torch.where(sel_i[:, None, :], new_row[:, :, None], d)
        slot_node = slot_node.clone()
        slot_node[rows, i] = n + s
        active = active.clone()
        active[rows, j] = False
    # Three nodes left: the root's children.
    left = torch.nonzero(active)[:, 1].view(b, 3)
    a, c, e = left[:, 0], left[:, 1], left[:, 2]
    dac, dae, dce = d[rows, a, c], d[rows, a, e], d[rows, c, e]
    root_children = torch.stack([slot_node[rows, a], slot_node[rows, c], slot_node[rows, e]], dim=1)
    ids += [root_children[:, 0], root_children[:, 1], root_children[:, 2]]
    values += [0.5 * (dac + dae - dce), 0.5 * (dac + dce - dae), 0.5 * (dae + dce - dac)]
    index = torch.stack(ids, dim=1)  # [B, 2n-3]
    vals = torch.stack(values, dim=1).clamp_min(MIN_BRANCH)
    lengths = torch.zeros(b, 2 * n - 3, dtype=dist.dtype, device=dev).scatter(1, index, vals)
    return DecodedTrees(children=children, root_children=root_children, lengths=lengths)
