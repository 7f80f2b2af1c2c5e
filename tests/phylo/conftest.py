"""Trees, distance matrices and families the phylogenetics tests share."""

from __future__ import annotations

import numpy as np
import pytest

from seqae.phylo.distance import patristic_distances
from seqae.phylo.ete import Tree
from seqae.phylo.io import write_family
from seqae.phylo.schedule import UnrootedTree
from seqae.phylo.simulate import SubstitutionModel, TreeArrays, birth_death_tree, simulate_family
from seqae.phylo.stage import run_family
from tests.conftest import torch_threads


def random_matrix(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random symmetric distance matrix (not additive), zero diagonal."""
    x = rng.random((n, n))
    d = x + x.T
    np.fill_diagonal(d, 0.0)
    return d


def random_additive(rng: np.random.Generator, n: int) -> tuple[Tree, np.ndarray, list[str]]:
    """A random binary tree with random branch lengths, and its path-length matrix."""
    shape = birth_death_tree(n, rng)
    lengths = rng.uniform(0.01, 1.0, size=shape.parent.size)
    lengths[0] = 0.0
    tree = TreeArrays(shape.parent, lengths, shape.leaf_nodes, shape.names).to_ete()
    dist, names = patristic_distances(tree, shape.names)
    return tree, dist, names


def unrooted_edges(tree: Tree) -> dict[frozenset[str], float]:
    """Split (the side without the first leaf, alphabetically) -> branch length.

    The two edges below a bifurcating root are one unrooted edge (lengths add).
    """
    leaves = {leaf.name for leaf in tree.get_leaves()}
    anchor = min(leaves)
    edges: dict[frozenset[str], float] = {}
    for node in tree.traverse():
        if node.is_root():
            continue
        below = frozenset(node.get_leaf_names())
        side = below if anchor not in below else frozenset(leaves - below)
        edges[side] = edges.get(side, 0.0) + node.dist
    return edges


#: Tree-autoencoder settings small enough for a test: a few hundred full-batch steps of 8 sequences.
TINY = {
    "model": "points",
    "epochs": 150,
    "adversarial_epochs": 15,
    "hidden": 32,
    "latent_dim": 8,
    "discriminator": {"steps": 25, "n_reference": 24, "batch": 16, "hidden": 16},
    "seed": 3,
}


# The tree stage's family, its files and its run: session-scoped, as the stage's and trees.tsv's tests both
# read the run.
@pytest.fixture(scope="session")
def family():
    rng = np.random.default_rng(11)
    return simulate_family(8, 200, rng, SubstitutionModel.hky85(2.0, alpha=0.5), height=0.5)


@pytest.fixture(scope="session")
def family_files(tmp_path_factory, family):
    folder = tmp_path_factory.mktemp("fam")
    fasta = write_family(family.sequences(), folder / "famA.fa")
    tree = folder / "famA.nwk"
    tree.write_text(family.newick() + "\n")
    labels = folder / "labels.tsv"
    labels.write_text("".join(f"{name}\t{'clade one' if k % 2 else 'B'}\n" for k, name in enumerate(family.names)))
    return fasta, tree, labels


@pytest.fixture(scope="session")
def family_run(tmp_path_factory, family_files):
    fasta, tree, labels = family_files
    out = tmp_path_factory.mktemp("out")
    with torch_threads(1):
        row = run_family(fasta, out, TINY, reference_tree=tree, labels=labels, family="famA", progress=False)
    return out, row


#: The substitution model of the tree-latent tests' families.
MODEL = SubstitutionModel.hky85(kappa=2.0, alpha=0.5)


def simulated_family(n: int, sites: int, seed: int, height: float = 0.5):
    """A family of ``n`` sequences of ``sites`` bases under MODEL."""
    return simulate_family(n, sites, np.random.default_rng(seed), model=MODEL, height=height)


def decoded_tree(children, root_children, lengths, names, k=0):
    """Tree ``k`` of a batch of decoded trees (children, root children and lengths per tree) as an ete3 tree."""
    n = len(names)
    return UnrootedTree(n, children[k].numpy(), root_children[k].numpy(), lengths[k].detach().numpy(), names,
                        [""] * (n - 2)).to_ete()  # fmt: skip
