"""seqae.metrics: every metric on a hand-made case whose answer is known."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from seqae.genome import encode
from seqae.metrics import (
    NOT_RECOVERABLE,
    auroc,
    canonical_kmer_indices,
    composition_entropy,
    dci,
    dci_from_importance,
    dinucleotide_counts,
    dinucleotide_shuffle,
    fit_markov,
    foreign_windows,
    kmer_baseline_features,
    kmer_counts,
    kmer_frequencies,
    kmer_names,
    kmer_spectrum_distance,
    linear_probe,
    markov_ratio_score,
    mig,
    one_hot,
    pca_baseline,
    perplexity,
    probe_matrix,
    recoverability_flags,
    sequence_accuracy,
    swap_success,
    track_pearson,
    train_judge,
)


def codes_of(*seqs: str) -> np.ndarray:
    return np.stack([encode(s) for s in seqs])


def random_codes(rng: np.random.Generator, n: int, length: int, gc: float = 0.5) -> np.ndarray:
    return foreign_windows(n, length, gc, rng)


# ---------------------------------------------------------------- k-mers


def test_kmer_counts_hand_written() -> None:
    counts = kmer_counts(codes_of("ACGTACGT"), 2)
    assert counts.shape == (1, 16) and counts.dtype == np.float32
    names = kmer_names(2)
    got = {names[i]: int(c) for i, c in enumerate(counts[0]) if c}
    assert got == {"AC": 2, "CG": 2, "GT": 2, "TA": 1}
    assert names[:5] == ["AA", "AC", "AG", "AT", "CA"]


def test_kmer_counts_skip_n_and_rows_independent() -> None:
    counts = kmer_counts(codes_of("ACNGT", "AAAAA"), 2)
    names = kmer_names(2)
    row0 = {names[i]: int(c) for i, c in enumerate(counts[0]) if c}
    assert row0 == {"AC": 1, "GT": 1}  # CN and NG skipped
    assert counts[1, names.index("AA")] == 4 and counts[1].sum() == 4
    assert kmer_counts(codes_of("NNNN"), 3).sum() == 0
    assert kmer_counts(codes_of("AC"), 3).shape == (1, 64)  # shorter than k: no k-mer
    k1 = kmer_counts(codes_of("ACGTN"), 1)
    np.testing.assert_array_equal(k1, [[1, 1, 1, 1]])


def test_kmer_counts_match_naive_count() -> None:
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 5, size=(7, 60)).astype(np.uint8)
    for k in (1, 3, 4):
        expected = np.zeros((7, 4**k))
        for i, j in itertools.product(range(7), range(60 - k + 1)):
            kmer = codes[i, j : j + k]
            if (kmer < 4).all():
                expected[i, int(np.dot(kmer, 4 ** np.arange(k - 1, -1, -1)))] += 1
        np.testing.assert_array_equal(kmer_counts(codes, k), expected)


def test_kmer_canonical_merge() -> None:
    # ACGTACGT: AC+GT (reverse complements) = 4, CG (palindrome) = 2, TA (palindrome) = 1.
    canon = kmer_counts(codes_of("ACGTACGT"), 2, canonical=True)
    names = kmer_names(2, canonical=True)
    assert len(names) == (16 + 4) // 2 == canonical_kmer_indices(2).size
    got = {names[i]: int(c) for i, c in enumerate(canon[0]) if c}
    assert got == {"AC": 4, "CG": 2, "TA": 1}
    # A sequence and its reverse complement have the same canonical counts.
    fwd, rc = codes_of("AACGTTTGCAGG", "CCTGCAAACGTT")
    np.testing.assert_array_equal(kmer_counts(fwd, 3, canonical=True), kmer_counts(rc, 3, canonical=True))
    assert kmer_counts(fwd, 3, canonical=True).shape == (1, 32)


def test_kmer_frequencies_normalised() -> None:
    freq = kmer_frequencies(codes_of("ACGTACGT", "NNNNNNNN"), 2)
    assert freq[0].sum() == pytest.approx(1.0)
    assert freq[1].sum() == 0.0  # no N-free k-mer: zeros, not NaN
    base = kmer_baseline_features(codes_of("ACGTACGT"), k=(1, 2))
    assert base.shape == (1, 4 + 16) and base.sum() == pytest.approx(2.0)


def test_kmer_spectrum_distance() -> None:
    rng = np.random.default_rng(2)
    a = random_codes(rng, 50, 200, gc=0.4)
    assert kmer_spectrum_distance(a, a[::-1], 3) == pytest.approx(0.0, abs=1e-7)
    b = random_codes(rng, 50, 200, gc=0.7)
    a2 = random_codes(rng, 50, 200, gc=0.4)
    d_diff = kmer_spectrum_distance(a, b, 3)
    d_same = kmer_spectrum_distance(a, a2, 3)
    assert d_diff > 0.05 and d_diff > 5 * d_same
    assert kmer_spectrum_distance(codes_of("AAAA"), codes_of("CCCC"), 2) == pytest.approx(1.0)


# ---------------------------------------------------------------- probes


def _gaussian_classes(rng: np.random.Generator, n: int, n_classes: int = 3, sep: float = 10.0):
    y = rng.integers(0, n_classes, n)
    x = rng.normal(size=(n, 4))
    x[:, 0] += sep * y
    return x, y


def test_linear_probe_separable_and_random() -> None:
    rng = np.random.default_rng(3)
    x_tr, y_tr = _gaussian_classes(rng, 300)
    x_te, y_te = _gaussian_classes(rng, 200)
    names = np.array(["chr1", "chr2", "chrX"])
    res = linear_probe(x_tr, names[y_tr], x_te, names[y_te])  # string labels
    assert res.accuracy > 0.98 and res.balanced_accuracy > 0.98
    assert res.n_classes == 3 and res.n_test == 200

    # Random labels: accuracy near chance; chance = test rate of the majority training class.
    y_tr_r = rng.choice(["a", "b"], size=300, p=[0.7, 0.3])
    y_te_r = rng.choice(["a", "b"], size=200, p=[0.7, 0.3])
    res = linear_probe(x_tr, y_tr_r, x_te, y_te_r)
    assert res.majority_class == "a"
    assert res.chance == pytest.approx(np.mean(y_te_r == "a"))
    assert abs(res.accuracy - res.chance) < 0.1


def test_linear_probe_edge_cases() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(20, 3))
    # Single training class: answers that class everywhere.
    res = linear_probe(x, np.zeros(20, int), x[:10], np.array([0] * 6 + [1] * 4))
    assert res.n_classes == 1 and res.accuracy == pytest.approx(0.6) == res.chance
    assert res.balanced_accuracy == pytest.approx(0.5)
    # A class never seen in training counts as an error.
    x_tr, y_tr = _gaussian_classes(rng, 100, n_classes=2)
    x_te, _ = _gaussian_classes(rng, 10, n_classes=2)
    res = linear_probe(x_tr, y_tr, x_te, np.full(10, 7))
    assert res.accuracy == 0.0 and res.chance == 0.0
    with pytest.raises(ValueError):
        linear_probe(x, np.zeros(19), x, np.zeros(20))


def test_probe_matrix_and_recoverability_flags() -> None:
    rng = np.random.default_rng(5)
    n_tr, n_te = 300, 200
    x_tr, y_tr = _gaussian_classes(rng, n_tr)
    x_te, y_te = _gaussian_classes(rng, n_te)
    noise_tr, noise_te = rng.normal(size=(n_tr, 4)), rng.normal(size=(n_te, 4))
    features = {"kmer": (x_tr, x_te), "block": (noise_tr, noise_te)}
    shuffled_tr, shuffled_te = rng.permutation(y_tr), rng.permutation(y_te)
    labels = {"chrom": (y_tr, y_te), "shuffled": (shuffled_tr, shuffled_te)}
    acc, long, chance = probe_matrix(features, labels)
    assert list(acc.index) == ["kmer", "block"] and list(acc.columns) == ["chrom", "shuffled"]
    assert acc.loc["kmer", "chrom"] > 0.98
    assert len(long) == 4 and {"accuracy", "chance", "balanced_accuracy"} <= set(long.columns)
    assert chance["chrom"] == pytest.approx(long.query("label == 'chrom'")["chance"].iloc[0])
    flags = recoverability_flags(acc, "kmer", chance, margin=0.05)
    assert flags.loc["chrom", "recoverable"] and flags.loc["chrom", "flag"] == ""
    assert not flags.loc["shuffled", "recoverable"]
    assert flags.loc["shuffled", "flag"] == NOT_RECOVERABLE
    # A scalar chance applies to every label.
    assert recoverability_flags(acc, "kmer", 1.0)["recoverable"].sum() == 0


def test_probe_matrix_drops_missing_labels() -> None:
    rng = np.random.default_rng(6)
    x_tr, y_tr = _gaussian_classes(rng, 100, n_classes=2)
    x_te, y_te = _gaussian_classes(rng, 50, n_classes=2)
    y_tr_o = np.array([f"g{v}" for v in y_tr], dtype=object)
    y_tr_o[:10] = None
    y_te_o = np.array([f"g{v}" for v in y_te], dtype=object)
    y_te_o[:5] = np.nan
    _, long, _ = probe_matrix({"x": (x_tr, x_te)}, {"gene": (y_tr_o, y_te_o)})
    assert long.loc[0, "n_train"] == 90 and long.loc[0, "n_test"] == 45
    assert long.loc[0, "accuracy"] > 0.95


# ---------------------------------------------------------------- baselines


def test_pca_baseline_reconstructs_templates() -> None:
    rng = np.random.default_rng(7)
    templates = random_codes(rng, 4, 50)
    train = templates[rng.integers(0, 4, 40)]
    test = templates[rng.integers(0, 4, 12)].copy()
    test[0, 3] = 4  # an N in the truth is left out
    out = pca_baseline(train, test, n_components=4, seed=0)
    assert out["base_accuracy"] == 1.0
    assert out["train_embedding"].shape == (40, 4) and out["test_embedding"].shape == (12, 4)
    assert np.all(out["window_accuracy"] == 1.0)
    # The same result from a one-hot training matrix [N, 4*L] and a channel-major [N, 4, L] one.
    flat = one_hot(train).reshape(40, -1)
    assert pca_baseline(flat, test, 4)["base_accuracy"] == 1.0
    assert pca_baseline(one_hot(train).transpose(0, 2, 1), test, 4)["base_accuracy"] == 1.0
    # One component cannot hold four templates.
    assert pca_baseline(train, test, 1)["base_accuracy"] < 1.0


# ---------------------------------------------------------------- disentanglement


def test_mig_copy_vs_random() -> None:
    rng = np.random.default_rng(8)
    factors = rng.integers(0, 5, size=(4000, 3))
    latent = factors + 0.01 * rng.normal(size=factors.shape)
    assert mig(latent, factors) > 0.95
    assert mig(rng.normal(size=(4000, 3)), factors) < 0.05
    # Two dimensions copying the same factor leave no gap for it.
    dup = np.column_stack([factors[:, 0], factors[:, 0]]).astype(float)
    assert mig(dup, factors[:, :1]) < 0.05


def test_dci_axis_aligned_vs_mixed() -> None:
    rng = np.random.default_rng(9)
    f_tr, f_te = rng.integers(0, 4, size=(600, 2)), rng.integers(0, 4, size=(300, 2))
    noise = lambda n: 0.05 * rng.normal(size=(n, 3))  # noqa: E731
    aligned_tr = np.column_stack([f_tr, rng.normal(size=600)]) + noise(600)
    aligned_te = np.column_stack([f_te, rng.normal(size=300)]) + noise(300)
    res = dci(aligned_tr, f_tr, aligned_te, f_te, n_estimators=20)
    assert res["disentanglement"] > 0.9 and res["completeness"] > 0.9
    assert res["informativeness"] > 0.95
    assert res["importance"].shape == (3, 2)
    res_lr = dci(aligned_tr, f_tr, aligned_te, f_te, method="logistic")
    assert res_lr["disentanglement"] > 0.8
    # Every dimension equally important for every factor: disentanglement 0, completeness 0.
    flat = dci_from_importance(np.ones((3, 2)))
    assert flat["disentanglement"] == pytest.approx(0.0) and flat["completeness"] == pytest.approx(0.0)
    perfect = dci_from_importance(np.array([[1.0, 0], [0, 2.0]]))
    assert perfect["disentanglement"] == pytest.approx(1.0) and perfect["completeness"] == pytest.approx(1.0)


# ---------------------------------------------------------------- anomaly


def test_auroc_known_values_and_sklearn() -> None:
    assert auroc([0, 1, 2], [3, 4]) == 1.0
    assert auroc([3, 4], [0, 1, 2]) == 0.0
    assert auroc([1, 1, 1], [1, 1]) == 0.5
    assert auroc([0, 1], [0, 1]) == 0.5
    rng = np.random.default_rng(10)
    normal = np.round(rng.normal(size=300), 1)  # rounding makes ties
    anomalous = np.round(rng.normal(0.5, size=120), 1)
    expected = roc_auc_score(np.r_[np.zeros(300), np.ones(120)], np.r_[normal, anomalous])
    assert auroc(normal, anomalous) == pytest.approx(expected, abs=1e-12)


def test_dinucleotide_shuffle_preserves_counts() -> None:
    rng = np.random.default_rng(11)
    codes = random_codes(rng, 200, 300)
    codes[rng.random(codes.shape) < 0.02] = 4  # N kept as a symbol
    codes[0, :150] = 0  # long homopolymer
    shuffled = dinucleotide_shuffle(codes, rng)
    assert shuffled.shape == codes.shape and shuffled.dtype == np.uint8
    np.testing.assert_array_equal(dinucleotide_counts(shuffled), dinucleotide_counts(codes))
    np.testing.assert_array_equal(shuffled[:, [0, -1]], codes[:, [0, -1]])
    assert (shuffled != codes).any(axis=1).all()
    assert (shuffled != codes).mean() > 0.5
    # A sequence with a single arrangement comes back unchanged.
    only = codes_of("AAAAAAAC")
    np.testing.assert_array_equal(dinucleotide_shuffle(only, 0), only)


def test_dinucleotide_shuffle_is_uniform_on_a_short_sequence() -> None:
    seq = codes_of("ACAGACGAC")[0]
    target = dinucleotide_counts(seq[None])[0]
    valid = {
        p
        for p in set(itertools.permutations(seq.tolist()))
        if p[0] == seq[0] and p[-1] == seq[-1] and (dinucleotide_counts(np.array([p]))[0] == target).all()
    }
    draws = dinucleotide_shuffle(np.repeat(seq[None], 6000, axis=0), np.random.default_rng(12))
    uniq, counts = np.unique(draws, axis=0, return_counts=True)
    assert {tuple(u) for u in uniq.tolist()} == valid
    assert counts.min() > 0.8 * 6000 / len(valid)


def test_markov_fit_recovers_the_transition_matrix() -> None:
    rng = np.random.default_rng(14)
    transition = rng.dirichlet(np.ones(4), size=4)  # row: current base, column: next
    length = 400
    codes = np.empty((300, length), dtype=np.uint8)
    codes[:, 0] = rng.integers(0, 4, 300)
    for t in range(1, length):  # simulating the chain needs one step per position
        cum = np.cumsum(transition[codes[:, t - 1]], axis=1)
        codes[:, t] = (rng.random((300, 1)) > cum).sum(axis=1).clip(max=3)
    model = fit_markov(codes, 1)
    assert model.log_probs.shape == (4, 4)
    np.testing.assert_allclose(np.exp(model.log_probs), transition, atol=0.02)
    # N is skipped, not read as T: an all-N window has nothing to predict.
    assert fit_markov(codes, 2).log_likelihood(np.full((1, 50), 4, dtype=np.uint8))[0] == 0.0
    with pytest.raises(ValueError, match="order"):
        fit_markov(codes, 9)


def test_markov_ratio_tells_motif_windows_from_their_shuffles_but_not_background() -> None:
    rng = np.random.default_rng(15)
    motif = encode("TGACCGGAAGTC")
    peaks = random_codes(rng, 400, 300)
    for start in (20, 90, 160, 230):  # four copies per window: structure beyond dinucleotides
        peaks[:, start : start + motif.size] = motif
    background = random_codes(rng, 400, 300)
    train = np.concatenate([peaks[:200], background[:200]])
    high, low = fit_markov(train, 4), fit_markov(train, 1)
    test_peaks, test_background = peaks[200:], background[200:]
    shuffle = np.random.default_rng(16)

    def separation(codes: np.ndarray) -> float:
        real = markov_ratio_score(high, low, codes)
        return auroc(real, markov_ratio_score(high, low, dinucleotide_shuffle(codes, shuffle)))

    assert separation(test_peaks) > 0.95
    assert 0.35 < separation(test_background) < 0.65
    # Order 1 against order 1: nothing left to score.
    np.testing.assert_allclose(markov_ratio_score(low, low, test_peaks), 0.0)


def test_foreign_windows_gc() -> None:
    w = foreign_windows(200, 500, gc=0.7, rng=np.random.default_rng(13))
    assert w.shape == (200, 500) and w.dtype == np.uint8 and w.max() <= 3
    assert np.isin(w, [1, 2]).mean() == pytest.approx(0.7, abs=0.01)


# ---------------------------------------------------------------- judge


def test_judge_and_swap_success() -> None:
    rng = np.random.default_rng(14)
    gcs = {"chrA": 0.3, "chrB": 0.5, "chrC": 0.7}
    codes = np.concatenate([random_codes(rng, 80, 300, gc) for gc in gcs.values()])
    y = np.repeat(list(gcs), 80)
    judge = train_judge(codes, y, k=(3, 4), seed=0)
    assert judge.heldout_accuracy > 0.9 and judge.n_heldout == 48
    proba = judge.predict_proba(codes[:5])
    assert proba.shape == (5, 3) and np.allclose(proba.sum(axis=1), 1.0)
    assert list(judge.classes) == ["chrA", "chrB", "chrC"]

    # Hand-made swaps: windows drawn with the donor's GC (4 rows), with the recipient's (2),
    # one row whose donor equals its recipient (left out).
    swapped = np.concatenate(
        [random_codes(rng, 4, 300, 0.7), random_codes(rng, 2, 300, 0.3), random_codes(rng, 1, 300, 0.5)]
    )
    donor = np.array(["chrC"] * 4 + ["chrB"] * 2 + ["chrB"])
    recipient = np.array(["chrA"] * 4 + ["chrA"] * 2 + ["chrB"])
    out = swap_success(judge, swapped, donor, recipient)
    assert out["n"] == 6 and out["n_same_label"] == 1
    assert out["donor_fraction"] == pytest.approx(4 / 6)
    assert out["recipient_fraction"] == pytest.approx(2 / 6)
    assert out["other_fraction"] == pytest.approx(0.0)
    assert out["judge_heldout_accuracy"] == judge.heldout_accuracy
    # A donor label the judge never saw is never "assigned".
    out = swap_success(judge, swapped[:2], np.array(["chrZ", "chrZ"]), np.array(["chrA", "chrA"]))
    assert out["donor_fraction"] == 0.0 and out["mean_donor_probability"] == 0.0


# ---------------------------------------------------------------- reconstruction


def test_sequence_accuracy_excludes_n() -> None:
    true = codes_of("ACGTN", "AAAAN")
    pred = codes_of("ACGAA", "AAAAC")
    assert sequence_accuracy(pred, true) == pytest.approx(7 / 8)
    assert np.isnan(sequence_accuracy(codes_of("A"), codes_of("N")))


def test_composition_entropy_hand_made() -> None:
    out = composition_entropy(codes_of("AAAA", "ACGT", "AACC", "ACNN", "NNNN"))
    np.testing.assert_allclose(out[:4], [0.0, np.log(4), np.log(2), np.log(2)])  # nats; N left out
    assert np.isnan(out[4])
    # A shuffle keeps the composition, so it keeps the entropy.
    window = codes_of("ACGTTTAGGCA" * 9)
    shuffled = dinucleotide_shuffle(window, 3)
    assert not np.array_equal(shuffled, window)
    assert composition_entropy(shuffled)[0] == pytest.approx(composition_entropy(window)[0])


def test_track_pearson_hand_made() -> None:
    x = np.arange(10, dtype=float)
    true = np.stack([np.stack([x, x]), np.stack([x, np.full(10, 3.0)])])  # [N=2, T=2, L=10]
    pred = np.stack([np.stack([2 * x + 1, -x]), np.stack([x, x])])
    out = track_pearson(pred, true)
    np.testing.assert_allclose(out["mean_window_r"], [1.0, -1.0])  # constant window 2 of track 1 left out
    np.testing.assert_array_equal(out["n_windows"], [2, 1])
    assert out["pooled_r"][0] == pytest.approx(np.corrcoef(pred[:, 0].ravel(), true[:, 0].ravel())[0, 1])
    const = track_pearson(np.ones((3, 1, 5)), np.ones((3, 1, 5)))
    assert np.isnan(const["mean_window_r"][0]) and np.isnan(const["pooled_r"][0])
    assert const["n_windows"][0] == 0
    assert track_pearson(x[None], x[None])["pooled_r"].shape == (1,)


def test_perplexity() -> None:
    assert perplexity(np.arange(16).repeat(5), 16) == pytest.approx(16.0)
    assert perplexity(np.full((4, 7), 3), 16) == pytest.approx(1.0)
    assert perplexity(np.array([0, 0, 1, 1]), 512) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        perplexity(np.array([16]), 16)


def test_metrics_have_no_side_effects_on_inputs() -> None:
    codes = codes_of("ACGTACGTNNACGT", "TTGTACGTNNACGA", "ACGAACGTNNACCC")
    before = codes.copy()
    kmer_counts(codes, 3)
    dinucleotide_shuffle(codes, 0)
    pca_baseline(codes, codes, 2)
    np.testing.assert_array_equal(codes, before)
