"""Maximum-likelihood branch lengths and GTR + Gamma on fixed trees, by L-BFGS in torch.

* :func:`fit_ml` fits, for a batch of families on fixed topologies, the
  branch lengths and (optionally) each family's model, and returns the
  log-likelihoods and the fitted trees.
* :func:`score_trees` gives several trees of one family their log-likelihood
  under **one** GTR + Gamma model: the model is fitted on a reference tree,
  then frozen while each tree's branch lengths are fitted (all trees in one
  batch). This is how the tree stage compares NJ, FastTree, IQ-TREE and the
  latent tree on equal terms.

Parametrisation: branch length ``t = MIN_LENGTH + softplus(raw)`` (IQ-TREE's
lower bound 1e-6), model parameters as in :class:`~seqae.phylo.gtr.GTRGamma`;
frequencies start at the alignment's base counts (gaps ignored), as IQ-TREE's
``+F``, and are then fitted. L-BFGS with a strong-Wolfe line search on the
mean negative log-likelihood per site; the families' objectives are summed
(independent parameters), and restarts of L-BFGS continue until one gains
less than ``tolerance`` log-likelihood units per site.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from seqae.phylo.gtr import GTRGamma
from seqae.phylo.likelihood import TreeTensors, log_likelihood
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
#: Where branch lengths start when the input tree has none (or zero).
_START_LENGTH = 1e-3


@dataclass
class MLFit:
    """Result of :func:`fit_ml`.

    Attributes:
        log_likelihood: ``[B]`` natural-log likelihood of each family at the optimum.
        lengths: ``[B, E]`` fitted padded branch lengths (tensor, no gradient).
        model: the fitted model (``n_models`` 1 or ``B``).
        trees: the batch.
        iterations: L-BFGS iterations run.
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


def _raw_lengths(lengths: np.ndarray) -> np.ndarray:
    """Inverse of ``MIN_LENGTH + softplus``; zero or missing lengths start at :data:`_START_LENGTH`."""
    t = np.where(np.asarray(lengths) > 10 * MIN_LENGTH, lengths, _START_LENGTH) - MIN_LENGTH
    return np.where(t > 30.0, t, np.log(np.expm1(t)))


def fit_ml(
    trees: TreeBatch,
    patterns: PatternBatch,
    model: GTRGamma | None = None,
    fit_model: bool = True,
    n_categories: int = 4,
    max_iter: int = 500,
    tolerance: float = 1e-7,
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
        max_iter: L-BFGS iterations at most, over all restarts.
        tolerance: stop when a restart gains less than this per site.
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
    model.requires_grad_(fit_model)
    tt = TreeTensors.of(trees, device)
    tips, weights = patterns.tensors(dtype, device)
    raw = torch.nn.Parameter(torch.as_tensor(_raw_lengths(trees.lengths), dtype=dtype, device=device))
    params = [raw] + ([p for p in model.parameters()] if fit_model else [])
    n_sites = float(weights.sum())

    def lengths() -> torch.Tensor:
        return MIN_LENGTH + torch.nn.functional.softplus(raw)

    optimizer = torch.optim.LBFGS(
        params, lr=1.0, max_iter=50, history_size=100, tolerance_grad=1e-10, tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )  # fmt: skip

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = -log_likelihood(tt, tips, weights, model, lengths()).sum() / n_sites
        loss.backward()
        return loss

    def mean_loss() -> float:
        with torch.no_grad():
            return float(-log_likelihood(tt, tips, weights, model, lengths()).sum() / n_sites)

    best = mean_loss()
    iterations = 0
    while iterations < max_iter:
        optimizer.step(closure)
        iterations = int(optimizer.state[raw].get("n_iter", iterations))
        now = mean_loss()
        gained = best - now
        best = min(best, now)
        if gained < tolerance:
            break
    model.requires_grad_(True)
    with torch.no_grad():
        final = lengths().detach()
        ll = log_likelihood(tt, tips, weights, model, final).cpu().double().numpy()
    return MLFit(log_likelihood=ll, lengths=final, model=model, trees=trees, iterations=iterations)


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
    ref = fit_ml(tree_batch([schedules[reference]]), pattern_batch([pats]), n_categories=n_categories, dtype=dtype, device=device)
    fit = fit_ml(
        tree_batch(schedules), pattern_batch([pats] * len(trees)), model=ref.model, fit_model=False, dtype=dtype, device=device
    )
    return TreeScores(log_likelihood=fit.log_likelihood, model=ref.model, reference=reference, fit=fit)
