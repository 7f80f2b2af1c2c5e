"""Maximum-likelihood topology refinement by nearest-neighbour interchanges, batched over families.

Used by the tree latent (:mod:`seqae.phylo.hypertree`) as the last part of
its decoder: the tree decoded from the hyperbolic embedding is refined by
NNI moves scored with the batched pruning likelihood under the family's
GTR + Gamma, as PhyML does (Guindon & Gascuel 2003; Guindon et al. 2010):

* **Scoring every NNI at once.** For the internal branch above node ``u``
  (children ``a``, ``b``; parent ``v``, whose other side is the sibling
  ``c`` and the rest of the tree ``R``), the three arrangements
  ``{ab|cR}`` (current), ``{ac|bR}`` and ``{bc|aR}`` have site likelihoods
  ``sum_c w_c sum_x T[x] (P_c(t) Y)[x]`` with ``T`` the top vector (``R``
  times the message of the subtree on the top side) and ``Y`` the bottom
  one. ``R`` is the outside partial of ``v`` (:func:`seqae.phylo.likelihood._outside`),
  the messages come from the inside partials, so one inside and one
  outside pass score all ``2(n-3)`` alternatives of every family. The
  central branch of each arrangement (the current one too, so the
  comparison is fair) is optimised by Newton steps on the
  eigendecomposition ``P(t) = U exp(Lambda r_c t) U^-1`` (a handful of
  flops per site and step); the other branches keep their lengths.
* **Applying moves.** Improving moves on branches that share no node are
  applied together, best first (PhyML's simultaneous NNIs); all branch
  lengths are then re-fitted by the batched Newton of
  :func:`seqae.phylo.mlfit.fit_ml`. A family whose likelihood fell keeps
  only its single best move (or, if that falls too, its old tree).
* The substitution model is re-fitted every ``model_every`` rounds.
* **Only the families that moved climb on.** A family whose tree did not
  change in a round scores the same gains in the next (same tree, lengths
  and model) and would not move either, so a round scores and re-fits only
  the families that moved in the last one, until the model is re-fitted and
  every family is scored again. One Newton pass at the end on the branch
  lengths of the families that missed a round's re-fit makes up for it.

Vectorised over families, patterns, categories and branches; Python loops
run over internal nodes (moves, relabelling) and chunks of branches only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from seqae.phylo.gtr import GTRGamma
from seqae.phylo.likelihood import (
    TreeTensors,
    _inside,
    _model_inputs,
    _outside,
    _root_log_likelihood,
)
from seqae.phylo.mlfit import MAX_LENGTH, MIN_LENGTH, _fit_model, _newton_lengths

__all__ = ["NNISearchResult", "nni_gains", "nni_search", "perturbed_search"]

#: Newton steps on a central branch when scoring an NNI.
_CENTRAL_STEPS = 8
#: Branches scored per chunk (bounds the memory of ``[B, K, 3, C, P, 4]`` tensors).
_CHUNK_ELEMENTS = 6_000_000


@dataclass
class NNISearchResult:
    """Result of :func:`nni_search`.

    Attributes:
        children: ``[B, n-3, 2]`` long, the refined topologies (schedule order).
        root_children: ``[B, 3]`` long.
        lengths: ``[B, 2n-3]`` ML branch lengths.
        log_likelihood: ``[B]`` final log-likelihoods (natural log).
        moves: ``[B]`` NNIs accepted per family.
        rounds: rounds run.
    """

    children: torch.Tensor
    root_children: torch.Tensor
    lengths: torch.Tensor
    log_likelihood: torch.Tensor
    moves: np.ndarray
    rounds: int


def _kids_table(children: torch.Tensor, root_children: torch.Tensor) -> torch.Tensor:
    """``[B, n-2, 3]`` children of internal nodes ``n .. 2n-3`` (-1 where a node has two)."""
    b = children.shape[0]
    pad = torch.full((b, children.shape[1], 1), -1, dtype=children.dtype, device=children.device)
    return torch.cat([torch.cat([children, pad], dim=2), root_children[:, None, :]], dim=1)


def _parents(kids: torch.Tensor, n: int) -> torch.Tensor:
    """``[B, 2n-2]`` parent of each node (-1 for the root) from a kids table."""
    b = kids.shape[0]
    parent = torch.full((b, 2 * n - 2), -1, dtype=kids.dtype, device=kids.device)
    owner = torch.arange(n, 2 * n - 2, device=kids.device)[None, :, None].expand_as(kids)
    real = kids >= 0
    rows = torch.arange(b, device=kids.device)[:, None, None].expand_as(kids)
    parent[rows[real], kids[real]] = owner[real]
    return parent


def _eigen(model: GTRGamma, b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(U [B, 4, 4], U^-1 [B, 4, 4], rho [B, C*4])``: ``Q = U diag(lambda) U^-1``, ``rho = lambda_j r_c``."""
    q = model.rate_matrix()
    pi = model.freqs()
    sq = torch.sqrt(pi)
    sym = sq[:, :, None] * q / sq[:, None, :]
    sym = 0.5 * (sym + sym.transpose(-1, -2))
    lam, vec = torch.linalg.eigh(sym)
    u = vec / sq[:, :, None]
    u_inv = vec.transpose(-1, -2) * sq[:, None, :]
    rho = (model.category_rates()[:, :, None] * lam[:, None, :]).flatten(1)  # [Bm, C*4]
    return u.expand(b, 4, 4), u_inv.expand(b, 4, 4), rho.expand(b, -1)


@torch.no_grad()
def nni_gains(
    tt: TreeTensors, tips: torch.Tensor, weights: torch.Tensor, model: GTRGamma, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-likelihood gain of the two NNIs of every internal branch, central branch optimised.

    Args:
        tt: the batch's trees (all with the same ``n``, no pad leaves).
        tips, weights: ``[B, n, P, 4]``, ``[B, P]``.
        model: 1 or ``B`` models.
        lengths: ``[B, 2n-3]``.

    Returns:
        ``(gain [B, n-3, 2], central [B, n-3, 3])``: for the branch above
        internal node ``n + s``, the gain of swapping its second child
        (move 0) or its first child (move 1) with its sibling, over the
        current arrangement with its own central branch optimised; and the
        optimised central lengths (current, move 0, move 1).
    """
    b, n = tips.shape[:2]
    m = 2 * n - 2
    transition, freqs, log_weights = _model_inputs(tt, model, lengths)
    partials, scales = _inside(transition, tips, tt.children, tt.root_children)
    site = _root_log_likelihood(partials[:, -1], scales[:, -1], freqs, log_weights)
    outside, outside_scales, _, _ = _outside(
        transition, freqs, log_weights, partials, scales, site, tt.children, tt.root_children, None
    )
    msgs = partials[:, : m - 1] @ transition.transpose(-1, -2)  # [B, E, C, P, 4]
    kids = _kids_table(tt.children, tt.root_children)
    parent = _parents(kids, n)
    rows = torch.arange(b, device=tips.device)[:, None]
    u = torch.arange(n, 2 * n - 3, device=tips.device).expand(b, -1)  # [B, K]
    v = parent[rows, u]
    vk = kids[rows, v - n]  # [B, K, 3] v's children
    others = torch.where(vk == u[..., None], torch.full_like(vk, -1), vk)
    # Sibling c: v's first other child; d: the second (only when v is the root).
    order = torch.sort(torch.where(others < 0, torch.full_like(others, 1 << 30), others), dim=-1).values
    c, d = order[..., 0], order[..., 1]
    is_root = v == m - 1
    a, bb = tt.children[:, :, 0], tt.children[:, :, 1]
    u_mat, u_inv, rho = _eigen(model, b)
    cats = log_weights.shape[1]
    p = tips.shape[2]
    k_all = n - 3
    chunk = max(1, _CHUNK_ELEMENTS // max(1, b * 3 * cats * p * 4))
    gains = tips.new_zeros(b, k_all, 2)
    central = tips.new_zeros(b, k_all, 3)
    for start in range(0, k_all, chunk):
        sl = slice(start, min(k_all, start + chunk))
        kk = sl.stop - sl.start
        r_idx = rows.expand(b, kk)
        vv, cc, dd, root = v[:, sl], c[:, sl], d[:, sl], is_root[:, sl]
        msg_a, msg_b, msg_c = msgs[r_idx, a[:, sl]], msgs[r_idx, bb[:, sl]], msgs[r_idx, cc]  # [B, K, C, P, 4]
        s_a, s_b, s_c = scales[r_idx, a[:, sl]], scales[r_idx, bb[:, sl]], scales[r_idx, cc]
        rest = outside[r_idx, vv]
        s_rest = outside_scales[r_idx, vv]
        d_safe = torch.where(root, dd, cc)
        rest = torch.where(root[..., None, None, None], rest * msgs[r_idx, d_safe], rest)
        s_rest = torch.where(root[..., None, None], s_rest + scales[r_idx, d_safe], s_rest)
        top = torch.stack([rest * msg_c, rest * msg_b, rest * msg_a], dim=2)  # [B, K, 3, C, P, 4]
        bottom = torch.stack([msg_a * msg_b, msg_a * msg_c, msg_b * msg_c], dim=2)
        s_tot = s_rest + s_a + s_b + s_c  # [B, K, C, P]
        top_max = top.amax(-1, keepdim=True).clamp_min(1e-300)
        bot_max = bottom.amax(-1, keepdim=True).clamp_min(1e-300)
        top, bottom = top / top_max, bottom / bot_max
        log_extra = torch.log(top_max.squeeze(-1)) + torch.log(bot_max.squeeze(-1))  # [B, K, 3, C, P]
        tu = top @ u_mat[:, None, None, None]  # [B, K, 3, C, P, 4]
        uy = bottom @ u_inv.transpose(-1, -2)[:, None, None, None]
        coef = tu * uy
        log_scale = s_tot[:, :, None] + log_extra + log_weights[:, None, None, :, None]  # [B, K, 3, C, P]
        top_scale = log_scale.amax(dim=(2, 3), keepdim=True)  # common to the three arrangements
        coef = coef * torch.exp(log_scale - top_scale)[..., None]
        coef = coef.permute(0, 1, 2, 4, 3, 5).reshape(b, kk, 3, p, cats * 4)  # [B, K, 3, P, C*4]
        t0 = lengths[r_idx, u[:, sl]][..., None].expand(b, kk, 3).clone()
        best_t, best_l = _central_newton(coef, rho[:, None, None, :], weights[:, None, None, :], t0)
        gains[:, sl] = best_l[..., 1:] - best_l[..., :1]
        central[:, sl] = best_t
    return gains, central


def _central_newton(
    coef: torch.Tensor, rho: torch.Tensor, weights: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximise ``sum_p w_p log sum_j coef_pj exp(rho_j t)`` in ``t`` per arrangement.

    Args:
        coef: ``[B, K, 3, P, J]``; rho: ``[B, 1, 1, J]``;
        weights: ``[B, 1, 1, P]``; t: ``[B, K, 3]`` starting lengths.

    Returns:
        ``(t, value)`` the best length seen and its objective, ``[B, K, 3]`` each
        (the objective omits the per-site scale common to the three arrangements).
    """
    best_t = t.clone()
    best_l = torch.full_like(t, -float("inf"))
    for _ in range(_CENTRAL_STEPS + 1):
        e = torch.exp(rho * t[..., None])  # [B, K, 3, J]
        # f, f' and f'' per site in one batched matmul: it reads coef once
        # instead of three times with a temporary of coef's size each.
        basis = torch.stack([e, rho * e, rho * rho * e], dim=-1)  # [B, K, 3, J, 3]
        moments = coef @ basis  # [B, K, 3, P, 3]
        f = moments[..., 0].clamp_min(1e-300)
        f1 = moments[..., 1] / f
        f2 = moments[..., 2] / f
        value = (weights * torch.log(f)).sum(-1)
        better = value > best_l
        best_t = torch.where(better, t, best_t)
        best_l = torch.where(better, value, best_l)
        g = (weights * f1).sum(-1)
        h = (weights * (f2 - f1 * f1)).sum(-1)
        step = torch.where(h < 0, -g / h.clamp(max=-1e-300), torch.sign(g) * t)
        t = (t + step).clamp(MIN_LENGTH, MAX_LENGTH)
    return best_t, best_l


def _relabel(kids: torch.Tensor, lengths: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Renumber internal nodes so that children come before parents (the root stays last).

    Args:
        kids: ``[B, n-2, 3]`` kids table in any internal order (root last).
        lengths: ``[B, 2n-3]`` indexed by the old numbering.

    Returns:
        ``(kids, lengths)`` in post-order numbering.
    """
    b = kids.shape[0]
    dev = kids.device
    height = torch.zeros(b, 2 * n - 2, dtype=torch.long, device=dev)
    safe = kids.clamp_min(0)
    for _ in range(n):
        kid_h = torch.where(kids >= 0, height.gather(1, safe.flatten(1)).view_as(kids), torch.full_like(kids, -1))
        new = kid_h.amax(-1) + 1
        if torch.equal(new, height[:, n:]):
            break
        height[:, n:] = new
    inner = height[:, n : 2 * n - 3]  # non-root internal nodes
    key = inner * (2 * n) + torch.arange(n - 3, device=dev)  # ties keep the old order
    order = torch.argsort(key, dim=1)  # new rank -> old row
    new_of_old = torch.arange(2 * n - 2, device=dev).expand(b, -1).clone()
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n - 3, device=dev).expand(b, -1))
    new_of_old[:, n : 2 * n - 3] = n + rank
    rows = torch.arange(b, device=dev)[:, None]
    body = kids[rows, order]  # [B, n-3, 3]
    table = torch.cat([body, kids[:, -1:]], dim=1)
    table = torch.where(table >= 0, new_of_old.gather(1, table.clamp_min(0).flatten(1)).view_as(table), table)
    new_lengths = torch.zeros_like(lengths).scatter(1, new_of_old[:, : 2 * n - 3], lengths)
    return table, new_lengths


def _apply_moves(
    kids: torch.Tensor, lengths: torch.Tensor, move: torch.Tensor, central: torch.Tensor, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply NNIs: ``move [B, n-3]`` in {-1 (none), 0, 1} on the branch above each internal node.

    The moves of one family must be on branches sharing no node. Returns the
    new kids table and lengths, already in post-order numbering.
    """
    kids = kids.clone()
    lengths = lengths.clone()
    parent = _parents(kids, n)
    b = kids.shape[0]
    rows = torch.arange(b, device=kids.device)
    for s in range(n - 3):
        take = move[:, s] >= 0
        if not bool(take.any()):
            continue
        r = rows[take]
        u = n + s
        v = parent[r, u]
        vk = kids[r, v - n]
        others = torch.where((vk == u) | (vk < 0), torch.full_like(vk, 1 << 30), vk)
        c = others.min(-1).values
        c_pos = (vk == c[:, None]).to(torch.long).argmax(-1)
        which = 1 - move[r, s]  # move 0 swaps the second child, move 1 the first
        x = kids[r, s, which]
        kids[r, s, which] = c
        kids[r, v - n, c_pos] = x
        lengths[r, u] = central[r, s, 1 + move[r, s]]
        parent[r, c] = u
        parent[r, x] = v
    return _relabel(kids, lengths, n)


def _select_moves(gains: torch.Tensor, kids: torch.Tensor, n: int, threshold: float, single: bool) -> torch.Tensor:
    """Best-first moves on node-disjoint branches with gain > ``threshold``: ``[B, n-3]`` in {-1, 0, 1}."""
    b = gains.shape[0]
    dev = gains.device
    best, which = gains.max(-1)  # [B, K]
    parent = _parents(kids, n)
    u = torch.arange(n, 2 * n - 3, device=dev).expand(b, -1)
    v = parent[:, n : 2 * n - 3]
    order = torch.argsort(-best, dim=1)
    used = torch.zeros(b, 2 * n - 2, dtype=torch.bool, device=dev)
    move = torch.full((b, n - 3), -1, dtype=torch.long, device=dev)
    rows = torch.arange(b, device=dev)
    for rank in range(n - 3 if not single else 1):
        s = order[:, rank]
        uu, vv = u[rows, s], v[rows, s]
        ok = (best[rows, s] > threshold) & ~used[rows, uu] & ~used[rows, vv]
        move[rows[ok], s[ok]] = which[rows[ok], s[ok]]
        used[rows[ok], uu[ok]] = True
        used[rows[ok], vv[ok]] = True
    return move


def nni_search(
    children: torch.Tensor,
    root_children: torch.Tensor,
    lengths: torch.Tensor,
    tips: torch.Tensor,
    weights: torch.Tensor,
    model: GTRGamma,
    max_rounds: int = 40,
    threshold: float = 1e-3,
    model_every: int = 4,
    newton_iter: int = 4,
) -> NNISearchResult:
    """Hill-climb every family's topology by ML NNIs (see the module docstring).

    Args:
        children, root_children, lengths: the starting trees, schedule order
            (``[B, n-3, 2]``, ``[B, 3]``, ``[B, 2n-3]``), all families with
            ``n`` leaves and no pad leaves.
        tips, weights: ``[B, n, P, 4]`` and ``[B, P]`` (patterns may be padded).
        model: ``B`` models (fitted in place every ``model_every`` rounds; pass
            ``model_every=0`` to keep it fixed).
        max_rounds: rounds of (score all NNIs, apply, re-fit lengths) at most.
        threshold: a move must gain more than this (log-likelihood units).
        newton_iter: Newton iterations on the branch lengths of the families that
            moved, after each round, and at the end on those that missed one.

    Returns:
        :class:`NNISearchResult`.
    """
    b, n = tips.shape[:2]
    if n < 4:
        raise ValueError(f"an NNI needs at least 4 leaves, got {n}")
    mask = torch.ones(b, 2 * n - 3, dtype=torch.bool, device=tips.device)
    sites = weights.sum(-1)
    kids = _kids_table(children, root_children)
    lengths = lengths.detach().clamp(MIN_LENGTH, MAX_LENGTH)
    every = torch.arange(b, device=tips.device)

    def tensors(table: torch.Tensor, rows: torch.Tensor) -> TreeTensors:
        return TreeTensors(table[:, : n - 3, :2].contiguous(), table[:, n - 3].contiguous(), mask[rows])

    def refit(table: torch.Tensor, ell: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Newton on the branch lengths of the families ``rows`` (``table`` and ``ell`` hold only theirs)."""
        tt = tensors(table, rows)
        ell, ll, _ = _newton_lengths(
            tt, tips[rows], weights[rows], model.rows(rows), ell, None, 1e-7 * sites[rows], newton_iter
        )
        return ell, ll

    lengths, ll = refit(kids, lengths, every)
    moves = np.zeros(b, dtype=np.int64)
    rounds = 0
    # The families that may still move (see the module docstring): those that moved in the
    # last round, or all of them after the model is re-fitted.
    live = every
    # Families left out of a round's refit while the climb went on; only they get the final pass,
    # so a family that was refitted in every round (a batch of one, always) ends as before.
    skipped = torch.zeros(b, dtype=torch.bool, device=tips.device)
    for rounds in range(1, max_rounds + 1):
        table, ell, before = kids[live], lengths[live], ll[live]
        part = model.rows(live)
        gains, central = nni_gains(tensors(table, live), tips[live], weights[live], part, ell)
        move = _select_moves(gains, table, n, threshold, single=False)
        active = (move >= 0).any(-1)
        if not bool(active.any()):
            break
        live, move, gains, central = live[active], move[active], gains[active], central[active]
        table, ell, before = table[active], ell[active], before[active]
        left_out = torch.ones(b, dtype=torch.bool, device=tips.device)
        left_out[live] = False
        skipped |= left_out
        new_kids, new_len = _apply_moves(table, ell, move, central, n)
        new_len, new_ll = refit(new_kids, new_len, live)
        worse = new_ll < before
        if bool(worse.any()):  # fall back to the single best move in those families
            one = _select_moves(gains, table, n, threshold, single=True)
            one_kids, one_len = _apply_moves(table, ell, one, central, n)
            one_len, one_ll = refit(one_kids, one_len, live)
            fix = worse & (one_ll > before)
            keep_old = worse & ~fix
            new_kids = torch.where(fix[:, None, None], one_kids, new_kids)
            new_len = torch.where(fix[:, None], one_len, new_len)
            new_ll = torch.where(fix, one_ll, new_ll)
            move = torch.where(fix[:, None], one, move)
            new_kids = torch.where(keep_old[:, None, None], table, new_kids)
            new_len = torch.where(keep_old[:, None], ell, new_len)
            new_ll = torch.where(keep_old, before, new_ll)
            move = torch.where(keep_old[:, None], torch.full_like(move, -1), move)
        moved = (move >= 0).any(-1)
        moves[live.cpu().numpy()] += (move >= 0).sum(-1).cpu().numpy()
        kids[live], lengths[live], ll[live] = new_kids, new_len, new_ll
        live = live[moved]
        if model_every and rounds % model_every == 0:
            ll, _ = _fit_model(tensors(kids, every), tips, weights, model, lengths, 10)
            live = every
        if not bool(moved.any()):
            break
    if model_every:
        ll, _ = _fit_model(tensors(kids, every), tips, weights, model, lengths, 10)
        lengths, ll = refit(kids, lengths, every)
    elif bool(skipped.any()):
        rows = skipped.nonzero()[:, 0]
        lengths[rows], ll[rows] = refit(kids[rows], lengths[rows], rows)
    return NNISearchResult(
        children=kids[:, : n - 3, :2].contiguous(), root_children=kids[:, n - 3].contiguous(), lengths=lengths,
        log_likelihood=ll, moves=moves, rounds=rounds,
    )  # fmt: skip


def perturbed_search(
    start: NNISearchResult,
    tips: torch.Tensor,
    weights: torch.Tensor,
    model: GTRGamma,
    rounds: int,
    fraction: float = 0.2,
    seed: int = 1,
    on_round: Callable[[NNISearchResult], None] | None = None,
    **search_options,
) -> NNISearchResult:
    """Escape local optima as IQ-TREE does: random NNIs on a share of the branches, then NNI hill-climbing again.

    Each round perturbs every family's best tree by random NNIs on about
    ``fraction`` of its internal branches (node-disjoint), climbs again with
    :func:`nni_search` and keeps, per family, the better of the two trees.
    The model is kept fixed (``model_every=0``) so the likelihoods compare.
    ``on_round`` is called with the best trees after each round (progress).

    Returns:
        The best tree of each family (``moves`` counts the NNIs of the kept trees' climbs).
    """
    best = start
    b, n = tips.shape[:2]
    if n < 5 or rounds <= 0:
        return best
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for _ in range(rounds):
        kids = _kids_table(best.children, best.root_children)
        noise = torch.rand(b, n - 3, 2, generator=gen).to(tips.device)
        move = _select_moves(noise, kids, n, 1.0 - fraction, single=False)
        central = best.lengths[:, n : 2 * n - 3, None].expand(b, n - 3, 3)
        new_kids, new_len = _apply_moves(kids, best.lengths, move, central, n)
        trial = nni_search(new_kids[:, : n - 3, :2].contiguous(), new_kids[:, n - 3].contiguous(), new_len, tips,
                           weights, model, **{**search_options, "model_every": 0})  # fmt: skip
        better = trial.log_likelihood > best.log_likelihood + 1e-6
        best = NNISearchResult(
            children=torch.where(better[:, None, None], trial.children, best.children),
            root_children=torch.where(better[:, None], trial.root_children, best.root_children),
            lengths=torch.where(better[:, None], trial.lengths, best.lengths),
            log_likelihood=torch.where(better, trial.log_likelihood, best.log_likelihood),
            moves=np.where(better.cpu().numpy(), best.moves + trial.moves, best.moves),
            rounds=best.rounds + trial.rounds,
        )
        if on_round is not None:
            on_round(best)
    return best
