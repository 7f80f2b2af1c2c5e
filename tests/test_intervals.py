"""Peaks, summits, blacklists: values on hand-made files and one-line errors with line numbers."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqae.errors import InputError
from seqae.intervals import (
    PEAK_COLUMNS,
    merge_close_summits,
    overlaps_any,
    read_bed_intervals,
    read_peaks,
    rename_chromosomes,
)


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def np_line(chrom: str, start: int, end: int, name: str = ".", score: object = 0, offset: object = -1) -> str:
    """A narrowPeak line (10 columns)."""
    return f"{chrom}\t{start}\t{end}\t{name}\t{score}\t.\t5.0\t10.0\t8.0\t{offset}"


def raises_at(path: Path, line: int | None, what: str):
    """pytest.raises for an InputError naming ``path``, ``line`` and containing ``what``."""
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    return pytest.raises(InputError, match="^" + re.escape(where) + ".*" + re.escape(what))


# --------------------------------------------------------------------------- read_peaks: values


def test_narrowpeak_summit_is_start_plus_offset_and_minus_one_is_midpoint(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.narrowPeak",
        [
            np_line("chr2", 100, 300, "p1", 50, 20),
            np_line("chr1", 1000, 1401, "p2", 70.5, -1),  # no summit -> (1000 + 1401) // 2
            np_line("chr1", 10, 20, "p3", 10, 0),
            np_line("chr1", 500, 600, ".", 3, 99),  # last base of the peak
        ],
    )
    peaks = read_peaks(path, "TFA")
    assert list(peaks.columns) == PEAK_COLUMNS
    assert peaks["chrom"].tolist() == ["chr1", "chr1", "chr1", "chr2"]  # sorted by chrom, summit
    assert peaks["summit"].tolist() == [10, 599, 1200, 120]
    assert peaks["start"].tolist() == [10, 500, 1000, 100]
    assert peaks["end"].tolist() == [20, 600, 1401, 300]
    assert peaks["score"].tolist() == [10.0, 3.0, 70.5, 50.0]
    assert peaks["name"].tolist() == ["p3", "TFA_4", "p2", "p1"]  # '.' -> peak set + file line
    assert (peaks["peak_set"] == "TFA").all()
    for col in ("start", "end", "summit"):
        assert peaks[col].dtype == np.int64
    assert peaks["score"].dtype == np.float64


def test_bed3_and_bed6_use_midpoint_and_score(tmp_path: Path) -> None:
    bed3 = write(tmp_path / "a.bed", ["# comment", "chr1\t100\t201", "chr1\t0\t2"])
    peaks = read_peaks(bed3, "S")
    assert peaks["summit"].tolist() == [1, 150]
    assert peaks["score"].tolist() == [0.0, 0.0]
    assert peaks["name"].tolist() == ["S_3", "S_2"]  # line numbers count the comment

    bed6 = write(tmp_path / "b.bed", ["chr1\t100\t200\tx\t17\t+", "chr1\t300\t310\ty\t.\t-"])
    peaks = read_peaks(bed6, "S")
    assert peaks["summit"].tolist() == [150, 305]
    assert peaks["score"].tolist() == [17.0, 0.0]  # '.' = no score
    assert peaks["name"].tolist() == ["x", "y"]


@pytest.mark.parametrize(
    ("line", "name", "score"),
    [("chr1\t100\t200\tpk", "pk", 0.0), ("chr1\t100\t200\tpk\t9", "pk", 9.0)],
)
def test_bed4_and_bed5(tmp_path: Path, line: str, name: str, score: float) -> None:
    peaks = read_peaks(write(tmp_path / "a.bed", [line]), "S")
    assert peaks["name"].tolist() == [name]
    assert peaks["score"].tolist() == [score]
    assert peaks["summit"].tolist() == [150]


def test_headers_blank_lines_gzip_and_crlf(tmp_path: Path) -> None:
    lines = ["track name=peaks", "browser position chr1:1-100", "", "#x", np_line("chr1", 0, 100, ".", 1, 5)]
    path = tmp_path / "a.narrowPeak.gz"
    path.write_bytes(gzip.compress("\r\n".join(lines).encode() + b"\r\n"))
    peaks = read_peaks(path, "T")
    assert peaks["summit"].tolist() == [5]
    assert peaks["name"].tolist() == ["T_5"]


@pytest.mark.parametrize(
    "header",
    [
        "chrom\tstart\tend\tname\tscore\tstrand\tsignalValue\tpValue\tqValue\tpeak",  # pandas / R
        "seqnames\tchromStart\tchromEnd",  # fewer columns than the data
        "track name=p",  # the UCSC word, as before
    ],
)
def test_a_first_line_of_column_names_is_skipped(tmp_path: Path, header: str) -> None:
    path = write(tmp_path / "a.narrowPeak", [header, np_line("chr1", 0, 100, ".", 1, 5)])
    peaks = read_peaks(path, "T")
    assert peaks["summit"].tolist() == [5] and peaks["name"].tolist() == ["T_2"]
    bed = read_bed_intervals(write(tmp_path / "a.bed", [header, "chr1\t10\t20"]))
    assert bed[["start", "end"]].values.tolist() == [[10, 20]]


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        (["chr1\tstart\t200"], 1, "start 'start' is not an integer"),  # only one named: data with a bad start
        (["chr1\t1.5\t20.5"], 1, "start '1.5' is not an integer"),  # numbers: data
        (["chrom\tstart\tend", "chrom\tstart\tend", "chr1\t1\t2"], 2, "start 'start' is not an integer"),
    ],
)
def test_only_a_first_line_of_names_counts_as_a_header(
    tmp_path: Path, lines: list[str], line: int, message: str
) -> None:
    path = write(tmp_path / "a.bed", lines)
    with raises_at(path, line, message):
        read_peaks(path, "S")


# --------------------------------------------------------------------------- read_peaks: errors


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.bed"
    with raises_at(path, None, "does not exist"):
        read_peaks(path, "S")


@pytest.mark.parametrize("lines", [[], ["track name=x", "# only comments", ""]])
def test_no_peaks(tmp_path: Path, lines: list[str]) -> None:
    path = write(tmp_path / "a.bed", lines)
    with raises_at(path, None, "no peaks in file"):
        read_peaks(path, "S")


def test_too_few_columns_names_first_data_line(tmp_path: Path) -> None:
    path = write(tmp_path / "a.bed", ["track x", "#c", "chr1\t1"])
    with raises_at(path, 3, "has 2 columns; a peak line needs at least 3 (BED), tab-separated"):
        read_peaks(path, "S")
    path = write(tmp_path / "b.bed", ["chr1 1 20 a 0 +"])
    with raises_at(
        path, 1, "has 1 column; a peak line needs at least 3 (BED), tab-separated (this one is separated by spaces)"
    ):
        read_peaks(path, "S")


@pytest.mark.parametrize(
    ("extra", "summit"),
    [
        (["x"], 150),  # BED7: the midpoint
        (["5.1", "3.2", "2.0"], 150),  # broadPeak (BED6 + 3)
        (["0", "0", "0", "1", "200,", "0,"], 150),  # BED12
        (["0", "0", "0", "1", "200,", "0,", "5.1", "3.2", "2.0"], 150),  # gappedPeak (BED12 + 3)
        (["5.1", "3.2", "2.0", "30"], 130),  # narrowPeak
        (["5.1", "3.2", "2.0", "30", "1.2", "0.9", "50", "250", "7", "40", "60", "240", "5", "45"], 130),  # IDR
    ],
)
def test_peak_formats_by_column_count(tmp_path: Path, extra: list[str], summit: int) -> None:
    path = write(tmp_path / "a.peaks", ["\t".join(["chr1", "100", "200", "p", "7", "+", *extra])])
    peaks = read_peaks(path, "S")
    assert peaks["summit"].tolist() == [summit] and peaks["score"].tolist() == [7.0] and peaks["name"].tolist() == ["p"]


def test_inconsistent_column_count(tmp_path: Path) -> None:
    path = write(tmp_path / "a.narrowPeak", ["# h", np_line("chr1", 0, 10), "", "chr1\t5\t9"])
    with raises_at(path, 4, "has 3 columns, but the first data line (line 2) has 10"):
        read_peaks(path, "S")


def test_non_integer_start(tmp_path: Path) -> None:
    path = write(tmp_path / "a.bed", ["track t", "chr1\t1\t20", "", "chr1\tabc\t200"])
    with raises_at(path, 4, "start 'abc' is not an integer"):
        read_peaks(path, "S")


def test_non_integer_end_and_fractional(tmp_path: Path) -> None:
    path = write(tmp_path / "a.bed", ["chr1\t1\t20.5"])
    with raises_at(path, 1, "end '20.5' is not an integer"):
        read_peaks(path, "S")


def test_negative_coordinate(tmp_path: Path) -> None:
    path = write(tmp_path / "a.bed", ["chr1\t1\t20", "#", "chr1\t-5\t20"])
    with raises_at(path, 3, "start -5 is negative"):
        read_peaks(path, "S")


@pytest.mark.parametrize("end", [100, 50])
def test_end_not_after_start(tmp_path: Path, end: int) -> None:
    path = write(tmp_path / "a.bed", ["browser x", "chr1\t100\t" + str(end)])
    with raises_at(path, 2, f"end {end} is not greater than start 100"):
        read_peaks(path, "S")


def test_summit_outside_peak(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.narrowPeak", [np_line("chr1", 100, 200, offset=5), np_line("chr1", 100, 200, offset=1134)]
    )
    with raises_at(path, 2, "summit 1234 is outside the peak 100-200"):
        read_peaks(path, "S")


def test_negative_summit_offset_other_than_minus_one(tmp_path: Path) -> None:
    path = write(tmp_path / "a.narrowPeak", [np_line("chr1", 100, 200, offset=-2)])
    with raises_at(path, 1, "summit offset -2 (column 10) is negative"):
        read_peaks(path, "S")


def test_non_numeric_score(tmp_path: Path) -> None:
    path = write(tmp_path / "a.narrowPeak", ["#", np_line("chr1", 100, 200, score="high", offset=5)])
    with raises_at(path, 2, "score 'high' is not a number"):
        read_peaks(path, "S")


def test_first_bad_line_wins_across_kinds_of_problem(tmp_path: Path) -> None:
    # Line 2 has end <= start, line 3 a non-integer: line 2 is reported.
    path = write(tmp_path / "a.bed", ["chr1\t1\t20", "chr1\t30\t30", "chr1\tx\t40"])
    with raises_at(path, 2, "end 30 is not greater than start 30"):
        read_peaks(path, "S")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "a.bed"
    path.write_bytes(b"chr1\t1\t20\nchr\xff\t1\t20\n")
    with raises_at(path, 2, "is not UTF-8 text"):
        read_peaks(path, "S")


# --------------------------------------------------------------------------- merge_close_summits


def peaks_frame(rows: list[tuple[str, int, float, str]]) -> pd.DataFrame:
    """rows of (chrom, summit, score, peak_set); start/end around the summit."""
    chrom, summit, score, peak_set = zip(*rows)
    summit_arr = np.array(summit, dtype=np.int64)
    return pd.DataFrame(
        {
            "chrom": list(chrom),
            "start": summit_arr - 10,
            "end": summit_arr + 10,
            "summit": summit_arr,
            "score": np.array(score, dtype=float),
            "name": [f"n{i}" for i in range(len(rows))],
            "peak_set": list(peak_set),
        }
    )


def test_merge_chains_keeps_highest_score_and_joins_peak_sets() -> None:
    peaks = peaks_frame(
        [
            ("chr1", 1000, 5.0, "B"),
            ("chr1", 1040, 9.0, "A"),  # 40 from the previous: same cluster
            ("chr1", 1080, 1.0, "B"),  # 40 again: the chain reaches 80 bp > 50
            ("chr1", 1130, 2.0, "C"),  # exactly 50 from the previous: new cluster
            ("chr2", 1135, 3.0, "A"),  # other chromosome: never merged
        ]
    )
    merged = merge_close_summits(peaks, 50)
    assert merged["summit"].tolist() == [1040, 1130, 1135]
    assert merged["name"].tolist() == ["n1", "n3", "n4"]
    assert merged["peak_set"].tolist() == ["A,B", "C", "A"]
    assert merged["n_merged"].tolist() == [3, 1, 1]
    assert merged["start"].tolist() == [1030, 1120, 1125]  # the kept row's own columns


def test_merge_score_tie_keeps_first_by_position_and_sorts_input() -> None:
    peaks = peaks_frame([("chr1", 120, 4.0, "B"), ("chr1", 100, 4.0, "A"), ("chr1", 110, 1.0, "A,C")])
    merged = merge_close_summits(peaks, 30)
    assert merged["summit"].tolist() == [100]
    assert merged["peak_set"].tolist() == ["A,B,C"]  # comma lists are split, labels unique and sorted
    assert merged["n_merged"].tolist() == [3]


def test_merge_zero_distance_is_a_copy() -> None:
    peaks = peaks_frame([("chr1", 100, 1.0, "A"), ("chr1", 100, 2.0, "B")])
    merged = merge_close_summits(peaks, 0)
    assert len(merged) == 2
    assert merged["n_merged"].tolist() == [1, 1]
    assert "n_merged" not in peaks.columns


# --------------------------------------------------------------------------- read_bed_intervals


def test_read_bed_intervals_ignores_extra_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "bl.bed", ["track x", "chr1\t10\t20\tHigh Signal Region", "chr2\t0\t5", "chr1\t1\t2\ta\tb"])
    iv = read_bed_intervals(path)
    assert iv.columns.tolist() == ["chrom", "start", "end"]
    assert iv["chrom"].tolist() == ["chr1", "chr2", "chr1"]
    assert iv["start"].tolist() == [10, 0, 1]
    assert iv["end"].tolist() == [20, 5, 2]
    assert iv["start"].dtype == np.int64


def test_read_bed_intervals_empty_file_is_allowed(tmp_path: Path) -> None:
    iv = read_bed_intervals(write(tmp_path / "bl.bed", ["# nothing blacklisted"]))
    assert len(iv) == 0
    assert iv.columns.tolist() == ["chrom", "start", "end"]


def test_read_bed_intervals_missing_file(tmp_path: Path) -> None:
    with raises_at(tmp_path / "bl.bed", None, "does not exist"):
        read_bed_intervals(tmp_path / "bl.bed")


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        ("chr1\t10", "has 2 columns; a BED line needs at least 3"),
        ("chr1\tten\t20", "start 'ten' is not an integer"),
        ("chr1\t-1\t20", "start -1 is negative"),
        ("chr1\t20\t20", "end 20 is not greater than start 20"),
    ],
)
def test_read_bed_intervals_bad_lines(tmp_path: Path, bad: str, what: str) -> None:
    path = write(tmp_path / "bl.bed", ["#", "chr1\t1\t5", bad])
    with raises_at(path, 3, what):
        read_bed_intervals(path)


# --------------------------------------------------------------------------- overlaps_any


def test_overlaps_any_half_open_edges() -> None:
    intervals = pd.DataFrame({"chrom": ["chr1", "chr1", "chr2"], "start": [100, 500, 0], "end": [200, 600, 10]})
    chrom = np.array(["chr1", "chr1", "chr1", "chr1", "chr1", "chr1", "chr3", "chr2"])
    start = np.array([50, 200, 199, 90, 300, 150, 100, 9])
    end = np.array([100, 250, 201, 110, 400, 160, 200, 20])
    # touching left, touching right, 1-bp overlap at the end, overlap, gap, inside, no intervals, overlap
    expected = [False, False, True, True, False, True, False, True]
    assert overlaps_any(chrom, start, end, intervals).tolist() == expected


def test_overlaps_any_unsorted_nested_intervals() -> None:
    # A long interval followed by a short one: a query after the short one is
    # still inside the long one.
    intervals = pd.DataFrame({"chrom": ["chr1", "chr1"], "start": [120, 0], "end": [130, 1000]})
    hits = overlaps_any(np.array(["chr1", "chr1"]), np.array([500, 1000]), np.array([510, 1100]), intervals)
    assert hits.tolist() == [True, False]


def test_overlaps_any_empty_inputs() -> None:
    empty = pd.DataFrame({"chrom": pd.Series([], dtype=str), "start": [], "end": []})
    assert overlaps_any(np.array(["chr1"]), np.array([0]), np.array([10]), empty).tolist() == [False]
    some = pd.DataFrame({"chrom": ["chr1"], "start": [0], "end": [10]})
    assert overlaps_any(
        np.array([], dtype=object), np.array([], dtype=np.int64), np.array([], dtype=np.int64), some
    ).shape == (0,)


# --------------------------------------------------------------------------- rename_chromosomes


def test_rename_chromosomes_drops_unmapped_and_counts() -> None:
    df = pd.DataFrame({"chrom": ["1", "2", "Un1", "1", "Un1", "Un2", "MT"], "start": range(7)})
    renamed, dropped = rename_chromosomes(df, {"1": "chr1", "2": "chr2", "MT": "chrM"})
    assert renamed["chrom"].tolist() == ["chr1", "chr2", "chr1", "chrM"]
    assert renamed["start"].tolist() == [0, 1, 3, 6]  # order kept
    assert dropped.to_dict() == {"Un1": 2, "Un2": 1}
    assert df["chrom"].tolist()[0] == "1"  # input untouched
