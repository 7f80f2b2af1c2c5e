"""seqae.simulate.genes: genes, their GTF and their promoters."""

from __future__ import annotations

import numpy as np

from tests.simulate.conftest import SMALL, tsv


def test_gtf_and_genes(demo, fasta):
    out, _ = demo
    genes = tsv(out / "truth" / "genes.tsv")
    assert len(genes) == SMALL["n_genes"]
    assert set(genes["family"]) == {"FAM1", "FAM2", "FAM3"}
    plus = genes["strand"] == "+"
    assert (genes.loc[plus, "tss"] == genes.loc[plus, "start"]).all()
    assert (genes.loc[~plus, "tss"] == genes.loc[~plus, "end"] - 1).all()
    assert ((genes["end"] - genes["start"]).between(2000, 40000)).all()
    for _, g in genes.groupby("chrom"):  # no overlapping genes
        g = g.sort_values("start")
        assert (g["start"].to_numpy()[1:] >= g["end"].to_numpy()[:-1]).all()

    rows = [line.split("\t") for line in (out / "genes.gtf").read_text().splitlines()]
    assert all(len(r) == 9 for r in rows)
    assert {r[2] for r in rows} == {"gene", "transcript", "exon"}
    gene_lines = {r[8].split('"')[1]: r for r in rows if r[2] == "gene"}
    assert set(gene_lines) == set(genes["gene_id"])
    for g in genes.itertuples():
        r = gene_lines[g.gene_id]
        assert (r[0], int(r[3]), int(r[4]), r[6]) == (g.chrom, g.start + 1, g.end, g.strand)
        assert f'gene_family "{g.family}";' in r[8] and f'gene_biotype "{g.biotype}";' in r[8]
        assert r[8].startswith(f'gene_id "{g.gene_id}"; gene_name "{g.family}_')
        exons = sorted((int(e[3]), int(e[4]), e[8]) for e in rows if e[2] == "exon" and f'"{g.gene_id}"' in e[8])
        assert 2 <= len(exons) <= 8
        assert exons[0][0] == g.start + 1 and exons[-1][1] == g.end
        assert all(a[1] < b[0] for a, b in zip(exons, exons[1:]))
        first = exons[0] if g.strand == "+" else exons[-1]
        assert "exon_number 1;" in first[2]  # exon 1 holds the TSS
    assert (genes["biotype"].isin(["protein_coding", "lncRNA"])).all()


def test_promoter_grammar(demo, fasta):
    out, _ = demo
    genes = tsv(out / "truth" / "genes.tsv").set_index("gene_id")
    ps = tsv(out / "truth" / "promoter_sites.tsv")
    assert set(ps["gene_id"]) == set(genes.index)
    g = genes.loc[ps["gene_id"]].reset_index()
    assert (ps["family"] == g["family"]).all()
    upstream = np.where(g["strand"] == "+", g["tss"] - ps["start"], ps["end"] - 1 - g["tss"])
    assert ((upstream > 0) & (upstream <= 500)).all()
    assert (ps["strand"] == g["strand"]).all()
    assert ps["score"].mean() > 5  # sampled from the family PWM: mostly near its consensus
