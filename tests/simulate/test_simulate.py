"""seqae.simulate: simulate_demo's outputs, determinism, settings checks and command line."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyBigWig
import pytest
import yaml

from seqae.errors import ConfigError, SeqaeError
from seqae.simulate import simulate_demo
from tests.simulate.conftest import SMALL, TFS


def test_outputs_returned_and_present(demo):
    out, outputs = demo
    expected = {"fasta", "annotation", "blacklist", "truth_sites", "truth_peaks", "truth_chromosomes", "truth_genes"}
    expected |= {f"peaks/{tf}" for tf in TFS} | {f"tracks/{tf}" for tf in TFS}
    expected |= {f"families/fam_{i}{kind}" for i in range(4) for kind in ("", "_tree")}  # the default 4 families
    assert expected <= set(outputs)
    for path in outputs.values():
        assert path.is_file() and path.stat().st_size > 0 and path.is_relative_to(out)
    assert (out / "genome.fa.fai").is_file()
    assert not list(out.rglob(".*.tmp")), "temporary files left behind"


def _digest(out: Path) -> dict[str, str]:
    files = ["genome.fa", "genes.gtf", "blacklist.bed", *[f"peaks/{tf}.narrowPeak" for tf in TFS]]
    files += [str(p.relative_to(out)) for p in sorted((out / "truth").glob("*.tsv"))]
    digest = {f: hashlib.sha256((out / f).read_bytes()).hexdigest() for f in files}
    for tf in TFS:
        bw = pyBigWig.open(str(out / "tracks" / f"{tf}.bw"))
        h = hashlib.sha256()
        for chrom, length in bw.chroms().items():
            h.update(bw.values(chrom, 0, length, numpy=True).tobytes())
        bw.close()
        digest[f"tracks/{tf}.bw"] = h.hexdigest()
    return digest


def test_deterministic(demo, tmp_path):
    again = tmp_path / "again"
    simulate_demo(SMALL, again)
    assert _digest(again) == _digest(demo[0])
    other = tmp_path / "other"
    simulate_demo({**SMALL, "seed": SMALL["seed"] + 1}, other)
    assert (other / "genome.fa").read_bytes() != (again / "genome.fa").read_bytes()


def test_unknown_motif(tmp_path):
    tfs = [SMALL["tfs"][0], {"name": "X", "motif": "MA9999.1", "n_peaks": 5}]
    with pytest.raises(
        ConfigError,
        match=r"^simulate\.tfs\[1\]\.motif: 'MA9999\.1' is not in the shipped JASPAR file \(available: MA0139\.2",
    ):
        simulate_demo({**SMALL, "tfs": tfs}, tmp_path)
    assert not any(tmp_path.iterdir())


def test_too_short(tmp_path):
    with pytest.raises(ConfigError, match=r"^simulate\.chromosome_length: 20000 bp is too short for 60 genes"):
        few_peaks = [{**tf, "n_peaks": 5} for tf in SMALL["tfs"]]
        simulate_demo({**SMALL, "chromosome_length": 20000, "n_genes": 60, "tfs": few_peaks}, tmp_path)
    with pytest.raises(ConfigError, match=r"^simulate\.tfs\[0\]\.n_peaks: 900 peaks do not fit"):
        simulate_demo({**SMALL, "tfs": [{"name": "CTCF", "motif": "MA0139.2", "n_peaks": 900}]}, tmp_path)


def test_unwritable_outdir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SeqaeError, match="cannot write output here"):
        simulate_demo(SMALL, blocker / "sub")


def test_cli(tmp_path):
    from seqae.cli import main

    config = {
        "simulate": {"enabled": True, **SMALL},
        "genomes": [{"species": "demo", "fasta": "x.fa", "tfs": [{"name": "CTCF", "peaks": "x.narrowPeak"}]}],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["-q", "simulate", "--config", str(tmp_path / "config.yaml"), "--outdir", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "tracks" / "FOXA1.bw").is_file()
    config["simulate"]["tfs"][0]["motif"] = "MA9999.1"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["-q", "simulate", "--config", str(tmp_path / "config.yaml"), "--outdir", str(tmp_path / "out2")]) == 2
