"""The tree latent: each family's latent is a phylogeny, decoded through the evolutionary model.

::

    alignment [n, L] --encoder--> leaf points in the Poincare ball z [n, k]
                                     |  hyperbolic distances D(z) [n, n]
                                     v
                     decoder 1: neighbour joining (torch, batched) -> tree (topology + branch lengths)
                                     |
                     decoder 2: Felsenstein pruning under GTR + Gamma -> log P(alignment | tree, model)
                                     |
                     (optional) ML NNI refinement of the decoded tree -> the latent tree

The design is Dodonaphy's (Macaulay, Darling & Fourment 2023, "Fidelity of
hyperbolic space for Bayesian phylogenetic inference"; Macaulay & Fourment
2023, "Differentiable phylogenetics via hyperbolic embeddings with
Dodonaphy", arXiv:2309.11732): the latent of a family is one point per
sequence in hyperbolic space, and the tree is decoded from the points'
distances by neighbour joining. Why this design rather than a variational
distribution over trees (GeoPhy, VBPI):

* a family's latent decodes to **one** tree deterministically, in one batched
  NJ pass (:mod:`seqae.phylo.njtorch`), so the reconstruction loss, the
  alignment's negative log-likelihood under GTR + Gamma through the pruning
  code (:mod:`seqae.phylo.likelihood`), is one forward and one backward pass
  per step for every family of a batch; GeoPhy and VBPI need many sampled
  trees per step and score-function (REINFORCE-type) gradients, tens of
  times the likelihood evaluations;
* hyperbolic space embeds tree metrics with arbitrarily low distortion
  (Sarkar 2011) in few dimensions, so the latent can hold any tree;
* the decoder's branch lengths are NJ's formulas, differentiable in the
  distances, so the likelihood's gradient reaches the points; the topology
  is piecewise constant in the points (the hard, straight-through NJ of
  Dodonaphy) and changes when gradient steps move the points across an NJ
  decision.

Training, per batch of families with the same number of taxa:

1. **Encoder** (no learnt weights shared across families: the latent is fitted
   per family, as an autoencoder's code is by amortisation-free inference):
   points start at the classical MDS of the family's JC69 distances mapped
   into the ball and are fitted for ``init_steps`` Adam steps to those
   distances (weighted stress). Taxa are sorted by name first, so the same
   family in any row order gives the same tree (NJ's ties go by name).
2. **Likelihood training**: ``epochs`` Adam steps on the points, a distance
   scale and each family's GTR + Gamma (frequencies, exchangeabilities,
   alpha) minimising the negative log-likelihood per site of the decoded
   tree. The best-scoring decoded tree of each family is kept.
3. **Refinement** (``refine: nni``, default): NNI moves scored by the batched
   pruning likelihood (:mod:`seqae.phylo.mlsearch`) hill-climb the decoded
   tree, with ML branch lengths; ``refine: none`` stops at step 2 (the
   ablation). Starting points are the family's own JC69 distances: no
   other program's tree is used.
4. **Flat branches** (``flat_resolution: jc69``, default): an internal
   branch whose ML length is zero leaves the likelihood flat across its
   three arrangements, so the search's choice there is arbitrary. Those
   branches alone are re-resolved by balanced minimum evolution on the
   family's JC69 distances (:func:`seqae.phylo.nni.resolve_flat_branches`);
   the likelihood and every other split stay as they are.

The measured figures (nRF to the true tree, log-likelihood against FastTree
and IQ-TREE, families per second) are in the README and come from
``benchmarks/bench_trees.py``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from seqae.phylo.distance import jc69_distance
from seqae.phylo.gtr import GTRGamma
from seqae.phylo.likelihood import TreeTensors, log_likelihood
from seqae.phylo.mlfit import MIN_LENGTH, empirical_freqs
from seqae.phylo.mlsearch import NNISearchResult, nni_search, perturbed_search
from seqae.phylo.njtorch import decode_nj
from seqae.phylo.nni import resolve_flat_branches
from seqae.phylo.patterns import pattern_batch, site_patterns
from seqae.phylo.schedule import UnrootedTree, tree_batch, unrooted_tree
from seqae.phylo.settings import LatentTreeSettings
from seqae.phylo.treejudge import JudgeCache, JudgeTrees, split_features
from seqae.progress import PhaseProgress

__all__ = ["LatentTree", "LatentTreeSettings", "fit_latent_trees", "poincare_distance_matrix"]

#: Internal branches at most this long (expected substitutions per site) are flat:
#: the likelihood cannot tell their resolutions apart (ML lengths stop at ``MIN_LENGTH``).
FLAT_LENGTH = 10 * MIN_LENGTH


@dataclass
class LatentTree:
    """One family's latent tree.

    Attributes:
        names: the family's sequence names (input order).
        tree: the latent tree (``ete3.Tree``, unrooted trifurcating root, ML
            branch lengths in expected substitutions per site).
        search_tree: the refined tree before its flat branches were resolved
            (``tree`` itself when ``flat_resolution`` is ``"none"``).
        flat_interchanges: NNIs across zero-length branches that resolved them.
        log_likelihood: of the alignment on ``tree`` under ``model`` (natural log).
        decoded_tree: the tree decoded from the points alone (before refinement).
        decoded_log_likelihood: its log-likelihood after likelihood training.
        start_tree: the tree decoded from the initial points (stress fit only).
        points: ``[n, dim]`` leaf points in the Poincare ball (rows in input order).
        model: the family's fitted substitution model (numpy values).
        nni_moves: NNIs the refinement accepted.
        judge_score: the judge's probability that the latent tree is a real tree (NaN without a judge).
        judge_auc: share of held-out real trees the judge scores above the latent tree
            (the AUC of real trees vs this one tree; 0.5: it cannot tell them apart).
        seconds: this family's share of its batch's wall-clock time.
        trace: per likelihood-training step, the batch's mean log-likelihood per site.
    """

    names: list[str]
    tree: object
    search_tree: object
    flat_interchanges: int
    log_likelihood: float
    decoded_tree: object
    decoded_log_likelihood: float
    start_tree: object
    points: np.ndarray
    model: object
    nni_moves: int
    judge_score: float
    judge_auc: float
    seconds: float
    trace: list[float] = field(default_factory=list)


def _ball(v: torch.Tensor) -> torch.Tensor:
    """Exponential map at the origin of the unit Poincare ball: tangent ``[..., k]`` -> point."""
    norm = v.norm(dim=-1, keepdim=True).clamp_min(1e-15)
    return torch.tanh(norm) * v / norm


def poincare_distance_matrix(x: torch.Tensor) -> torch.Tensor:
    """``[B, n, n]`` geodesic distances of points ``x [B, n, k]`` in the unit Poincare ball.

    ``d = 2 asinh(|x - y| / sqrt((1 - |x|^2)(1 - |y|^2)))`` (equal to the
    usual arccosh form). Coincident points (the diagonal, and identical
    sequences, which the MDS start places on one point) are exactly 0 apart
    with a zero gradient: ``sqrt`` has an infinite slope at 0, and its
    ``0 * inf`` would turn the points into NaN.
    """
    sq = (x * x).sum(-1)
    diff = x[:, :, None, :] - x[:, None, :, :]
    sq_gap = (diff * diff).sum(-1)
    coincident = sq_gap <= 0
    gap = torch.sqrt(torch.where(coincident, torch.ones_like(sq_gap), sq_gap))
    conf = torch.sqrt((1 - sq).clamp_min(1e-15)[:, :, None] * (1 - sq).clamp_min(1e-15)[:, None, :])
    return torch.where(coincident, torch.zeros_like(gap), 2 * torch.asinh(gap / conf))


def _mds(dist: np.ndarray, dim: int) -> np.ndarray:
    """Classical MDS coordinates ``[n, dim]`` of a distance matrix (zero-padded when the rank is lower)."""
    n = dist.shape[0]
    j = np.eye(n) - 1.0 / n
    g = -0.5 * j @ (dist**2) @ j
    val, vec = np.linalg.eigh(g)
    top = np.argsort(val)[::-1][:dim]
    coords = vec[:, top] * np.sqrt(np.clip(val[top], 0, None))
    if coords.shape[1] < dim:
        coords = np.pad(coords, ((0, 0), (0, dim - coords.shape[1])))
    return coords


def _to_ete(children: np.ndarray, root_children: np.ndarray, lengths: np.ndarray, names: Sequence[str]):
    n = len(names)
    return UnrootedTree(n, children, root_children, lengths, list(names), [""] * (n - 2)).to_ete()


def fit_latent_trees(
    alignments: Sequence[tuple[np.ndarray, Sequence[str]]],
    settings: LatentTreeSettings | None = None,
    device: torch.device | str | None = None,
    seed: int = 1,
    user_trees: Sequence = (),
    progress: bool = False,
    judges: JudgeCache | None = None,
) -> list[LatentTree]:
    """Fit the tree latent of many families, batched by number of taxa.

    Args:
        alignments: ``(codes [n, L], names)`` per family; codes 0..14 as
            :func:`~seqae.phylo.alphabet.partial_codes` gives (A=0 C=1 G=2 T=3,
            ambiguity codes and missing as their bases), ``n >= 4``; columns
            without any base should be removed by the caller.
        settings: :class:`LatentTreeSettings` (default values when None).
        device: torch device (default CPU).
        seed: seeds the judge's reference trees and its fit.
        user_trees: real trees (``ete3.Tree``) for the judge; those with as
            many leaves as a batch's families join its real trees.
        progress: draw a progress bar per batch and phase (distance fit,
            likelihood training, ML search), with the batch's mean
            log-likelihood per site, the rate and the ETA; without, log
            those as lines (:class:`~seqae.progress.PhaseProgress`).
        judges: judges already fitted, reused where the size and settings
            match and added to otherwise (default: a new cache, shared by
            this call's batches). Pass one cache to several calls on the
            same families (with and without the adversary) to fit each
            size's judge once; the results are the same either way.

    Returns:
        One :class:`LatentTree` per family, in input order.
    """
    s = settings or LatentTreeSettings()
    judges = JudgeCache() if judges is None else judges
    groups: dict[int, list[int]] = {}
    for k, (codes, names) in enumerate(alignments):
        if len(names) < 4 or codes.shape[0] != len(names):
            raise ValueError(
                f"family {k}: need at least 4 named sequences, got {len(names)} names, {codes.shape[0]} rows"
            )
        groups.setdefault(len(names), []).append(k)
    out: list[LatentTree | None] = [None] * len(alignments)
    for n in sorted(groups):
        members = groups[n]
        for start in range(0, len(members), s.batch_size):
            chunk = members[start : start + s.batch_size]
            for k, tree in zip(
                chunk, _fit_batch([alignments[k] for k in chunk], s, device, seed, user_trees, judges, progress)
            ):
                out[k] = tree
    return out  # type: ignore[return-value]


def _fit_batch(
    batch: Sequence[tuple[np.ndarray, Sequence[str]]],
    s: LatentTreeSettings,
    device,
    seed: int,
    user_trees: Sequence,
    judges: JudgeCache,
    progress: bool = False,
) -> list[LatentTree]:
    """One batch of families with the same ``n`` (see :func:`fit_latent_trees`)."""
    t0 = time.perf_counter()
    dtype = torch.float64 if s.dtype == "float64" else torch.float32
    torch.manual_seed(seed)
    orders = [np.argsort(np.asarray(names, dtype=object), kind="stable") for _, names in batch]
    codes = [np.asarray(c)[o] for (c, _), o in zip(batch, orders)]
    names = [[nm[i] for i in o] for (_, nm), o in zip(batch, orders)]
    b, n = len(batch), len(names[0])
    pats = [site_patterns(c) for c in codes]
    tips, weights = pattern_batch(pats).tensors(dtype, device)
    sites = weights.sum(-1)
    mask = torch.ones(b, 2 * n - 3, dtype=torch.bool, device=device)
    target = np.stack([jc69_distance(c) for c in codes])  # codes above 3 (ambiguous, missing) are left out

    # 1. Encoder: MDS start, mapped into the ball, fitted to the JC69 distances.
    mds = np.stack([_mds(t, s.dim) for t in target])
    radius = np.abs(mds).max(axis=(1, 2)).clip(1e-6)[:, None, None]
    v = torch.tensor(mds / (2 * radius), dtype=dtype, device=device, requires_grad=True)
    log_scale = torch.tensor(np.log(radius[:, 0, 0]), dtype=dtype, device=device, requires_grad=True)
    target_t = torch.as_tensor(target, dtype=dtype, device=device)
    stress_w = 1.0 / (target_t + 0.05)
    label = f"trees n={n} x{b}"
    opt = torch.optim.Adam([v, log_scale], lr=s.init_lr)
    with PhaseProgress(s.init_steps, f"{label} distance fit", "step", progress) as bar:
        for _ in range(s.init_steps):
            opt.zero_grad()
            dist = torch.exp(log_scale)[:, None, None] * poincare_distance_matrix(_ball(v))
            # The floor keeps a batch of families whose sequences are all identical (all targets 0) at loss 0, not 0/0.
            loss = (stress_w * (dist - target_t) ** 2).sum() / (stress_w * target_t**2).sum().clamp_min(1e-12)
            loss.backward()
            opt.step()
            bar.update()

    def decode() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        dist = torch.exp(log_scale)[:, None, None] * poincare_distance_matrix(_ball(v))
        dec = decode_nj(dist)
        tt = TreeTensors(dec.children, dec.root_children, mask)
        return dec.children, dec.root_children, dec.lengths, log_likelihood(tt, tips, weights, model, dec.lengths)

    model = GTRGamma(b, s.n_categories, freqs=empirical_freqs(pats), dtype=dtype, device=device)
    with torch.no_grad():
        ch, rc, ln, ll = decode()
    start = (ch.clone(), rc.clone(), ln.clone())
    best = [ch.clone(), rc.clone(), ln.clone(), ll.clone()]
    # 2. Likelihood training: points, scale and model by Adam on -log-likelihood per site.
    opt = torch.optim.Adam(
        [{"params": [v, log_scale], "lr": s.lr}, {"params": list(model.parameters()), "lr": s.model_lr}]
    )
    judge = None
    if s.judge or s.adversarial_weight > 0:
        fitted = judges.fitted(n, s.n_reference, s.judge_steps, seed, user_trees, dtype, device)
        judge, adversary, real, held, rng = (
            fitted.judge, fitted.adversary(), fitted.real, fitted.held, fitted.generator()
        )  # fmt: skip
        adv_opt = torch.optim.Adam(adversary.parameters(), lr=1e-3)
    trace = []
    bar = PhaseProgress(s.epochs, f"{label} likelihood training", "epoch", progress)
    for _ in range(s.epochs):
        opt.zero_grad()
        ch, rc, ln, ll = decode()
        loss = -(ll / sites).sum()
        if s.adversarial_weight > 0:
            fake = split_features(ch, rc, ln)
            loss = loss + s.adversarial_weight * torch.nn.functional.softplus(-adversary(fake)).sum()
        loss.backward()
        opt.step()
        if s.adversarial_weight > 0:  # the adversary's step: real trees vs the current latent trees
            adv_opt.zero_grad()
            pick = torch.as_tensor(
                rng.choice(real.lengths.shape[0], size=min(64, real.lengths.shape[0]), replace=False)
            )
            real_x = split_features(real.children[pick], real.root_children[pick], real.lengths[pick])
            adv_loss = (
                torch.nn.functional.softplus(-adversary(real_x)).mean()
                + torch.nn.functional.softplus(adversary(fake.detach())).mean()
            )
            adv_loss.backward()
            adv_opt.step()
        better = ll.detach() > best[3]
        best[0] = torch.where(better[:, None, None], ch, best[0])
        best[1] = torch.where(better[:, None], rc, best[1])
        best[2] = torch.where(better[:, None], ln.detach(), best[2])
        best[3] = torch.where(better, ll.detach(), best[3])
        trace.append(float((ll.detach() / sites).mean()))
        bar.update(**{"logL/site": f"{trace[-1]:.4f}"})
    bar.close()
    decoded = [x.detach() for x in best]
    # 3. Refinement by ML NNIs (or ML branch lengths only).
    rounds = 1 + (s.perturbations if s.refine == "nni" else 0)
    bar = PhaseProgress(rounds, f"{label} ML search", "round", progress)

    def searched_round(result: NNISearchResult) -> None:
        bar.update(**{"logL/site": f"{float((result.log_likelihood / sites).mean()):.4f}"})

    search = nni_search(
        decoded[0], decoded[1], decoded[2].clamp_min(MIN_LENGTH), tips, weights, model,
        max_rounds=s.nni_rounds if s.refine == "nni" else 0,
    )  # fmt: skip
    searched_round(search)
    if rounds > 1:
        search = perturbed_search(search, tips, weights, model, s.perturbations, seed=seed, max_rounds=s.nni_rounds,
                                  on_round=searched_round)  # fmt: skip
    bar.close()
    with torch.no_grad():
        sorted_pts = _ball(v).cpu().double().numpy()  # [B, n, dim], rows in names[k] (sorted) order

    def ete(ch: torch.Tensor, rc: torch.Tensor, ln: torch.Tensor, k: int):
        return _to_ete(ch[k].cpu().numpy(), rc[k].cpu().numpy(), ln[k].detach().cpu().double().numpy(), names[k])

    # 4. Zero-length branches re-resolved where the likelihood is flat.
    searched = [ete(search.children, search.root_children, search.lengths, k) for k in range(b)]
    final, flat_moves = list(searched), [0] * b
    if s.flat_resolution != "none" and s.refine == "nni":
        for k in range(b):
            final[k], flat_moves[k] = resolve_flat_branches(searched[k], target[k], names[k], FLAT_LENGTH)
    scores = aucs = np.full(b, np.nan)
    if judge is not None:
        schedules = tree_batch([unrooted_tree(t, names[k]) for k, t in enumerate(final)])
        with torch.no_grad():
            logit = judge.score(JudgeTrees(
                torch.as_tensor(schedules.children, device=device),
                torch.as_tensor(schedules.root_children, device=device),
                torch.as_tensor(schedules.lengths, dtype=dtype, device=device),
            ))  # fmt: skip
            held_logit = judge.score(held)
        scores = torch.sigmoid(logit).cpu().numpy()
        aucs = ((held_logit[None, :] > logit[:, None]).double().mean(1)
                + 0.5 * (held_logit[None, :] == logit[:, None]).double().mean(1)).cpu().numpy()  # fmt: skip
    seconds = (time.perf_counter() - t0) / b
    out = []
    for k in range(b):
        inv = np.argsort(orders[k])
        out.append(
            LatentTree(
                names=list(batch[k][1]),
                tree=final[k],
                search_tree=searched[k],
                flat_interchanges=flat_moves[k],
                log_likelihood=float(search.log_likelihood[k]),
                decoded_tree=ete(decoded[0], decoded[1], decoded[2], k),
                decoded_log_likelihood=float(decoded[3][k]),
                start_tree=ete(*start, k),
                points=sorted_pts[k][inv],
                model=model.substitution_model(k),
                nni_moves=int(search.moves[k]),
                judge_score=float(scores[k]),
                judge_auc=float(aucs[k]),
                seconds=seconds,
                trace=trace,
            )
        )
    return out
