"""The extraction stage end to end on tiny inputs: values, labels, drops, outputs, bad input."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pyBigWig
import pytest

from seqae.cli import main
from seqae.errors import InputError, SeqaeError
from seqae.extract import extract_windows
from seqae.genome import decode
from seqae.windows.reader import read_windows
from seqae.windows.store import read_labels, read_schema
from tests.conftest import make_config, run_extract_cli


@pytest.fixture
def extracted(tiny_inputs):
    out = tiny_inputs["dir"] / "out" / "windows.h5"
    report = extract_windows(tiny_inputs["config"], out, progress=False)
    return tiny_inputs, out, report, read_labels(out)


def test_sequences_equal_fasta_slices(extracted):
    inputs, out, _, labels = extracted
    seq, _ = read_windows(out)
    schema = read_schema(out)
    assert seq.shape == (len(labels), 240)
    for i, row in labels.iterrows():
        want = inputs["seqs"][row["chrom"]][row["start"] - schema.flank : row["end"] + schema.flank].upper()
        assert decode(seq[i]) == want


def test_tracks_equal_bigwig_values(extracted):
    inputs, out, _, labels = extracted
    _, tracks = read_windows(out)
    schema = read_schema(out)
    assert schema.track_names == ("TFA", "TFB")
    assert tracks.dtype == np.float16
    bw_names = {"TFA": {}, "TFB": {"chr1": "1", "chr2": "2", "chr3": "3"}}
    for t, name in enumerate(schema.track_names):
        bw = pyBigWig.open(str(inputs["bigwigs"][name]))
        for i, row in labels.iterrows():
            chrom = bw_names[name].get(row["chrom"], row["chrom"])
            raw = np.nan_to_num(bw.values(chrom, int(row["start"]) - 20, int(row["end"]) + 20, numpy=True))
            np.testing.assert_allclose(tracks[i, t].astype(np.float32), np.log1p(raw), rtol=2e-3, atol=1e-3)


def test_drops_and_report(extracted):
    _, out, report, labels = extracted
    genome = report["genomes"][0]
    assert genome["peaks"]["TFA"]["n_on_absent_chromosomes"] == 1
    assert genome["peaks"]["TFA"]["absent_chromosomes"] == {"chrUn": 1}
    assert genome["dropped_chromosome_end"] == 1  # a3, summit 50
    assert genome["dropped_n_fraction"] == 1  # a4, over the N run
    peaks = labels[labels["kind"] == "peak"]
    assert sorted(zip(peaks["chrom"], peaks["summit"], strict=True)) == [
        ("chr1", 1100),
        ("chr1", 2000),
        ("chr1", 3050),
        ("chr1", 4200),
        ("chr2", 1100),
        ("chr2", 1110),
        ("chr3", 1500),
    ]
    assert report["n_peak_windows"] == 7
    written = json.loads((out.parent / "extract_report.json").read_text())
    assert written["n_windows"] == len(labels)


def test_reads_are_counted_and_bounded_by_need(tiny_inputs, monkeypatch):
    """No chromosome is decoded whole; the report counts bases read against the windows' union."""
    from seqae.genome import Genome

    def whole_chromosome(self, chrom):
        raise AssertionError(f"extraction decoded all of {chrom}")

    monkeypatch.setattr(Genome, "chrom_codes", whole_chromosome)
    out = tiny_inputs["dir"] / "reads" / "windows.h5"
    report = extract_windows(tiny_inputs["config"], out, progress=False)
    reads = report["genomes"][0]["reads"]
    fasta = reads["fasta"]
    assert fasta["genome_bases"] == 14_000
    assert 0 < fasta["bases_needed"] <= fasta["bases_read"] <= 1.5 * fasta["bases_needed"]
    assert set(reads["bigwig"]) == {"TFA", "TFB"}
    for stats in reads["bigwig"].values():
        assert stats["bytes_read"] == 4 * stats["bases_read"] > 0
        assert stats["read_over_needed"] <= 1.5
        assert stats["blocks_inflated"] > 0 and stats["block_bytes_read"] > 0
    total = report["bigwig_reads"]
    assert total["bases_read"] == sum(s["bases_read"] for s in reads["bigwig"].values())


def test_labels_nearest_gene_and_tss_distance(extracted):
    _, _, _, labels = extracted
    peaks = labels[labels["kind"] == "peak"].set_index(["chrom", "summit"])
    expected = {
        ("chr1", 1100): ("G1", 100.0, "promoter"),  # + gene, TSS 1000: 100 bp downstream
        ("chr1", 2000): ("G1", 1000.0, "gene_body"),  # inside G1, past its promoter
        ("chr1", 3050): ("G2", 949.0, "intergenic"),  # past the 3' end of the - gene (TSS 3999, start 3199)
        ("chr1", 4200): ("G2", -201.0, "promoter"),  # 201 bp upstream of the - gene
        ("chr2", 1100): ("G3", -900.0, "promoter"),
    }
    for key, (gene, distance, region) in expected.items():
        row = peaks.loc[key]
        assert (row["gene_id"], row["tss_distance"], row["region_class"]) == (gene, distance, region)
    no_gene = peaks.loc[("chr3", 1500)]
    assert no_gene["gene_id"] == "" and np.isnan(no_gene["tss_distance"]) and no_gene["region_class"] == ""
    assert peaks.loc[("chr1", 1100), "peak_set"] == "TFA"
    assert peaks.loc[("chr1", 4200), "peak_set"] == "TFB"


def test_background_windows(extracted):
    _, _, report, labels = extracted
    bg = labels[labels["kind"] == "background"]
    peaks = labels[labels["kind"] == "peak"]
    assert report["n_background_windows"] == len(bg) > 0
    assert (bg["peak_set"] == "background").all() and (bg["score"] == 0).all()
    for _, b in bg.iterrows():
        same = peaks[peaks["chrom"] == b["chrom"]]
        assert not ((same["start"] < b["end"]) & (same["end"] > b["start"])).any()
    assert (bg["n_fraction"] <= 0.05).all()


def test_side_files(extracted):
    _, out, _, labels = extracted
    bed = pd.read_csv(out.parent / "windows.bed", sep="\t", header=None)
    assert bed.shape == (len(labels), 6)
    assert (bed[2] - bed[1] == 200).all() and bed[3].tolist() == labels["window_id"].tolist()
    tsv = pd.read_csv(out.parent / "windows.tsv", sep="\t", keep_default_na=False)
    assert tsv["window_id"].tolist() == labels["window_id"].tolist()
    assert not (out.parent / "extract_qc.png").exists()  # drawn by `seqae plot-extract`
    # Every FASTA sequence's length, in UCSC chrom.sizes form, for the embeddings' bigWig headers.
    assert (out.parent / "chrom.sizes").read_text() == "chr1\t6000\nchr2\t5000\nchr3\t3000\n"


def test_qc_figure(extracted, capsys):
    _, out, _, _ = extracted
    png_path = out.parent / "qc.png"
    assert main(["plot-extract", "--windows", str(out), "--out", str(png_path)]) == 0
    png = png_path.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    svg = out.parent / "qc.svg"
    assert main(["plot-extract", "--windows", str(out), "--out", str(svg)]) == 0
    assert svg.read_text().lstrip().startswith("<?xml")


def test_mean_profiles_stored(extracted):
    from seqae.windows.store import read_summary

    _, out, _, _ = extracted
    summary = read_summary(out)
    assert summary["mean_profile/peak"].shape == (2, 240)
    assert summary["mean_profile/background"].shape == (2, 240)


def test_merging_close_summits(tiny_inputs):
    config = tiny_inputs["config"]
    config["extract"]["merge_distance"] = 50
    out = tiny_inputs["dir"] / "merged" / "windows.h5"
    extract_windows(config, out, progress=False)
    labels = read_labels(out)
    merged = labels[(labels["chrom"] == "chr2") & (labels["kind"] == "peak")]
    assert merged["summit"].tolist() == [1100]  # a5 (score 600) beats b2 (score 100)
    assert merged["peak_set"].tolist() == ["TFA,TFB"]
    assert merged["n_merged"].tolist() == [2]


def test_blacklist_drops_windows(tiny_inputs):
    blacklist = tiny_inputs["dir"] / "black.bed"
    blacklist.write_text("chr1\t1150\t1160\n")
    config = tiny_inputs["config"]
    config["genomes"][0]["blacklist"] = str(blacklist)
    out = tiny_inputs["dir"] / "bl" / "windows.h5"
    report = extract_windows(config, out, progress=False)
    labels = read_labels(out)
    assert report["genomes"][0]["dropped_blacklist"] == 1
    assert 1100 not in labels.loc[(labels["chrom"] == "chr1") & (labels["kind"] == "peak"), "summit"].tolist()
    hits = (labels["chrom"] == "chr1") & (labels["start"] < 1160) & (labels["end"] > 1150)
    assert not hits.any()


def test_extraction_is_deterministic(tiny_inputs, monkeypatch):
    """The same windows whatever the threads (--threads 1: one compressing thread)."""
    import seqae.extract_write

    a = tiny_inputs["dir"] / "a" / "windows.h5"
    b = tiny_inputs["dir"] / "b" / "windows.h5"
    extract_windows(tiny_inputs["config"], a, progress=False)
    pools = []
    real = seqae.extract_write.WindowsWriter

    def writer(*args, **kwargs):
        pools.append(kwargs["deflate_threads"])
        return real(*args, **kwargs)

    monkeypatch.setattr(seqae.extract_write, "WindowsWriter", writer)
    extract_windows(tiny_inputs["config"], b, progress=False, threads=1)
    assert pools == [1]
    pd.testing.assert_frame_equal(read_labels(a), read_labels(b))
    for x, y in zip(read_windows(a), read_windows(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_cli_runs(tiny_inputs, capsys):
    out = tiny_inputs["dir"] / "cli" / "windows.h5"
    code, _ = run_extract_cli(tiny_inputs["config"], out, capsys)
    assert code == 0 and out.exists()


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("empty_peaks", r"TFA\.narrowPeak: no peaks in file"),
        ("summit_outside", r"TFA\.narrowPeak:1: summit"),
        ("missing_bigwig", r"nope\.bw: bigWig file does not exist"),
        (
            "bigwig_lacks_chrom",
            r"short\.bw: bigWig has no chromosome 'chr3', which holds \d+ windows \(bigWig has: chr1, chr2; "
            r"chrom_aliases: auto; extract\.chromosomes\.exclude leaves a chromosome out\)$",
        ),
        (
            "bigwig_lacks_two_chroms",  # both named in one message, not one run each
            r"short\.bw: bigWig has no chromosome 'chr2', which holds \d+ windows, nor 'chr3' \(\d+\) \(bigWig has: chr1; ",
        ),
        ("no_shared_names", r"TFA\.narrowPeak: no chromosome name in common with the FASTA"),
        ("missing_fasta", r"absent\.fa: genome FASTA does not exist"),
        ("bad_gtf", r"genes\.gtf:2: "),
        ("truncated_bigwig", r"cut\.bw: not a bigWig file, or a truncated one"),
        ("corrupt_gzip_fasta", r"genome\.fa\.gz: is not a valid gzip file"),
        ("gff3_mrna_without_ids", r"genes\.gff3:2: mRNA line has neither ID nor Parent attribute"),
        ("alias_table_naming_nothing", r"alias\.txt: no line names a sequence of the FASTA"),
        ("every_peak_excluded", r"TFA\.narrowPeak: every peak is on a chromosome that extract\.chromosomes leaves out"),
        (
            "float16_overflow",  # stored as infinity, with numpy's RuntimeWarning
            r"huge\.bw: values up to 1e\+06 overflow track_dtype float16 \(largest 65504\) with track_transform none",
        ),
        (
            "blacklist_of_other_names",  # it excluded nothing, silently
            r"black\.bed: no chromosome name in common with the FASTA \(blacklist intervals on: NC_000001\.11; FASTA has: chr1",
        ),
    ],
)
def test_bad_input_gives_one_line_and_no_output(tiny_inputs, capfd, breakage, message):
    """One line from seqae on stderr, read at the file-descriptor level (capfd), so native noise would show."""
    config = tiny_inputs["config"]
    genome = config["genomes"][0]
    d = tiny_inputs["dir"]
    if breakage == "empty_peaks":
        tiny_inputs["peaks"]["TFA"].write_text("")
    elif breakage == "summit_outside":
        tiny_inputs["peaks"]["TFA"].write_text("chr1\t100\t200\tx\t5\t.\t1\t1\t1\t500\n")
    elif breakage == "missing_bigwig":
        genome["tfs"][0]["bigwig"] = str(d / "nope.bw")
    elif breakage == "bigwig_lacks_chrom":
        from tests.conftest import write_bigwig

        short = write_bigwig(d / "short.bw", {c: v for c, v in tiny_inputs["tracks"]["TFA"].items() if c != "chr3"})
        genome["tfs"][0]["bigwig"] = str(short)
    elif breakage == "bigwig_lacks_two_chroms":
        from tests.conftest import write_bigwig

        tracks = tiny_inputs["tracks"]["TFA"]
        short = write_bigwig(d / "short.bw", {c: v for c, v in tracks.items() if c not in ("chr2", "chr3")})
        genome["tfs"][0]["bigwig"] = str(short)
    elif breakage == "no_shared_names":
        tiny_inputs["peaks"]["TFA"].write_text("scaffold_9\t100\t300\tx\t5\t.\t1\t1\t1\t100\n")
    elif breakage == "missing_fasta":
        genome["fasta"] = str(d / "absent.fa")
    elif breakage == "bad_gtf":
        lines = tiny_inputs["gtf"].read_text().splitlines()
        lines[1] = lines[1].replace("\t1001\t", "\tone\t")
        tiny_inputs["gtf"].write_text("\n".join(lines) + "\n")
    elif breakage == "truncated_bigwig":
        (d / "cut.bw").write_bytes(tiny_inputs["bigwigs"]["TFA"].read_bytes()[:300])
        genome["tfs"][0]["bigwig"] = str(d / "cut.bw")
    elif breakage == "corrupt_gzip_fasta":
        import gzip

        (d / "genome.fa.gz").write_bytes(gzip.compress(tiny_inputs["fasta"].read_bytes())[:400])
        genome["fasta"] = str(d / "genome.fa.gz")
    elif breakage == "gff3_mrna_without_ids":
        (d / "genes.gff3").write_text("##gff-version 3\nchr1\tx\tmRNA\t10\t900\t.\t+\t.\tName=a\n")
        genome["annotation"] = str(d / "genes.gff3")
    elif breakage == "alias_table_naming_nothing":
        (d / "alias.txt").write_text("scaffold_1\t1\n")
        genome["chrom_aliases"] = str(d / "alias.txt")
    elif breakage == "blacklist_of_other_names":
        (d / "black.bed").write_text("NC_000001.11\t100\t900\n")
        genome["blacklist"] = str(d / "black.bed")
    elif breakage == "float16_overflow":
        from tests.conftest import write_bigwig

        write_bigwig(d / "huge.bw", {c: np.full(len(v), 1e6, np.float32) for c, v in tiny_inputs["seqs"].items()})
        genome["tfs"][0]["bigwig"] = str(d / "huge.bw")
        config["extract"]["track_transform"] = "none"
    elif breakage == "every_peak_excluded":
        config["extract"]["chromosomes"] = {"include": "peaks", "exclude": ["chr*"]}
    out = d / "bad" / "windows.h5"
    code, err = run_extract_cli(config, out, capfd)
    assert code == 2
    assert len(err) == 1, err
    assert pytest.importorskip("re").search(message, err[0]), err[0]
    assert not out.exists()
    assert not list(out.parent.glob(".windows.h5*"))
    assert not (out.parent / "genome_index").exists()


def test_bigwig_and_annotation_of_another_assembly_are_warned_about(tiny_inputs, caplog):
    from tests.conftest import write_bigwig

    d = tiny_inputs["dir"]
    # chr2 shorter in the bigWig's header than in the FASTA; a gene past chr1's end.
    tracks = dict(tiny_inputs["tracks"]["TFA"])
    tracks["chr2"] = tracks["chr2"][:-500]
    config = copy.deepcopy(tiny_inputs["config"])
    config["genomes"][0]["tfs"][0]["bigwig"] = str(write_bigwig(d / "other.bw", tracks))
    lines = tiny_inputs["gtf"].read_text().splitlines()
    lines.append(lines[-1].replace("chr2\tt\tgene\t2001\t2600", "chr1\tt\tgene\t2001\t90000").replace("G3", "G9"))
    (d / "other.gtf").write_text("\n".join(lines) + "\n")
    config["genomes"][0]["annotation"] = str(d / "other.gtf")
    with caplog.at_level("WARNING", logger="seqae"):
        report = extract_windows(config, d / "other" / "windows.h5", progress=False)
    size = len(tiny_inputs["seqs"]["chr2"])
    assert (
        f"other.bw: 1 chromosomes holding windows have another length here than in the FASTA (chr2: {size - 500} bp, FASTA {size} bp)"
        in caplog.text
    )
    assert (
        "other.gtf: 1 genes end past their chromosome's end in the FASTA (e.g. G9 on chr1 ends at 90000" in caplog.text
    )
    assert report["genomes"][0]["genes"]["n_past_chromosome_end"] == 1
    caplog.clear()
    with caplog.at_level("WARNING", logger="seqae"):
        extract_windows(tiny_inputs["config"], d / "same" / "windows.h5", progress=False)
    assert "another length" not in caplog.text and "past their chromosome" not in caplog.text


def test_failure_while_writing_leaves_no_file(tiny_inputs, monkeypatch):
    import seqae.extract_write

    calls = {"n": 0}
    real = seqae.extract_write.read_windows

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise InputError("x.bw", "read failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(seqae.extract_write, "read_windows", flaky)
    out = tiny_inputs["dir"] / "flaky" / "windows.h5"
    with pytest.raises(InputError):
        extract_windows(tiny_inputs["config"], out, progress=False)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def test_failure_while_writing_the_side_files_leaves_every_output_as_it_was(tiny_inputs, monkeypatch):
    import seqae.extract_report

    out = tiny_inputs["dir"] / "again" / "windows.h5"
    extract_windows(tiny_inputs["config"], out, progress=False)
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    assert set(before) >= {"windows.h5", "windows.bed", "windows.tsv", "extract_report.json", "chrom.sizes"}

    def fail(*args, **kwargs):
        raise InputError("windows.tsv", "cannot be written")

    monkeypatch.setattr(seqae.extract_report, "write_tsv_to", fail)
    config = copy.deepcopy(tiny_inputs["config"])
    config["extract"]["background_ratio"] = 0.0  # another run's outputs
    with pytest.raises(InputError):
        extract_windows(config, out, progress=False)
    # Not a new windows file or BED beside the old TSV and report: the old four, and no temporaries.
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before


def test_tsv_value_with_a_tab_is_a_one_line_error(tmp_path):
    from seqae.errors import SeqaeError
    from seqae.fileio import write_tsv

    with pytest.raises(SeqaeError, match=r"^\S*t\.tsv: a value holds a tab or a line break.*'a\\tb'$"):
        write_tsv(pd.DataFrame({"name": ["ok", "a\tb"]}), tmp_path / "t.tsv")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_folder(tiny_inputs, capsys, tmp_path):
    blocker = tmp_path / "file_not_folder"
    blocker.write_text("")
    code, err = run_extract_cli(tiny_inputs["config"], tmp_path / "x" / "windows.h5", capsys)  # sanity: works
    assert code == 0
    code = main(
        ["--quiet", "extract", "--config", str(tmp_path / "x" / "c.yaml"), "--out", str(blocker / "windows.h5")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot write output here" in err[0]


def test_tracks_without_bigwig_and_float32(tiny_inputs):
    config = make_config(
        fasta=tiny_inputs["fasta"],
        tfs=[("TFA", tiny_inputs["peaks"]["TFA"], None)],
        extract={"window_len": 100, "max_jitter": 0, "track_dtype": "float32", "background_ratio": 0},
    )
    out = tiny_inputs["dir"] / "nobw" / "windows.h5"
    extract_windows(config, out, progress=False)
    seq, tracks = read_windows(out)
    assert tracks is None and seq.shape[1] == 100
    assert (read_labels(out)["kind"] == "peak").all()


@pytest.mark.parametrize("compression", ["bgzip", "gzip"])
def test_compressed_fasta(tiny_inputs, compression, caplog):
    """bgzip is read in place; plain gzip is decompressed once beside the outputs, with a log line."""
    import gzip

    d = tiny_inputs["dir"]
    fa_gz = d / "genome.fa.gz"
    if compression == "bgzip":
        from Bio import bgzf

        with bgzf.BgzfWriter(str(fa_gz), "wb") as w:
            w.write(tiny_inputs["fasta"].read_bytes())
    else:
        fa_gz.write_bytes(gzip.compress(tiny_inputs["fasta"].read_bytes()))
    plain_out = d / "plain" / "windows.h5"
    extract_windows(tiny_inputs["config"], plain_out, progress=False)
    tiny_inputs["config"]["genomes"][0]["fasta"] = str(fa_gz)
    out = d / "gz" / "windows.h5"
    with caplog.at_level("INFO", logger="seqae"):
        extract_windows(tiny_inputs["config"], out, progress=False)
    assert np.array_equal(read_windows(out)[0], read_windows(plain_out)[0])
    if compression == "bgzip":  # indexed in place, the folder being writable
        assert (d / "genome.fa.gz.fai").exists() and (d / "genome.fa.gz.gzi").exists()
        assert not (out.parent / "genome_index").exists()
    else:
        index = sorted(p.name for p in (out.parent / "genome_index" / "tiny").iterdir())
        assert index == ["genome.fa", "genome.fa.fai", "genome.fa.source.json"]
        assert "decompressing it once" in caplog.text
        assert not (d / "genome.fa.gz.fai").exists()


def test_failed_run_leaves_no_index_or_copy(tiny_inputs, capsys):
    import gzip

    d = tiny_inputs["dir"]
    fa_gz = d / "genome.fa.gz"
    fa_gz.write_bytes(gzip.compress(tiny_inputs["fasta"].read_bytes()))
    config = tiny_inputs["config"]
    config["genomes"][0]["fasta"] = str(fa_gz)
    tiny_inputs["peaks"]["TFA"].write_text("chr1\t100\t200\tx\t5\t.\t1\t1\t1\t500\n")
    out = d / "failed" / "windows.h5"
    code, err = run_extract_cli(config, out, capsys)
    assert code == 2 and len(err) == 1 and "TFA.narrowPeak:1: summit" in err[0]
    assert sorted(p.name for p in out.parent.iterdir()) == ["c.yaml"]
    # The same for an index beside a plain FASTA, built by the failed run.
    config["genomes"][0]["fasta"] = str(tiny_inputs["fasta"])
    code, err = run_extract_cli(config, out, capsys)
    assert code == 2 and not (d / "genome.fa.fai").exists()


def test_without_an_annotation_the_gene_labels_are_unknown_not_intergenic(tiny_inputs, caplog):
    """region_class said "intergenic" for every window of a genome without an annotation: a claim, not a label."""
    config = copy.deepcopy(tiny_inputs["config"])
    config["genomes"][0]["annotation"] = None
    out = tiny_inputs["dir"] / "plain" / "windows.h5"
    with caplog.at_level("WARNING", logger="seqae"):
        extract_windows(config, out, progress=False)
    labels = read_labels(out)
    assert (labels["region_class"].astype(str) == "").all() and labels["tss_distance"].isna().all()
    assert (labels["gene_id"].astype(str) == "").all()
    assert f"tiny: no annotation: the gene labels (nearest gene, TSS distance, region_class) of its {len(labels)}" in (
        caplog.text
    )
    # A model whose gene block is labelled region_class (the default) is refused at training, naming the fix.
    from seqae.training.data import _label_codes
    from seqae.windows.dataset import WindowDataset

    with pytest.raises(SeqaeError, match="label column 'region_class' is empty for every window .* `label: null`"):
        _label_codes(WindowDataset(out, "train"), WindowDataset(out, "val"), ["region_class"], str(out))


def test_genes_on_chromosomes_absent_from_the_fasta_are_warned_about(tiny_inputs, caplog):
    """Dropped without a word, they left the windows of those chromosomes with unknown gene labels."""
    d = tiny_inputs["dir"]
    config = copy.deepcopy(tiny_inputs["config"])
    (d / "renamed.gtf").write_text(tiny_inputs["gtf"].read_text().replace("\nchr2\t", "\nscaffold_2\t"))
    config["genomes"][0]["annotation"] = str(d / "renamed.gtf")
    with caplog.at_level("WARNING", logger="seqae"):
        extract_windows(config, d / "renamed" / "windows.h5", progress=False)
    assert (
        "renamed.gtf: 1 of 3 genes on 1 chromosomes absent from the FASTA were skipped (scaffold_2: 1)" in caplog.text
    )


def test_negative_and_empty_bigwigs_are_warned_about(tiny_inputs, caplog):
    """log1p stored a signed track's negative values as 0, and an empty bigWig made a track of zeros, silently."""
    from tests.conftest import write_bigwig

    d = tiny_inputs["dir"]
    config = copy.deepcopy(tiny_inputs["config"])
    signed = {c: np.linspace(-2.5, 2.5, len(s), dtype=np.float32) for c, s in tiny_inputs["seqs"].items()}
    config["genomes"][0]["tfs"][0]["bigwig"] = str(write_bigwig(d / "signed.bw", signed))
    with caplog.at_level("WARNING", logger="seqae"):
        extract_windows(config, d / "signed" / "windows.h5", progress=False)
    assert "signed.bw: holds negative values (down to -2.5), which track_transform log1p stores as 0" in caplog.text
    caplog.clear()
    config["extract"]["track_transform"] = "none"  # stored as they are: nothing to say
    with caplog.at_level("WARNING", logger="seqae"):
        extract_windows(config, d / "signed_none" / "windows.h5", progress=False)
    assert "negative values" not in caplog.text
    _, tracks = read_windows(d / "signed_none" / "windows.h5")
    assert tracks[:, 0].min() < -1

    import pyBigWig

    bw = pyBigWig.open(str(d / "empty.bw"), "w")
    bw.addHeader([(c, len(s)) for c, s in tiny_inputs["seqs"].items()])
    bw.close()
    config["genomes"][0]["tfs"][0]["bigwig"] = str(d / "empty.bw")
    with caplog.at_level("WARNING", logger="seqae"):
        extract_windows(config, d / "empty" / "windows.h5", progress=False)
    assert "empty.bw: holds no data: its track reads 0 in every window" in caplog.text


def test_summits_past_a_chromosome_end_suggest_another_assembly(tiny_inputs, caplog):
    """They were counted with the summits near an end, at INFO, as if the peaks fitted the FASTA."""
    d = tiny_inputs["dir"]
    config = copy.deepcopy(tiny_inputs["config"])
    text = tiny_inputs["peaks"]["TFA"].read_text()
    (d / "past.narrowPeak").write_text(text + "chr3\t90000\t90400\tfar\t10\t.\t5.0\t10.0\t8.0\t200\n")
    config["genomes"][0]["tfs"][0]["peaks"] = str(d / "past.narrowPeak")
    with caplog.at_level("INFO", logger="seqae"):
        report = extract_windows(config, d / "past" / "windows.h5", progress=False)
    assert (
        "tiny: 1 summits lie past their chromosome's end in the FASTA (e.g. TFA's peak far at chr3:90200, on a "
        "chromosome of 3000 bp) and are left out: are the peaks for another assembly?" in caplog.text
    )
    assert "tiny: 1 summits lie within window_len/2 + max_jitter (120 bp) of a chromosome end" in caplog.text
    assert report["genomes"][0]["dropped_past_chromosome_end"] == 1
    # The peak over chr2's N run: said on the terminal too, not only in the report.
    assert "genome.fa: 1 peak windows hold more than max_n_fraction (0.05) N bases and are left out" in caplog.text


def test_peaks_repeating_a_summit_are_dropped_with_a_warning(tiny_inputs, caplog):
    """A peaks file appended twice made every window twice, silently."""
    d = tiny_inputs["dir"]
    config = copy.deepcopy(tiny_inputs["config"])
    text = tiny_inputs["peaks"]["TFA"].read_text()
    (d / "twice.narrowPeak").write_text(text + text)
    config["genomes"][0]["tfs"][0]["peaks"] = str(d / "twice.narrowPeak")
    once = extract_windows(copy.deepcopy(tiny_inputs["config"]), d / "once" / "windows.h5", progress=False)
    with caplog.at_level("WARNING", logger="seqae"):
        twice = extract_windows(config, d / "twice" / "windows.h5", progress=False)
    assert "twice.narrowPeak: 7 peaks repeat an earlier peak's summit (chromosome and position) and are dropped" in (
        caplog.text
    )
    assert twice["n_peak_windows"] == once["n_peak_windows"]
    assert twice["genomes"][0]["peaks"]["TFA"]["n_repeated_summits"] == 7
