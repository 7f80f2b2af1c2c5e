"""Maximum-likelihood fits on fixed trees (seqae.phylo.mlfit) and agreement with IQ-TREE
(seqae.phylo.iqtree; those tests skip where IQ-TREE is not installed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqae.phylo.alphabet import decode
from seqae.phylo.gtr import GTRGamma
from seqae.phylo.iqtree import find_iqtree, model_string, run_iqtree
from seqae.phylo.likelihood import TreeTensors, log_likelihood
from seqae.phylo.mlfit import fit_ml, score_trees
from seqae.phylo.patterns import partial_codes, pattern_batch, site_patterns
from seqae.phylo.schedule import tree_batch, unrooted_tree
from seqae.phylo.simulate import SubstitutionModel, simulate_family

pytestmark = pytest.mark.usefixtures("one_torch_thread")
needs_iqtree = pytest.mark.skipif(find_iqtree() is None, reason="IQ-TREE is not installed (apt-get install iqtree)")

GTR = SubstitutionModel.gtr([1.0, 3.0, 0.5, 0.8, 4.0, 1.0], [0.3, 0.2, 0.2, 0.3], alpha=0.5)


def our_log_likelihood(tree, codes: np.ndarray, names: list[str], model: SubstitutionModel) -> float:
    """Our log-likelihood of ``tree`` with its own branch lengths and ``model``'s values."""
    tb = tree_batch([unrooted_tree(tree, names)])
    tips, weights = pattern_batch([site_patterns(codes)]).tensors()
    lengths = torch.as_tensor(tb.lengths)
    model_t = GTRGamma.from_substitution_model(model)
    return float(log_likelihood(TreeTensors.of(tb), tips, weights, model_t, lengths).detach()[0])


@needs_iqtree
@pytest.mark.parametrize(("n", "n_sites", "height"), [(8, 300, 0.5), (20, 400, 1.0)])
def test_pruning_matches_iqtree_on_its_fitted_tree_and_model(n: int, n_sites: int, height: float) -> None:
    # IQ-TREE fits branch lengths + GTR + G4 on the true topology (-te); we
    # evaluate its tree and its printed parameters.
    fam = simulate_family(n, n_sites, np.random.default_rng(n), model=GTR, height=height)
    iq = run_iqtree(fam.codes, fam.names, model="GTR+G4", tree=fam.tree)
    ours = our_log_likelihood(iq.tree, fam.codes, fam.names, iq.model)
    assert abs(ours - iq.log_likelihood) / n_sites <= 0.01
    assert abs(ours - iq.log_likelihood) / n_sites <= 1e-4  # what it is: the printed parameters' rounding
    # With every parameter given to IQ-TREE (-blfix and fixed model), the two agree to its printed digits.
    fixed = run_iqtree(fam.codes, fam.names, model=model_string(iq.model), tree=iq.tree, fix_branch_lengths=True)
    assert abs(ours - fixed.log_likelihood) <= 1e-4 + 1e-8 * abs(ours)


@needs_iqtree
def test_ambiguity_codes_and_gaps_as_iqtree_reads_them() -> None:
    fam = simulate_family(8, 200, np.random.default_rng(31), model=GTR, height=0.5)
    rng = np.random.default_rng(0)
    text = np.array([list(decode(row)) for row in fam.codes])
    where = rng.random(text.shape) < 0.08
    text[where] = rng.choice(list("RYSWKMBDHVN-"), size=int(where.sum()))
    codes = partial_codes(["".join(row) for row in text])
    iq = run_iqtree(codes, fam.names, model=model_string(GTR), tree=fam.tree, fix_branch_lengths=True)
    assert our_log_likelihood(fam.tree, codes, fam.names, GTR) == pytest.approx(iq.log_likelihood, abs=1e-3)


@needs_iqtree
def test_fit_reaches_iqtree_likelihood_on_a_fixed_tree() -> None:
    fam = simulate_family(10, 300, np.random.default_rng(3), model=GTR, height=0.5)
    iq = run_iqtree(fam.codes, fam.names, model="GTR+G4", tree=fam.tree)
    fit = fit_ml(tree_batch([unrooted_tree(fam.tree, fam.names)]), pattern_batch([site_patterns(fam.codes)]))
    # We fit the frequencies too (IQ-TREE's +F counts them), so ours may only be higher.
    assert fit.log_likelihood[0] >= iq.log_likelihood - 1e-3 * 300


def test_fit_beats_the_true_parameters_and_batches_like_single_fits() -> None:
    rng = np.random.default_rng(21)
    fams = [simulate_family(n, 150, rng, model=GTR, height=0.5) for n in (5, 4)]
    trees = [unrooted_tree(f.tree, f.names) for f in fams]
    pats = [site_patterns(f.codes) for f in fams]
    batched = fit_ml(tree_batch(trees), pattern_batch(pats))
    for b, (fam, tree, pat) in enumerate(zip(fams, trees, pats)):
        truth = our_log_likelihood(fam.tree, fam.codes, fam.names, GTR)
        assert batched.log_likelihood[b] >= truth  # the maximum is at least the truth's value
        alone = fit_ml(tree_batch([tree]), pattern_batch([pat]))
        assert batched.log_likelihood[b] == pytest.approx(alone.log_likelihood[0], abs=0.02)
    fitted = batched.ete_trees()[0]
    assert sorted(fitted.get_leaf_names()) == sorted(fams[0].names)
    assert our_log_likelihood(fitted, fams[0].codes, fams[0].names, batched.model.substitution_model(0)) == (
        pytest.approx(batched.log_likelihood[0], abs=1e-6)
    )


def test_score_trees_under_one_model_prefers_the_true_tree() -> None:
    fam = simulate_family(8, 400, np.random.default_rng(8), model=GTR, height=0.5)
    # A wrong tree: the true tree's leaves shuffled.
    wrong = fam.tree.copy()
    perm = np.random.default_rng(0).permutation(fam.names)
    for leaf, name in zip(wrong.get_leaves(), perm):
        leaf.name = name
    scores = score_trees(fam.codes, fam.names, [fam.tree, wrong])
    assert scores.log_likelihood[0] > scores.log_likelihood[1] + 10
    assert scores.model.n_models == 1
    with pytest.raises(ValueError, match="only in the alignment"):
        score_trees(fam.codes, fam.names + ["extra"], [fam.tree])
    with pytest.raises(ValueError, match="reference tree 3 out of range"):
        score_trees(fam.codes, fam.names, [fam.tree], reference=3)


def test_a_subset_of_the_batch_has_the_whole_batchs_log_likelihoods_to_the_last_bit() -> None:
    """The branch-length search evaluates smaller steps only for the families still waiting for one;
    that is exact because each family's numbers depend on its own rows alone."""
    fams = [simulate_family(n, 200, np.random.default_rng(n), model=GTR, height=0.6) for n in (9, 9, 9, 9, 9)]
    tb = tree_batch([unrooted_tree(f.tree, f.names) for f in fams])
    tips, weights = pattern_batch([site_patterns(f.codes) for f in fams]).tensors()
    tt, lengths = TreeTensors.of(tb), torch.as_tensor(tb.lengths)
    model = GTRGamma(len(fams), 4, freqs=np.array([[0.3, 0.2, 0.2, 0.3]] * 5), alpha=np.linspace(0.3, 2.0, 5))
    with torch.no_grad():
        whole = log_likelihood(tt, tips, weights, model, lengths)
        rows = torch.tensor([3, 0, 4])
        part = log_likelihood(tt.rows(rows), tips[rows], weights[rows], model.rows(rows), lengths[rows])
    assert torch.equal(part, whole[rows])
    assert model.rows(rows).n_models == 3
