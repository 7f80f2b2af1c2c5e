"""Orthologous windows across genomes grouped into tree families (seqae.orthologs).

Hand-made tables and genomes for the parsing, placing and strand rules; the
demo generator's species (evolved along a known species tree, no indels) for
the whole stage, whose windows must be orthologous: NJ on them recovers the
species tree.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqae.cli import main
from seqae.config import validate_config
from seqae.errors import ConfigError, InputError, SeqaeError
from seqae.genome import Genome, decode
from seqae.ortholog_table import match_gene_names, read_ortholog_table, resolve_genes
from seqae.orthologs import anchor_windows, build_ortholog_families, cut_windows, matched_summits
from seqae.phylo.io import read_family, read_tree
from seqae.simulate import simulate_demo
from tests.conftest import random_dna, write_fasta

SPECIES = ["sp0", "sp1", "sp2", "sp3", "sp4"]
DEMO = {
    "n_chromosomes": 2,
    "chromosome_length": 60000,
    "n_genes": 12,
    "tfs": [{"name": "CTCF", "motif": "MA0139.2", "n_peaks": 60}],
    "families": {"n_families": 0},
    "species": {"n_species": len(SPECIES), "height": 0.2},
}


# ---------------------------------------------------------------- ortholog table


def _table(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "orthologs.tsv"
    path.write_text(text)
    return path


def test_table_with_family_column_and_absent_cells(tmp_path):
    path = _table(tmp_path, "# from a compara export\nfamily\tsp0\tsp1\tsp2\nOG 1\tg1\tG1\t.\nOG2\tg2\t-\tX2\n")
    table = read_ortholog_table(path, SPECIES)
    assert table[["family", "species", "gene_id"]].values.tolist() == [
        ["OG_1", "sp0", "g1"], ["OG_1", "sp1", "G1"], ["OG2", "sp0", "g2"], ["OG2", "sp2", "X2"],
    ]  # fmt: skip
    assert table["line"].tolist() == [3, 3, 4, 4]


def test_family_names_are_safe_as_file_names_and_options(tmp_path):
    """'-x' made the tree job's `--family -x` an argparse error; '..' a hidden file."""
    named = read_ortholog_table(_table(tmp_path, "family\tsp0\tsp1\n-x\ta\tb\nHOX.A.\tc\td\n"), SPECIES)
    assert sorted(set(named["family"])) == ["HOX.A", "x"]


def test_table_without_family_column_numbers_the_rows(tmp_path):
    table = read_ortholog_table(_table(tmp_path, "sp1\tsp0\na\tb\nc\td\n"), SPECIES)
    assert table["family"].unique().tolist() == ["OG00001", "OG00002"]
    assert table.loc[table.family == "OG00002", "gene_id"].tolist() == ["c", "d"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", r"orthologs.tsv: empty file"),
        ("family\tsp0\tmouse\n", r"orthologs.tsv:1: column 'mouse' is neither a species"),
        ("sp0\tsp1\tsp0\n", r"orthologs.tsv:1: column 'sp0' appears twice"),
        ("family\tsp0\n", r"orthologs.tsv:1: the header names fewer than 2 species"),
        ("sp0\tsp1\na\tb\nc\n", r"orthologs.tsv:3: 1 fields, the header has 2"),
        ("family\tsp0\tsp1\nF\ta\tb\nF\tc\td\n", r"orthologs.tsv:3: family 'F' is already named on line 2"),
        ("sp0\tsp1\na\tb\na\tc\n", r"orthologs.tsv:3: gene 'a' of sp0 is also in family 'OG00001' \(line 2\)"),
        ("sp0\tsp1\n.\t-\n", r"orthologs.tsv: no gene named"),
        ("family\tsp0\tsp1\n..\ta\tb\n", r"orthologs.tsv:2: empty family name"),  # it named a hidden file
    ],
)
def test_bad_tables_are_one_line_with_the_line_number(tmp_path, text, message):
    with pytest.raises(InputError, match=message) as err:
        read_ortholog_table(_table(tmp_path, text), SPECIES)
    assert "\n" not in str(err.value)


def _genes(rows: list[tuple[str, str, str, str, int]]) -> pd.DataFrame:
    """gene_id, gene_name, chrom, strand, tss -> a read_genes-like table."""
    frame = pd.DataFrame(rows, columns=["gene_id", "gene_name", "chrom", "strand", "tss"])
    return frame.assign(start=frame["tss"], end=frame["tss"] + 100)


def test_absent_genes_are_counted_and_none_at_all_is_an_error(tmp_path):
    genes = {"sp0": _genes([("a", "A", "c1", "+", 500)]), "sp1": _genes([("b", "B", "c1", "-", 900)])}
    named = read_ortholog_table(_table(tmp_path, "sp0\tsp1\na\tb\nx\ty\nz\t.\n"), SPECIES)
    found, counts = resolve_genes(named, genes, "orthologs.tsv")
    assert counts["sp0"] == {"named": 3, "found": 1, "absent": 2, "absent_examples": ["x", "z"]}
    assert counts["sp1"]["absent"] == 1
    assert found[["species", "gene_id", "gene_name", "strand", "tss"]].values.tolist() == [
        ["sp0", "a", "A", "+", 500], ["sp1", "b", "B", "-", 900],
    ]  # fmt: skip
    nothing = read_ortholog_table(_table(tmp_path, "sp0\tsp1\nx\ty\n"), SPECIES)
    with pytest.raises(InputError, match=r"none of the 2 genes it names is in the annotations \(e.g. 'x'"):
        resolve_genes(nothing, genes, tmp_path / "orthologs.tsv")


def test_gene_name_match_is_one_to_one():
    genes = {
        "sp0": _genes([("a1", "Sox2", "c", "+", 1), ("a2", "Pax6", "c", "+", 2), ("a3", "Pax6", "c", "+", 3)]),
        "sp1": _genes([("b1", "SOX2", "c", "+", 1), ("b2", "PAX6", "c", "+", 2)]),
    }
    members = match_gene_names(genes)
    # Pax6 is twice in sp0 (not one-to-one there): only sp1 keeps it. Symbols meet in any case
    # (mouse Sox2, human SOX2: the mouse genome was in no family, silently).
    assert members[["family", "species", "gene_id"]].values.tolist() == [
        ["PAX6", "sp1", "b2"], ["SOX2", "sp0", "a1"], ["SOX2", "sp1", "b1"],
    ]  # fmt: skip


def test_table_ids_meet_the_annotation_across_version_suffixes_and_a_missing_column_is_warned(tmp_path, caplog):
    """A BioMart table without versions matched none of a GENCODE annotation's versioned ids; a species
    without a column was in no family without a word."""
    genes = {"sp0": _genes([("ENSG01.5", "A", "c1", "+", 500)]), "sp1": _genes([("ENSMUSG07", "B", "c1", "-", 900)])}
    with caplog.at_level("WARNING", logger="seqae"):
        named = read_ortholog_table(_table(tmp_path, "sp0\tsp1\nENSG01\tENSMUSG07.2\n"), ["sp0", "sp1", "sp9"])
    assert "orthologs.tsv: no column for 'sp9': it is in no family" in caplog.text
    found, counts = resolve_genes(named, genes, "orthologs.tsv")
    assert found["gene_id"].tolist() == ["ENSG01.5", "ENSMUSG07"] and counts["sp0"]["found"] == 1


# ---------------------------------------------------------------- placing windows


def test_matched_peak_is_the_one_most_species_share():
    # Gene on + at 10_000 in four species; the shared peak sits ~300 bp downstream.
    # sp3 lost it, and has another peak nearer the TSS: not the same peak, so -1.
    members = pd.DataFrame({
        "family": ["F"] * 4 + ["G"] * 2,
        "species": ["sp0", "sp1", "sp2", "sp3", "sp0", "sp1"],
        "chrom": ["c"] * 6,
        "strand": ["+"] * 4 + ["-"] * 2,
        "tss": [10_000] * 4 + [50_000, 50_000],
    })  # fmt: skip
    peaks = {
        "sp0": pd.DataFrame({"chrom": ["c", "c", "c"], "summit": [10_300, 49_000, 90_000]}),
        "sp1": pd.DataFrame({"chrom": ["c", "c"], "summit": [10_320, 49_010]}),
        "sp2": pd.DataFrame({"chrom": ["c", "c"], "summit": [9_900, 10_290]}),
        "sp3": pd.DataFrame({"chrom": ["c"], "summit": [10_050]}),
    }
    summits = matched_summits(members, peaks, max_tss_distance=5000, match_distance=50)
    # sp2 has a nearer peak too (9_900), but the shared one is at +290.
    # Family G is on '-': 1 kb upstream of the TSS on the gene's strand in both.
    assert summits.tolist() == [10_300, 10_320, 10_290, -1, 49_000, 49_010]
    assert matched_summits(members, peaks, max_tss_distance=200, match_distance=50).tolist() == [
        -1,
        -1,
        -1,
        10_050,
        -1,
        -1,
    ]


def test_windows_are_read_on_the_genes_strand(tmp_path):
    rng = np.random.default_rng(0)
    seq = random_dna(rng, 3000)
    fasta = write_fasta(tmp_path / "g.fa", {"c": seq})
    members = pd.DataFrame({"family": ["F", "G", "H"], "species": ["sp0"] * 3, "chrom": ["c"] * 3,
                            "strand": ["+", "-", "+"], "tss": [1000, 1000, 2996]})  # fmt: skip
    placed, dropped = anchor_windows(members, 10, "tss", {"sp0": {"c": 3000}})
    assert dropped == {"no_peak": 0, "off_chromosome": 1}  # H's window would run off the end
    with Genome(fasta) as genome:
        windows = cut_windows(placed, genome)
    complement = str.maketrans("ACGT", "TGCA")
    assert decode(windows[0]) == seq[995:1005]  # the TSS base at index L // 2
    assert decode(windows[1]) == seq[996:1006].translate(complement)[::-1]  # ... on the minus strand too
    assert placed[["start", "end"]].values.tolist() == [[995, 1005], [996, 1006]]


# ---------------------------------------------------------------- the stage on the demo species


@pytest.fixture(scope="module")
def species_demo(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("ortholog_demo")
    outputs = simulate_demo(DEMO, root / "demo")
    genomes = []
    for sp in SPECIES:
        folder = root / "demo" / "species" / sp
        genomes.append({"species": sp, "fasta": str(folder / "genome.fa"), "annotation": str(folder / "genes.gtf"),
                        "tfs": [{"name": "CTCF", "peaks": str(folder / "peaks" / "CTCF.narrowPeak")}]})  # fmt: skip
    return {"root": root, "genomes": genomes, "table": outputs["truth_orthologs"], "tree": outputs["species_tree"]}


def _config(demo: dict, **orthologs) -> dict:
    settings = {"enabled": True, "align": "none", "species_tree": str(demo["tree"]), **orthologs}
    return validate_config({"genomes": demo["genomes"], "orthologs": settings})


@pytest.mark.parametrize("anchor", ["tss", "peak"])
def test_families_of_the_demo_recover_the_species_tree(species_demo, tmp_path, anchor):
    from seqae.phylo.baselines import run_baselines

    out = tmp_path / "families"
    report = build_ortholog_families(_config(species_demo, table=str(species_demo["table"]), anchor=anchor), out)
    families = pd.read_csv(out / "families.tsv", sep="\t")
    assert report["families_written"] == len(families) >= 8
    assert report["genes"]["sp0"] == {"named": 12, "found": 12, "absent": 0, "absent_examples": []}
    members = pd.read_csv(out / "members.tsv", sep="\t")
    if anchor == "peak":
        # The demo's species share coordinates: a matched peak has one summit in every species.
        assert members.groupby("family")["summit"].nunique().eq(1).all() and (members["summit"] >= 0).all()
    else:
        assert (members["summit"] == -1).all() and (members["end"] - members["start"]).eq(1000).all()
    species_tree = read_tree(species_demo["tree"])
    nrf = []
    for family in families["family"]:
        fam = read_family(out / f"{family}.fa")
        assert fam.names == [sp for sp in SPECIES if sp in fam.names]  # species order of the config
        reference = read_tree(out / f"{family}.nwk", leaf_names=fam.names)
        assert len(reference) == len(fam.names) <= len(species_tree)
        (nj,) = run_baselines(fam.codes(), fam.names, reference, methods=["nj_p"])
        nrf.append(nj.nrf)
    # Orthologous windows 1 kb long, 0.2 substitutions/site deep: NJ recovers
    # the species tree. Misplaced (non-orthologous) windows would give ~random trees.
    assert np.mean(nrf) <= 0.2, nrf


def test_gene_name_match_gives_the_table_families(species_demo, tmp_path):
    by_table = build_ortholog_families(_config(species_demo, table=str(species_demo["table"])), tmp_path / "table")
    by_name = build_ortholog_families(_config(species_demo, table=None), tmp_path / "name")
    assert by_name["source"] == "gene-name match" and by_name["families_written"] == by_table["families_written"]
    a = pd.read_csv(tmp_path / "table" / "members.tsv", sep="\t")
    b = pd.read_csv(tmp_path / "name" / "members.tsv", sep="\t")
    assert sorted(map(tuple, a[["gene_id", "species", "start"]].values)) == sorted(
        map(tuple, b[["gene_id", "species", "start"]].values)
    )


def test_max_families_and_min_species(species_demo, tmp_path):
    table = tmp_path / "orthologs.tsv"
    # Three genes named in all five species, one in four, one in three.
    table.write_text("family\t" + "\t".join(SPECIES) + "\n" + "".join(
        f"F{i}\t" + "\t".join(gid if k < n else "." for k in range(len(SPECIES))) + "\n"
        for i, (gid, n) in enumerate([("G0001", 3), ("G0002", 4), ("G0003", 5), ("G0004", 5), ("G0005", 5)])
    ))  # fmt: skip
    report = build_ortholog_families(_config(species_demo, table=str(table), max_families=3), tmp_path / "out")
    families = pd.read_csv(tmp_path / "out" / "families.tsv", sep="\t")
    assert families["family"].tolist() == ["F2", "F3", "F4"]  # five species first, table order among them
    assert report["families_too_few_species"] == 1 and report["families_left_out_by_max_families"] == 1
    assert json.loads((tmp_path / "out" / "report.json").read_text())["families_written"] == 3


def test_bad_settings_are_one_line_and_write_nothing(species_demo, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="3 genomes, but families need orthologs in at least min_species = 4"):
        build_ortholog_families(validate_config({"genomes": species_demo["genomes"][:3], "orthologs": {}}), out)
    no_annotation = [dict(g) for g in species_demo["genomes"]]
    no_annotation[2]["annotation"] = None
    with pytest.raises(ConfigError, match="genome 'sp2' has no annotation"):
        build_ortholog_families(validate_config({"genomes": no_annotation, "orthologs": {}}), out)
    with pytest.raises(ConfigError, match="orthologs.tf: genome 'sp0' has no TF 'GATA1'"):
        validate_config({"genomes": species_demo["genomes"], "orthologs": {"tf": "GATA1"}})
    tree = tmp_path / "tree.nwk"
    tree.write_text("((sp0:1,sp1:1):1,(sp2:1,sp9:1):1);\n")
    with pytest.raises(InputError, match=r"tree.nwk: no leaf for species 'sp3', 'sp4'"):
        build_ortholog_families(_config(species_demo, table=None, species_tree=str(tree)), out)
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_cli_error_is_one_line(species_demo, tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"genomes": species_demo["genomes"],
                                  "orthologs": {"table": str(tmp_path / "missing.tsv"), "align": "none"}}))  # fmt: skip
    assert main(["orthologs", "--config", str(config), "--outdir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.tsv" in err[0] and err[0].startswith("seqae orthologs: error:")


def test_without_a_species_tree_no_reference_is_written(species_demo, tmp_path):
    config = validate_config({"genomes": species_demo["genomes"],
                              "orthologs": {"enabled": True, "align": "none", "max_families": 2}})  # fmt: skip
    report = build_ortholog_families(config, tmp_path / "out")
    assert report["source"] == "gene-name match" and report["families_written"] == 2
    assert len(list((tmp_path / "out").glob("*.fa"))) == 2 and not list((tmp_path / "out").glob("*.nwk"))


@pytest.mark.skipif(shutil.which("mafft") is None, reason="MAFFT is not installed")
def test_mafft_several_at_a_time_writes_the_same_families(species_demo, tmp_path):
    config = _config(species_demo, table=str(species_demo["table"]), align="mafft", max_families=6)
    build_ortholog_families(config, tmp_path / "one", threads=1)
    build_ortholog_families(config, tmp_path / "three", threads=3)
    written = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert len([name for name in written if name.endswith(".fa")]) == 6
    assert written == sorted(p.name for p in (tmp_path / "three").iterdir())
    for name in written:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "three" / name).read_bytes(), name


def test_an_output_folder_holding_other_files_is_not_replaced(species_demo, tmp_path, monkeypatch):
    """The folder is replaced as a whole: given one holding a run's windows, it deleted them (exit 0); given
    the working folder, it deleted its files and then failed with a traceback."""
    config = validate_config({"genomes": species_demo["genomes"],
                              "orthologs": {"enabled": True, "align": "none", "max_families": 2}})  # fmt: skip
    out = tmp_path / "results"
    (out / "windows").mkdir(parents=True)
    (out / "windows" / "windows.h5").write_text("keep me")
    with pytest.raises(SeqaeError, match=r"results: holds 'windows', which is not from an earlier `seqae orthologs`"):
        build_ortholog_families(config, out)
    assert (out / "windows" / "windows.h5").read_text() == "keep me"
    monkeypatch.chdir(out)
    with pytest.raises(SeqaeError, match=r"the output folder is replaced as a whole; give a new folder"):
        build_ortholog_families(config, ".")
    # An earlier run's folder is replaced.
    build_ortholog_families(config, tmp_path / "families")
    assert build_ortholog_families(config, tmp_path / "families")["families_written"] == 2


def test_each_genomes_alias_table_renames_its_annotation_too(species_demo, tmp_path):
    """orthologs read the annotation without the genome's chrom_aliases: an annotation in another naming,
    which extraction read through the alias table, stopped it with 'no chromosome name in common'."""
    genomes = [dict(g) for g in species_demo["genomes"]]
    fasta_names = [line[1:].split()[0] for line in open(genomes[1]["fasta"]) if line.startswith(">")]
    refseq = {name: f"NC_{i:06d}.1" for i, name in enumerate(fasta_names, start=1)}
    text = Path(genomes[1]["annotation"]).read_text()
    renamed = "\n".join(
        "\t".join([refseq.get(line.split("\t")[0], line.split("\t")[0]), *line.split("\t")[1:]])
        if "\t" in line
        else line
        for line in text.splitlines()
    )
    (tmp_path / "genes.gtf").write_text(renamed + "\n")
    (tmp_path / "aliases.txt").write_text("".join(f"{name}\t{ref}\n" for name, ref in refseq.items()))
    genomes[1] = {
        **genomes[1],
        "annotation": str(tmp_path / "genes.gtf"),
        "chrom_aliases": str(tmp_path / "aliases.txt"),
    }
    config = validate_config({"genomes": genomes, "orthologs": {"enabled": True, "align": "none", "max_families": 3}})
    assert build_ortholog_families(config, tmp_path / "out")["families_written"] == 3
