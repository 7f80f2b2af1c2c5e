"""Felsenstein's pruning in torch: site log-likelihoods of a batch of families, and their gradients.

Shapes: ``B`` families (or trees), ``N`` leaves per padded tree, ``M = 2N-2``
nodes, ``E = 2N-3`` branches (indexed by the node below), ``C`` rate
categories, ``P`` site patterns; trees follow :mod:`seqae.phylo.schedule`,
patterns :mod:`seqae.phylo.patterns`, models :mod:`seqae.phylo.gtr`.

Inside (post-order) pass: the partial likelihood of node ``v`` in state ``x``
is ``D_v[x] = prod_u sum_y P_u[x, y] D_u[y]`` over its children ``u``; at the
root ``L_c = sum_x pi_x D_root[x]`` per category and the site likelihood is
``sum_c w_c L_c``. One Python iteration per internal node serves every family,
category and pattern at once (batched matmuls). After each node the partials
are divided by their largest entry and the log of that factor is carried
(``[B, M, C, P]``), so any number of taxa stays in range in float32 or 64.

Gradients come from the outside (pre-order) pass instead of autograd through
the loop: autograd would have to keep every step's gathered partials and, for
writes into one buffer, clone that buffer per step (quadratic in ``N``). The
outside partial of a branch, ``U_u[x]`` (all of the tree beyond the branch
above ``u``, seen from its parent's end in state ``x``, times ``pi`` at the
root), gives ``d L_c / d P_u[x, y] = U_u[x] D_u[y]``, so one pre-order pass
yields the gradient of every branch's transition matrix; autograd takes it
from there to branch lengths, exchangeabilities, frequencies and alpha (the
matrix exponential and softmax are ordinary torch ops). Linear in ``N``, the
same memory as the forward pass; checked against finite differences by the
tests. The same outside partials give the marginal posterior of every
internal node's state (:func:`marginal_posteriors`), the ancestral sequences.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from seqae.phylo.gtr import GTRGamma
from seqae.phylo.patterns import PatternBatch
from seqae.phylo.schedule import TreeBatch

__all__ = [
    "TreeTensors",
    "branch_derivatives",
    "log_likelihood",
    "marginal_posteriors",
    "model_site_log_likelihoods",
    "site_log_likelihoods",
]


@dataclass(frozen=True)
class TreeTensors:
    """A :class:`~seqae.phylo.schedule.TreeBatch`'s index arrays on a device.

    Attributes:
        children: ``[B, N-3, 2]`` long.
        root_children: ``[B, 3]`` long.
        edge_mask: ``[B, E]`` bool, real branches.
    """

    children: torch.Tensor
    root_children: torch.Tensor
    edge_mask: torch.Tensor

    @classmethod
    def of(cls, trees: TreeBatch, device: torch.device | str | None = None) -> TreeTensors:
        return cls(
            torch.as_tensor(trees.children, device=device),
            torch.as_tensor(trees.root_children, device=device),
            torch.as_tensor(trees.edge_mask, device=device),
        )

    def rows(self, index: torch.Tensor) -> TreeTensors:
        """The families ``index`` (``int64 [b]``) of the batch."""
        return TreeTensors(self.children[index], self.root_children[index], self.edge_mask[index])


def _rescale(part: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``part [..., 4]`` divided by its largest entry, and the log of that entry ``[...]``.

    An all-zero row (data impossible under the model, e.g. two different
    bases across a zero-length branch) keeps its zeros and the log of the
    smallest normal number, so the site's log-likelihood is very negative but
    finite.
    """
    top = part.amax(dim=-1, keepdim=True).clamp_min(torch.finfo(part.dtype).tiny)
    return part / top, torch.log(top).squeeze(-1)


def _messages(transition: torch.Tensor, partials: torch.Tensor) -> torch.Tensor:
    """``sum_y P[x, y] D[y]``: ``P [..., C, 4, 4]``, ``D [..., C, P, 4]`` -> ``[..., C, P, 4]``."""
    return partials @ transition.transpose(-1, -2)


def _inside(
    transition: torch.Tensor, tips: torch.Tensor, children: torch.Tensor, root_children: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Post-order pass: rescaled partials ``D [B, M, C, P, 4]`` and their log scales ``S [B, M, C, P]``."""
    b, n, p, _ = tips.shape
    c = transition.shape[2]
    m = 2 * n - 2
    partials = tips.new_empty(b, m, c, p, 4)
    scales = tips.new_zeros(b, m, c, p)
    partials[:, :n] = tips[:, :, None]
    rows = torch.arange(b, device=tips.device)[:, None]
    for s in range(n - 3):
        kids = children[:, s]  # [B, 2]
        msg = _messages(transition[rows, kids], partials[rows, kids])  # [B, 2, C, P, 4]
        part, log_top = _rescale(msg[:, 0] * msg[:, 1])
        partials[:, n + s] = part
        scales[:, n + s] = scales[rows, kids].sum(1) + log_top
    kids = root_children  # [B, 3]
    msg = _messages(transition[rows, kids], partials[rows, kids])
    part, log_top = _rescale(msg[:, 0] * msg[:, 1] * msg[:, 2])
    partials[:, m - 1] = part
    scales[:, m - 1] = scales[rows, kids].sum(1) + log_top
    return partials, scales


def _root_log_likelihood(
    root_partials: torch.Tensor, root_scales: torch.Tensor, freqs: torch.Tensor, log_weights: torch.Tensor
) -> torch.Tensor:
    """Site log-likelihoods ``[B, P]`` from the root's ``D [B, C, P, 4]``, ``S [B, C, P]``."""
    per_category = torch.log((root_partials * freqs[:, None, None, :]).sum(-1)) + root_scales  # [B, C, P]
    return torch.logsumexp(per_category + log_weights[:, :, None], dim=1)


def _outside(
    transition: torch.Tensor,
    freqs: torch.Tensor,
    log_weights: torch.Tensor,
    partials: torch.Tensor,
    scales: torch.Tensor,
    site: torch.Tensor,
    children: torch.Tensor,
    root_children: torch.Tensor,
    grad_site: torch.Tensor | None,
    generators: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Pre-order pass.

    With ``generators`` (``Q r_c``, ``[B, C, 4, 4]``) and pattern ``weights``
    ``[B, P]``, it returns instead of the two gradients the first and second
    derivatives of the weighted log-likelihood in each branch length alone,
    ``[B, E]`` each (``dP/dt = Q r P``).

    Returns:
        ``(O, SO, grad_transition, grad_freqs)``: the rescaled outside
        partials at each node's own end ``O [B, M, C, P, 4]`` (``O_v[y]`` =
        likelihood of everything outside ``v``'s subtree with ``v`` in state
        ``y``; ``pi`` at the root; undefined at leaves) with their log scales
        ``SO [B, M, C, P]``; with ``grad_site [B, P]`` also the gradient of
        ``sum(grad_site * site)`` with respect to ``transition [B, E, C, 4, 4]``
        and ``freqs [B, 4]`` (else None).
    """
    b, m, c, p, _ = partials.shape
    n = (m + 2) // 2
    outside = torch.empty_like(partials)
    outside_scales = torch.zeros_like(scales)
    outside[:, m - 1] = freqs[:, None, None, :].expand(b, c, p, 4)
    rows = torch.arange(b, device=partials.device)[:, None]
    grad_transition = grad_freqs = None
    if generators is not None:
        # First and second derivatives per branch (returned in the gradients' places).
        grad_transition = partials.new_zeros(b, m - 1)
        grad_freqs = partials.new_zeros(b, m - 1)
    elif grad_site is not None:
        grad_transition = torch.zeros_like(transition)
        # d site / d L_c = w_c / L_site, times the incoming gradient: [B, C, P].
        base = grad_site[:, None, :] * torch.exp(log_weights[:, :, None] - site[:, None, :])
        root_coef = base * torch.exp(scales[:, m - 1])
        grad_freqs = torch.einsum("bcp,bcpx->bx", root_coef, partials[:, m - 1])

    def visit(node: int, kids: torch.Tensor) -> None:
        o_v, so_v = outside[:, node], outside_scales[:, node]  # [B, C, P, 4], [B, C, P]
        d_k, s_k, p_k = partials[rows, kids], scales[rows, kids], transition[rows, kids]
        msg = _messages(p_k, d_k)  # [B, K, C, P, 4]
        k_all = kids.shape[1]
        for k in range(k_all):
            up = o_v
            up_scale = so_v
            for j in range(k_all):
                if j != k:
                    up = up * msg[:, j]
                    up_scale = up_scale + s_k[:, j]
            up, log_top = _rescale(up)
            up_scale = up_scale + log_top
            if grad_site is not None and generators is None:
                coef = base * torch.exp(up_scale + s_k[:, k])  # [B, C, P]
                grad_transition[rows[:, 0], kids[:, k]] = (coef[..., None] * up).transpose(-1, -2) @ d_k[:, k]
            if generators is not None:
                # Per site: L'/L and L''/L of this branch, from sum_xy U[x] (Q^j P)[x, y] D[y].
                share = torch.exp(log_weights[:, :, None] + up_scale + s_k[:, k] - site[:, None, :])  # [B, C, P]
                first_p = generators @ p_k[:, k]
                second_p = generators @ first_p
                d1 = (share * (up * _messages(first_p, d_k[:, k])).sum(-1)).sum(1)  # [B, P]
                d2 = (share * (up * _messages(second_p, d_k[:, k])).sum(-1)).sum(1)
                grad_transition[rows[:, 0], kids[:, k]] = (weights * d1).sum(-1)
                grad_freqs[rows[:, 0], kids[:, k]] = (weights * (d2 - d1 * d1)).sum(-1)
            down, log_top = _rescale(up @ p_k[:, k])  # sum_x U[x] P[x, y]
            outside[rows[:, 0], kids[:, k]] = down
            outside_scales[rows[:, 0], kids[:, k]] = up_scale + log_top

    visit(m - 1, root_children)
    for s in range(n - 4, -1, -1):
        visit(n + s, children[:, s])
    return outside, outside_scales, grad_transition, grad_freqs


class _Pruning(torch.autograd.Function):
    """Site log-likelihoods with the outside pass as the backward."""

    @staticmethod
    def forward(ctx, transition, freqs, log_weights, tips, children, root_children):
        partials, scales = _inside(transition, tips, children, root_children)
        site = _root_log_likelihood(partials[:, -1], scales[:, -1], freqs, log_weights)
        ctx.save_for_backward(transition, freqs, log_weights, partials, scales, site, children, root_children)
        return site

    @staticmethod
    def backward(ctx, grad_site):
        transition, freqs, log_weights, partials, scales, site, children, root_children = ctx.saved_tensors
        _, _, grad_transition, grad_freqs = _outside(
            transition, freqs, log_weights, partials, scales, site, children, root_children, grad_site
        )
        return grad_transition, grad_freqs, None, None, None, None


def _check_shapes(transition: torch.Tensor, freqs: torch.Tensor, log_weights: torch.Tensor, tips: torch.Tensor) -> None:
    b, n, _, four = tips.shape
    if four != 4 or n < 3:
        raise ValueError(f"tips must be [B, N >= 3, P, 4], got {tuple(tips.shape)}")
    want = (b, 2 * n - 3, log_weights.shape[-1], 4, 4)
    if tuple(transition.shape) != want:
        raise ValueError(
            f"transition matrices must be {want} for tips {tuple(tips.shape)}, got {tuple(transition.shape)}"
        )
    if tuple(freqs.shape) != (b, 4):
        raise ValueError(f"freqs must be ({b}, 4), got {tuple(freqs.shape)}")


def site_log_likelihoods(
    transition: torch.Tensor,
    freqs: torch.Tensor,
    log_weights: torch.Tensor,
    tips: torch.Tensor,
    children: torch.Tensor,
    root_children: torch.Tensor,
) -> torch.Tensor:
    """Log-likelihood of every site pattern, differentiable in ``transition`` and ``freqs``.

    Args:
        transition: ``[B, E, C, 4, 4]`` P(t) of the branch above each node.
        freqs: ``[B, 4]`` root (stationary) frequencies.
        log_weights: ``[B, C]`` log probabilities of the rate categories.
        tips: ``[B, N, P, 4]`` tip partial likelihoods.
        children, root_children: the schedule, ``[B, N-3, 2]`` and ``[B, 3]``.

    Returns:
        ``[B, P]`` natural-log likelihoods (0 for all-missing pad patterns).
    """
    _check_shapes(transition, freqs, log_weights, tips)
    return _Pruning.apply(transition, freqs, log_weights, tips, children, root_children)


def _model_inputs(
    trees: TreeTensors, model: GTRGamma, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(transition, freqs, log_weights)`` for a batch, broadcasting a shared model."""
    b = lengths.shape[0]
    if model.n_models not in (1, b):
        raise ValueError(f"{model.n_models} models for a batch of {b} trees (need 1 or {b})")
    masked = torch.where(trees.edge_mask, lengths, torch.zeros_like(lengths))
    transition = model.transition_matrices(masked)
    freqs = model.freqs().expand(b, 4)
    log_weights = model.log_category_weights().expand(b, -1)
    return transition, freqs, log_weights


def model_site_log_likelihoods(
    trees: TreeTensors, tips: torch.Tensor, model: GTRGamma, lengths: torch.Tensor
) -> torch.Tensor:
    """``[B, P]`` pattern log-likelihoods of a batch under ``model`` (pad branches forced to 0)."""
    transition, freqs, log_weights = _model_inputs(trees, model, lengths)
    return site_log_likelihoods(transition, freqs, log_weights, tips, trees.children, trees.root_children)


def log_likelihood(
    trees: TreeTensors, tips: torch.Tensor, weights: torch.Tensor, model: GTRGamma, lengths: torch.Tensor
) -> torch.Tensor:
    """Log-likelihood of each family's alignment: ``[B]``, natural log.

    Args:
        trees: the batch's schedule (:meth:`TreeTensors.of`).
        tips: ``[B, N, P, 4]`` and ``weights`` ``[B, P]``: from
            :meth:`~seqae.phylo.patterns.PatternBatch.tensors`.
        model: ``n_models`` 1 (shared) or ``B``.
        lengths: ``[B, E]`` branch lengths (expected substitutions per site),
            e.g. a latent tree's, with gradient; pad entries are ignored.
    """
    return (model_site_log_likelihoods(trees, tips, model, lengths) * weights).sum(-1)


@torch.no_grad()
def branch_derivatives(
    trees: TreeTensors, tips: torch.Tensor, weights: torch.Tensor, model: GTRGamma, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-likelihood and its first and second derivative in each branch length alone.

    The second derivatives are the Hessian's diagonal: what a per-branch
    Newton step needs (as PhyML and IQ-TREE optimise branch lengths), for
    every branch of every family from one inside and one outside pass.

    Args: as :func:`log_likelihood`.

    Returns:
        ``(log_likelihood [B], first [B, E], second [B, E])``; pad branches' entries are not meaningful.
    """
    transition, freqs, log_weights = _model_inputs(trees, model, lengths)
    generators = model.rate_matrix()[:, None] * model.category_rates()[:, :, None, None]  # [Bm, C, 4, 4]
    generators = generators.expand(lengths.shape[0], -1, -1, -1)
    partials, scales = _inside(transition, tips, trees.children, trees.root_children)
    site = _root_log_likelihood(partials[:, -1], scales[:, -1], freqs, log_weights)
    _, _, first, second = _outside(
        transition, freqs, log_weights, partials, scales, site, trees.children, trees.root_children, None,
        generators, weights,
    )  # fmt: skip
    return (site * weights).sum(-1), first, second


@torch.no_grad()
def marginal_posteriors(
    trees: TreeBatch, patterns: PatternBatch, model: GTRGamma, lengths: torch.Tensor
) -> list[np.ndarray]:
    """Marginal posterior of each internal node's base at each site (empirical Bayes).

    ``P(node v in state y | data) = sum_c w_c O_v[c, y] D_v[c, y] / L`` with
    the model and branch lengths fixed (Yang, Kumar & Nei 1995).

    Args:
        trees, patterns: the batch (same families, same order).
        model: 1 or ``B`` models.
        lengths: ``[B, E]`` branch lengths.

    Returns:
        Per family ``[n-2, L, 4]`` float64 posteriors (rows sum to 1), internal
        nodes in the family's own order (``trees.trees[b].internal_names``),
        sites in alignment order.
    """
    device = lengths.device
    tt = TreeTensors.of(trees, device)
    tips, _ = patterns.tensors(lengths.dtype, device)
    transition, freqs, log_weights = _model_inputs(tt, model, lengths)
    partials, scales = _inside(transition, tips, tt.children, tt.root_children)
    site = _root_log_likelihood(partials[:, -1], scales[:, -1], freqs, log_weights)
    outside, outside_scales, _, _ = _outside(
        transition, freqs, log_weights, partials, scales, site, tt.children, tt.root_children, None
    )
    big_n = trees.n_taxa
    inner = slice(big_n, 2 * big_n - 2)
    log_joint = (
        torch.log(outside[:, inner] * partials[:, inner])
        + (outside_scales[:, inner] + scales[:, inner])[..., None]
        + log_weights[:, None, :, None, None]
    )  # [B, N-2, C, P, 4]
    post = torch.softmax(torch.logsumexp(log_joint, dim=2), dim=-1).cpu().double().numpy()  # [B, N-2, P, 4]
    out = []
    for b, pats in enumerate(patterns.patterns):
        real = trees.node_map[b, big_n:]  # family's node id at each padded internal node
        keep = real >= 0
        order = np.argsort(real[keep])
        out.append(post[b][keep][order][:, pats.site_pattern])
    return out
