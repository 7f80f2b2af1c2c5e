"""The simulation tests' small demo (three chromosomes of 60 kb, two TFs), simulated once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyfaidx
import pytest

from seqae.simulate import simulate_demo

SMALL = {
    "seed": 3,
    "n_chromosomes": 3,
    "chromosome_length": 60000,
    "n_genes": 12,
    "n_gene_families": 3,
    "tfs": [
        {"name": "CTCF", "motif": "MA0139.2", "n_peaks": 40},
        {"name": "FOXA1", "motif": "MA0148.5", "n_peaks": 40},
    ],
}
TFS = [tf["name"] for tf in SMALL["tfs"]]
_LUT = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate(b"ACGT"):
    _LUT[_b] = _i


def codes(fasta: pyfaidx.Fasta, chrom: str) -> np.ndarray:
    """A chromosome of the written FASTA as uint8 codes (A=0 C=1 G=2 T=3 N=4)."""
    return _LUT[np.frombuffer(str(fasta[chrom][:]).encode(), dtype=np.uint8)]


def tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", keep_default_na=False)


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    out = tmp_path_factory.mktemp("demo")
    return out, simulate_demo(SMALL, out)


@pytest.fixture(scope="session")
def fasta(demo) -> pyfaidx.Fasta:
    return pyfaidx.Fasta(str(demo[1]["fasta"]))
