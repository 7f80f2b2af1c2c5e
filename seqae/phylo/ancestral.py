"""Marginal ancestral sequences at the internal nodes of a tree, as FASTA whose names match the tree's.

:func:`ancestral_states` computes, for every internal node and site, the
posterior probability of each base given the alignment, the tree and a GTR +
Gamma model (empirical Bayes: the model and branch lengths are fitted by
maximum likelihood first unless given; Yang, Kumar & Nei 1995), and the most
probable base. The posteriors come from the inside and outside passes of
:mod:`seqae.phylo.likelihood`.

Names: :func:`name_internal_nodes` gives every unnamed internal node of the
caller's ``ete3.Tree`` a name (``N1``, ``N2``, ... in pre-order), so that the
Newick/NHX the caller then writes (:func:`seqae.phylo.io.write_nhx` writes
internal names as labels) and the FASTA of :func:`write_ancestral_fasta`
name the same nodes. A bifurcating root is not a node of the unrooted tree
the likelihood sees (its two branches are one), so it gets no sequence;
trees written by the tree stage have a trifurcating root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqae.phylo.alphabet import BASES
from seqae.phylo.gtr import GTRGamma
from seqae.phylo.io import write_family
from seqae.phylo.likelihood import TreeTensors, log_likelihood, marginal_posteriors
from seqae.phylo.mlfit import fit_ml
from seqae.phylo.patterns import pattern_batch, site_patterns
from seqae.phylo.schedule import tree_batch, unrooted_tree
from seqae.phylo.simulate import SubstitutionModel

__all__ = ["AncestralStates", "ancestral_states", "name_internal_nodes", "write_ancestral_fasta"]


def name_internal_nodes(tree, prefix: str = "N"):
    """Name the unnamed internal nodes of ``tree`` in place: ``prefix1``, ``prefix2``, ... in pre-order.

    Names already in the tree are kept and skipped by the numbering.

    Returns:
        ``tree`` (the same object).

    Raises:
        ValueError: two nodes already share a name.
    """
    taken: set[str] = set()
    for node in tree.traverse("preorder"):
        if node.name:
            if node.name in taken:
                raise ValueError(f"two nodes of the tree are named {node.name!r}")
            taken.add(node.name)
    k = 0
    for node in tree.traverse("preorder"):
        if not node.is_leaf() and not node.name:
            k += 1
            while f"{prefix}{k}" in taken:
                k += 1
            node.name = f"{prefix}{k}"
    return tree


@dataclass
class AncestralStates:
    """Marginal reconstruction at the internal nodes.

    Attributes:
        nodes: internal node names (those of the input tree).
        posteriors: ``[len(nodes), L, 4]`` P(base A, C, G, T | data) per site.
        log_likelihood: the alignment's log-likelihood under the model used.
        model: the model used (fitted unless given).
    """

    nodes: list[str]
    posteriors: np.ndarray
    log_likelihood: float
    model: SubstitutionModel

    def sequences(self) -> dict[str, str]:
        """Node name -> most probable base at each site (ties: the first of A C G T)."""
        best = np.frombuffer(BASES.encode("ascii"), dtype=np.uint8)[self.posteriors.argmax(-1)]
        return {name: row.tobytes().decode("ascii") for name, row in zip(self.nodes, best)}


def ancestral_states(
    codes: np.ndarray,
    names: list[str],
    tree,
    model: SubstitutionModel | None = None,
    n_categories: int = 4,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> AncestralStates:
    """Marginal ancestral states at the named internal nodes of ``tree``.

    Args:
        codes: ``[n, L]`` alignment codes, rows in ``names`` order.
        names: sequence names, the tree's leaves.
        tree: ``ete3.Tree``; name its internal nodes first
            (:func:`name_internal_nodes`): unnamed ones are left out.
        model: a fixed model, used with the tree's own branch lengths; None =
            fit GTR + Gamma(``n_categories``) and the branch lengths by
            maximum likelihood first.
        n_categories: Gamma categories of the fitted model.
        dtype, device: of the computation.

    Raises:
        ValueError: leaves that do not match ``names``, or an alignment column
            without any base.
    """
    schedule = unrooted_tree(tree, names)
    trees = tree_batch([schedule])
    patterns = pattern_batch([site_patterns(codes)])
    if model is None:
        fit = fit_ml(trees, patterns, n_categories=n_categories, dtype=dtype, device=device)
        gtr, lengths, logl = fit.model, fit.lengths, float(fit.log_likelihood[0])
    else:
        gtr = GTRGamma.from_substitution_model(model, dtype=dtype, device=device)
        lengths = torch.as_tensor(trees.lengths, dtype=dtype, device=device)
        tips, weights = patterns.tensors(dtype, device)
        with torch.no_grad():
            logl = float(log_likelihood(TreeTensors.of(trees, device), tips, weights, gtr, lengths)[0])
    posteriors = marginal_posteriors(trees, patterns, gtr, lengths)[0]
    keep = [k for k, name in enumerate(schedule.internal_names) if name]
    return AncestralStates(
        nodes=[schedule.internal_names[k] for k in keep],
        posteriors=posteriors[keep],
        log_likelihood=logl,
        model=gtr.substitution_model(0),
    )


def write_ancestral_fasta(states: AncestralStates, path: str | os.PathLike[str]) -> Path:
    """Write the most probable ancestral sequences as FASTA (one record per internal node, atomically)."""
    return write_family(states.sequences(), path)
