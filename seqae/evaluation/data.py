"""The evaluated windows: test and train rows of a windows file, seeded subsets read and
centre-cropped to the model's window, with their labels (:class:`EvaluationData`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqae.errors import SeqaeError
from seqae.evaluation.labels import derive_labels

__all__ = ["EvaluationData", "load_data", "subsample"]


def subsample(rows: np.ndarray, n_max: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``n_max`` of ``rows``, a sorted seeded random subset."""
    if rows.size <= n_max:
        return rows
    return np.sort(rng.choice(rows, size=n_max, replace=False))


def _centre(array: np.ndarray, window_len: int) -> np.ndarray:
    start = (array.shape[-1] - window_len) // 2
    return array[..., start : start + window_len]


def _read_crops(path: str, rows: np.ndarray, window_len: int, n_tracks: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre crops of some windows: ``seq uint8 [n, L]``, ``tracks [n, T, L]`` (stored dtype)."""
    from seqae.windows.reader import read_windows

    if rows.size == 0:
        return np.zeros((0, window_len), np.uint8), np.zeros((0, n_tracks, window_len), np.float16)
    seq, tracks = read_windows(path, rows)
    seq = np.ascontiguousarray(_centre(seq, window_len))
    if tracks is None:
        tracks = np.zeros((len(rows), 0, window_len), np.float16)
    else:
        tracks = np.ascontiguousarray(_centre(tracks, window_len))
    return seq, tracks


@dataclass
class EvaluationData:
    """The evaluated windows, cropped to the model's window: codes ``uint8 [n, L]``, tracks ``[n, T, L]``,
    labels ``object [n]`` (None = unknown) per label name."""

    windows: str
    schema: Any
    test_rows: np.ndarray
    train_rows: np.ndarray
    n_test_available: int
    n_train_available: int
    test_seq: np.ndarray
    test_tracks: np.ndarray
    train_seq: np.ndarray
    train_tracks: np.ndarray
    label_names: list[str]
    y_test: dict[str, np.ndarray]
    y_train: dict[str, np.ndarray]
    test_kind: np.ndarray | None = None
    # Genome position of each test window's first evaluated base: chromosome [n] and coordinate [n].
    test_chrom: np.ndarray | None = None
    test_first_base: np.ndarray | None = None


def load_data(
    model: Any,
    meta: Mapping[str, Any],
    model_path: Any,
    windows: str,
    cfg: Mapping[str, Any],
    block_labels: Mapping[str, str],
) -> EvaluationData:
    from seqae.checkpoint import check_model_fits
    from seqae.windows.store import qualify_chromosomes, read_labels, read_schema

    schema = read_schema(windows)
    check_model_fits(meta, schema, model_path, windows)
    raw = read_labels(windows)
    raw_chrom = raw["chrom"].astype(str).to_numpy() if "chrom" in raw.columns else None  # as in the genome FASTA
    table = qualify_chromosomes(raw)  # as in training: species:chrom with several genomes
    if len(table) == 0:
        raise SeqaeError(
            f"{windows}: no windows at all (the extraction kept none: see its log and extract_report.json)"
        )
    if "split" not in table.columns:
        raise SeqaeError(f"{windows}: no 'split' label column")
    split = table["split"].astype(str).to_numpy()
    test_all = np.flatnonzero(split == "test")
    train_all = np.flatnonzero(split == "train")
    if test_all.size == 0:
        raise SeqaeError(
            f"{windows}: no windows in the test split (extract.split.test_fraction is 0, or its bins drew none: see extract.split.bin_size)"
        )
    if train_all.size < 2:
        raise SeqaeError(f"{windows}: fewer than 2 windows in the train split")
    seed = cfg["seed"]
    test_rows = subsample(test_all, cfg["test_max"], np.random.default_rng([seed, 0]))
    train_rows = subsample(train_all, cfg["train_max"], np.random.default_rng([seed, 1]))
    test_seq, test_tracks = _read_crops(windows, test_rows, model.window_len, model.n_tracks)
    train_seq, train_tracks = _read_crops(windows, train_rows, model.window_len, model.n_tracks)
    names, values = derive_labels(table, cfg, list(dict.fromkeys(block_labels.values())))
    return EvaluationData(
        windows=windows,
        schema=schema,
        test_rows=test_rows,
        train_rows=train_rows,
        n_test_available=int(test_all.size),
        n_train_available=int(train_all.size),
        test_seq=test_seq,
        test_tracks=test_tracks,
        train_seq=train_seq,
        train_tracks=train_tracks,
        label_names=names,
        y_test={n: v[test_rows] for n, v in values.items()},
        y_train={n: v[train_rows] for n, v in values.items()},
        # peak / background: the anomaly AUROC is also reported per kind of window.
        test_kind=table["kind"].astype(str).to_numpy()[test_rows] if "kind" in table.columns else None,
        test_chrom=raw_chrom[test_rows] if raw_chrom is not None else None,
        # The stored sequence starts flank bp before the window; the evaluated crop is its centre.
        test_first_base=(
            table["start"].to_numpy(np.int64)[test_rows] - schema.flank + (schema.seq_len - model.window_len) // 2
            if "start" in table.columns
            else None
        ),
    )
