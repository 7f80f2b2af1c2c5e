"""Phylogenetics for the tree stage: families of homologous sequences and trees.

One module per concern:

* :mod:`~seqae.phylo.alphabet` — DNA codes of aligned families (A C G T = 0..3,
  gap/ambiguous = 4).
* :mod:`~seqae.phylo.simulate` — birth–death and coalescent trees, HKY85/GTR
  + Gamma sequence evolution: aligned families with their true trees.
* :mod:`~seqae.phylo.distance` — p-distance, JC69, path lengths on a tree,
  Euclidean and Poincaré-ball distances between latent vectors.
* :mod:`~seqae.phylo.nj` — neighbor joining (exact, pruned search, numpy).
* :mod:`~seqae.phylo.nni` — balanced minimum evolution: tree length, branch
  lengths and NNI refinement of a tree (FastME's criterion).
* :mod:`~seqae.phylo.compare` — normalised Robinson–Foulds distance.
* :mod:`~seqae.phylo.io` — FASTA families in (checked, one-line errors),
  Newick/NHX trees in and out.
* :mod:`~seqae.phylo.render` — tree figures with ete3, off screen.
* :mod:`~seqae.phylo.baselines` — NJ, BME-NNI and FastTree baseline trees, timed.
* :mod:`~seqae.phylo.likelihood` — Felsenstein's pruning in torch (batched
  over families, site patterns and rate categories; CPU or GPU), with
  :mod:`~seqae.phylo.gtr` (learnable GTR + Gamma), :mod:`~seqae.phylo.schedule`
  (trees as a post-order schedule shared by a batch) and
  :mod:`~seqae.phylo.patterns` (site patterns).
* :mod:`~seqae.phylo.mlfit` — maximum-likelihood branch lengths and model on
  fixed trees; every tree of a family scored under one model.
* :mod:`~seqae.phylo.ancestral` — marginal ancestral sequences (FASTA named
  like the tree's internal nodes).
* :mod:`~seqae.phylo.iqtree` — IQ-TREE as a subprocess (fixed-tree fits, model
  parsing), where installed.
* :mod:`~seqae.phylo.stage` — the tree stage: a batch of families fitted
  together, with :mod:`~seqae.phylo.inputs` (batch tables, families, reference
  trees and labels read and checked), :mod:`~seqae.phylo.outputs` (per family
  baselines, log-likelihoods, ancestral sequences, files) and
  :mod:`~seqae.phylo.trees_table` (``trees.tsv``: columns, gathering, summary).
* :mod:`~seqae.phylo.treeae` — the point-cloud tree autoencoder's settings and
  training (``trees.model: points``), its network in
  :mod:`~seqae.phylo.treeae_model`.

The torch modules are not imported here (``import seqae.phylo`` stays
numpy-only); import them from their modules.

Trees are ``ete3.Tree`` objects with branch lengths in ``dist`` (expected
substitutions per site for sequence distances). ete3 is imported only by the
functions that build, read or draw trees.
"""

from seqae.phylo.alphabet import BASES, CODE_MISSING, decode, encode
from seqae.phylo.baselines import (
    BaselineResult,
    bme_p_distance,
    fasttree,
    find_fasttree,
    nj_jc69,
    nj_p_distance,
    run_baselines,
)
from seqae.phylo.compare import RFResult, normalized_rf, robinson_foulds
from seqae.phylo.distance import (
    PairCounts,
    euclidean_distances,
    jc69_distance,
    p_distance,
    pair_counts,
    patristic_distances,
    poincare_distances,
)
from seqae.phylo.io import (
    Family,
    read_family,
    read_tree,
    write_family,
    write_newick,
    write_nhx,
)
from seqae.phylo.nj import NJLinkage, linkage_to_tree, neighbor_joining, nj_linkage
from seqae.phylo.nni import NNIResult, bme_length, bme_nni
from seqae.phylo.simulate import (
    SimulatedFamily,
    SubstitutionModel,
    TreeArrays,
    birth_death_tree,
    coalescent_tree,
    evolve,
    gamma_category_rates,
    simulate_family,
)

__all__ = [
    "BASES",
    "CODE_MISSING",
    "BaselineResult",
    "Family",
    "NJLinkage",
    "NNIResult",
    "PairCounts",
    "RFResult",
    "SimulatedFamily",
    "SubstitutionModel",
    "TreeArrays",
    "birth_death_tree",
    "bme_length",
    "bme_nni",
    "bme_p_distance",
    "coalescent_tree",
    "decode",
    "encode",
    "euclidean_distances",
    "evolve",
    "fasttree",
    "find_fasttree",
    "gamma_category_rates",
    "jc69_distance",
    "linkage_to_tree",
    "neighbor_joining",
    "nj_jc69",
    "nj_linkage",
    "nj_p_distance",
    "normalized_rf",
    "p_distance",
    "pair_counts",
    "patristic_distances",
    "poincare_distances",
    "read_family",
    "read_tree",
    "render_tree",
    "robinson_foulds",
    "run_baselines",
    "simulate_family",
    "write_family",
    "write_newick",
    "write_nhx",
]


def __getattr__(name: str):
    # render sets QT_QPA_PLATFORM on import; load it only when asked for.
    if name == "render_tree":
        from seqae.phylo.render import render_tree

        return render_tree
    raise AttributeError(f"module 'seqae.phylo' has no attribute {name!r}")
