"""Maximum-likelihood branch lengths and GTR + Gamma on fixed trees, in torch.

* :func:`fit_ml` fits, for a batch of families on fixed topologies, the
  branch lengths and (optionally) each family's model, and returns the
  log-likelihoods and the fitted trees.
* :func:`score_trees` gives several trees of one family their log-likelihood
  under **one** GTR + Gamma model: the model is fitted on a reference tree,
  then frozen while each tree's branch lengths are fitted (all trees in one
  batch). This is how the tree stage compares NJ, FastTree, IQ-TREE and the
  latent tree on equal terms.

The fit alternates, as PhyML and IQ-TREE do, between the branch lengths with
the model fixed and the model with the branch lengths fixed, until a round
gains less than ``tolerance`` log-likelihood units per site in every family:

* branch lengths: Newton steps on every branch of every family at once, from
  the exact first and second derivatives of each branch
  (:func:`~seqae.phylo.likelihood.branch_derivatives`), the step halved per
  family until its likelihood rises; lengths stay in [1e-6, 10] (IQ-TREE's
  bounds). One L-BFGS over all families' branches together, tried first,
  needed hundreds of iterations: the families' independent problems share
  its line search and curvature pairs.
* the model (:class:`~seqae.phylo.gtr.GTRGamma`: 5 exchangeabilities, 4
  frequency logits, alpha per family): a few L-BFGS iterations. Frequencies
  start at the alignment's base counts (gaps ignored), as IQ-TREE's ``+F``,
  and are then fitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from seqae.phylo.gtr import GTRGamma
from seqae.phylo.likelihood import TreeTensors, branch_derivatives, log_likelihood
from seqae.phylo.patterns import (
    PatternBatch,
    SitePatterns,
    pattern_batch,
    site_patterns,
)
from seqae.phylo.schedule import TreeBatch, tree_batch, unrooted_tree

__all__ = ["MIN_LENGTH", "MLFit", "TreeScores", "empirical_freqs", "fit_ml", "score_trees"]

#: Shortest branch (IQ-TREE's minimum branch length).
MIN_LENGTH = 1e-6
#: Longest branch (IQ-TREE's maximum branch length).
MAX_LENGTH = 10.0
#: Where branch lengths start when the input tree has none (or zero).
_START_LENGTH = 1e-3
#: Fractions of the Newton step tried, in order, until the likelihood rises.
_STEP_SCALES = (1.0, 0.5, 0.25, 0.125, 1.0 / 16, 1.0 / 64)
#: L-BFGS iterations on the model per round.
_MODEL_ITER = 10


@dataclass
class MLFit:
    """Result of :func:`fit_ml`.

    Attributes:
        log_likelihood: ``[B]`` natural-log likelihood of each family at the optimum.
        lengths: ``[B, E]`` fitted padded branch lengths (tensor, no gradient).
        model: the fitted model (``n_models`` 1 or ``B``).
        trees: the batch.
        iterations: Newton iterations on the branch lengths plus L-BFGS iterations on the model.
    """

    log_likelihood: np.ndarray
    lengths: torch.Tensor
    model: GTRGamma
    trees: TreeBatch
    iterations: int

    def ete_trees(self) -> list:
        """The fitted trees as ``ete3.Tree`` (unrooted, trifurcating root; internal names kept)."""
        real = self.trees.real_lengths(self.lengths.cpu().double().numpy())
        return [tree.to_ete(ell) for tree, ell in zip(self.trees.trees, real)]


def empirical_freqs(patterns: Sequence[SitePatterns]) -> np.ndarray:
    """``[B, 4]`` base frequencies counted over each alignment (missing codes ignored; a pseudocount of 1 each)."""
    out = np.empty((len(patterns), 4))
    for b, p in enumerate(patterns):
        counts = np.ones(4)
        for base in range(4):
            counts[base] += ((p.codes == base) * p.weights[None, :]).sum()
        out[b] = counts / counts.sum()
    return out


def fit_ml(
    trees: TreeBatch,
    patterns: PatternBatch,
    model: GTRGamma | None = None,
    fit_model: bool = True,
    n_categories: int = 4,
    max_rounds: int = 30,
    max_iter: int = 8,
    tolerance: float = 1e-6,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> MLFit:
    """Fit branch lengths (and the model) of a batch of fixed trees by maximum likelihood.

    Args:
        trees: topologies with starting branch lengths (:func:`~seqae.phylo.schedule.tree_batch`).
        patterns: the families' patterns, same order and padding ``N``.
        model: starting model, ``n_models`` 1 (shared by the batch) or ``B``;
            default one GTR + Gamma per family from the empirical frequencies.
        fit_model: also fit the model's parameters (else only branch lengths).
        n_categories: Gamma categories of the default model.
        max_rounds: rounds (branch lengths, then the model) at most.
        max_iter: Newton iterations on the branch lengths, and L-BFGS
            iterations on the model, at most per round.
        tolerance: stop when a round (or a Newton iteration) gains less than
            this per site in every family.
        dtype, device: of the computation (float64 for comparisons with other programs).

    Returns:
        :class:`MLFit`.
    """
    if len(trees) != len(patterns.patterns) or trees.n_taxa != patterns.tips.shape[1]:
        raise ValueError(
            f"{len(trees)} trees of {trees.n_taxa} leaves for {len(patterns.patterns)} alignments "
            f"of {patterns.tips.shape[1]} rows"
        )
    if model is None:
        model = GTRGamma(len(trees), n_categories, freqs=empirical_freqs(patterns.patterns), dtype=dtype, device=device)
    model = model.to(dtype=dtype, device=device)
    tt = TreeTensors.of(trees, device)
    tips, weights = patterns.tensors(dtype, device)
    sites = weights.sum(-1)  # [B]
    start = np.where(trees.lengths > 10 * MIN_LENGTH, trees.lengths, _START_LENGTH)
    lengths = torch.as_tensor(np.where(trees.edge_mask, start, 0.0), dtype=dtype, device=device)
    iterations = 0
    with torch.no_grad():
        ll = log_likelihood(tt, tips, weights, model, lengths)
    for _ in range(max_rounds):
        before = ll
        lengths, ll, steps = _newton_lengths(tt, tips, weights, model, lengths, ll, tolerance * sites, max_iter)
        iterations += steps
        if fit_model:
            ll, steps = _fit_model(tt, tips, weights, model, lengths, max_iter)
            iterations += steps
        if bool(((ll - before) < tolerance * sites).all()):
            break
    return MLFit(
        log_likelihood=ll.cpu().double().numpy(), lengths=lengths, model=model, trees=trees, iterations=iterations
    )


def _newton_lengths(
    tt: TreeTensors,
    tips: torch.Tensor,
    weights: torch.Tensor,
    model: GTRGamma,
    lengths: torch.Tensor,
    ll: torch.Tensor | None,
    tolerance: torch.Tensor,
    max_iter: int,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Branch lengths by simultaneous per-branch Newton steps, halved per family until the likelihood rises.

    Where a branch's second derivative is not negative (the likelihood is not
    concave there) the step doubles or halves the length instead, towards
    its gradient. Stops when no family gains ``tolerance`` ``[B]``. ``ll``:
    the log-likelihoods at ``lengths``, or None to take them from the first
    derivative pass (the same numbers, without a pass of their own).
    """
    real = tt.edge_mask
    step = 0
    if ll is None and max_iter < 1:
        with torch.no_grad():
            ll = log_likelihood(tt, tips, weights, model, lengths)
    for step in range(1, max_iter + 1):  # noqa: B007 - returned below: the iterations run
        current, first, second = branch_derivatives(tt, tips, weights, model, lengths)
        if ll is None:
            ll = current
        newton = torch.where(second < 0, -first / second.clamp(max=-1e-300), torch.sign(first) * lengths)
        newton = torch.where(real, newton, torch.zeros_like(newton))
        accepted = torch.zeros_like(ll, dtype=torch.bool)
        new_lengths, new_ll = lengths.clone(), ll.clone()
        for scale in _STEP_SCALES:
            trial = torch.where(real, (lengths + scale * newton).clamp(MIN_LENGTH, MAX_LENGTH), lengths)
            # After the full step, only the families that still wait for a smaller one are
            # evaluated: each family's likelihood is computed on its own rows, so the numbers
            # are those of the whole batch.
            with torch.no_grad():
                if not bool(accepted.any()):
                    trial_ll = log_likelihood(tt, tips, weights, model, trial)
                else:
                    todo = (~accepted).nonzero()[:, 0]
                    trial_ll = ll.clone()
                    trial_ll[todo] = log_likelihood(
                        tt.rows(todo), tips[todo], weights[todo], model.rows(todo), trial[todo]
                    )
            better = ~accepted & (trial_ll > ll)
            new_lengths[better] = trial[better]
            new_ll[better] = trial_ll[better]
            accepted |= better
            if bool(accepted.all()):
                break
        gained = new_ll - ll
        lengths, ll = new_lengths, new_ll
        if bool((gained < tolerance).all()):
            break
    return lengths, ll, step


def _fit_model(
    tt: TreeTensors, tips: torch.Tensor, weights: torch.Tensor, model: GTRGamma, lengths: torch.Tensor, max_iter: int
) -> tuple[torch.Tensor, int]:
    """The model's parameters by L-BFGS with the branch lengths fixed; returns the log-likelihoods and iterations."""
    params = list(model.parameters())
    n_sites = float(weights.sum())
    optimizer = torch.optim.LBFGS(
        params, lr=1.0, max_iter=min(max_iter, _MODEL_ITER), history_size=20, tolerance_grad=1e-10,
        tolerance_change=1e-12, line_search_fn="strong_wolfe",
    )  # fmt: skip

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = -log_likelihood(tt, tips, weights, model, lengths).sum() / n_sites
        loss.backward()
        return loss

    optimizer.step(closure)
    for p in params:
        p.grad = None
    with torch.no_grad():
        ll = log_likelihood(tt, tips, weights, model, lengths)
    return ll, int(optimizer.state[params[0]].get("n_iter", 0))


@dataclass
class TreeScores:
    """Result of :func:`score_trees`.

    Attributes:
        log_likelihood: ``[T]`` each tree's log-likelihood under the shared model.
        model: the one model (fitted on the reference tree).
        reference: index of the tree the model was fitted on.
        fit: the branch-length fit of all trees (its ``ete_trees()`` have the
            fitted lengths).
    """

    log_likelihood: np.ndarray
    model: GTRGamma
    reference: int
    fit: MLFit


def score_trees(
    codes: np.ndarray,
    names: Sequence[str],
    trees: Sequence,
    reference: int = 0,
    n_categories: int = 4,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> TreeScores:
    """Log-likelihood of several trees of one family under one fitted GTR + Gamma model.

    Args:
        codes: ``[n, L]`` alignment codes, rows in ``names`` order.
        names: sequence names.
        trees: ``ete3.Tree`` objects on ``names`` (any rooting; branch lengths
            are starting values only).
        reference: which tree the model is fitted on (with its branch lengths).
        n_categories: Gamma categories.
        dtype, device: of the computation.

    Raises:
        ValueError: no trees, a bad reference index, or a tree whose leaves
            are not ``names`` (see :func:`~seqae.phylo.schedule.unrooted_tree`).
    """
    if not trees:
        raise ValueError("no trees to score")
    if not 0 <= reference < len(trees):
        raise ValueError(f"reference tree {reference} out of range for {len(trees)} trees")
    schedules = [unrooted_tree(tree, names) for tree in trees]
    pats = site_patterns(codes)
    ref = fit_ml(
        tree_batch([schedules[reference]]), pattern_batch([pats]), n_categories=n_categories, dtype=dtype, device=device
    )
    fit = fit_ml(
        tree_batch(schedules),
        pattern_batch([pats] * len(trees)),
        model=ref.model,
        fit_model=False,
        dtype=dtype,
        device=device,
    )
    return TreeScores(log_likelihood=fit.log_likelihood, model=ref.model, reference=reference, fit=fit)
