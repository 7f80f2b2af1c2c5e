"""Deterministic train/validation/test splits of windows, by region."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from seqae.errors import ConfigError
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
    chromosome, ``start // bin_size``), without the species when
    ``split.shared_coordinates``. Windows starting in one bin share a
    split, so heavily overlapping windows never straddle train and test.
    Chromosomes listed in ``holdout_chromosomes`` go whole to val or test;
    a warning says that this conflicts with learning a chromosome block.

    Returns:
        ``object [n]`` of ``"train"``, ``"val"``, ``"test"``.
    """
    split_cfg = settings["split"]
    chrom = np.asarray(chrom).astype(str)
    uniq, inverse = np.unique(chrom, return_inverse=True)
    # With shared coordinates the species is left out of the hash: one bin, one split in every genome.
    prefix = "" if split_cfg.get("shared_coordinates", False) else f"{species}\t"
    chrom_hash = np.array([zlib.crc32(f"{prefix}{c}".encode()) for c in uniq], dtype=np.uint64)[inverse]
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


def check_holdout(holdout: Mapping[str, list[str]], chrom: np.ndarray, split: np.ndarray) -> None:
    """Check ``extract.split.holdout_chromosomes`` against the windows of every genome.

    Args:
        holdout: ``{"val": [...], "test": [...]}`` chromosome names, as configured.
        chrom: ``[n]`` every window's chromosome (the FASTA's names).
        split: ``[n]`` every window's split, as :func:`assign_split` gave it.

    Raises:
        ConfigError: a list whose chromosomes hold no window, so that its split would be
            empty (before training, where the empty test split was found only by evaluation).

    Listed names that match no chromosome with windows, beside ones that do, are logged.
    """
    chroms = np.unique(np.asarray(chrom).astype(str))
    for name in ("val", "test"):
        listed = list(holdout[name])
        if not listed:
            continue
        unmatched = sorted(set(listed) - set(harmonise_chrom_names(listed, chroms)))
        if not (np.asarray(split) == name).any():
            shown = ", ".join(chroms[:8]) + (f" and {len(chroms) - 8} more" if len(chroms) > 8 else "")
            raise ConfigError(
                f"extract.split.holdout_chromosomes.{name}: no window lies on {', '.join(listed)}, so the {name} "
                f"split would be empty (the windows' chromosomes: {shown})"
            )
        if unmatched:
            log.warning(
                "extract.split.holdout_chromosomes.%s: %s match%s no chromosome with windows; left out",
                name, ", ".join(unmatched), "es" if len(unmatched) == 1 else "",
            )  # fmt: skip
