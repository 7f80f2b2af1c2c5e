"""Genes from GTF/GFF3, nearest gene, signed TSS distance and region class."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqae.annotation import GENE_COLUMNS, annotate_positions, read_genes
from seqae.errors import InputError

# chr1: GP on + at 1-based 1001-2000 (0-based [1000, 2000), TSS 1000) and GM on
# - at 1-based 5001-6001 (0-based [5000, 6001), TSS 6000); chr2: GC on +, TSS 100.
GTF_LINES = [
    "#!genome-build test",
    'chr1\tsrc\tgene\t1001\t2000\t.\t+\t.\tgene_id "GP"; gene_name "Alpha"; gene_biotype "protein_coding"; gene_family "ZNF";',
    'chr1\tsrc\ttranscript\t1001\t2000\t.\t+\t.\tgene_id "GP"; transcript_id "TP";',
    'chr1\tsrc\texon\t1001\t1200\t.\t+\t.\tgene_id "GP"; transcript_id "TP"; exon_number "1";',
    'chr1\tsrc\tgene\t5001\t6001\t.\t-\t.\tgene_id "GM"; gene_type "lncRNA";',
    'chr2\tsrc\tgene\t101\t200\t.\t+\t.\tgene_id "GC"; gene_name "Gamma;x";',
]

GFF3_LINES = [
    "##gff-version 3",
    "##sequence-region chr1 1 10000",
    "chr1\tsrc\tgene\t1001\t2000\t.\t+\t.\tID=gene:GP;Name=Alpha;biotype=protein_coding;gene_family=ZNF",
    "chr1\tsrc\tmRNA\t1001\t2000\t.\t+\t.\tID=transcript:TP;Parent=gene:GP;biotype=protein_coding",
    "chr1\tsrc\texon\t1001\t1200\t.\t+\t.\tParent=transcript:TP",
    "###",
    "chr1\tsrc\tncRNA_gene\t5001\t6001\t.\t-\t.\tID=gene:GM;biotype=lncRNA",
    "chr2\tsrc\tgene\t101\t200\t.\t+\t.\tID=gene:GC;Name=Gamma%3Bx",
    "##FASTA",
    ">chr1",
    "ACGTACGT",
]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def raises_at(path: Path, line: int | None, what: str):
    """pytest.raises for an InputError naming ``path``, ``line`` and containing ``what``."""
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    return pytest.raises(InputError, match="^" + re.escape(where) + ".*" + re.escape(what))


def expected_genes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "gene_id": ["GP", "GM", "GC"],
            "gene_name": ["Alpha", "GM", "Gamma;x"],
            "gene_biotype": ["protein_coding", "lncRNA", ""],
            "gene_family": ["ZNF", "", ""],
            "chrom": ["chr1", "chr1", "chr2"],
            "start": [1000, 5000, 100],
            "end": [2000, 6001, 200],
            "strand": ["+", "-", "+"],
            "tss": [1000, 6000, 100],
        }
    )


def assert_genes(genes: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(genes.columns) == GENE_COLUMNS
    for col in ("start", "end", "tss"):
        assert genes[col].dtype == np.int64
    for col in GENE_COLUMNS:
        assert genes[col].tolist() == expected[col].tolist(), col


# --------------------------------------------------------------------------- read_genes: values


def test_read_gtf(tmp_path: Path) -> None:
    assert_genes(read_genes(write(tmp_path / "genes.gtf", GTF_LINES)), expected_genes())


def test_read_gff3_gives_the_same_genes(tmp_path: Path) -> None:
    assert_genes(read_genes(write(tmp_path / "genes.gff3", GFF3_LINES)), expected_genes())


def test_gff3_escaped_tabs_and_line_breaks_become_spaces(tmp_path: Path) -> None:
    # GFF3 escapes a tab or a line break inside a value; decoded as is, it would split the windows' TSV line.
    lines = [line.replace("Name=Gamma%3Bx", "Name=Gamma%3Bx%09y%0Az%0D") for line in GFF3_LINES]
    genes = read_genes(write(tmp_path / "genes.gff3", lines))
    assert genes.set_index("gene_id").loc["GC", "gene_name"] == "Gamma;x y z "


def test_dialect_sniffed_for_gff_extension_and_gzip(tmp_path: Path) -> None:
    # '.gff' holding GTF-style attributes, gzipped.
    path = tmp_path / "genes.gff.gz"
    path.write_bytes(gzip.compress("".join(line + "\n" for line in GTF_LINES).encode()))
    assert_genes(read_genes(path), expected_genes())
    # '.txt' holding GFF3.
    assert_genes(read_genes(write(tmp_path / "genes.txt", GFF3_LINES)), expected_genes())


def test_genes_from_exon_only_gtf(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(
        tmp_path / "exons.gtf",
        [
            'chr2\tsrc\texon\t101\t150\t.\t+\t.\tgene_id "GC"; transcript_id "TC"; gene_name "Gamma;x";',
            'chr1\tsrc\texon\t1801\t2000\t.\t+\t.\tgene_id "GP"; transcript_id "TP2"; gene_name "Alpha"; '
            'gene_biotype "protein_coding"; gene_family "ZNF";',
            'chr1\tsrc\texon\t1001\t1100\t.\t+\t.\tgene_id "GP"; transcript_id "TP"; gene_name "Alpha";',
            'chr1\tsrc\tCDS\t1\t99999\t.\t+\t0\tgene_id "GP"; transcript_id "TP";',  # not used for the span
            'chr1\tsrc\ttranscript\t5001\t6001\t.\t-\t.\tgene_id "GM"; gene_type "lncRNA";',
            'chr1\tsrc\texon\t5001\t5100\t.\t-\t.\tgene_id "GM";',
            'chr2\tsrc\texon\t171\t200\t.\t+\t.\tgene_id "GC"; transcript_id "TC";',
        ],
    )
    with caplog.at_level("INFO", logger="seqae"):
        assert_genes(read_genes(path), expected_genes())
    # In GFF3's words only where they apply: a GTF gene is named by its gene_id.
    logged = [r.getMessage() for r in caplog.records if "no gene line" in r.getMessage()]
    assert logged == [f"{path}: 3 of 3 genes have no gene line: each spans its exon, transcript lines, by gene_id"]


def test_one_base_gene_is_allowed(tmp_path: Path) -> None:
    path = write(tmp_path / "g.gtf", ['chr1\tsrc\tgene\t5\t5\t.\t-\t.\tgene_id "G";'])
    genes = read_genes(path)
    assert genes[["start", "end", "tss"]].to_numpy().tolist() == [[4, 5, 4]]


# --------------------------------------------------------------------------- read_genes: errors


def test_genes_missing_file(tmp_path: Path) -> None:
    with raises_at(tmp_path / "g.gtf", None, "does not exist"):
        read_genes(tmp_path / "g.gtf")


@pytest.mark.parametrize(
    "lines",
    [[], ["#!only a header"], ['chr1\tsrc\trepeat_region\t1\t9\t.\t+\t.\tgene_id "G";']],
)
def test_no_genes(tmp_path: Path, lines: list[str]) -> None:
    path = write(tmp_path / "g.gtf", lines)
    with raises_at(path, None, "no genes found"):
        read_genes(path)


GOOD = GTF_LINES[1]


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        ('chr1\tsrc\tgene\t1001\t2000\t.\t+\tgene_id "GX";', "has 8 tab-separated columns; a GTF/GFF line needs 9"),
        ('chr1\tsrc\tgene\tx\t2000\t.\t+\t.\tgene_id "GX";', "start 'x' is not an integer"),
        ('chr1\tsrc\texon\t10\t20.5\t.\t+\t.\tgene_id "GX";', "end '20.5' is not an integer"),
        ('chr1\tsrc\tgene\t2000\t1999\t.\t+\t.\tgene_id "GX";', "start 2000 is greater than end 1999"),
        ('chr1\tsrc\tgene\t0\t1999\t.\t+\t.\tgene_id "GX";', "start 0 is not a 1-based coordinate"),
        ('chr1\tsrc\tgene\t1\t1999\t.\t.\t.\tgene_id "GX";', "strand '.' of gene 'GX' is not + or -"),
        ('chr1\tsrc\tgene\t1\t1999\t.\t+\t.\tgene_name "X";', "gene line has no gene_id attribute"),
    ],
)
def test_gtf_bad_lines(tmp_path: Path, bad: str, what: str) -> None:
    path = write(tmp_path / "g.gtf", ["#!h", GOOD, "", bad, GOOD])
    with raises_at(path, 4, what):
        read_genes(path)


def test_gff3_gene_without_id(tmp_path: Path) -> None:
    lines = GFF3_LINES[:3] + ["chr1\tsrc\tgene\t10\t20\t.\t+\t.\tName=NoId;biotype=x"] + GFF3_LINES[3:]
    path = write(tmp_path / "g.gff3", lines)
    with raises_at(path, 4, "gene line has no ID attribute"):
        read_genes(path)


def test_wrong_extension_gets_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path / "g.gtf", GFF3_LINES)
    with raises_at(path, 3, "look like GFF3"):
        read_genes(path)


def test_gene_id_on_two_chromosomes_gives_two_genes(tmp_path: Path, caplog) -> None:
    # UCSC GTFs repeat a gene id on alt contigs and PAR copies: one gene per chromosome and strand.
    path = write(
        tmp_path / "g.gtf",
        [
            'chr1\tsrc\texon\t10\t20\t.\t+\t.\tgene_id "GX";',
            'chr1\tsrc\texon\t30\t40\t.\t+\t.\tgene_id "GY";',
            'chr2\tsrc\texon\t50\t60\t.\t+\t.\tgene_id "GX";',
            'chr1\tsrc\texon\t35\t45\t.\t+\t.\tgene_id "GY";',
        ],
    )
    with caplog.at_level("WARNING", logger="seqae"):
        genes = read_genes(path)
    assert genes[["gene_id", "chrom", "start", "end"]].values.tolist() == [
        ["GX", "chr1", 9, 20],
        ["GY", "chr1", 29, 45],
        ["GX", "chr2", 49, 60],
    ]
    assert "1 gene IDs occur on several chromosomes or strands (e.g. 'GX' on chr1 +, chr2 +)" in caplog.text


# --------------------------------------------------------------------------- annotate_positions


def test_annotate_positions(tmp_path: Path) -> None:
    genes = read_genes(write(tmp_path / "genes.gtf", GTF_LINES))
    cases = [
        # chrom, pos, gene, signed distance, class
        ("chr1", 900, "GP", -100, "promoter"),  # upstream of a + gene: negative
        ("chr1", 0, "GP", -1000, "promoter"),  # promoter edge, inclusive
        ("chr1", 1500, "GP", 500, "promoter"),  # downstream edge, inclusive
        ("chr1", 1501, "GP", 501, "gene_body"),
        ("chr1", 3000, "GP", 2000, "intergenic"),
        ("chr1", 3500, "GP", 2500, "intergenic"),  # equidistant: the smaller TSS wins
        ("chr1", 6500, "GM", -500, "promoter"),  # upstream of a - gene (higher coordinate): negative
        ("chr1", 7100, "GM", -1100, "intergenic"),
        ("chr1", 5500, "GM", 500, "promoter"),
        ("chr1", 5400, "GM", 600, "gene_body"),
        ("chr2", 150, "GC", 50, "promoter"),
        ("chr3", 150, "", np.nan, ""),  # no gene on chr3: unannotated, not intergenic
    ]
    chrom = np.array([c[0] for c in cases], dtype=object)
    pos = np.array([c[1] for c in cases], dtype=np.int64)
    out = annotate_positions(chrom, pos, genes)
    assert list(out.columns) == ["gene_id", "gene_name", "gene_biotype", "gene_family", "tss_distance", "region_class"]
    assert len(out) == len(cases)
    assert out["gene_id"].tolist() == [c[2] for c in cases]
    np.testing.assert_array_equal(out["tss_distance"].to_numpy(), np.array([c[3] for c in cases], dtype=float))
    assert out["tss_distance"].dtype == np.float64
    assert out["region_class"].tolist() == [c[4] for c in cases]
    assert out.loc[0, "gene_name"] == "Alpha" and out.loc[0, "gene_family"] == "ZNF"
    assert out.loc[11, ["gene_name", "gene_biotype", "gene_family"]].tolist() == ["", "", ""]


def test_annotate_positions_gene_body_of_a_gene_that_is_not_nearest() -> None:
    # A long + gene [0, 100000) and a short gene with a TSS near the query:
    # the nearest TSS is the short gene's, but the position is still inside the long one.
    genes = pd.DataFrame(
        {
            "gene_id": ["LONG", "SHORT"],
            "gene_name": ["LONG", "SHORT"],
            "gene_biotype": ["", ""],
            "gene_family": ["", ""],
            "chrom": ["chr1", "chr1"],
            "start": [0, 50000],
            "end": [100000, 50100],
            "strand": ["+", "+"],
            "tss": [0, 50000],
        }
    )
    out = annotate_positions(np.array(["chr1", "chr1"]), np.array([60000, 150000]), genes)
    assert out["gene_id"].tolist() == ["SHORT", "SHORT"]
    assert out["region_class"].tolist() == ["gene_body", "intergenic"]


def test_annotate_positions_custom_promoter_and_no_genes() -> None:
    genes = pd.DataFrame(
        {
            "gene_id": ["G"],
            "gene_name": ["G"],
            "gene_biotype": [""],
            "gene_family": [""],
            "chrom": ["chr1"],
            "start": [1000],
            "end": [1100],
            "strand": ["-"],
            "tss": [1099],
        }
    )
    out = annotate_positions(
        np.array(["chr1", "chr1"]), np.array([1200, 1000]), genes, promoter_upstream=50, promoter_downstream=50
    )
    assert out["tss_distance"].tolist() == [-101.0, 99.0]
    assert out["region_class"].tolist() == ["intergenic", "gene_body"]
    empty = annotate_positions(np.array(["chr1"]), np.array([5]), genes.iloc[:0])
    assert empty["gene_id"].tolist() == [""] and np.isnan(empty["tss_distance"].iloc[0])


# --------------------------------------------------------------------------- flavours without gene lines, ID rules


def test_mrna_only_gff3_logs_how_genes_were_made(tmp_path: Path, caplog) -> None:
    path = write(
        tmp_path / "fungus.gff3",
        [
            "##gff-version 3",
            "scf1\tmaker\tmRNA\t101\t900\t.\t+\t.\tID=g1.t1;Parent=g1;Name=g1.t1",
            "scf1\tmaker\tCDS\t101\t900\t.\t+\t0\tID=g1.t1.cds;Parent=g1.t1",
            "scf1\tmaker\tmRNA\t51\t500\t.\t+\t.\tID=g1.t2;Parent=g1",
            "scf1\tmaker\tmRNA\t2001\t3000\t.\t-\t.\tID=g2.t1;Name=Two",
            "scf1\tmaker\tCDS\t2001\t3000\t.\t-\t0\tID=g2.t1.cds;Parent=g2.t1",
        ],
    )
    with caplog.at_level("INFO", logger="seqae"):
        genes = read_genes(path)
    assert genes[["gene_id", "gene_name", "start", "end", "tss"]].values.tolist() == [
        ["g1", "g1", 50, 900, 50],  # the mRNAs' Parent; Name= names the mRNA, not the gene
        ["g2.t1", "Two", 2000, 3000, 2999],  # no Parent: the mRNA is the gene, and its Name= the gene's
    ]
    logged = [r.getMessage() for r in caplog.records if "no gene line" in r.getMessage()]
    assert len(logged) == 1
    assert "2 of 2 genes have no gene line" in logged[0] and "(1 genes)" in logged[0]


def test_id_prefixes_removed_only_when_every_gene_has_one(tmp_path: Path, caplog) -> None:
    lines = [
        "chr1\ts\tgene\t1\t10\t.\t+\t.\tID=gene:A",
        "chr1\ts\tmRNA\t1\t10\t.\t+\t.\tID=transcript:At;Parent=gene:A",
        "chr1\ts\tmRNA\t21\t30\t.\t+\t.\tID=mRNA:Bt",  # no gene line, no parent: the gene is the mRNA
    ]
    with caplog.at_level("INFO", logger="seqae"):
        genes = read_genes(write(tmp_path / "a.gff3", lines))
    assert genes["gene_id"].tolist() == ["A", "Bt"]
    assert "feature-type prefix (gene:, mRNA:); removed (e.g. gene:A -> A)" in caplog.text
    mixed = read_genes(write(tmp_path / "b.gff3", [*lines, "chr1\ts\tgene\t41\t50\t.\t+\t.\tID=Plain"]))
    assert mixed["gene_id"].tolist() == ["gene:A", "mRNA:Bt", "Plain"]


def test_augustus_gtf_bare_word_gene_lines(tmp_path: Path) -> None:
    genes = read_genes(
        write(
            tmp_path / "augustus.gtf",
            [
                "# AUGUSTUS 3.4 prediction",
                "chr1\tAUGUSTUS\tgene\t101\t900\t0.9\t+\t.\tg1",
                "chr1\tAUGUSTUS\ttranscript\t101\t900\t0.9\t+\t.\tg1.t1",
                'chr1\tAUGUSTUS\tCDS\t101\t900\t0.9\t+\t0\ttranscript_id "g1.t1"; gene_id "g1";',
            ],
        )
    )
    assert genes[["gene_id", "start", "end"]].values.tolist() == [["g1", 100, 900]]


def test_multi_parent_lines_and_url_escapes(tmp_path: Path) -> None:
    genes = read_genes(
        write(
            tmp_path / "tair.gff3",
            [
                "Chr1\tTAIR10\tmRNA\t101\t900\t.\t-\t.\tID=AT1G01010.1;Parent=AT1G01010%2Ca;gene_name=NAC%3B001",
                "Chr1\tTAIR10\tCDS\t201\t800\t.\t-\t0\tParent=AT1G01010.1,AT1G01010.1-Protein;",
            ],
        )
    )
    assert genes[["gene_id", "gene_name", "tss"]].values.tolist() == [["AT1G01010,a", "NAC;001", 899]]


def test_transcript_without_id_or_parent(tmp_path: Path) -> None:
    path = write(tmp_path / "g.gff3", ["chr1\ts\tgene\t1\t10\t.\t+\t.\tID=A", "chr1\ts\tmRNA\t1\t10\t.\t+\t.\tName=x"])
    with raises_at(path, 2, "mRNA line has neither ID nor Parent attribute"):
        read_genes(path)
