"""The evaluation tests' windows file and tiny models: 400 windows of 64 bp whose chromosomes differ strongly in GC
(so the k-mer baseline reads ``chrom``), a label that is ``chrom`` permuted across windows (which nothing can
read), and tiny models (16 channels) of each kind, briefly trained or untrained. The ``evaluated`` fixture
(tests/conftest.py) evaluates one model of each kind on it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from seqae import __version__
from seqae.checkpoint import FORMAT_VERSION, MODEL_FORMAT, save_checkpoint
from seqae.evaluation import evaluate_model
from seqae.models import SequenceAutoencoder
from seqae.windows.store import WindowsSchema, WindowsWriter
from tests.conftest import tiny_model

WINDOW_LEN = 64
FLANK = 4
TRACKS = ("TA", "TB")
CHROMS = {"chr1": (0.25, 0.5), "chr2": (0.45, 0.25), "chr3": (0.65, 0.15), "chr4": (0.8, 0.10)}  # GC, share
N_WINDOWS = {"train": 240, "val": 40, "test": 120}
# region_class counts per split: chance on test = share of the majority *train* class in test.
REGION_COUNTS = {
    "train": {"intergenic": 150, "promoter": 60, "gene_body": 30},
    "val": {"intergenic": 20, "promoter": 10, "gene_body": 10},
    "test": {"intergenic": 45, "promoter": 50, "gene_body": 25},
}

FAMILIES = ["F1", "F2", "F3", ""]  # "" = no gene (unknown label)
TINY = tiny_model(vq={"codebook_size": 8, "n_groups": 2, "decay": 0.9})
FAST = {"judge_k": [3, 4], "dci_max_train": 200, "batch_size": 64}
# The two-level model: a local code sequence (16 codes per 8 bases) and an autoregressive decoder
# whose latent path reads a 3-base table (its chain also an 8-base reach), with a direct head.
TWO_LEVEL = {
    "decoder": {
        "kind": "autoregressive",
        "context": 3,
        "hidden": 16,
        "n_layers": 1,
        "latent_layers": 1,
        "reach": 8,
        "reach_width": 4,
        "latent_reach": False,
    },
    "local": {"enabled": True, "dim": 4, "codebook_size": 16},
    "weights": {"direct": 1.0},
    "head_gradient_cap": 0.0,
}


def windows_file(path: Path, seed: int = 0) -> pd.DataFrame:
    """Write the tiny windows file; returns its label table."""
    rng = np.random.default_rng(seed)
    frames = []
    for split, n in N_WINDOWS.items():
        names = list(CHROMS)
        shares = np.array([CHROMS[c][1] for c in names])
        chrom = rng.choice(names, size=n, p=shares / shares.sum())
        region = np.concatenate([[k] * v for k, v in REGION_COUNTS[split].items()])
        rng.shuffle(region)
        family = rng.choice(FAMILIES, size=n)
        tss = np.where(family == "", np.nan, rng.normal(0, 8000, size=n).round())
        frames.append(
            pd.DataFrame(
                {"chrom": chrom, "gene_family": family, "tss_distance": tss, "region_class": region, "split": split}
            )
        )
    labels = pd.concat(frames, ignore_index=True)
    labels.insert(1, "start", np.arange(len(labels)) * 100)
    labels.insert(2, "end", labels["start"] + WINDOW_LEN)
    labels["chrom_shuffled"] = rng.permutation(labels["chrom"].to_numpy())
    labels["kind"] = np.where(np.arange(len(labels)) % 3 == 0, "background", "peak")
    n = len(labels)
    seq_len = WINDOW_LEN + 2 * FLANK
    gc = labels["chrom"].map({c: v[0] for c, v in CHROMS.items()}).to_numpy()
    u = rng.random((n, seq_len))
    at = (1 - gc[:, None]) / 2
    seq = np.where(u < at, 0, np.where(u < at + gc[:, None] / 2, 1, np.where(u < at + gc[:, None], 2, 3))).astype(
        np.uint8
    )
    tracks = np.log1p(rng.gamma(0.8, 2.0, size=(n, len(TRACKS), seq_len))).astype(np.float16)
    schema = WindowsSchema(WINDOW_LEN, FLANK, TRACKS, "log1p")
    with WindowsWriter(path, schema, track_dtype="float16") as writer:
        writer.append(seq, tracks)
        writer.write_labels(labels)
    return labels


def train_windows(windows: Path, labels: pd.DataFrame) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """The train split's rows, base codes ``[N, L]`` (0-3) and tracks ``[N, T, L]``, flanks cropped."""
    from seqae.windows.reader import read_windows

    rows = np.flatnonzero(labels["split"] == "train")
    seq, tracks = read_windows(windows, rows)
    seq_t = torch.from_numpy(seq[:, FLANK : FLANK + WINDOW_LEN].astype(np.int64))
    tracks_t = torch.from_numpy(tracks[:, :, FLANK : FLANK + WINDOW_LEN].astype(np.float32))
    return rows, seq_t, tracks_t


def model_file(
    path: Path,
    windows: Path,
    labels: pd.DataFrame,
    kind: str,
    train_steps: int,
    seed: int = 0,
    blocks: dict[str, dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """A tiny model of ``kind`` (latent ``blocks``, default TINY's), trained ``train_steps`` Adam steps on the
    train windows, saved as a model file."""
    torch.manual_seed(seed)
    settings = copy.deepcopy(TINY)
    settings["kind"] = kind
    if blocks is not None:
        settings["blocks"] = copy.deepcopy(blocks)
    settings.update(copy.deepcopy(extra or {}))
    names = dict.fromkeys(b["label"] for b in settings["blocks"].values() if b["label"] is not None)
    categories = {c: sorted(x for x in labels[c].astype(str).unique() if x) for c in names}
    model = SequenceAutoencoder(settings, len(TRACKS), WINDOW_LEN, {c: len(v) for c, v in categories.items()}, "log1p")
    if train_steps:
        rows, seq, tracks = train_windows(windows, labels)
        codes = {
            c: torch.tensor([cats.index(v) if v in cats else -1 for v in labels[c].astype(str).to_numpy()[rows]])
            for c, cats in categories.items()
        }
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        model.train()
        g = torch.Generator().manual_seed(seed)
        for step in range(train_steps):
            idx = torch.randint(0, len(rows), (32,), generator=g)
            out = model(seq[idx], tracks[idx], {c: v[idx] for c, v in codes.items()}, step=step)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
        model.eval()
    state = {
        "format": MODEL_FORMAT,
        "format_version": FORMAT_VERSION,
        "model_name": f"tiny_{kind}" if not extra else f"tiny_{kind}_{'_'.join(extra)}",
        "model_init": model.init_kwargs,
        "model_state": model.state_dict(),
        "training": {},
        "seed": seed,
        "data": {"schema": WindowsSchema(WINDOW_LEN, FLANK, TRACKS, "log1p").to_dict(), "label_categories": categories},
        "epoch": 1,
        "step": train_steps,
        "val_loss": float("nan"),
        "seqae_version": __version__,
    }
    return save_checkpoint(state, path)


def evaluate_tiny_models(root: Path) -> dict[str, Any]:
    """The windows file, one model per kind and their evaluations in ``root`` (figures drawn for the plain model
    only): what the ``evaluated`` fixture holds."""
    windows = root / "windows.h5"
    labels = windows_file(windows)
    out: dict[str, Any] = {"root": root, "windows": windows, "labels": labels, "metrics": {}, "outdir": {}, "model": {}}
    settings = {**FAST, "labels": ["chrom", "gene_family", "region_class", "tss_bin", "chrom_shuffled"]}
    # Known sites for the two-level model's site metrics: 8 bp into every third test window.
    test = labels[labels["split"] == "test"].iloc[::3]
    sites = root / "sites.tsv"
    pd.DataFrame({"chrom": test["chrom"], "start": test["start"] + 10, "end": test["start"] + 18,
                  "tf": np.where(np.arange(len(test)) % 2, "TF_A", "TF_B")}).to_csv(sites, sep="\t", index=False)  # fmt: skip
    for kind, steps in (("plain", 25), ("vq", 5), ("vae", 0), ("ar", 25)):
        model_dir = root / kind
        model_dir.mkdir()
        if kind == "ar":
            model_path = model_file(model_dir / "best.pt", windows, labels, "plain", steps, extra=TWO_LEVEL)
        else:
            model_path = model_file(model_dir / "best.pt", windows, labels, kind, steps)
        outdir = root / f"eval_{kind}"
        if kind == "plain":
            # A training folder's loss curves are copied beside the evaluation.
            from seqae.figure import plt, save_figure

            fig, ax = plt.subplots()
            ax.plot([3, 2, 1.5], marker="o")
            save_figure(fig, model_dir / "loss_curves.png")
        run = {**settings, "figures": kind == "plain"}
        if kind == "vq":
            run["kmer_k"] = [3, 4]  # the multi-k baseline
        if kind == "vae":
            run = {**FAST, "figures": False}  # default labels: the blocks' labels, region_class, tss_bin
        if kind == "ar":
            run = {**settings, "figures": False, "truth_sites": str(sites)}
        out["metrics"][kind] = evaluate_model(model_path, windows, outdir, settings=run, device="cpu", progress=False)
        out["outdir"][kind] = outdir
        out["model"][kind] = model_path
    return out
