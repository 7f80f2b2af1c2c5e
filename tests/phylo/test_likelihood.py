"""Felsenstein's pruning under GTR + Gamma (seqae.phylo.likelihood and its inputs):
exact small cases (brute force over ancestral states, JC69 closed forms),
padding and batching, gradients, underflow, tree conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqae.phylo.alphabet import decode
from seqae.phylo.ete import Tree
from seqae.phylo.gtr import GTRGamma
from seqae.phylo.likelihood import TreeTensors, branch_derivatives, log_likelihood, model_site_log_likelihoods
from seqae.phylo.patterns import partial_codes, partial_text, pattern_batch, site_patterns
from seqae.phylo.schedule import UnrootedTree, tree_batch, unrooted_tree
from seqae.phylo.simulate import SubstitutionModel, simulate_family
from tests.conftest import internal_state_joint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GTR = SubstitutionModel.gtr([1.0, 3.0, 0.5, 0.8, 4.0, 1.0], [0.3, 0.2, 0.2, 0.3], alpha=0.5)


def evaluate(
    trees: list[UnrootedTree], codes: list[np.ndarray], model: SubstitutionModel, n_taxa=None, dtype=torch.float64
):
    """Log-likelihood of each (tree, alignment) under a numpy model, the trees' own branch lengths."""
    tb = tree_batch(trees, n_taxa)
    pb = pattern_batch([site_patterns(c) for c in codes], n_taxa)
    tips, weights = pb.tensors(dtype)
    lengths = torch.as_tensor(tb.lengths, dtype=dtype)
    model_t = GTRGamma.from_substitution_model(model, dtype=dtype)
    return log_likelihood(TreeTensors.of(tb), tips, weights, model_t, lengths).detach()


def brute_force(tree: UnrootedTree, codes: np.ndarray, model: SubstitutionModel) -> float:
    """Log-likelihood summed over every assignment of internal states (tiny trees only)."""
    _, joint = internal_state_joint(tree, codes, model)
    return float(np.log(joint.sum(1)).sum())


@pytest.mark.parametrize("n", [4, 5])
def test_pruning_matches_brute_force_gtr_gamma(n: int) -> None:
    fam = simulate_family(n, 40, np.random.default_rng(n), model=GTR, height=0.6)
    codes = fam.codes.copy()
    codes[0, :5] = 4  # gaps / N: all-ones partials
    codes[1, 3] = 4
    tree = unrooted_tree(fam.tree, fam.names)
    got = float(evaluate([tree], [codes], GTR)[0])
    assert got == pytest.approx(brute_force(tree, codes, GTR), abs=1e-10)


def test_jc69_closed_form_through_missing_leaves() -> None:
    # Two of four leaves all missing: the likelihood is that of the pair,
    # 1/4 * P(path length), with JC69's P_same = 1/4 + 3/4 e^{-4d/3}.
    tree = unrooted_tree(Tree("((a:0.1,b:0.2):0.05,c:0.3,d:0.15);"), ["a", "b", "c", "d"])
    pair = np.array([[0, 0, 1, 2, 3, 3, 0], [0, 1, 1, 3, 2, 3, 2]], dtype=np.uint8)
    codes = np.vstack([pair, np.full((2, 7), 4, dtype=np.uint8)])
    codes[2:, 0] = 0  # a column without any base would be refused
    codes = codes[:, 1:]
    d = 0.1 + 0.2
    same = 0.25 * (0.25 + 0.75 * np.exp(-4 * d / 3))
    diff = 0.25 * (0.25 - 0.25 * np.exp(-4 * d / 3))
    n_same = int((codes[0] == codes[1]).sum())
    want = n_same * np.log(same) + (codes.shape[1] - n_same) * np.log(diff)
    assert float(evaluate([tree], [codes], SubstitutionModel.jc69())[0]) == pytest.approx(want, abs=1e-12)


def test_jc69_three_taxon_star_closed_form() -> None:
    tree = unrooted_tree(Tree("(a:0.1,b:0.4,c:0.7);"), ["a", "b", "c"])
    codes = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 2]], dtype=np.uint8).T.copy()  # columns AAA, AAC, ACG

    def p(t: float, same: bool) -> float:
        e = np.exp(-4 * t / 3)
        return 0.25 + 0.75 * e if same else 0.25 - 0.25 * e

    t = (0.1, 0.4, 0.7)
    want = 0.0
    for column in codes.T:
        want += np.log(sum(0.25 * np.prod([p(ti, x == root) for ti, x in zip(t, column)]) for root in range(4)))
    assert float(evaluate([tree], [codes], SubstitutionModel.jc69())[0]) == pytest.approx(want, abs=1e-12)


def test_padding_and_batching_change_nothing() -> None:
    rng = np.random.default_rng(11)
    fams = [simulate_family(n, 30, rng, model=GTR, height=0.5) for n in (4, 9, 6)]
    trees = [unrooted_tree(f.tree, f.names) for f in fams]
    alone = [float(evaluate([t], [f.codes], GTR)[0]) for t, f in zip(trees, fams)]
    batched = evaluate(trees, [f.codes for f in fams], GTR, n_taxa=12)
    assert batched.numpy() == pytest.approx(alone, abs=1e-9)
    # Lengths given on pad branches are ignored.
    tb = tree_batch(trees, 12)
    pb = pattern_batch([site_patterns(f.codes) for f in fams], 12)
    tips, weights = pb.tensors()
    lengths = torch.as_tensor(np.where(tb.edge_mask, tb.lengths, 0.7))
    again = log_likelihood(TreeTensors.of(tb), tips, weights, GTRGamma.from_substitution_model(GTR), lengths)
    assert again.detach().numpy() == pytest.approx(alone, abs=1e-9)


def test_rooting_and_multifurcations_do_not_change_the_likelihood() -> None:
    names = ["a", "b", "c", "d", "e"]
    codes = simulate_family(5, 25, np.random.default_rng(2), model=GTR).codes
    unrooted = Tree("(a:0.1,b:0.2,(c:0.3,(d:0.05,e:0.15):0.2):0.25);")
    rooted = Tree("((a:0.1,b:0.2):0.1,(c:0.3,(d:0.05,e:0.15):0.2):0.15);")  # same tree, root on a branch
    ll = [float(evaluate([unrooted_tree(t, names)], [codes], GTR)[0]) for t in (unrooted, rooted)]
    assert ll[0] == pytest.approx(ll[1], abs=1e-10)
    # A star resolved with zero-length branches: as the star itself (brute force on one resolution).
    star = unrooted_tree(Tree("(a:0.1,b:0.2,c:0.3,d:0.05,e:0.15);"), names)
    assert star.lengths[star.n_taxa :].tolist() == [0.0, 0.0]
    assert float(evaluate([star], [codes], GTR)[0]) == pytest.approx(brute_force(star, codes, GTR), abs=1e-10)


def test_gradients_match_finite_differences() -> None:
    rng = np.random.default_rng(5)
    fams = [simulate_family(n, 12, rng, model=GTR, height=0.5) for n in (5, 4)]
    tb = tree_batch([unrooted_tree(f.tree, f.names) for f in fams])
    pb = pattern_batch([site_patterns(f.codes) for f in fams])
    tips, weights = pb.tensors()
    tt = TreeTensors.of(tb)
    start = GTRGamma(2, 4, freqs=GTR.freqs, exchangeabilities=GTR.exchangeabilities, alpha=0.7)

    def ll(lengths, logits, log_rates, log_alpha):
        model = GTRGamma(2, 4)
        for name, value in (("freq_logits", logits), ("log_rates", log_rates), ("log_alpha", log_alpha)):
            delattr(model, name)
            setattr(model, name, value)
        return log_likelihood(tt, tips, weights, model, lengths)

    inputs = (torch.as_tensor(tb.lengths), start.freq_logits, start.log_rates, start.log_alpha)
    inputs = tuple(x.detach().clone().requires_grad_(True) for x in inputs)
    assert torch.autograd.gradcheck(ll, inputs, atol=1e-6, rtol=1e-5)


def test_many_taxa_do_not_underflow() -> None:
    fam = simulate_family(150, 60, np.random.default_rng(9), model=GTR, height=1.0)
    tree = unrooted_tree(fam.tree, fam.names)
    ll64 = float(evaluate([tree], [fam.codes], GTR)[0])
    ll32 = float(evaluate([tree], [fam.codes], GTR, dtype=torch.float32)[0])
    assert np.isfinite(ll64) and ll64 < -60 * np.log(4) * 2  # far below float64's smallest number per site product
    assert ll32 == pytest.approx(ll64, rel=1e-5)


def test_pad_patterns_have_zero_log_likelihood() -> None:
    fams = [simulate_family(4, n_sites, np.random.default_rng(n_sites), model=GTR) for n_sites in (5, 40)]
    tb = tree_batch([unrooted_tree(f.tree, f.names) for f in fams])
    pb = pattern_batch([site_patterns(f.codes) for f in fams])
    tips, _ = pb.tensors()
    site = model_site_log_likelihoods(
        TreeTensors.of(tb), tips, GTRGamma.from_substitution_model(GTR), torch.as_tensor(tb.lengths)
    )
    pad = pb.weights == 0
    assert pad.any() and bool(site[torch.as_tensor(pad)].abs().max() < 1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_matches_cpu() -> None:
    fam = simulate_family(30, 200, np.random.default_rng(4), model=GTR, height=0.5)
    tb = tree_batch([unrooted_tree(fam.tree, fam.names)])
    pb = pattern_batch([site_patterns(fam.codes)])
    out = []
    for device in ("cpu", "cuda"):
        tips, weights = pb.tensors(device=device)
        model = GTRGamma.from_substitution_model(GTR, device=device)
        lengths = torch.as_tensor(tb.lengths, device=device)
        out.append(float(log_likelihood(TreeTensors.of(tb, device), tips, weights, model, lengths)[0]))
    assert out[1] == pytest.approx(out[0], abs=1e-8)


def test_branch_derivatives_match_finite_differences() -> None:
    rng = np.random.default_rng(1)
    fams = [simulate_family(n, 40, rng, model=GTR, height=0.5) for n in (6, 4)]
    tb = tree_batch([unrooted_tree(f.tree, f.names) for f in fams])
    tips, weights = pattern_batch([site_patterns(f.codes) for f in fams]).tensors()
    tt = TreeTensors.of(tb)
    model = GTRGamma.from_substitution_model(GTR)
    lengths = torch.as_tensor(tb.lengths)
    ll, first, second = branch_derivatives(tt, tips, weights, model, lengths)
    assert ll.numpy() == pytest.approx(log_likelihood(tt, tips, weights, model, lengths).detach().numpy())
    eps = 1e-4
    for edge in range(tb.lengths.shape[1]):
        step = torch.zeros_like(lengths)
        step[:, edge] = eps
        with torch.no_grad():
            up, down = (log_likelihood(tt, tips, weights, model, lengths + sign * step) for sign in (1, -1))
        real = torch.as_tensor(tb.edge_mask[:, edge])
        assert first[real, edge].numpy() == pytest.approx(((up - down) / (2 * eps))[real].numpy(), rel=1e-5, abs=1e-6)
        numeric = (up - 2 * ll + down) / eps**2
        assert second[real, edge].numpy() == pytest.approx(numeric[real].numpy(), rel=1e-3, abs=1e-3)


def test_ambiguity_codes_sum_over_their_bases() -> None:
    fam = simulate_family(5, 30, np.random.default_rng(6), model=GTR, height=0.5)
    text = [decode(row) for row in fam.codes]
    tree = unrooted_tree(fam.tree, fam.names)

    def site_ll(seqs: list[str]) -> np.ndarray:
        codes = partial_codes(seqs)
        tb = tree_batch([tree])
        pb = pattern_batch([site_patterns(codes)])
        tips, _ = pb.tensors()
        model = GTRGamma.from_substitution_model(GTR)
        site = model_site_log_likelihoods(TreeTensors.of(tb), tips, model, torch.as_tensor(tb.lengths))
        return site.detach().numpy()[0][pb.patterns[0].site_pattern]

    def with_first(letter: str) -> list[str]:
        return [letter + text[0][1:]] + text[1:]

    for code, bases in (("R", "AG"), ("B", "CGT"), ("N", "ACGT"), ("-", "ACGT")):
        want = np.log(sum(np.exp(site_ll(with_first(b))[0]) for b in bases))
        assert site_ll(with_first(code))[0] == pytest.approx(want, abs=1e-12)
    assert partial_text(partial_codes(["ACGTRYSWKMBDHVN-u"])[0]) == "ACGTRYSWKMBDHVNNT"
    with pytest.raises(ValueError, match="record 2, column 3: 'X' is not IUPAC DNA"):
        partial_codes(["ACGT", "ACXT"])
    with pytest.raises(ValueError, match="different lengths"):
        partial_codes(["ACGT", "ACG"])
