"""seqae.genome_inputs: chromosome names across sources (chrom_aliases) in extraction, and which chromosomes
windows come from (extract.chromosomes)."""

from __future__ import annotations

import numpy as np
import pytest

from seqae.extract import extract_windows
from seqae.windows.store import read_labels
from tests.conftest import make_config, random_dna, write_bigwig, write_fasta


@pytest.fixture
def ensembl_genome(tmp_path):
    """An Ensembl-named genome (1, 2, MT, an unplaced scaffold) with UCSC-named peaks, bigWig and GTF."""
    rng = np.random.default_rng(5)
    seqs = {"1": random_dna(rng, 8000), "2": random_dna(rng, 8000), "MT": random_dna(rng, 3000),
            "KI270728.1": random_dna(rng, 30000)}  # fmt: skip
    fasta = write_fasta(tmp_path / "genome.fa", seqs)
    peaks = tmp_path / "tf.narrowPeak"
    peaks.write_text(
        "".join(f"{c}\t{s}\t{s + 100}\tp{i}\t10\t.\t5\t5\t5\t50\n" for i, (c, s) in enumerate(
            [("chr1", 1000), ("chr1", 5000), ("chr2", 3000), ("chrM", 1500)]))
    )  # fmt: skip
    ucsc = {"1": "chr1", "2": "chr2", "MT": "chrM", "KI270728.1": "chrUn_KI270728v1"}
    bw = write_bigwig(tmp_path / "tf.bw", {c: np.ones(len(s), np.float32) for c, s in seqs.items()}, names=ucsc)
    gtf = tmp_path / "genes.gtf"
    gtf.write_text('chr1\tt\tgene\t1101\t2000\t.\t+\t.\tgene_id "G1";\n')
    return tmp_path, fasta, peaks, bw, gtf


def _config(ensembl_genome, **extract):
    d, fasta, peaks, bw, gtf = ensembl_genome
    return make_config(
        fasta=fasta, tfs=[("TF", peaks, bw)], annotation=gtf,
        extract={"window_len": 200, "max_jitter": 0, "background_ratio": 2.0, **extract},
    )  # fmt: skip


def test_ucsc_inputs_on_an_ensembl_fasta(ensembl_genome, caplog):
    d = ensembl_genome[0]
    out = d / "out" / "windows.h5"
    with caplog.at_level("INFO", logger="seqae"):
        report = extract_windows(_config(ensembl_genome), out, progress=False)
    labels = read_labels(out)
    peaks = labels[labels["kind"] == "peak"]
    assert sorted(peaks["chrom"]) == ["1", "1", "2", "MT"]
    assert peaks.loc[peaks["start"] == 950, "gene_id"].tolist() == ["G1"]
    # Default include rule: background windows only on chromosomes that hold peaks (not the scaffold).
    assert set(labels["chrom"]) == {"1", "2", "MT"} and (labels["kind"] == "background").any()
    for source in ("tf.narrowPeak", "tf.bw", "genes.gtf"):
        assert f"{source}: " in caplog.text and "matched to the FASTA's by chrom_aliases: auto" in caplog.text
    genome = report["genomes"][0]
    assert genome["peaks"]["TF"]["chrom_names"] == {"1": "chr1", "2": "chr2", "MT": "chrM"}
    assert genome["genes"]["chrom_names"] == {"1": "chr1"}
    assert genome["bigwig_chrom_names"]["TF"] == {"1": "chr1", "2": "chr2", "MT": "chrM"}


def test_include_all_and_exclude(ensembl_genome):
    d = ensembl_genome[0]
    # UCSC's name of the unplaced scaffold (chrUn_KI270728v1) needs the alias table.
    table = d / "chromAlias.txt"
    table.write_text("# ucsc\tensembl\nchr1\t1\nchr2\t2\nchrM\tMT\nchrUn_KI270728v1\tKI270728.1\n")
    config = _config(ensembl_genome, chromosomes={"include": "all", "exclude": ["MT"]})
    config["genomes"][0]["chrom_aliases"] = str(table)
    out = d / "all" / "windows.h5"
    extract_windows(config, out, progress=False)
    labels = read_labels(out)
    assert "MT" not in set(labels["chrom"])
    assert (labels.loc[labels["kind"] == "peak", "chrom"] != "MT").all()
    assert "KI270728.1" in set(labels.loc[labels["kind"] == "background", "chrom"])
    out = d / "list" / "windows.h5"
    extract_windows(_config(ensembl_genome, chromosomes={"include": ["[0-9]*"]}), out, progress=False)
    assert set(read_labels(out)["chrom"]) == {"1", "2"}


def test_none_rule_gives_the_no_common_chromosome_line(ensembl_genome, capsys):
    from tests.conftest import run_extract_cli

    config = _config(ensembl_genome)
    config["genomes"][0]["chrom_aliases"] = "none"
    out = ensembl_genome[0] / "none" / "windows.h5"
    code, err = run_extract_cli(config, out, capsys)
    assert code == 2 and len(err) == 1, err
    assert "tf.narrowPeak: no chromosome name in common with the FASTA" in err[0]
    assert "chrom_aliases: none" in err[0]
    assert not out.exists()
