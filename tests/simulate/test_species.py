"""The species stage of the demo generator: genomes evolved along a known species tree."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyfaidx
import pytest

from seqae.config import config_schema
from seqae.errors import ConfigError
from seqae.phylo.compare import normalized_rf
from seqae.phylo.distance import p_distance
from seqae.phylo.io import read_tree
from seqae.phylo.nj import neighbor_joining
from seqae.simulate import check_settings, fill_defaults, simulate_demo

BASE = {
    "seed": 11,
    "n_chromosomes": 2,
    "chromosome_length": 60000,
    "n_genes": 8,
    "n_gene_families": 2,
    "tfs": [
        {"name": "CTCF", "motif": "MA0139.2", "n_peaks": 60},
        {"name": "GATA1", "motif": "MA0035.5", "n_peaks": 40},
    ],
    "families": {"n_families": 0},
}
# Composition drift off here, so that divergence from the root is the tree's; see test_species_differ_in_composition.
SPECIES = {"n_species": 4, "height": 0.08, "turnover": 0.3, "gain_fraction": 0.1, "gc_shift_sd": 0.0, "cpg_loss": 0.0}
_LUT = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate(b"ACGT"):
    _LUT[_b] = _i


def genome_codes(path: Path) -> dict[str, np.ndarray]:
    fasta = pyfaidx.Fasta(str(path))
    return {name: _LUT[np.frombuffer(str(fasta[name][:]).upper().encode(), dtype=np.uint8)] for name in fasta.keys()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    out = tmp_path_factory.mktemp("species")
    return out, simulate_demo({**copy.deepcopy(BASE), "species": SPECIES}, out)


def test_files_per_species_and_the_tree(demo):
    out, outputs = demo
    tree = read_tree(outputs["species_tree"])
    names = sorted(tree.get_leaf_names())
    assert names == ["sp0", "sp1", "sp2", "sp3"]
    for sp in names:
        for key in ("fasta", "annotation", "blacklist", "peaks/CTCF", "tracks/GATA1", "truth_sites", "truth_peaks"):
            path = outputs[f"species/{sp}/{key}"]
            assert path.is_file() and path.stat().st_size > 0 and path.is_relative_to(out / "species" / sp)
    assert not list(out.rglob(".*.tmp"))


def test_ancestor_files_do_not_change_with_species(demo, tmp_path):
    out, _ = demo
    alone = simulate_demo(copy.deepcopy(BASE), tmp_path)
    for name in ("genome.fa", "genes.gtf", "peaks/CTCF.narrowPeak", "truth/sites.tsv"):
        assert hashlib.md5((out / name).read_bytes()).digest() == hashlib.md5((tmp_path / name).read_bytes()).digest()
    assert "species_tree" not in alone and not (tmp_path / "species").exists()


def test_genomes_diverge_and_conserve_planted_sites(demo):
    out, outputs = demo
    ancestor = genome_codes(outputs["fasta"])
    sites = pd.read_csv(outputs["truth_sites"], sep="\t")
    for sp in ("sp0", "sp1", "sp2", "sp3"):
        genome = genome_codes(outputs[f"species/{sp}/fasta"])
        assert {k: v.size for k, v in genome.items()} == {k: v.size for k, v in ancestor.items()}  # no indels
        called = np.concatenate([ancestor[c] < 4 for c in ancestor])
        differ = np.concatenate([genome[c] != ancestor[c] for c in ancestor])
        assert not differ[~called].any()  # N runs stay N
        # About the tree height of substitutions from the root (motifs, satellites conserved; HKY saturation).
        assert 0.03 < differ[called].mean() < 0.09
        kept = pd.read_csv(outputs[f"species/{sp}/truth_sites"], sep="\t")
        assert 0 < len(kept) < len(sites)
        for chrom, start, end in zip(kept["chrom"], kept["start"], kept["end"], strict=True):
            assert np.array_equal(genome[chrom][start:end], ancestor[chrom][start:end])


def test_peak_turnover_matches_the_presence_table(demo):
    out, outputs = demo
    table = pd.read_csv(outputs["truth_species_peaks"], sep="\t")
    all_peaks = pd.read_csv(outputs["truth_peaks"], sep="\t")
    assert len(table) == len(all_peaks)
    present = table[["sp0", "sp1", "sp2", "sp3"]].to_numpy()
    # Some peaks are lost or gained on the tree, most are shared.
    assert 0.5 < present.mean() < 0.95 and (present.sum(axis=1) == 4).any() and (present.sum(axis=1) < 4).any()
    for k, sp in enumerate(("sp0", "sp1", "sp2", "sp3")):
        names = set()
        for tf in ("CTCF", "GATA1"):
            peaks = pd.read_csv(outputs[f"species/{sp}/peaks/{tf}"], sep="\t", header=None)
            names |= set(peaks[3])
        assert names == set(table.loc[present[:, k] == 1, "name"])


def test_whole_genome_distances_recover_the_species_tree(demo):
    out, outputs = demo
    names = ["sp0", "sp1", "sp2", "sp3"]
    genomes = [genome_codes(outputs[f"species/{sp}/fasta"]) for sp in names]
    codes = np.stack([np.concatenate([g[c] for c in sorted(g)]) for g in genomes])
    tree = neighbor_joining(p_distance(codes, names), names)
    assert normalized_rf(tree, read_tree(outputs["species_tree"])) == 0.0


def test_species_differ_in_composition(tmp_path):
    """Lineage GC drift and CpG loss make species' compositions differ, as the truth table says."""
    outputs = simulate_demo({**copy.deepcopy(BASE), "species": {"n_species": 4, "cpg_loss": 0.8, "gc_shift_sd": 0.1}},
                            tmp_path)  # fmt: skip
    truth = pd.read_csv(outputs["truth_species"], sep="\t").set_index("species")
    assert sorted(truth.index) == ["sp0", "sp1", "sp2", "sp3"]
    ancestor = genome_codes(outputs["fasta"])
    seq = np.concatenate([ancestor[c] for c in sorted(ancestor)])
    ancestral_cpg = ((seq[:-1] == 1) & (seq[1:] == 2)).sum() / (seq < 4).sum() * 1000
    for sp, row in truth.iterrows():
        genome = genome_codes(outputs[f"species/{sp}/fasta"])
        seq = np.concatenate([genome[c] for c in sorted(genome)])
        called = seq[seq < 4]
        assert abs(np.isin(called, (1, 2)).mean() - row["gc_observed"]) < 1e-4
        assert abs(((seq[:-1] == 1) & (seq[1:] == 2)).sum() / called.size * 1000 - row["cpg_per_kb"]) < 1e-3
    # More CpG loss, fewer CpGs left (GC drift moves CpG too, so compare the extremes).
    most, least = truth["cpg_loss"].idxmax(), truth["cpg_loss"].idxmin()
    if truth.loc[most, "cpg_loss"] - truth.loc[least, "cpg_loss"] > 0.3:
        assert truth.loc[most, "cpg_per_kb"] < truth.loc[least, "cpg_per_kb"]
    assert truth["cpg_per_kb"].min() < ancestral_cpg
    assert truth["equilibrium_gc"].std() > 0.01


def test_settings_are_checked():
    assert fill_defaults(BASE)["species"] == {
        key: node["default"]
        for key, node in config_schema()["properties"]["simulate"]["properties"]["species"]["properties"].items()
    }
    with pytest.raises(ConfigError, match=r"^simulate\.species\.n_species: one species has no tree"):
        check_settings(fill_defaults({**BASE, "species": {"n_species": 1}}))
    with pytest.raises(ConfigError, match=r"^simulate\.species\.rate: unknown key"):
        fill_defaults({**BASE, "species": {"n_species": 2, "rate": 1}})
    with pytest.raises(ConfigError, match=r"^simulate\.species\.turnover: 1 is greater than or equal"):
        fill_defaults({**BASE, "species": {"n_species": 2, "turnover": 1}})
