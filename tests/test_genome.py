"""Genome access: codes, whole-chromosome reads, names, bad FASTA input."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from seqae.chrom_names import ChromAliases, chrom_key, harmonise_chrom_names
from seqae.errors import InputError
from seqae.genome import Genome, decode, encode, gather_windows, gc_and_n_fraction
from seqae.spans import ReadStats
from tests.conftest import write_fasta


def test_encode_decode_round_trip():
    codes = encode("ACGTNacgtnRY")
    assert codes.tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 4, 4]
    assert decode(codes[:5]) == "ACGTN"


def test_chromosome_codes_equal_fasta_text(tiny_inputs):
    genome = Genome(tiny_inputs["fasta"])
    assert genome.chroms == ["chr1", "chr2", "chr3"]
    for chrom, seq in tiny_inputs["seqs"].items():
        codes = genome.chrom_codes(chrom)
        assert genome.chrom_sizes[chrom] == len(seq)
        assert decode(codes) == seq.upper()


@pytest.mark.parametrize("width", [7, 60, 61])
def test_chromosome_codes_any_line_width(tmp_path, width):
    seq = "ACGTTGCA" * 37 + "A"  # length not a multiple of the line width
    fasta = write_fasta(tmp_path / "g.fa", {"x": seq, "y": "GGCC"}, line_width=width)
    genome = Genome(fasta)
    assert decode(genome.chrom_codes("x")) == seq
    assert decode(genome.chrom_codes("y")) == "GGCC"


@pytest.mark.parametrize("width", [7, 60, 61])
def test_span_and_window_codes_equal_fasta_slices(tmp_path, width):
    """Spans start and end anywhere relative to the line ends; windows are cut from as few spans as pay."""
    rng = np.random.default_rng(width)
    seq = "".join(rng.choice(list("ACGTNacgt"), size=1001))
    genome = Genome(write_fasta(tmp_path / "g.fa", {"x": "ACGT", "y": seq}, line_width=width))
    for lo, hi in [(0, 1001), (0, 1), (width - 1, width + 1), (width, 2 * width), (500, 1001), (3, 3)]:
        assert decode(genome.span_codes("y", lo, hi)) == seq[lo:hi].upper()
    starts = np.sort(rng.integers(0, 1001 - 50, size=40))
    stats = ReadStats()
    windows = genome.window_codes("y", starts, 50, stats=stats)
    assert [decode(w) for w in windows] == [seq[s : s + 50].upper() for s in starts]
    assert stats.bases_needed <= stats.bases_read <= 1.5 * stats.bases_needed
    genome.close()


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n"])
def test_many_spans_equal_fasta_slices_at_record_ends(tmp_path, line_end):
    """Spans read in one call: any line end, a record of whole lines, spans touching a record's last base."""
    rng = np.random.default_rng(len(line_end))
    seqs = {"a": "".join(rng.choice(list("ACGTNacgtn"), size=600)), "b": "".join(rng.choice(list("ACGT"), size=333))}
    text = b"".join(
        b">" + name.encode() + b"\n" + b"".join(seq[i : i + 60].encode() + line_end for i in range(0, len(seq), 60))
        for name, seq in seqs.items()
    )
    (tmp_path / "g.fa").write_bytes(text)
    genome = Genome(tmp_path / "g.fa")
    for name, seq in seqs.items():
        bounds = np.sort(rng.choice(len(seq) + 1, size=20, replace=False))
        starts, ends = bounds[0::2], bounds[1::2]
        ends[-1] = len(seq)
        codes = genome.spans_codes(name, starts, ends)
        assert decode(codes) == "".join(seq[a:b] for a, b in zip(starts, ends, strict=True)).upper()
        assert decode(genome.chrom_codes(name)) == seq.upper()
    genome.close()


def test_line_shorter_than_the_index_says_is_named(tmp_path):
    fasta = write_fasta(tmp_path / "g.fa", {"x": "ACGT" * 50}, line_width=20)
    Genome(fasta).close()  # index it
    when = os.stat(fasta).st_mtime_ns
    text = fasta.read_bytes()
    at = text.index(b"\n", 30)  # the second line loses a base, the third gains one
    fasta.write_bytes(text[: at - 1] + b"\nA" + text[at + 1 :])
    os.utime(fasta, ns=(when, when))  # the index still looks fresh
    genome = Genome(fasta)
    with pytest.raises(InputError, match=r"g\.fa:record 'x': line lengths disagree with the index"):
        genome.span_codes("x", 0, 200)


def test_fasta_cut_short_after_indexing_is_named(tmp_path):
    fasta = write_fasta(tmp_path / "g.fa", {"x": "ACGT" * 50}, line_width=20)
    Genome(fasta).close()  # index it
    when = os.stat(fasta).st_mtime_ns
    fasta.write_bytes(fasta.read_bytes()[:100])
    os.utime(fasta, ns=(when, when))  # the index still looks fresh
    with pytest.raises(InputError, match=r"g\.fa:record 'x': line lengths disagree with the index g\.fa\.fai"):
        Genome(fasta).span_codes("x", 0, 200)


def test_non_dna_character_in_a_span_names_its_position(tmp_path):
    bad = write_fasta(tmp_path / "prot.fa", {"p": "ACGT" * 30 + "X" + "ACGT"}, line_width=7)
    genome = Genome(bad)
    assert decode(genome.span_codes("p", 0, 120)) == "ACGT" * 30
    with pytest.raises(InputError, match=r"prot\.fa:record 'p': character 'X' at position 121 is not IUPAC DNA"):
        genome.window_codes("p", np.array([100, 110]), 12)


def test_gather_windows_and_gc():
    codes = encode("AAAACCCCGGGGTTTTNNNN")
    win = gather_windows(codes, np.array([0, 4, 12]), 8)
    assert [decode(w) for w in win] == ["AAAACCCC", "CCCCGGGG", "TTTTNNNN"]
    gc, n = gc_and_n_fraction(win)
    np.testing.assert_allclose(gc, [0.5, 1.0, 0.0])
    np.testing.assert_allclose(n, [0.0, 0.0, 0.5])


def test_gc_and_n_fraction_counts_every_base():
    length = 1000
    rng = np.random.default_rng(5)
    windows = rng.integers(0, 5, size=(6, length), dtype=np.uint8)
    windows[0] = 4  # all N: no called base, GC undefined
    windows[1, : length // 2] = 4
    gc, n = gc_and_n_fraction(windows)
    n_count = (windows == 4).sum(axis=1)
    gc_count = ((windows == 1) | (windows == 2)).sum(axis=1)
    with np.errstate(invalid="ignore"):
        expected_gc = gc_count / (length - n_count)
    np.testing.assert_array_equal(gc, expected_gc)
    np.testing.assert_array_equal(n, n_count / length)
    # Wider integer codes give the same counts (the GC test relies on uint8 wrap-around).
    gc_wide, n_wide = gc_and_n_fraction(windows.astype(np.int64))
    np.testing.assert_array_equal(gc_wide, gc)
    np.testing.assert_array_equal(n_wide, n)
    assert np.isnan(gc[0]) and n[0] == 1.0


def test_chrom_name_harmonising():
    assert chrom_key("chr1") == chrom_key("1") == chrom_key("Chr1")
    assert chrom_key("chrM") == chrom_key("MT") == chrom_key("M")
    mapping = harmonise_chrom_names(["1", "chr2", "MT", "chrUn"], ["chr1", "chr2", "chrM"])
    assert mapping == {"1": "chr1", "chr2": "chr2", "MT": "chrM"}


def test_missing_fasta(tmp_path):
    with pytest.raises(InputError, match=r"missing\.fa: genome FASTA does not exist"):
        Genome(tmp_path / "missing.fa")


def test_malformed_fasta_names_line(tmp_path):
    bad = tmp_path / "bad.fa"
    bad.write_text(">a\nACGT\nACGTACGT\nAC\n")
    with pytest.raises(InputError, match=r"bad\.fa:3: malformed FASTA"):
        Genome(bad)


@pytest.mark.parametrize(
    ("text", "line", "record"),
    [
        (">a\nACGT\nACGT\nAC\n>b\nACGT\nAC\n\n\n", 8, ">b"),  # two blank lines at the end
        (">a\nACGT\nACGT\nAC\n\n\n>b\nACGT\nAC\n", 5, ">a"),  # two between records
        (">a\nACGT\n\nACGT\nAC\n>b\nACGT\n", 3, ">a"),  # one inside a sequence
    ],
)
def test_blank_lines_pyfaidx_cannot_index_are_named(tmp_path, text, line, record):
    bad = tmp_path / "bad.fa"
    bad.write_text(text)
    with pytest.raises(
        InputError,
        match=rf"^\S*bad\.fa:{line}: malformed FASTA: a blank line inside or after the sequence of {record}, "
        r"which pyfaidx cannot index .*; remove the blank lines$",
    ):
        Genome(bad)
    (tmp_path / "one.fa").write_text(">a\nACGT\nAC\n\n>b\nACGT\n\n")  # one blank line after a record is fine
    assert Genome(tmp_path / "one.fa").chroms == ["a", "b"]


def test_text_before_first_record(tmp_path):
    bad = tmp_path / "bad.fa"
    bad.write_text("ACGT\n>a\nACGT\n")
    with pytest.raises(InputError, match=r"bad\.fa:1: malformed FASTA"):
        Genome(bad)


def test_duplicate_record(tmp_path):
    bad = tmp_path / "dup.fa"
    bad.write_text(">a\nACGT\n>a\nACGT\n")
    with pytest.raises(InputError, match=r"dup\.fa: malformed FASTA: Duplicate key"):
        Genome(bad)


def test_non_dna_character(tmp_path):
    bad = write_fasta(tmp_path / "prot.fa", {"p": "ACGTXACGT"})
    genome = Genome(bad)
    with pytest.raises(InputError, match=r"prot\.fa:record 'p': character 'X' at position 5 is not IUPAC DNA"):
        genome.chrom_codes("p")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_unindexed_fasta_in_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    fasta = write_fasta(folder / "g.fa", {"a": "ACGT"})
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(InputError, match=r"no index .* not writable"):
            Genome(fasta)
    finally:
        folder.chmod(stat.S_IRWXU)


def test_unindexed_fasta_in_read_only_folder_as_any_user(tmp_path, monkeypatch):
    # The same check, independent of the user: the folder reports itself unwritable.
    fasta = write_fasta(tmp_path / "g.fa", {"a": "ACGT"})
    real_access = os.access
    monkeypatch.setattr("seqae.genome.os.access", lambda p, mode: False if mode == os.W_OK else real_access(p, mode))
    with pytest.raises(InputError, match=r"g\.fa: FASTA has no index \(g\.fa\.fai\) and its folder is not writable"):
        Genome(fasta)


# --------------------------------------------------------------------------- compressed FASTAs, where the index goes


def _bgzip(source, target):
    from Bio import bgzf

    with bgzf.BgzfWriter(str(target), "wb") as out:
        out.write(source.read_bytes())
    return target


def _read_only_folders(monkeypatch):
    """Every folder reports itself unwritable to seqae.genome (independent of the user, root included)."""
    real_access = os.access
    monkeypatch.setattr("seqae.genome.os.access", lambda p, mode: False if mode == os.W_OK else real_access(p, mode))


def test_bgzip_fasta_read_in_place(tiny_inputs, tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    fa_gz = _bgzip(tiny_inputs["fasta"], tmp_path / "in" / "genome.fa.gz")
    genome = Genome(fa_gz)
    assert genome.path == fa_gz and genome.chroms == ["chr1", "chr2", "chr3"]
    for chrom, seq in tiny_inputs["seqs"].items():
        assert decode(genome.chrom_codes(chrom)) == seq.upper()
        assert decode(genome.span_codes(chrom, 95, 310)) == seq[95:310].upper()
    genome.close()
    assert genome.index_path == tmp_path / "in" / "genome.fa.gz.fai"
    # In a read-only folder, the index (.fai and .gzi) goes to seqae's folder.
    for index in (tmp_path / "in").glob("*.*i"):
        index.unlink()
    _read_only_folders(monkeypatch)
    work = tmp_path / "work"
    genome = Genome(fa_gz, work_dir=work)
    assert decode(genome.chrom_codes("chr3")) == tiny_inputs["seqs"]["chr3"].upper()
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["genome.fa.gz"]
    assert sorted(p.name for p in work.iterdir()) == ["genome.fa.gz.fai", "genome.fa.gz.gzi"]


def test_plain_gzip_fasta_decompressed_once(tiny_inputs, tmp_path, caplog):
    import gzip

    fa_gz = tmp_path / "genome.fa.gz"
    fa_gz.write_bytes(gzip.compress(tiny_inputs["fasta"].read_bytes()))
    work = tmp_path / "work"
    with caplog.at_level("INFO", logger="seqae"):
        genome = Genome(fa_gz, work_dir=work)
    assert genome.path == work / "genome.fa"
    assert decode(genome.chrom_codes("chr2")) == tiny_inputs["seqs"]["chr2"].upper()
    assert "gzip-compressed but not bgzip" in caplog.text
    # The advice writes a new file: `> genome.fa.gz` would empty the input before gunzip reads it.
    assert "`gunzip -c genome.fa.gz | bgzip > genome.fa.bgz`" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="seqae"):
        Genome(fa_gz, work_dir=work)  # the copy and its index are reused
    assert "decompressing" not in caplog.text and "indexing" not in caplog.text


def test_plain_gzip_fasta_refused_without_work_dir(tiny_inputs, tmp_path):
    import gzip

    fa_gz = tmp_path / "genome.fa.gz"
    fa_gz.write_bytes(gzip.compress(tiny_inputs["fasta"].read_bytes()))
    with pytest.raises(
        InputError,
        match=r"genome\.fa\.gz: FASTA is gzip-compressed.*`gunzip -c genome\.fa\.gz \| bgzip > genome\.fa\.bgz`",
    ):
        Genome(fa_gz)


def test_truncated_gzip_fasta(tiny_inputs, tmp_path):
    import gzip

    fa_gz = tmp_path / "genome.fa.gz"
    fa_gz.write_bytes(gzip.compress(tiny_inputs["fasta"].read_bytes())[:500])
    with pytest.raises(InputError, match=r"genome\.fa\.gz: is not a valid gzip file"):
        Genome(fa_gz, work_dir=tmp_path / "work")
    assert not (tmp_path / "work").exists()


def test_read_only_input_folder_indexes_into_work_dir(tmp_path, monkeypatch):
    fasta = write_fasta(tmp_path / "g.fa", {"a": "ACGT"})
    _read_only_folders(monkeypatch)
    genome = Genome(fasta, work_dir=tmp_path / "work")
    assert genome.index_path == tmp_path / "work" / "g.fa.fai"
    assert not (tmp_path / "g.fa.fai").exists()
    genome.discard_created()  # what a failed run does: nothing of seqae's is left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.fa"]


def test_existing_index_beside_the_fasta_is_used(tmp_path):
    fasta = write_fasta(tmp_path / "g.fa", {"a": "ACGT"})
    Genome(fasta)  # builds g.fa.fai beside it (the folder is writable)
    genome = Genome(fasta, work_dir=tmp_path / "work")
    assert genome.index_path == tmp_path / "g.fa.fai" and not (tmp_path / "work").exists()


@pytest.mark.parametrize("work", [False, True])
def test_failed_index_build_leaves_no_index(tmp_path, work):
    bad = tmp_path / "dup.fa"
    bad.write_text(">a\nACGT\n>a\nACGT\n")
    work_dir = tmp_path / "work" if work else None
    with pytest.raises(InputError, match=r"dup\.fa: malformed FASTA: Duplicate key"):
        Genome(bad, work_dir=work_dir)
    left = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["dup.fa"], left


def test_auto_rule_both_ways(caplog):
    with caplog.at_level("INFO", logger="seqae"):
        ucsc = ChromAliases(["chr1", "chr2", "chrM"]).map_source("p.bed", ["1", "chr2", "MT", "chrUn_x"])
        ensembl = ChromAliases(["1", "2", "MT"]).map_source("q.bed", ["chr1", "2", "chrM"])
    assert ucsc == {"1": "chr1", "chr2": "chr2", "MT": "chrM"}
    assert ensembl == {"chr1": "1", "2": "2", "chrM": "MT"}
    assert (
        "p.bed: 2 chromosome names matched to the FASTA's by chrom_aliases: auto (1 -> chr1, MT -> chrM)" in caplog.text
    )
    assert "q.bed: 2 chromosome names matched" in caplog.text


def test_none_rule_is_exact():
    assert ChromAliases(["chr1", "chrM"], "none").match(["1", "chr1", "MT"]) == {"chr1": "chr1"}


def test_alias_table(tmp_path, caplog):
    table = tmp_path / "hg38.chromAlias.txt"
    table.write_text(
        "# ucsc\tassembly\tgenbank\tncbi\trefseq\n"
        "chr1\t1\tCM000663.2\t1\tNC_000001.11\n"
        "chrM\tMT\tJ01415.2\tMT\tNC_012920.1\n"
        "chrX\tX\tCM000685.2\tX\tNC_000023.11\n"  # not in the FASTA: ignored
    )
    aliases = ChromAliases(["NC_000001.11", "NC_012920.1"], str(table))
    assert aliases.match(["chr1", "1", "MT", "NC_000001.11", "chrX", "chr2"]) == {
        "chr1": "NC_000001.11", "1": "NC_000001.11", "MT": "NC_012920.1", "NC_000001.11": "NC_000001.11"
    }  # fmt: skip
    with pytest.raises(InputError, match=r"chromAlias\.txt: no line names a sequence of the FASTA"):
        ChromAliases(["scaffold_1"], str(table))


def test_an_index_of_a_shorter_earlier_fasta_is_rebuilt(tmp_path, caplog):
    """A FASTA downloaded again keeps the server's older time (wget, gunzip): the old index looked fresh and
    its records were all that was read, so peaks on the new records were skipped as on absent chromosomes."""
    fasta = write_fasta(tmp_path / "g.fa", {"x": "ACGT" * 50}, line_width=20)
    Genome(fasta).close()  # index it
    when = os.stat(fasta).st_mtime_ns - 10**9
    write_fasta(fasta, {"x": "ACGT" * 50, "y": "GGCC" * 10}, line_width=20)
    os.utime(fasta, ns=(when, when))  # older than the index
    with caplog.at_level("WARNING", logger="seqae"):
        genome = Genome(fasta)
    assert genome.chrom_sizes == {"x": 200, "y": 40}
    assert "g.fa.fai: does not cover the whole FASTA (an index of an earlier version?); indexing again" in caplog.text
    genome.close()
    caplog.clear()
    with caplog.at_level("WARNING", logger="seqae"):
        Genome(fasta).close()  # the new index covers it: used as it is
    assert not caplog.text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"\xef\xbb\xbf>x\nACGT\n", r"g\.fa:1: starts with a UTF-8 byte-order mark"),  # said: text before the first '>'
        (b">x\rACGT\r>y\rGGCC\r", r"g\.fa: lines end in a lone carriage return"),  # read as one record, silently
    ],
)
def test_a_byte_order_mark_or_old_mac_line_breaks_are_named(tmp_path, text, message):
    fasta = tmp_path / "g.fa"
    fasta.write_bytes(text)
    with pytest.raises(InputError, match=message):
        Genome(fasta)
    assert not (tmp_path / "g.fa.fai").exists()


def test_a_bzip2_genome_is_named_as_such(tmp_path):
    import bz2

    fasta = tmp_path / "g.fa.bz2"
    fasta.write_bytes(bz2.compress(b">x\nACGT\n"))
    with pytest.raises(InputError, match=r"g\.fa\.bz2: is bzip2-compressed: decompress it"):
        Genome(fasta)


def test_shared_keys_meet_across_namings_and_alias_tables(tmp_path):
    assert ChromAliases(["chr1", "chrM", "chrUn_x"]).shared_keys() == {"chr1": "1", "chrM": "m", "chrUn_x": "un_x"}
    assert ChromAliases(["1", "MT"], "none").shared_keys() == {"1": "1", "MT": "m"}
    table = tmp_path / "chromAlias.txt"
    table.write_text("# refseq\tucsc\tensembl\nNC_000001.11\tchr1\t1\nNC_012920.1\tchrM\tMT\n")
    assert ChromAliases(["NC_000001.11", "NC_012920.1"], str(table)).shared_keys() == {
        "NC_000001.11": "1",
        "NC_012920.1": "m",
    }
