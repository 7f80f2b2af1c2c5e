"""seqae.simulate.sequence: the genome's layout, composition and repeats."""

from __future__ import annotations

import numpy as np
import pyfaidx
import pytest

from seqae.simulate import fill_defaults, simulate_demo
from tests.simulate.conftest import SMALL, codes, tsv


def test_fasta_layout(demo, fasta):
    out, _ = demo
    assert list(fasta.keys()) == ["chr1", "chr2", "chr3"]
    assert all(len(fasta[c]) == SMALL["chromosome_length"] for c in fasta.keys())
    lines = (out / "genome.fa").read_text().splitlines()
    body = [line for line in lines if not line.startswith(">")]
    assert {len(line) for line in body} == {60}  # 60000 is a multiple of 60
    assert set("".join(body)) <= set("ACGTN")
    chroms = tsv(out / "truth" / "chromosomes.tsv")
    for c in fasta.keys():
        s = codes(fasta, c)
        runs = np.flatnonzero(np.diff(np.concatenate([[0], (s == 4).astype(int), [0]])))
        lengths = runs[1::2] - runs[::2]
        assert 1 <= len(lengths) <= 2 and all(200 <= n <= 2000 for n in lengths)
        assert int(chroms.set_index("chrom").loc[c, "n_bp"]) == int((s == 4).sum())


def test_gc_per_chromosome(demo, fasta):
    chroms = tsv(demo[0] / "truth" / "chromosomes.tsv")
    observed = []
    for row in chroms.itertuples():
        s = codes(fasta, row.chrom)
        gc = np.isin(s[s < 4], (1, 2)).mean()
        assert gc == pytest.approx(row.gc_observed, abs=1e-4)
        assert abs(gc - row.gc_target) < 0.01
        observed.append(gc)
        # CpG depletion: CpG observed/expected clearly below 1.
        cg = np.mean((s[:-1] == 1) & (s[1:] == 2))
        assert cg / (np.mean(s == 1) * np.mean(s == 2)) < 0.5
        # Repeat families of its own covering about repeat_density.
        assert row.repeat_families.split(",")[0].startswith(f"{row.chrom}_rep")
        assert 2 <= len(row.repeat_families.split(",")) <= 3
        assert row.repeat_fraction == pytest.approx(0.02, abs=0.005)
    assert observed == sorted(observed)


def test_interspersed_repeats_are_shared_by_every_chromosome(demo, fasta):
    """SINE/LINE-like families cover ~interspersed_repeat_density of each chromosome, the same
    families on all of them; each copy is its family's consensus 3' end, diverged by the stated rate."""
    out, _ = demo
    density = fill_defaults({})["interspersed_repeat_density"]
    chroms = tsv(out / "truth" / "chromosomes.tsv").set_index("chrom")
    repeats = tsv(out / "truth" / "repeats.tsv")
    shared = repeats[repeats["family"].str.match(r"^(SINE|LINE)\d+$")]
    assert set(shared["chrom"]) == set(chroms.index)
    for chrom, rows in shared.groupby("chrom"):
        covered = int((rows["end"] - rows["start"]).sum())
        assert covered / SMALL["chromosome_length"] == pytest.approx(density, abs=0.02)
        assert chroms.loc[chrom, "interspersed_fraction"] == pytest.approx(
            covered / SMALL["chromosome_length"], abs=1e-4
        )
    by_family = shared.groupby("family")["chrom"].nunique()
    assert (by_family >= 2).sum() >= 3  # families span chromosomes
    # Two copies of a family on different chromosomes share their 3' ends: aligned on it, they
    # agree far more often than unrelated sequence (1/4 plus composition).
    fam = shared.groupby("family").filter(lambda g: g["chrom"].nunique() >= 2)
    fam = fam[fam["family"] == fam["family"].iloc[0]]

    def copy_codes(row) -> np.ndarray:
        c = codes(fasta, row.chrom)[row.start : row.end]
        return c if row.strand == "+" else (3 - c[::-1])

    a, b = (fam[fam["chrom"] == chrom].iloc[0] for chrom in fam["chrom"].unique()[:2])
    ca, cb = copy_codes(a), copy_codes(b)
    n = min(len(ca), len(cb))
    identity = float(np.mean(ca[-n:] == cb[-n:]))
    assert identity > 0.45, identity
    assert (1 - a.divergence) * (1 - b.divergence) > 0.5


def kmer_windows(fasta: pyfaidx.Fasta, window: int = 1000, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """k-mer frequencies of non-overlapping N-free windows, shape ``(n, 4**k)``, and their chromosome index."""
    xs, ys = [], []
    for ci, chrom in enumerate(fasta.keys()):
        s = codes(fasta, chrom)
        n = len(s) // window
        w = s[: n * window].reshape(n, window)
        w = w[(w < 4).all(axis=1)].astype(np.int64)
        idx = sum(w[:, j : window - k + 1 + j] * 4 ** (k - 1 - j) for j in range(k))
        counts = np.bincount((idx + np.arange(len(w))[:, None] * 4**k).ravel(), minlength=len(w) * 4**k)
        counts = counts.reshape(len(w), 4**k)
        xs.append(counts / counts.sum(axis=1, keepdims=True))
        ys += [ci] * len(w)
    return np.vstack(xs), np.array(ys)


def test_kmer_chromosome_classifier(tmp_path):
    """On the default settings, 4-mers of 1 kb windows tell chromosomes apart, but far from perfectly."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    settings = fill_defaults({})
    # Peaks and tracks do not matter here; few of them keep the test quick.
    settings["tfs"] = [{"name": "CTCF", "motif": "MA0139.2", "n_peaks": 100}]
    outputs = simulate_demo(settings, tmp_path)
    x, y = kmer_windows(pyfaidx.Fasta(str(outputs["fasta"])))
    chance = 1 / settings["n_chromosomes"]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000))
    accuracy = clf.fit(x_train, y_train).score(x_test, y_test)
    assert chance + 0.1 <= accuracy < 0.95, accuracy
