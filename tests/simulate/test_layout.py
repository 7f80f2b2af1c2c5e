"""seqae.simulate.layout: the blacklist."""

from __future__ import annotations


def test_blacklist(demo, fasta):
    rows = [line.split("\t") for line in (demo[0] / "blacklist.bed").read_text().splitlines()]
    assert 3 <= len(rows) <= 6
    for chrom, a, b in rows:
        assert chrom in fasta.keys() and 0 <= int(a) < int(b) <= len(fasta[chrom])
