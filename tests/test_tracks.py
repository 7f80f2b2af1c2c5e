"""bigWig reading by clusters, transforms, writing."""

from __future__ import annotations

import numpy as np
import pyBigWig
import pytest

from seqae.errors import InputError
from seqae.tracks import (
    BigWigTrack,
    invert_transform,
    read_windows,
    transform_signal,
    write_bigwig,
)


def test_window_values_equal_pybigwig(tiny_inputs):
    track = BigWigTrack(tiny_inputs["bigwigs"]["TFA"], "TFA", ["chr1", "chr2", "chr3"])
    starts = np.array([0, 150, 480, 2000, 5800])
    got = read_windows(track, "chr1", starts, 200, max_gap=100)
    logged = read_windows(track, "chr1", starts, 200, "log1p", np.float16, max_gap=100)
    assert logged.dtype == np.float16
    np.testing.assert_allclose(logged.astype(np.float32), np.log1p(got), rtol=1e-3, atol=1e-4)
    bw = pyBigWig.open(str(tiny_inputs["bigwigs"]["TFA"]))
    for row, s in zip(got, starts, strict=True):
        want = np.nan_to_num(bw.values("chr1", int(s), int(s) + 200, numpy=True))
        np.testing.assert_array_equal(row, want.astype(np.float32))
    assert np.all(got[2, 20:40] == 0)  # the NaN gap reads as 0


def test_unprefixed_bigwig_names_are_harmonised(tiny_inputs):
    track = BigWigTrack(tiny_inputs["bigwigs"]["TFB"], "TFB", ["chr1", "chr2", "chr3"])
    assert track.has_chrom("chr2")
    want = tiny_inputs["tracks"]["TFB"]["chr2"][100:300]
    np.testing.assert_allclose(track.values("chr2", 100, 300), want, rtol=1e-6)


def test_values_past_bigwig_chromosome_end_are_zero(tiny_inputs):
    track = BigWigTrack(tiny_inputs["bigwigs"]["TFA"], "TFA", ["chr3"])
    vals = track.values("chr3", 2990, 3010)
    assert vals.shape == (20,)
    assert np.all(vals[10:] == 0)


def test_missing_chromosome_is_a_clear_error(tiny_inputs):
    track = BigWigTrack(tiny_inputs["bigwigs"]["TFA"], "TFA", ["chr1", "chrX"])
    with pytest.raises(InputError, match=r"TFA\.bw: bigWig has no chromosome 'chrX'"):
        track.values("chrX", 0, 10)


def test_not_a_bigwig(tmp_path):
    fake = tmp_path / "fake.bw"
    fake.write_text("not a bigwig\n")
    with pytest.raises(InputError, match=r"fake\.bw: not a bigWig file"):
        BigWigTrack(fake, "x", ["chr1"])


def test_transforms_round_trip():
    x = np.array([0.0, 1.0, 10.0, 1000.0], dtype=np.float32)
    np.testing.assert_allclose(invert_transform(transform_signal(x.copy(), "log1p"), "log1p"), x, rtol=1e-5)
    assert transform_signal(x, "none") is x
    half = transform_signal(x.copy(), "log1p", np.float16)
    assert half.dtype == np.float16
    np.testing.assert_allclose(half, np.log1p(x), rtol=1e-3)


def test_write_bigwig_round_trip(tmp_path):
    values = np.arange(20, dtype=np.float32).reshape(2, 10)
    path = write_bigwig(tmp_path / "out.bw", {"c1": 100, "c2": 50}, np.array(["c1", "c2"]), np.array([5, 40]), values)
    bw = pyBigWig.open(str(path))
    np.testing.assert_array_equal(bw.values("c1", 5, 15, numpy=True), values[0])
    np.testing.assert_array_equal(bw.values("c2", 40, 50, numpy=True), values[1])
    assert np.isnan(bw.values("c1", 0, 5, numpy=True)).all()


def test_truncated_bigwig_is_one_line_without_native_noise(tiny_inputs, capfd):
    """libBigWig's own '[bwOpen] ...' lines never reach the terminal: only seqae's line does (fd level)."""
    from tests.conftest import run_extract_cli

    d = tiny_inputs["dir"]
    truncated = d / "truncated.bw"
    truncated.write_bytes(tiny_inputs["bigwigs"]["TFA"].read_bytes()[:300])
    tiny_inputs["config"]["genomes"][0]["tfs"][0]["bigwig"] = str(truncated)
    out = d / "bad" / "windows.h5"

    code, err = run_extract_cli(tiny_inputs["config"], out, capfd)  # capfd: file descriptor 2, where C libraries write
    assert code == 2
    assert err == [
        f"seqae extract: error: {truncated}: not a bigWig file, or a truncated one (pyBigWig could not open it)"
    ]
    assert not out.exists()
