"""Tests of the tree stage: tree autoencoder, phylogeny discriminator, per-family
outputs, trees.tsv, the demo families stage and the command line. Tiny inputs."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import torch

from seqae.cli import main
from seqae.errors import InputError
from seqae.phylo.discriminator import (
    DiscriminatorSettings,
    PhylogenyDiscriminator,
    auc,
    eval_sizes,
    heldout_auc,
    random_subsets,
    reference_metrics,
    row_profiles,
    sample_reference_trees,
    train_discriminator,
    tree_arrays_metric,
)
from seqae.phylo.distance import patristic_distances
from seqae.phylo.ete import Tree
from seqae.phylo.io import read_family, read_tree, write_family
from seqae.phylo.simulate import SubstitutionModel, simulate_family
from seqae.phylo.stage import run_family
from seqae.phylo.treeae import TreeAESettings, fit_tree_autoencoder, read_latent_tree
from seqae.phylo.trees_table import TREES_COLUMNS, draw_tree_summary, gather_trees, summarise_trees

#: Settings small enough for a test: a few hundred full-batch steps of 8 sequences.
TINY = {
    "model": "points",
    "epochs": 150,
    "adversarial_epochs": 15,
    "hidden": 32,
    "latent_dim": 8,
    "discriminator": {"steps": 25, "n_reference": 24, "batch": 16, "hidden": 16},
    "seed": 3,
}


# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def family():
    rng = np.random.default_rng(11)
    return simulate_family(8, 200, rng, SubstitutionModel.hky85(2.0, alpha=0.5), height=0.5)


@pytest.fixture(scope="module")
def family_files(tmp_path_factory, family):
    folder = tmp_path_factory.mktemp("fam")
    fasta = write_family(family.sequences(), folder / "famA.fa")
    tree = folder / "famA.nwk"
    tree.write_text(family.newick() + "\n")
    labels = folder / "labels.tsv"
    labels.write_text("".join(f"{name}\t{'clade one' if k % 2 else 'B'}\n" for k, name in enumerate(family.names)))
    return fasta, tree, labels


@pytest.fixture(scope="module")
def family_run(tmp_path_factory, family_files):
    fasta, tree, labels = family_files
    out = tmp_path_factory.mktemp("out")
    row = run_family(fasta, out, TINY, reference_tree=tree, labels=labels, family="famA", progress=False)
    return out, row


# ---------------------------------------------------------------- tree autoencoder


@pytest.mark.parametrize("geometry", ["sqeuclidean", "euclidean", "poincare"])
def test_fit_returns_tree_on_the_family(family, geometry: str) -> None:
    result = fit_tree_autoencoder(family.codes, family.names, {**TINY, "geometry": geometry})
    assert sorted(result.tree.get_leaf_names()) == sorted(family.names)
    assert result.distances.shape == (8, 8) and np.isfinite(result.distances).all()
    assert np.allclose(result.distances, result.distances.T) and (np.diag(result.distances) == 0).all()
    assert result.latent.shape == (8, 8)
    if geometry == "poincare":
        assert (np.linalg.norm(result.latent, axis=1) < 1).all()
    for value in (result.auc_before, result.auc_after, result.auc_after_cotrained, result.disc_score):
        assert 0.0 <= value <= 1.0
    assert result.epochs_run == TINY["epochs"] + TINY["adversarial_epochs"]
    # Training lowered the distance loss.
    assert result.history["distance"][-1] < 0.5 * result.history["distance"][0]


def test_fit_draws_on_the_users_real_trees(family) -> None:
    # Real trees of other leaf counts than the family's: the judge and the adversary draw
    # subsets from those large enough for each subset size (a 5-leaf tree serves only
    # 4- and 5-leaf subsets). This once crashed: the list reached code wanting one tensor.
    other = simulate_family(5, 50, np.random.default_rng(3), SubstitutionModel.hky85(2.0), height=0.4)
    bigger = simulate_family(12, 50, np.random.default_rng(4), SubstitutionModel.hky85(2.0), height=0.4)
    trees = [patristic_distances(read_tree_text(f.newick()))[0] for f in (other, bigger)]
    with_trees = fit_tree_autoencoder(family.codes, family.names, TINY, reference_trees=trees)
    without = fit_tree_autoencoder(family.codes, family.names, TINY)
    assert sorted(with_trees.tree.get_leaf_names()) == sorted(family.names)
    assert 0.0 <= with_trees.auc_before <= 1.0 and 0.0 <= with_trees.disc_score <= 1.0
    # The user's trees reach the judge: its scores differ from a judge trained without them.
    assert with_trees.auc_before != without.auc_before or with_trees.disc_score != without.disc_score


def read_tree_text(newick: str) -> Tree:
    return Tree(newick, format=1)


def test_fit_is_seeded(family) -> None:
    settings = {**TINY, "adversarial_epochs": 0, "epochs": 40}
    a = fit_tree_autoencoder(family.codes, family.names, settings)
    b = fit_tree_autoencoder(family.codes, family.names, settings)
    assert np.array_equal(a.distances, b.distances)


def test_settings_reject_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown"):
        TreeAESettings.from_mapping({"latent_dims": 3})
    with pytest.raises(ValueError, match="geometry"):
        TreeAESettings.from_mapping({"geometry": "spherical"})
    with pytest.raises(ValueError, match="tree_search"):
        TreeAESettings.from_mapping({"tree_search": "spr"})


def test_latent_tree_search() -> None:
    """``nj`` is neighbor joining as is; ``bme_nni`` refines it and never lengthens it under BME."""
    from seqae.phylo.compare import normalized_rf
    from seqae.phylo.nj import neighbor_joining
    from seqae.phylo.nni import bme_length

    rng = np.random.default_rng(11)
    names = [f"t{i}" for i in range(30)]
    x = rng.random((30, 30))
    dist = x + x.T
    np.fill_diagonal(dist, 0.0)
    nj = neighbor_joining(dist, names)
    assert normalized_rf(read_latent_tree(dist, names, "nj"), nj) == 0.0
    refined = read_latent_tree(dist, names, "bme_nni")
    assert normalized_rf(refined, nj) > 0  # random distances: NJ is not a BME local optimum
    assert bme_length(refined, dist, names) < bme_length(nj, dist, names)


# ---------------------------------------------------------------- discriminator


def _caterpillar(n: int, rng: np.random.Generator) -> np.ndarray:
    names = [f"t{i}" for i in range(n)]
    root = node = Tree()
    for i in range(n - 1):
        node.add_child(name=names[i], dist=rng.uniform(0.5, 1.5))
        node = node.add_child(dist=rng.uniform(0.5, 1.5))
    node.name = names[-1]
    return patristic_distances(root, names)[0]


def _balanced(n: int, rng: np.random.Generator) -> np.ndarray:
    names = [f"t{i}" for i in range(n)]

    def build(leaves):
        if len(leaves) == 1:
            return Tree(name=leaves[0])
        node = Tree()
        half = len(leaves) // 2
        for part in (leaves[:half], leaves[half:]):
            node.add_child(build(part), dist=rng.uniform(0.5, 1.5))
        return node

    return patristic_distances(build(names), names)[0]


def _pool(make, n: int, count: int, rng) -> torch.Tensor:
    return torch.tensor(np.stack([make(n, rng) for _ in range(count)]), dtype=torch.float32)


def test_discriminator_separates_caterpillars_from_balanced_trees() -> None:
    rng = np.random.default_rng(0)
    n = 12
    cat, bal = _pool(_caterpillar, n, 64, rng), _pool(_balanced, n, 64, rng)
    cat_test, bal_test = _pool(_caterpillar, n, 64, rng), _pool(_balanced, n, 64, rng)
    settings = DiscriminatorSettings(steps=80, batch=32, hidden=32)
    disc = train_discriminator(cat, bal, settings, seed=0)
    assert heldout_auc(disc, cat_test, bal_test, eval_sizes(n, 8)) > 0.9


def test_discriminator_is_at_chance_on_identical_distributions() -> None:
    rng = np.random.default_rng(1)
    n = 12
    a, b = _pool(_caterpillar, n, 64, rng), _pool(_caterpillar, n, 64, rng)
    a_test, b_test = _pool(_caterpillar, n, 128, rng), _pool(_caterpillar, n, 128, rng)
    disc = train_discriminator(a, b, DiscriminatorSettings(steps=80, batch=32, hidden=32), seed=0)
    assert abs(heldout_auc(disc, a_test, b_test, eval_sizes(n, 8), per_size=128) - 0.5) < 0.12


def test_discriminator_input_is_invariant_to_leaf_order_scale_and_rooting() -> None:
    rng = np.random.default_rng(2)
    arrays = sample_reference_trees(9, 1, rng)[0]
    dist = tree_arrays_metric(arrays)
    # Path lengths of the TreeArrays match ete3's, whatever the root.
    tree = arrays.to_ete()
    assert np.allclose(dist, patristic_distances(tree, arrays.names)[0])
    tree.set_outgroup(tree.get_leaves()[3])
    assert np.allclose(dist, patristic_distances(tree, arrays.names)[0])
    disc = PhylogenyDiscriminator(n_quantiles=8, hidden=8)
    x = torch.tensor(dist, dtype=torch.float32)[None]
    perm = torch.as_tensor(rng.permutation(9))
    y = 3.7 * x[:, perm][:, :, perm]
    with torch.no_grad():
        assert torch.allclose(disc(x), disc(y), atol=1e-5)
    assert row_profiles(x, 8).shape == (1, 9, 8)
    sub = random_subsets(x[0], 5, 4)
    assert sub.shape == (4, 5, 5) and torch.all(sub.diagonal(dim1=1, dim2=2) == 0)
    assert reference_metrics(6, 3, rng).shape == (3, 6, 6)


def test_auc() -> None:
    assert auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert auc(np.array([0.0]), np.array([1.0])) == 0.0
    assert auc(np.ones(5), np.ones(5)) == 0.5


# ---------------------------------------------------------------- per-family stage


def test_run_family_writes_trees_that_round_trip(family_run, family) -> None:
    out, row = family_run
    names = sorted(family.names)
    for suffix in (".nwk", ".nhx", ".png", ".svg", ".circular.png", ".circular.svg", ".tsv", ".ancestral.fa"):
        assert (out / f"famA{suffix}").stat().st_size > 0
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
    ete = Tree(str(out / "famA.nwk"), format=1)
    assert sorted(ete.get_leaf_names()) == names
    assert all(node.dist >= 0 for node in ete.traverse())
    from Bio import Phylo

    for suffix in (".nwk", ".nhx"):
        bio = Phylo.read(str(out / f"famA{suffix}"), "newick")
        assert sorted(c.name for c in bio.get_terminals()) == names
    # The written tree is the one read back (same topology and lengths).
    assert read_tree(out / "famA.nwk", leaf_names=family.names).robinson_foulds(ete, unrooted_trees=True)[0] == 0
    assert 0.0 <= row["nrf_latent"] <= 1.0


def test_nhx_carries_attributes(family_run, family) -> None:
    out, row = family_run
    nhx = Tree(str(out / "famA.nhx"), format=1)
    assert float(nhx.disc_score) == pytest.approx(row["disc_score"], rel=1e-3)
    assert nhx.geometry == "sqeuclidean"
    labels = {leaf.name: leaf.label for leaf in nhx.iter_leaves()}
    assert labels[family.names[1]] == "clade_one" and labels[family.names[0]] == "B"
    text = (out / "famA.nhx").read_text()
    assert "[&&NHX:loglik=" in text and ":disc_score=" in text and ":label=B" in text
    assert float(nhx.loglik) == pytest.approx(row["loglik_latent"], abs=1e-4)


def test_every_tree_has_a_loglik_under_one_model(family_run, family) -> None:
    """loglik for the latent tree and each baseline that ran; the ML trees are at least as likely as NJ's."""
    from seqae.phylo.baselines import find_fasttree
    from seqae.phylo.iqtree import find_iqtree
    from seqae.phylo.mlfit import score_trees

    out, row = family_run
    for method in ("latent", "nj_p", "bme_p", "nj_jc69"):
        assert np.isfinite(row[f"loglik_{method}"]) and row[f"loglik_{method}"] < 0
    for method, found in (("fasttree", find_fasttree()), ("iqtree", find_iqtree())):
        assert np.isfinite(row[f"loglik_{method}"]) == (found is not None)
        assert np.isfinite(row[f"nrf_{method}"]) == (found is not None)
    assert row["loglik_model_tree"] == ("iqtree" if find_iqtree() else "fasttree" if find_fasttree() else "latent")
    if find_iqtree():
        assert row["loglik_iqtree"] >= row["loglik_nj_p"] - 1e-3
        assert row["loglik_iqtree"] >= row["loglik_latent"] - 1e-3
    # The column is the written topology's likelihood: rescoring the .nwk alone (its own model) gives about the same.
    alone = score_trees(family.codes, family.names, [read_tree(out / "famA.nwk")]).log_likelihood[0]
    assert alone == pytest.approx(row["loglik_latent"], abs=0.02 * row["n_sites"])
    back = pd.read_csv(out / "famA.tsv", sep="\t")
    assert back.loc[0, "loglik_latent"] == pytest.approx(row["loglik_latent"])


def test_ancestral_fasta_names_match_the_nhx(family_run, family) -> None:
    out, row = family_run
    anc = read_family(out / "famA.ancestral.fa")
    for suffix in (".nhx", ".nwk"):
        tree = Tree(str(out / f"famA{suffix}"), format=1)
        internal = [node.name for node in tree.traverse("preorder") if not node.is_leaf()]
        assert anc.names == internal and len(internal) == len(family.names) - 2
    assert {len(seq) for seq in anc.sequences} == {row["n_sites"]}
    assert set("".join(anc.sequences)) <= set("ACGT")
    assert row["paths"]["ancestral"] == out / "famA.ancestral.fa"


def test_png_is_not_blank(family_run) -> None:
    from PIL import Image

    out, _ = family_run
    for name in ("famA.png", "famA.circular.png"):
        pixels = np.asarray(Image.open(out / name).convert("L"))
        assert pixels.shape[0] > 50 and pixels.shape[1] > 50
        assert (pixels < 128).mean() > 0.001  # some ink
        assert (pixels > 200).mean() > 0.5  # mostly background


def test_rows_have_the_documented_columns_and_gather(family_run, tmp_path) -> None:
    out, _ = family_run
    one = pd.read_csv(out / "famA.tsv", sep="\t")
    assert tuple(one.columns) == TREES_COLUMNS and len(one) == 1
    assert one.loc[0, "n_taxa"] == 8 and one.loc[0, "n_sites"] == 200
    other = one.assign(family="famB")
    other.to_csv(tmp_path / "famB.tsv", sep="\t", index=False)
    table = gather_trees([out / "famA.tsv", tmp_path / "famB.tsv"], tmp_path / "trees.tsv")
    back = pd.read_csv(tmp_path / "trees.tsv", sep="\t")
    assert tuple(back.columns) == TREES_COLUMNS and back["family"].tolist() == ["famA", "famB"] and len(table) == 2
    with pytest.raises(InputError, match="more than one"):
        gather_trees([out / "famA.tsv", out / "famA.tsv"], tmp_path / "again.tsv")
    (tmp_path / "bad.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(InputError, match="columns"):
        gather_trees([tmp_path / "bad.tsv"], tmp_path / "again.tsv")
    assert not (tmp_path / "again.tsv").exists()


def test_summary_of_hand_made_rows(tmp_path) -> None:
    """Means per method and latent-vs-NJ-p counts; a family without reference has no nRF and is left out."""
    from PIL import Image

    table = pd.DataFrame({column: [np.nan] * 4 for column in TREES_COLUMNS})
    table["family"] = ["a", "b", "c", "d"]
    table["nrf_latent"] = [0.0, 0.2, 0.4, np.nan]
    table["nrf_nj_p"] = [0.2, 0.2, 0.2, np.nan]
    table["nrf_fasttree"] = [0.0, 0.0, 0.2, np.nan]
    table["disc_auc_before"], table["disc_auc_after"] = [0.8, 0.9, 0.7, 0.6], [0.6, 0.5, 0.7, 0.6]
    table["loglik_latent"] = [-100.0, -200.0, -300.0, -50.0]
    table["loglik_fasttree"] = [-100.005, -190.0, -310.0, np.nan]
    summary = summarise_trees(table)
    assert summary["n_families"] == 4 and summary["n_with_reference"] == 3
    assert summary["nrf_latent"]["mean"] == pytest.approx(0.2) and summary["nrf_latent"]["n"] == 3
    assert summary["nrf_latent"]["sem"] == pytest.approx(0.2 / np.sqrt(3))
    assert summary["nrf_nj_jc69"] == {"mean": None, "sem": None, "n": 0}
    assert summary["latent_vs_nj_p"] == {"better": 1, "tied": 1, "worse": 1, "latent_le_nj_p": True}
    assert summary["mean_disc_auc_before"] == pytest.approx(0.75) and summary["mean_disc_auc_after"] == pytest.approx(
        0.6
    )
    assert summary["loglik_latent_vs_fasttree"]["n"] == 3 and summary["loglik_latent_vs_fasttree"]["latent_ge"] == 2
    assert summary["loglik_latent_vs_fasttree"]["mean_difference"] == pytest.approx((0.005 - 10 + 10) / 3)
    assert summary["loglik_latent_vs_iqtree"] == {"n": 0, "latent_ge": 0, "mean_difference": None}
    path = draw_tree_summary(table, tmp_path / "nrf.png")
    pixels = np.asarray(Image.open(path).convert("L"))
    assert (pixels < 128).mean() > 0.005  # bars and axes drawn
    empty = draw_tree_summary(
        table.assign(nrf_latent=np.nan, nrf_nj_p=np.nan, nrf_fasttree=np.nan), tmp_path / "none.png"
    )
    assert empty.stat().st_size > 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (">a\nACGT\n>b\nACGA\n>c\nACGG\n", "at least 4"),
        (">a\nACGT\n>b\nACGA\n>c\nACGG\n>d\nACG\n", "record 'd' has 3 characters"),
        (">a\nACGT\n>b\nACGA\n>c\nACGG\n>b\nACGC\n", "duplicate sequence name 'b'"),
    ],
)
def test_bad_family_is_one_line_and_writes_nothing(tmp_path, text, message) -> None:
    fasta = tmp_path / "bad.fa"
    fasta.write_text(text)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=message) as err:
        run_family(fasta, out, TINY, progress=False)
    assert "\n" not in str(err.value) and str(fasta) in str(err.value)
    assert not out.exists()
    # The command line: status 2, one line, no traceback.
    cfg = json.dumps({"genomes": [{"species": "x", "fasta": "x.fa", "tfs": [{"name": "T", "peaks": "p.bed"}]}]})
    argv = ["-q", "trees", "--config-json", cfg, "--family", "bad", "--fasta", str(fasta), "--outdir", str(out)]
    stderr = io.StringIO()
    import contextlib

    with contextlib.redirect_stderr(stderr):
        assert main(argv) == 2
    lines = [x for x in stderr.getvalue().splitlines() if x.strip()]
    assert len(lines) == 1 and message in lines[0]
    assert not out.exists()


def test_reference_with_other_leaves_is_rejected(tmp_path, family_files) -> None:
    fasta, _, _ = family_files
    wrong = tmp_path / "wrong.nwk"
    wrong.write_text("((a:1,b:1):1,(c:1,d:1):1);\n")
    with pytest.raises(InputError, match="do not match"):
        run_family(fasta, tmp_path / "out", TINY, reference_tree=wrong, progress=False)
    assert not (tmp_path / "out").exists()


def test_columns_of_only_gaps_are_kept_with_a_warning(tmp_path, family, caplog) -> None:
    """As IQ-TREE: a column without any base is kept (n_sites counts it), warned about, adds nothing to the
    likelihood, and is N in the ancestral sequences."""
    import logging

    from seqae.phylo.mlfit import score_trees

    seqs = family.sequences()
    gapped = {
        name: s[:2] + ("-" if k % 2 else "N") + s[2:150] + "." + s[150:] for k, (name, s) in enumerate(seqs.items())
    }
    fasta = write_family(gapped, tmp_path / "gappy.fa")
    quick = {**TINY, "epochs": 30, "adversarial_epochs": 0, "render": False, "baselines": ["nj_p"]}
    with caplog.at_level(logging.WARNING, logger="seqae"):
        row = run_family(fasta, tmp_path / "out", quick, family="gappy", progress=False)
    warned = [r.getMessage() for r in caplog.records if "only gaps" in r.getMessage()]
    assert len(warned) == 1 and str(fasta) in warned[0] and "2 alignment columns (first: column 3)" in warned[0]
    assert row["n_sites"] == 202 and row["loglik_model_tree"] == "latent"
    anc = read_family(tmp_path / "out" / "gappy.ancestral.fa")
    assert {s[2] + s[151] for s in anc.sequences} == {"NN"}
    assert set("".join(s[:2] + s[3:151] + s[152:] for s in anc.sequences)) <= set("ACGT")
    # The same likelihood as the alignment without those columns.
    latent = read_tree(tmp_path / "out" / "gappy.nwk")
    assert score_trees(family.codes, family.names, [latent]).log_likelihood[0] == pytest.approx(
        row["loglik_latent"], abs=1e-6
    )


def test_without_iqtree_the_stage_says_why_and_fits_the_model_on_fasttree(
    tmp_path, family_files, monkeypatch, caplog
) -> None:
    import logging

    from seqae.phylo import iqtree
    from seqae.phylo.baselines import find_fasttree

    monkeypatch.setattr(iqtree, "find_iqtree", lambda: None)
    fasta, tree, _ = family_files
    quick = {
        **TINY,
        "epochs": 30,
        "adversarial_epochs": 0,
        "render": False,
        "baselines": ["nj_p", "fasttree", "iqtree"],
    }
    with caplog.at_level(logging.INFO, logger="seqae"):
        row = run_family(fasta, tmp_path / "out", quick, reference_tree=tree, family="famA", progress=False)
    assert any(
        "IQ-TREE is not installed" in r.getMessage() and "iqtree left out" in r.getMessage() for r in caplog.records
    )
    assert np.isnan(row["loglik_iqtree"]) and np.isnan(row["nrf_iqtree"]) and np.isfinite(row["loglik_nj_p"])
    assert row["loglik_model_tree"] == ("fasttree" if find_fasttree() else "latent")


# ---------------------------------------------------------------- demo families stage


def test_demo_families_stage(tmp_path) -> None:
    from seqae.simulate import DEFAULT_STAGES
    from seqae.simulate.context import SimContext
    from seqae.simulate.families import simulate_families

    settings = {"seed": 5, "families": {"n_families": 2, "n_taxa": 6, "n_sites": 50}}
    ctx = SimContext(settings=settings, outdir=tmp_path / "a")
    simulate_families(ctx)
    for i in range(2):
        fam = read_family(tmp_path / "a" / "families" / f"fam_{i}.fa")
        assert len(fam.names) == 6 and fam.aligned and len(fam.sequences[0]) == 50
        tree = read_tree(tmp_path / "a" / "families" / f"fam_{i}.nwk", leaf_names=fam.names)
        assert sorted(tree.get_leaf_names()) == sorted(fam.names)
        assert ctx.outputs[f"families/fam_{i}"] == tmp_path / "a" / "families" / f"fam_{i}.fa"
    # Same seed, same bytes; the stage is added without moving the others.
    again = SimContext(settings=settings, outdir=tmp_path / "b")
    simulate_families(again)
    for name in ("fam_0.fa", "fam_1.nwk"):
        assert (tmp_path / "a" / "families" / name).read_bytes() == (tmp_path / "b" / "families" / name).read_bytes()
    # Registered in the demo generator, before the genome is written.
    names = [n for n, _ in DEFAULT_STAGES]
    assert names.index("families") < names.index("write_genome")
