"""The training tests' windows and tiny models.

Windows are written directly (96 windows of 64 bp + 8 bp flanks, two tracks,
labels with empty gene families) and the models are tiny (16 channels, one
residual block), so each epoch takes a fraction of a second on a CPU.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from seqae.checkpoint import load_checkpoint
from seqae.config import load_config, validate_config
from seqae.windows.store import WindowsSchema, WindowsWriter
from tests.conftest import REPO, tiny_model

TINY: dict[str, Any] = tiny_model(adversarial_schedule={"warmup_steps": 10})
TRAINING: dict[str, Any] = {"batch_size": 16, "epochs": 4, "warmup_steps": 2, "lr": 3e-3, "log_every_steps": 2}
# Columns of metrics.csv that measure time, not training.
TIMING = ["seconds", "samples_per_s"]


def make_windows(
    path: Path,
    n: int = 96,
    window_len: int = 64,
    flank: int = 8,
    tracks: tuple[str, ...] = ("TFA", "TFB"),
    seed: int = 0,
) -> Path:
    """A windows file: four repeated 8-mer families with 10 % mutations, a chromosome-specific prefix,
    tracks scaled by family; splits by row (60 train, 24 val, 12 test); a third of gene families empty."""
    rng = np.random.default_rng(seed)
    seq_len = window_len + 2 * flank
    chroms = np.array(["chr1", "chr2", "chr3"])[rng.integers(0, 3, n)]
    families = np.array(["F1", "F2", ""])[rng.integers(0, 3, n)]
    motifs = rng.integers(0, 4, (4, 8))
    family = rng.integers(0, 4, n)
    seq = np.tile(motifs[family], (1, seq_len // 8 + 1))[:, :seq_len].astype(np.uint8)
    mutate = rng.random(seq.shape) < 0.1
    seq[mutate] = rng.integers(0, 4, int(mutate.sum()))
    seq[:, : flank + 4] = np.searchsorted(["chr1", "chr2", "chr3"], chroms)[:, None]
    signal = None
    if tracks:
        signal = np.abs(rng.normal(size=(n, len(tracks), seq_len))) * (0.5 + 0.5 * family[:, None, None])
    split = np.where(np.arange(n) % 4 == 0, "val", np.where(np.arange(n) % 8 == 1, "test", "train"))
    schema = WindowsSchema(window_len=window_len, flank=flank, track_names=tracks, track_transform="log1p")
    with WindowsWriter(path, schema) as writer:
        writer.append(seq, signal)
        writer.write_labels(
            pd.DataFrame(
                {
                    "chrom": chroms,
                    "start": np.arange(n) * 1000,
                    "end": np.arange(n) * 1000 + window_len,
                    "gene_family": families,
                    "split": split,
                }
            )
        )
    return path


def make_config(models: dict[str, Any] | None = None, **training: Any) -> dict[str, Any]:
    """A validated config with tiny models (``plain`` by default) and tiny training settings."""
    config = {
        "genomes": [{"species": "s", "fasta": "g.fa", "tfs": [{"name": "A", "peaks": "a.bed"}]}],
        "models": copy.deepcopy(models if models is not None else {"plain": TINY}),
        "training": {**TRAINING, **training},
    }
    return validate_config(config)


def tiny(**overrides: Any) -> dict[str, Any]:
    return {**copy.deepcopy(TINY), **overrides}


@pytest.fixture(scope="module")
def windows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_windows(tmp_path_factory.mktemp("data") / "windows.h5")


def metrics(outdir: Path) -> pd.DataFrame:
    return pd.read_csv(outdir / "metrics.csv")


def assert_same_run(a: Path, b: Path) -> None:
    """Identical parameters and buffers in checkpoint.pt and best.pt, identical metrics.csv but for the timings."""
    for name in ("checkpoint.pt", "best.pt"):
        state_a, state_b = load_checkpoint(a / name)["model_state"], load_checkpoint(b / name)["model_state"]
        assert state_a.keys() == state_b.keys()
        for key in state_a:
            assert torch.equal(state_a[key], state_b[key]), f"{name}: {key} differs"
    pd.testing.assert_frame_equal(metrics(a).drop(columns=TIMING), metrics(b).drop(columns=TIMING), check_exact=True)


DEMO_MODELS = load_config(REPO / "config" / "config.yaml")["models"]
