"""Extraction on annotations as each source writes them (tests/data/formats/), against hand counts.

Every file in the corpus holds the same three genes in its source's own
layout (gene -> transcript -> exon/CDS lines, or transcripts, mRNAs or CDS
without gene lines; its own attributes, ID schemes and chromosome names):

* A, + strand, 1-based 2001..5000: TSS at 0-based 2000 (where the gene is
  built from transcripts, their union spans 2001..5000);
* B, - strand, 1-based 9001..12000: TSS at 0-based 11999;
* C, + strand, from 1-based 15001 (TSS 15000), a small RNA gene; not in
  the GENCODE and UCSC excerpts.

Windows of 200 bp are centred on the summits below, so each window's centre
is its summit. Hand counts (promoter: -1000 <= distance <= 500):

=======  ====  ===========  ==========================================
summit   gene  TSS dist.    region (why)
=======  ====  ===========  ==========================================
1800     A     -200         promoter (200 bp upstream of A's TSS)
3500     A     +1500        gene_body (inside A, 1500 bp downstream)
7000     B     +4999        intergenic (B's TSS 11999 is 4999 bp away,
                            A's 5000; past B's 3' end)
10000    B     +1999        gene_body (inside B, minus strand)
12500    B     -501         promoter (upstream of a minus-strand gene)
15200    C     +200         promoter; without C: B, -3201, intergenic
=======  ====  ===========  ==========================================
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from seqae.extract import extract_windows
from seqae.models import DEFAULT_MODEL_SETTINGS
from seqae.windows.store import read_labels
from tests.conftest import make_config, random_dna, tiny_model, write_fasta

FORMATS = Path(__file__).parent / "data" / "formats"

SUMMITS = [1800, 3500, 7000, 10000, 12500, 15200]
# summit -> (gene letter, TSS distance, region class)
WITH_C = {
    1800: ("A", -200, "promoter"),
    3500: ("A", 1500, "gene_body"),
    7000: ("B", 4999, "intergenic"),
    10000: ("B", 1999, "gene_body"),
    12500: ("B", -501, "promoter"),
    15200: ("C", 200, "promoter"),
}
WITHOUT_C = {**WITH_C, 15200: ("B", -3201, "intergenic")}

# file -> (FASTA chromosome name, {letter: (gene_id, gene_name, gene_biotype)}, with gene C)
CORPUS = {
    "ensembl.gtf": (
        "1",
        {
            "A": ("ENSG00000300001", "ALPHA1", "protein_coding"),
            "B": ("ENSG00000300002", "BETA2-AS1", "lncRNA"),
            "C": ("ENSG00000300003", "ENSG00000300003", "miRNA"),
        },
    ),
    "gencode.gtf": (
        "chr1",
        {"A": ("ENSG00000300001.3", "ALPHA1", "protein_coding"), "B": ("ENSG00000300002.1", "BETA2-AS1", "lncRNA")},
    ),
    "refseq.gff3": (
        "NC_000001.11",
        {
            "A": ("ALPHA1", "ALPHA1", "protein_coding"),
            "B": ("BETA2-AS1", "BETA2-AS1", "lncRNA"),
            "C": ("MIR9001", "MIR9001", "miRNA"),
        },
    ),
    "ensembl.gff3": (
        "1",
        {
            "A": ("ENSG00000300001", "ALPHA1", "protein_coding"),
            "B": ("ENSG00000300002", "BETA2-AS1", "lncRNA"),
            "C": ("ENSG00000300003", "ENSG00000300003", "miRNA"),
        },
    ),
    "ucsc.gtf": ("chr1", {"A": ("ALPHA1", "ALPHA1", ""), "B": ("BETA2-AS1", "BETA2-AS1", "")}),
    "fungal_mrna_only.gff3": (
        "scaffold_1",
        {
            "A": ("FOXG_00001", "FOXG_00001", ""),  # the mRNAs' Parent, absent from the file
            "B": ("FOXG_00002T0", "FOXG_00002", ""),  # an mRNA without Parent: the gene is the mRNA
            "C": ("FOXG_t0001_gene", "tRNA-Leu", ""),
        },
    ),
    "prokka_with_fasta.gff3": (
        "contig_1",
        {
            "A": ("PROKKA_00001", "dnaN", ""),  # CDS lines only: each CDS is its gene
            "B": ("PROKKA_00002", "PROKKA_00002", ""),
            "C": ("PROKKA_00003", "PROKKA_00003", ""),
        },
    ),
    "tair10.gff3": (
        "Chr1",
        {"A": ("AT1G90010", "AT1G90010", ""), "B": ("AT1G90020", "AT1G90020", ""), "C": ("AT1G90030", "AT1G90030", "")},
    ),
}


def compress(source: Path, target: Path, bgzip: bool) -> Path:
    """gzip or bgzip (blocked gzip, as `bgzip` writes it) ``source`` into ``target``."""
    if bgzip:
        from Bio import bgzf

        with bgzf.BgzfWriter(str(target), "wb") as out:
            out.write(source.read_bytes())
    else:
        target.write_bytes(gzip.compress(source.read_bytes()))
    return target


def extract_with(annotation: Path, chrom: str, tmp_path: Path):
    rng = np.random.default_rng(3)
    fasta = write_fasta(tmp_path / "genome.fa", {chrom: random_dna(rng, 20000)})
    peaks = tmp_path / "tf.narrowPeak"
    peaks.write_text("".join(f"{chrom}\t{s - 50}\t{s + 50}\tp{s}\t10\t.\t5\t5\t5\t50\n" for s in SUMMITS))
    config = make_config(
        fasta=fasta,
        tfs=[("TF", peaks, None)],
        annotation=annotation,
        extract={"window_len": 200, "max_jitter": 0, "background_ratio": 0},
    )
    out = tmp_path / "out" / "windows.h5"
    extract_windows(config, out, progress=False)
    return read_labels(out).set_index("summit")


CASES = [(name, None) for name in CORPUS] + [
    ("ensembl.gtf", "gzip"),
    ("refseq.gff3", "gzip"),
    ("fungal_mrna_only.gff3", "bgzip"),
]


@pytest.mark.parametrize(("name", "compression"), CASES, ids=[f"{n}{'.' + c if c else ''}" for n, c in CASES])
def test_extraction_labels_match_hand_counts(name: str, compression: str | None, tmp_path: Path) -> None:
    chrom, genes = CORPUS[name]
    source = FORMATS / name
    first_line = source.read_text().splitlines()[:8]
    assert any(line.startswith("#") and "layout of" in line for line in first_line), "name the format version"
    if compression:
        annotation = compress(source, tmp_path / f"{name}.gz", bgzip=compression == "bgzip")
    else:
        annotation = shutil.copy(source, tmp_path / name)
    labels = extract_with(Path(annotation), chrom, tmp_path)
    assert sorted(labels.index) == SUMMITS
    expected = WITH_C if "C" in genes else WITHOUT_C
    for summit, (letter, distance, region) in expected.items():
        row = labels.loc[summit]
        gene_id, gene_name, biotype = genes[letter]
        got = (row["gene_id"], row["gene_name"], row["gene_biotype"], row["tss_distance"], row["region_class"])
        assert got == (gene_id, gene_name, biotype, distance, region), (name, summit)


def test_default_blocks_train_on_an_annotation_without_gene_lines(tmp_path: Path) -> None:
    """The default model's blocks (chrom, gene: region_class, residual) have labels on a real annotation."""
    import torch

    from seqae.training import train_model

    chrom = "scaffold_1"
    rng = np.random.default_rng(4)
    fasta = write_fasta(tmp_path / "genome.fa", {chrom: random_dna(rng, 20000), "scaffold_2": random_dna(rng, 6000)})
    peaks = tmp_path / "tf.narrowPeak"
    summits = list(range(300, 19700, 150)) + list(range(300, 5700, 300))
    names = [chrom] * len(range(300, 19700, 150)) + ["scaffold_2"] * len(range(300, 5700, 300))
    peaks.write_text("".join(f"{c}\t{s - 50}\t{s + 50}\tp{i}\t10\t.\t5\t5\t5\t50\n"
                             for i, (c, s) in enumerate(zip(names, summits, strict=True))))  # fmt: skip
    config = make_config(
        fasta=fasta,
        tfs=[("TF", peaks, None)],
        annotation=FORMATS / "fungal_mrna_only.gff3",
        extract={"window_len": 200, "max_jitter": 8, "split": {"bin_size": 500}},
        models={"plain": tiny_model(blocks=DEFAULT_MODEL_SETTINGS["blocks"])},
        training={"batch_size": 16, "epochs": 1, "max_steps": 2, "warmup_steps": 1, "num_workers": 0},
    )
    out = tmp_path / "out" / "windows.h5"
    extract_windows(config, out, progress=False)
    # scaffold_2 has no gene: its windows are unannotated (""), not intergenic.
    assert set(read_labels(out)["region_class"]) == {"promoter", "gene_body", "intergenic", ""}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train_model(config, "plain", out, tmp_path / "plain", progress=False)
    finally:
        torch.set_num_threads(threads)
    assert result["steps"] == 2 and (tmp_path / "plain" / "best.pt").exists()
