"""Several genomes in one windows file: species labels, species-qualified chromosomes, a species block.

Two demo genomes of different composition (GC 0.36 and 0.50, the same
chromosome names) are extracted into one file, then a tiny model with a
``species`` block and a ``chrom`` block is trained and evaluated on it.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from seqae.checkpoint import load_checkpoint
from seqae.config import validate_config
from seqae.evaluation import evaluate_model
from seqae.extract import extract_windows
from seqae.simulate import simulate_demo
from seqae.training import train_model
from seqae.windows.store import qualify_chromosomes, read_labels
from tests.conftest import tiny_model

GENOME = {
    "n_chromosomes": 2,
    "chromosome_length": 60000,
    "n_genes": 8,
    "n_gene_families": 2,
    "tfs": [{"name": "CTCF", "motif": "MA0139.2", "n_peaks": 60}],
    "families": {"n_families": 0},
}
SPECIES = {"sp_at": {"seed": 3, "gc_mean": 0.36}, "sp_gc": {"seed": 4, "gc_mean": 0.50}}
MODEL = tiny_model(
    blocks={
        "species": {"size": 2, "label": "species"},
        "chrom": {"size": 2, "label": "chrom"},
        "residual": {"size": 4, "label": None},
    }
)


@pytest.fixture(scope="module")
def two_genomes(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("two_genomes")
    genomes = []
    for species, settings in SPECIES.items():
        out = simulate_demo({**copy.deepcopy(GENOME), **settings}, root / species)
        genomes.append({
            "species": species,
            "fasta": str(out["fasta"]),
            "annotation": str(out["annotation"]),
            "tfs": [{"name": "CTCF", "peaks": str(out["peaks/CTCF"]), "bigwig": str(out["tracks/CTCF"])}],
        })  # fmt: skip
    config = validate_config({
        "genomes": genomes,
        "extract": {"window_len": 200, "max_jitter": 10, "split": {"val_fraction": 0.15, "test_fraction": 0.25}},
        "models": {"tiny": MODEL},
        "training": {"epochs": 2, "batch_size": 16, "warmup_steps": 2, "device": "cpu"},
    })  # fmt: skip
    h5 = root / "windows" / "windows.h5"
    report = extract_windows(config, h5, progress=False)
    return {"root": root, "config": config, "h5": h5, "report": report}


def test_windows_carry_species_and_each_genomes_own_names(two_genomes):
    labels = read_labels(two_genomes["h5"])
    assert set(labels["species"]) == set(SPECIES)
    # The file keeps each FASTA's names (BED and bigWig outputs match the genome)...
    assert set(labels.loc[labels.species == "sp_at", "chrom"]) == {"chr1", "chr2"}
    assert set(labels.loc[labels.species == "sp_gc", "chrom"]) == {"chr1", "chr2"}
    # ... and models see species-qualified chromosomes.
    qualified = qualify_chromosomes(labels)
    assert set(qualified["chrom"]) == {"sp_at:chr1", "sp_at:chr2", "sp_gc:chr1", "sp_gc:chr2"}
    assert (
        qualify_chromosomes(labels[labels.species == "sp_at"])["chrom"].tolist()
        == labels.loc[labels.species == "sp_at", "chrom"].tolist()
    )
    # The extraction report has one entry per genome.
    per_genome = {g["species"]: g for g in two_genomes["report"]["genomes"]}
    assert set(per_genome) == set(SPECIES)
    assert all(g["n_chromosomes"] == 2 for g in per_genome.values())
    # chrom.sizes names them as the embeddings' bigWigs do: species-qualified.
    sizes = (two_genomes["h5"].parent / "chrom.sizes").read_text().splitlines()
    assert [line.split("\t")[0] for line in sizes] == [f"{sp}:{c}" for sp in SPECIES for c in ("chr1", "chr2")]


@pytest.mark.usefixtures("one_torch_thread")
def test_species_block_trains_and_is_probed(two_genomes):
    out = two_genomes["root"] / "tiny"
    train_model(two_genomes["config"], "tiny", two_genomes["h5"], out, progress=False)
    meta = load_checkpoint(out / "best.pt")
    categories = meta["data"]["label_categories"]
    assert categories["species"] == sorted(SPECIES)
    assert categories["chrom"] == ["sp_at:chr1", "sp_at:chr2", "sp_gc:chr1", "sp_gc:chr2"]

    settings = {"judge_k": [3], "dci_max_train": 200, "batch_size": 64, "figures": False}
    metrics = evaluate_model(out / "best.pt", two_genomes["h5"], out / "evaluate", settings, progress=False)
    probes = metrics["probes"]
    assert {"species", "chrom"} <= set(probes["labels"])
    species = probes["blocks"]["species"]
    assert species["label"] == "species"
    # Species differ in GC by 0.14: the k-mer baseline reads them from sequence.
    assert probes["recoverable"]["species"] is True
    assert species["kmer_baseline"] > probes["chance"]["species"] + 0.2
    for key in ("probe", "kmer_baseline", "chance"):
        assert 0.0 <= species[key] <= 1.0
    assert np.isfinite(probes["accuracy"]["residual"]["species"])


def test_shared_coordinates_and_holdouts_meet_across_chromosome_naming(tiny_inputs):
    """chr1 in one genome, 1 in another: the split hashed each FASTA's own name, so the same region straddled
    splits with shared_coordinates, and holding out chr1 left the other genome's 1 in training."""
    d = tiny_inputs["dir"]
    renamed = d / "ensembl.fa"
    renamed.write_text(tiny_inputs["fasta"].read_text().replace(">chr", ">"))
    base = copy.deepcopy(tiny_inputs["config"])
    ensembl = {**copy.deepcopy(base["genomes"][0]), "species": "ensembl", "fasta": str(renamed), "annotation": None}
    base["genomes"] = [base["genomes"][0], ensembl]
    base["extract"]["background_ratio"] = 0.0
    for split, check in (
        ({"shared_coordinates": True, "bin_size": 300, "test_fraction": 0.4, "val_fraction": 0.2}, "same"),
        ({"holdout_chromosomes": {"val": [], "test": ["chr1"]}}, "held"),
    ):
        config = validate_config({**copy.deepcopy(base), "extract": {**base["extract"], "split": split}})
        out = d / check / "windows.h5"
        extract_windows(config, out, progress=False)
        labels = read_labels(out)
        labels["key"] = labels["chrom"].str.removeprefix("chr")
        pairs = labels.pivot_table(index=["key", "start"], columns="species", values="split", aggfunc="first")
        assert len(pairs) >= 6 and pairs.notna().all().all()
        if check == "same":
            assert (pairs["tiny"] == pairs["ensembl"]).all() and pairs["tiny"].nunique() > 1
        else:
            assert set(labels.loc[labels["key"] == "1", "split"]) == {"test"}
            assert "test" not in set(labels.loc[labels["key"] != "1", "split"])


def test_genome_entries_that_are_likely_mistakes_are_warned_about(tiny_inputs, caplog):
    """One FASTA under two species, a track one genome lacks (stored as 0), TF names differing in case."""
    from seqae.extract_plan import warn_about_genome_inputs

    genome = tiny_inputs["config"]["genomes"][0]
    other = {**copy.deepcopy(genome), "species": "copy"}
    other["tfs"] = [{**other["tfs"][0], "name": "tfa"}]
    with caplog.at_level("WARNING", logger="seqae"):
        warn_about_genome_inputs([genome, other], ["TFA", "TFB", "tfa"])
    assert f"genomes tiny, copy read one FASTA ({tiny_inputs['fasta']})" in caplog.text
    assert "track TFA has no bigWig in genome copy: its windows store 0 for it" in caplog.text
    assert "track tfa has no bigWig in genome tiny" in caplog.text
    assert "TF names TFA and tfa differ only in case" in caplog.text
