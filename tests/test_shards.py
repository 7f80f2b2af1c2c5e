"""Sharded extraction (plan, shards, gather) gives the windows file one job writes, byte for byte."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyBigWig
import pytest

from seqae.cli import main
from seqae.errors import InputError
from seqae.extract import extract_windows
from seqae.shards import (
    gather_shards,
    plan_shards,
    shard_dir,
    shard_path,
    shard_rows,
    write_shard,
)
from seqae.windows.store import ROW_ALIGN
from tests.conftest import make_config, random_dna, windows_file_contents, write_fasta


@pytest.fixture
def medium_inputs(tmp_path):
    """Three chromosomes with about 2,000 windows (peaks and background), two bigWigs of 10 bp bins."""
    rng = np.random.default_rng(7)
    sizes = {"chr1": 150_000, "chr2": 120_000, "chr3": 90_000}
    fasta = write_fasta(tmp_path / "genome.fa", {c: random_dna(rng, n) for c, n in sizes.items()})
    tfs = []
    for tf in ("TFA", "TFB"):
        bw_path = tmp_path / f"{tf}.bw"
        bw = pyBigWig.open(str(bw_path), "w")
        bw.addHeader(list(sizes.items()))
        for chrom, size in sizes.items():
            bw.addEntries(
                chrom, 0, values=(rng.poisson(1.0, size // 10) + rng.random(size // 10)).tolist(), span=10, step=10
            )
        bw.close()
        lines = []
        for chrom, size in sizes.items():
            for summit in np.sort(rng.integers(300, size - 300, size // 300)):
                lines.append(
                    f"{chrom}\t{summit - 50}\t{summit + 50}\t{tf}_{chrom}_{summit}\t{rng.integers(1, 1000)}\t.\t1\t1\t1\t50\n"
                )
        peaks = tmp_path / f"{tf}.narrowPeak"
        peaks.write_text("".join(lines))
        tfs.append((tf, peaks, bw_path))
    extract = {"window_len": 200, "max_jitter": 20, "background_ratio": 0.5, "chunk_windows": 100}
    return make_config(fasta=fasta, tfs=tfs, extract=extract, seed=5)


def _report_without_reads(path):
    report = json.loads(path.read_text())
    report.pop("bigwig_reads")
    for genome in report["genomes"]:
        genome.pop("reads")
    return report


def test_sharded_equals_unsharded(medium_inputs, tmp_path):
    single = tmp_path / "single" / "windows.h5"
    extract_windows(medium_inputs, single, progress=False)
    sharded = tmp_path / "sharded" / "windows.h5"
    plan = plan_shards(medium_inputs, sharded, 3)
    rows = plan["shards"]
    assert len(rows) == 3 and rows[0][0] == 0 and rows[-1][1] == plan["n_windows"] > 3 * ROW_ALIGN
    assert all(lo % ROW_ALIGN == 0 and hi > lo for lo, hi in rows)
    for shard in (2, 0, 1):  # any order, as a cluster runs them
        write_shard(medium_inputs, sharded, shard, progress=False)
    report = gather_shards(medium_inputs, sharded)

    data, chunks, attrs = windows_file_contents(single)
    data_s, chunks_s, attrs_s = windows_file_contents(sharded)
    assert sorted(data) == sorted(data_s) and "summary/mean_profile/background" in data
    for name, values in data.items():
        assert values.dtype == data_s[name].dtype, name
        np.testing.assert_array_equal(values, data_s[name], err_msg=name)
    assert chunks == chunks_s  # the chunk grid: as many chunks, the same masks and contents, padding included
    assert attrs == attrs_s
    for side in ("windows.tsv", "windows.bed", "chrom.sizes"):
        assert (single.parent / side).read_bytes() == (sharded.parent / side).read_bytes()
    assert _report_without_reads(single.parent / "extract_report.json") == _report_without_reads(
        sharded.parent / "extract_report.json"
    )
    single_reads = json.loads((single.parent / "extract_report.json").read_text())["bigwig_reads"]
    assert report["bigwig_reads"]["bases_read"] >= single_reads["bases_read"] > 0  # every job's reads counted


def test_shard_rows_follow_chromosomes_on_the_chunk_grid():
    import pandas as pd

    labels = pd.DataFrame({"species": ["a"] * 1000 + ["b"] * 600, "chrom": ["c1"] * 700 + ["c2"] * 300 + ["c1"] * 600})
    assert shard_rows(labels, 2, align=100) == [(0, 700), (700, 1600)]  # the chromosome start nearest to 800
    assert shard_rows(labels, 3, align=256) == [(0, 512), (512, 768), (768, 1600)]
    assert shard_rows(labels, 5, align=256)[-1][1] == 1600


def test_failed_shard_leaves_no_file_and_gather_needs_every_shard(medium_inputs, tmp_path, monkeypatch):
    import seqae.extract_write

    out = tmp_path / "sharded" / "windows.h5"
    plan_shards(medium_inputs, out, 2)

    def broken(*args, **kwargs):
        raise InputError("TFA.bw", "read failed")

    with monkeypatch.context() as m:
        m.setattr(seqae.extract_write, "read_windows", broken)
        with pytest.raises(InputError, match="read failed"):
            write_shard(medium_inputs, out, 1, progress=False)
    assert sorted(p.name for p in shard_dir(out).iterdir()) == ["labels.parquet", "plan.json"]
    write_shard(medium_inputs, out, 0, progress=False)
    with pytest.raises(InputError, match=r"shard_001\.h5: windows shard \(seqae extract-shard\) does not exist"):
        gather_shards(medium_inputs, out)
    assert not out.exists()


def test_cli_steps(medium_inputs, tmp_path, capsys):
    import yaml

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(medium_inputs))
    out = tmp_path / "cli" / "windows.h5"
    common = ["--config", str(cfg), "--out", str(out)]
    assert main(["--quiet", "extract-plan", *common, "--shards", "2"]) == 0
    for shard in ("0", "1"):
        assert main(["--quiet", "extract-shard", *common, "--shard", shard, "--threads", "2"]) == 0
    assert shard_path(out, 1).exists()
    assert main(["--quiet", "extract-gather", *common]) == 0
    assert out.exists() and (out.parent / "extract_report.json").exists()
    assert main(["--quiet", "extract-shard", *common, "--shard", "2"]) == 2
    assert "has shards 0 to 1, not 2" in capsys.readouterr().err
    # Shards of other settings than the plan's were written in full; the gather then failed or mixed them.
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**medium_inputs, "extract": {**medium_inputs["extract"], "max_n_fraction": 0.5}}))
    assert main(["--quiet", "extract-shard", "--config", str(other), "--out", str(out), "--shard", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "plan.json: planned with extract.max_n_fraction = 0.05, the configuration has 0.5" in err[0]
    )
    # A FASTA replaced after the plan gave new sequence beside the plan's GC labels.
    fasta = Path(medium_inputs["genomes"][0]["fasta"])
    fasta.write_text(fasta.read_text())
    os.utime(fasta, ns=(fasta.stat().st_mtime_ns + 10**9,) * 2)
    assert main(["--quiet", "extract-gather", *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"plan.json: planned before {fasta} changed (its size or modification time)" in err[0]
