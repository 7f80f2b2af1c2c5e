"""seqae.phylo.stage: the tree stage per family and for batches of families, its outputs, bad input and the
demo families."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from seqae.cli import main
from seqae.errors import InputError
from seqae.phylo.ete import Tree
from seqae.phylo.io import read_family, read_tree, write_family
from seqae.phylo.stage import run_family
from tests.phylo.conftest import TINY, simulated_family

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (">a\nACGT\n>b\nACGA\n>c\nACGG\n", "at least 4"),
        (">a\nACGT\n>b\nACGA\n>c\nACGG\n>d\nACG\n", "record 'd' has 3 characters"),
        (">a\nACGT\n>b\nACGA\n>c\nACGG\n>b\nACGC\n", "duplicate sequence name 'b'"),
        (">a\nACGT\n>b\nACGA\n>c\nN--N\n>d\nACGC\n", "record 'c' has no A, C, G or T"),
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


def test_an_alignment_mostly_of_ambiguity_codes_is_warned_about(tmp_path, caplog) -> None:
    import logging

    from seqae.phylo.inputs import prepare_family

    fasta = tmp_path / "prot.fa"
    # A protein alignment in the letters IUPAC DNA shares with amino acids.
    fasta.write_text(
        ">a\nMKVLAAGIWR\n>b\nMKVLSAGIWR\n>c\nMRVLAAGVWR\n>d\nMKVIAAGIWK\n".replace("I", "H").replace("L", "D")
    )
    with caplog.at_level(logging.WARNING, logger="seqae"):
        prepare_family(fasta, tmp_path / "out", None, None, "prot")
    assert any(
        "are IUPAC ambiguity codes" in r.getMessage() and "is this DNA?" in r.getMessage() for r in caplog.records
    )
    caplog.clear()
    fasta.write_text(">a\nACGTRACGTA\n>b\nACGTAACGTA\n>c\nACGAAACGTA\n>d\nACGTAACTTA\n")
    with caplog.at_level(logging.WARNING, logger="seqae"):
        prepare_family(fasta, tmp_path / "out", None, None, "dna")
    assert not caplog.records


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
    # Figures of an earlier run with render on would stand beside the new tree: they are removed.
    (tmp_path / "out").mkdir()
    for old in ("gappy.png", "gappy.circular.svg", "other.png"):
        (tmp_path / "out" / old).write_bytes(b"old")
    with caplog.at_level(logging.INFO, logger="seqae"):
        row = run_family(fasta, tmp_path / "out", quick, family="gappy", progress=False)
    assert not (tmp_path / "out" / "gappy.png").exists() and not (tmp_path / "out" / "gappy.circular.svg").exists()
    assert (tmp_path / "out" / "other.png").exists()  # another family's
    assert "gappy: trees.render is false: removed 2 figures of an earlier run" in caplog.text
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("gappy: 8 taxa")]
    assert "no reference tree, so no nRF," in summary[0] and "nRF latent" not in summary[0]
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
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("famA: 8 taxa")]
    assert f"nRF latent {row['nrf_latent']:.3f}" in summary[0]  # with a reference, the summary gives the nRFs
    assert "IQ-TREE not run" in summary[0] and "nan" not in summary[0]  # a baseline left out reads as such
    messages = [r.getMessage() for r in caplog.records]
    assert "famA: baseline nj_p ..." in messages and any(m.startswith("famA: baseline nj_p done in") for m in messages)


def test_demo_families_stage(tmp_path) -> None:
    from seqae.simulate import DEFAULT_STAGES, fill_defaults
    from seqae.simulate.context import SimContext
    from seqae.simulate.families import simulate_families

    settings = fill_defaults({"seed": 5, "families": {"n_families": 2, "n_taxa": 6, "n_sites": 50}})
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


TINY_STAGE = {
    "latent_tree": {"dim": 4, "init_steps": 40, "epochs": 5, "nni_rounds": 2, "n_reference": 16, "judge_steps": 20},
    "render": False,
    "baselines": ["nj_p"],
}


def test_seqae_trees_batch_fits_families_together_with_and_without_the_adversary(tmp_path):
    import json

    import pandas as pd

    from seqae.cli import main
    from seqae.phylo.io import read_tree, write_family

    lines = ["name\tfasta\treference"]
    for k, n in enumerate((7, 7, 5)):
        fam = simulated_family(n, 150, 30 + k)
        write_family(fam.sequences(), tmp_path / f"f{k}.fa")
        (tmp_path / f"f{k}.nwk").write_text(fam.newick())
        lines.append(f"f{k}\t{tmp_path / f'f{k}.fa'}\t{tmp_path / f'f{k}.nwk'}")
    (tmp_path / "batch.tsv").write_text("\n".join(lines) + "\n")
    cfg = json.dumps({"genomes": [{"species": "x", "fasta": "x.fa", "tfs": [{"name": "T", "peaks": "p.bed"}]}],
                      "trees": TINY_STAGE})  # fmt: skip
    out = tmp_path / "out"
    assert (
        main(["-q", "trees", "--config-json", cfg, "--batch", str(tmp_path / "batch.tsv"), "--outdir", str(out)]) == 0
    )
    for k in range(3):
        row = pd.read_csv(out / f"f{k}" / f"f{k}.tsv", sep="\t").iloc[0]
        assert row["geometry"] == "poincare_nj" and row["adversarial_weight_adv"] == 0.3
        assert row["nrf_latent"] == row["nrf_latent_noadv"] and 0 <= row["nrf_latent_adv"] <= 1
        assert np.isfinite([row["loglik_latent"], row["loglik_latent_adv"], row["loglik_nj_p"]]).all()
        assert 0 <= row["disc_auc_before"] <= 1 and 0 <= row["disc_auc_after"] <= 1 and 0 <= row["disc_score"] <= 1
        tree = read_tree(out / f"f{k}" / f"f{k}.nwk")
        inner = {node.name for node in tree.traverse() if not node.is_leaf()}
        text = (out / f"f{k}" / f"f{k}.ancestral.fa").read_text()
        assert {line[1:].strip() for line in text.splitlines() if line.startswith(">")} == inner
    # A row naming a file that is not there is named by its line, before any family is fitted.
    from seqae.errors import InputError
    from seqae.phylo.inputs import read_batch

    (tmp_path / "bad.tsv").write_text("\n".join([*lines, f"f9\t{tmp_path / 'f0.fa'}\t{tmp_path / 'gone.nwk'}"]) + "\n")
    with pytest.raises(InputError) as err:
        read_batch(tmp_path / "bad.tsv", out)
    assert (
        str(err.value)
        == f"{tmp_path / 'bad.tsv'}:5: family 'f9': its reference file '{tmp_path / 'gone.nwk'}' does not exist"
    )


def test_a_family_of_identical_sequences_gets_a_tree_and_a_warning(tmp_path, caplog):
    """A perfectly conserved family (all sequences the same) is fitted, not lost to a 0/0 in the distance fit."""
    import logging

    from seqae.phylo.io import read_tree, write_family
    from seqae.phylo.mlfit import MIN_LENGTH

    seq = simulated_family(6, 120, 40).sequences()["t0"]
    fasta = write_family({f"s{i}": seq for i in range(6)}, tmp_path / "same.fa")
    with caplog.at_level(logging.WARNING, logger="seqae"):
        row = run_family(fasta, tmp_path / "out", TINY_STAGE, family="same", progress=False)
    warned = [r.getMessage() for r in caplog.records if "identical" in r.getMessage()]
    assert len(warned) == 1 and str(fasta) in warned[0] and "all 6 sequences" in warned[0]
    assert np.isfinite([row["loglik_latent"], row["loglik_nj_p"]]).all()
    assert row["loglik_latent"] == pytest.approx(row["loglik_nj_p"], abs=1e-3)
    tree = read_tree(tmp_path / "out" / "same.nwk")
    assert sorted(tree.get_leaf_names()) == [f"s{i}" for i in range(6)]
    assert max(node.dist for node in tree.traverse() if not node.is_root()) <= 10 * MIN_LENGTH


def test_run_families_rejects_a_family_listed_twice(tmp_path):
    from seqae.errors import ConfigError
    from seqae.phylo.io import write_family
    from seqae.phylo.stage import run_families

    fam = simulated_family(5, 50, 40)
    write_family(fam.sequences(), tmp_path / "a.fa")
    spec = {"fasta": tmp_path / "a.fa", "outdir": tmp_path / "out"}
    with pytest.raises(ConfigError, match="listed twice"):
        run_families([spec, spec], TINY_STAGE)
    assert not (tmp_path / "out").exists()


def test_misused_tree_runs_are_refused_before_any_fit(tmp_path, monkeypatch, capsys):
    """Found by a probe: an output folder holding the inputs (the reference was replaced by the latent tree,
    and the next run scored 0 against it), family names '.' and '..' (outputs beside or above the folder),
    --batch with --fasta (ignored), batch rows with too many fields (the error named another family's file),
    and an output folder behind a file (named only after the fit)."""
    import seqae.phylo.stage as stage
    from seqae.errors import ConfigError
    from seqae.phylo.inputs import read_batch

    monkeypatch.setattr(stage, "_fit_tree_latent", lambda *a, **k: pytest.fail("fitted before the check"))
    fam = simulated_family(5, 50, 40)
    write_family(fam.sequences(), tmp_path / "fam.fa")
    (tmp_path / "fam.nwk").write_text(fam.newick())
    with pytest.raises(ConfigError, match=r"fam\.nwk: the family's reference input is also its output fam\.nwk in"):
        run_family(tmp_path / "fam.fa", tmp_path, TINY_STAGE, reference_tree=tmp_path / "fam.nwk", family="fam")
    for name in (".", ".."):
        with pytest.raises(ConfigError, match=r"may hold only letters, digits, '_', '\.' and '-', and not only dots"):
            run_family(tmp_path / "fam.fa", tmp_path / "out", TINY_STAGE, family=name)
    (tmp_path / "file").write_text("")
    with pytest.raises(Exception, match=r"out: cannot create this output folder \(.*file is a file, not a folder\)"):
        run_family(tmp_path / "fam.fa", tmp_path / "file" / "out", TINY_STAGE, family="fam")
    assert not (tmp_path / "out").exists()

    header = "name\tfasta\treference\n"
    for rows, message in (
        (f"a\t{tmp_path / 'fam.fa'}\n", r"batch\.tsv:2: 2 tab-separated fields; the header has 3"),
        (f"a\t{tmp_path / 'fam.fa'}\t\tx\n", r"batch\.tsv:2: 4 tab-separated fields; the header has 3"),
        (f"..\t{tmp_path / 'fam.fa'}\t\n", r"batch\.tsv:2: family name '\.\.' may hold only"),
        (f"a\t{tmp_path / 'fam.fa'}\t\na\t{tmp_path / 'fam.fa'}\t\n", r"batch\.tsv:3: family 'a' is listed twice \(first on line 2\)"),
    ):  # fmt: skip
        (tmp_path / "batch.tsv").write_text(header + rows)
        with pytest.raises(InputError, match=message):
            read_batch(tmp_path / "batch.tsv", tmp_path / "out")
    (tmp_path / "batch.tsv").write_text(header + f"a\t{tmp_path / 'fam.fa'}\t\n")
    for extra, message in (
        (["--batch", str(tmp_path / "batch.tsv"), "--fasta", "x.fa"], "--fasta names one family; --batch and --all"),
        (["--batch", str(tmp_path / "batch.tsv"), "--all"], "give --batch or --all, not both"),
        ([], "seqae trees: error: give --family and --fasta (one family)"),
    ):
        assert main(["-q", "trees", "--outdir", str(tmp_path / "out"), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_labels_file_names_a_sequence_labelled_twice(tmp_path):
    """The last label won, silently."""
    from seqae.phylo.inputs import read_labels

    path = tmp_path / "labels.tsv"
    path.write_text("a\thuman\nb\tmouse\na\trat\n")
    with pytest.raises(InputError, match=r"labels\.tsv:3: sequence 'a' is labelled twice \(first on line 1\)"):
        read_labels(path, ["a", "b", "c", "d"])
    path.write_text("a\thuman\nb\tmouse (lab)\n")
    assert read_labels(path, ["a", "b", "c", "d"]) == {"a": "human", "b": "mouse_lab"}


def test_a_family_failing_after_the_fit_loses_only_its_own_outputs(tmp_path, monkeypatch, caplog):
    """A batch in which one family failed to score, draw or write after the joint fit stopped there: the
    families after it were not written, and the failed one kept the files it had written."""
    import seqae.phylo.stage as stage
    from seqae.errors import SeqaeError
    from seqae.phylo.io import write_family

    specs = []
    for k in range(3):
        fam = simulated_family(5, 60, 50 + k)
        write_family(fam.sequences(), tmp_path / f"f{k}.fa")
        specs.append({"fasta": tmp_path / f"f{k}.fa", "outdir": tmp_path / "out" / f"f{k}", "name": f"f{k}"})
    finish = stage.finish_family

    def failing_for_f1(fam, *args):
        if fam.name == "f1":
            fam.outdir.mkdir(parents=True, exist_ok=True)
            (fam.outdir / "f1.nwk").write_text("(a,b);\n")  # written before the failure
            raise SeqaeError(f"{fam.outdir / 'f1.png'}: ete3 wrote an empty figure")
        return finish(fam, *args)

    monkeypatch.setattr(stage, "finish_family", failing_for_f1)
    with pytest.raises(SeqaeError, match=r"^1 of 3 families failed after the fit \(f1: see the lines above\); "
                                         r"the other 2 were written$"):  # fmt: skip
        stage.run_families(specs, TINY_STAGE, progress=False)
    assert "f1: " in caplog.text and "ete3 wrote an empty figure; its outputs are not written" in caplog.text
    assert (tmp_path / "out" / "f0" / "f0.nwk").is_file() and (tmp_path / "out" / "f2" / "f2.nwk").is_file()
    assert not list((tmp_path / "out" / "f1").iterdir())
