"""Marginal ancestral sequences (seqae.phylo.ancestral): posteriors against a brute-force
sum over internal states, names that match the NHX the project writes, FASTA output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seqae.phylo.ancestral import (
    ancestral_states,
    name_internal_nodes,
    write_ancestral_fasta,
)
from seqae.phylo.ete import Tree
from seqae.phylo.io import read_family, read_tree, write_nhx
from seqae.phylo.schedule import unrooted_tree
from seqae.phylo.simulate import SubstitutionModel, simulate_family
from tests.conftest import internal_state_joint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GTR = SubstitutionModel.gtr([1.0, 3.0, 0.5, 0.8, 4.0, 1.0], [0.3, 0.2, 0.2, 0.3], alpha=0.5)


def brute_force_posteriors(tree, names, codes: np.ndarray, model: SubstitutionModel) -> dict[str, np.ndarray]:
    """Internal node name -> [L, 4] posterior, by enumerating every internal state assignment."""
    ut = unrooted_tree(tree, names)
    states, joint = internal_state_joint(ut, codes, model)
    post = np.stack(
        [np.stack([joint[:, states[:, k] == x].sum(1) for x in range(4)], -1) for k in range(ut.n_taxa - 2)]
    )
    return dict(zip(ut.internal_names, post / post.sum(-1, keepdims=True)))


def test_posteriors_match_brute_force() -> None:
    fam = simulate_family(5, 30, np.random.default_rng(12), model=GTR, height=0.8)
    codes = fam.codes.copy()
    codes[2, :4] = 4
    tree = Tree("(t0:0.1,t1:0.3,((t2:0.2,t3:0.05):0.15,t4:0.4):0.2);")
    name_internal_nodes(tree)
    got = ancestral_states(codes, fam.names, tree, model=GTR)
    want = brute_force_posteriors(tree, fam.names, codes, GTR)
    assert sorted(got.nodes) == sorted(want) == ["N1", "N2", "N3"]
    for name, post in zip(got.nodes, got.posteriors):
        assert post == pytest.approx(want[name], abs=1e-10)
    seqs = got.sequences()
    assert seqs["N1"] == "".join("ACGT"[i] for i in want["N1"].argmax(-1))


def test_names_match_the_nhx_and_fasta_is_written(tmp_path: Path) -> None:
    fam = simulate_family(6, 120, np.random.default_rng(4), model=GTR, height=0.3)
    tree = fam.tree.copy()
    tree.get_children()[0].name = "clade_a"  # an existing internal name is kept
    name_internal_nodes(tree)
    nhx = write_nhx(tree, tmp_path / "f.nhx", features=[])
    states = ancestral_states(fam.codes, fam.names, tree)  # fitted model and branch lengths
    fasta = write_ancestral_fasta(states, tmp_path / "f.ancestral.fa")
    records = read_family(fasta)
    back = read_tree(nhx)
    internal = {node.name for node in back.traverse() if not node.is_leaf()}
    # The simulated tree's bifurcating root is not a node of the unrooted tree.
    assert set(records.names) == internal - {back.name}
    assert "clade_a" in records.names
    assert all(len(s) == 120 for s in records.sequences)
    assert np.isfinite(states.log_likelihood)
    # At short height the ancestors are close to their descendants: the
    # reconstruction of the node above t-leaves agrees with most sites of a leaf.
    post = states.posteriors
    assert post.shape == (len(states.nodes), 120, 4) and np.allclose(post.sum(-1), 1.0)
    assert (post.max(-1) > 0.9).mean() > 0.5


def test_name_internal_nodes_rejects_duplicates() -> None:
    tree = Tree("((a,b)x,(c,d)x);", format=1)
    with pytest.raises(ValueError, match="two nodes of the tree are named 'x'"):
        name_internal_nodes(tree)
    tree = name_internal_nodes(Tree("((a,b)N1,(c,d),e);", format=1))
    assert sorted(n.name for n in tree.traverse() if not n.is_leaf()) == ["N1", "N2", "N3"]
