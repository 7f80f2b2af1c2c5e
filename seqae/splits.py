"""Deterministic train/validation/test splits of windows, by region."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from seqae.genome import harmonise_chrom_names

log = logging.getLogger(__name__)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A fast, well-mixed 64-bit hash (SplitMix64 finaliser), vectorised over ``uint64``."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def assign_split(species: str, chrom: np.ndarray, start: np.ndarray, settings: Mapping[str, Any]) -> np.ndarray:
    """Deterministic train/val/test split of windows.

    A window's split depends only on its region: the hash of (species,
    chromosome, ``start // bin_size``). Windows starting in one bin share a
    split, so heavily overlapping windows never straddle train and test.
    Chromosomes listed in ``holdout_chromosomes`` go whole to val or test;
    a warning says that this conflicts with learning a chromosome block.

    Returns:
        ``object [n]`` of ``"train"``, ``"val"``, ``"test"``.
    """
    split_cfg = settings["split"]
    chrom = np.asarray(chrom).astype(str)
    uniq, inverse = np.unique(chrom, return_inverse=True)
    chrom_hash = np.array([zlib.crc32(f"{species}\t{c}".encode()) for c in uniq], dtype=np.uint64)[inverse]
    bins = (np.asarray(start, dtype=np.int64) // split_cfg["bin_size"]).astype(np.uint64)
    u = (_splitmix64((chrom_hash << np.uint64(32)) ^ bins) >> np.uint64(11)).astype(np.float64) / float(2**53)

    holdout = split_cfg["holdout_chromosomes"]
    val_f = 0.0 if holdout["val"] else split_cfg["val_fraction"]
    test_f = 0.0 if holdout["test"] else split_cfg["test_fraction"]
    split = np.where(u < test_f, "test", np.where(u < test_f + val_f, "val", "train")).astype(object)
    if holdout["val"] or holdout["test"]:
        log.warning(
            "chromosome hold-out: windows of whole chromosomes go to val/test; a model cannot learn "
            "a chromosome block for chromosomes it never trains on"
        )
        for name in ("val", "test"):
            listed = holdout[name]
            mapping = harmonise_chrom_names(listed, uniq)
            split[np.isin(chrom, list(mapping.values()))] = name
    return split
