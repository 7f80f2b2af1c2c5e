"""Deterministic train/validation/test splits of windows, by region."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from seqae.chrom_names import ChromAliases, harmonise_chrom_names
from seqae.errors import ConfigError

log = logging.getLogger(__name__)

# A chain of overlapping windows longer than this many split bins draws a warning.
LONG_CHAIN_BINS = 100


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A fast, well-mixed 64-bit hash (SplitMix64 finaliser), vectorised over ``uint64``."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def overlap_anchors(group: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Each interval's anchor: the start of the first interval of its chain of overlaps.

    Intervals of one group (a chromosome of one genome) that overlap, directly
    or through others (single linkage), form a cluster; every interval of a
    cluster gets the cluster's smallest start. An interval that overlaps no
    other keeps its own start.

    Args:
        group: ``int64 [n]`` group codes (intervals of different groups never chain).
        start, end: ``int64 [n]`` half-open intervals (bp).

    Returns:
        ``int64 [n]`` anchors, in the input order.
    """
    group = np.asarray(group, dtype=np.int64)
    start = np.asarray(start, dtype=np.int64)
    end = np.asarray(end, dtype=np.int64)
    if len(start) == 0:
        return start.copy()
    order = np.lexsort((start, group))
    # Shift each group past the previous ones so that one running maximum serves them all.
    low = int(start.min())
    offset = group[order] * (int(end.max()) - low + 1) - low
    s, e = start[order] + offset, end[order] + offset
    reach = np.maximum.accumulate(e)
    first = np.ones(len(s), dtype=bool)
    first[1:] = s[1:] >= reach[:-1]
    cluster = np.cumsum(first) - 1
    anchors = np.empty_like(start)
    anchors[order] = start[order][first][cluster]
    return anchors


def assign_split(
    species: str | np.ndarray,
    chrom: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    settings: Mapping[str, Any],
    flank: int = 0,
    held_out: np.ndarray | None = None,
) -> np.ndarray:
    """Deterministic train/val/test split of windows.

    A window's split depends only on its region: the hash of (species,
    chromosome, ``anchor // bin_size``), without the species when
    ``split.shared_coordinates``. The anchor is the start of the first
    window of its chain of overlapping windows (stored flanks included,
    see :func:`overlap_anchors`), so windows that share any base always
    share a split, also where a chain crosses a bin's edge (cutting by each
    window's own start let 205 of the demo's 9,983 overlapping pairs straddle
    splits: 55 of its 511 test windows shared bases with a training or
    validation window). A window that overlaps no other takes the bin of its
    own start. With shared coordinates the chains run across genomes.
    Chromosomes listed in ``holdout_chromosomes`` go whole to val or test;
    a warning says that this conflicts with learning a chromosome block.

    Args:
        species: one name for every window, or ``[n]`` names.
        chrom, start, end: ``[n]`` each window's chromosome and half-open interval (bp); with shared
            coordinates, the name its chromosome shares with the other genomes
            (:meth:`seqae.chrom_names.ChromAliases.shared_keys`).
        settings: the ``extract`` section (``split`` is read).
        flank: bases stored on each side of a window (``extract.max_jitter``), counted as its own.
        held_out: ``[n]`` the split a window's chromosome is held out for (``"val"``, ``"test"``, ``""``:
            none), from :func:`held_out_splits` per genome; None: ``chrom`` matched here by the auto rule.

    Returns:
        ``object [n]`` of ``"train"``, ``"val"``, ``"test"``.
    """
    split_cfg = settings["split"]
    chrom = np.asarray(chrom).astype(str)
    species = np.broadcast_to(np.asarray(species).astype(str), chrom.shape)
    # With shared coordinates the species is left out of the hash: one bin, one split in every genome.
    shared = split_cfg.get("shared_coordinates", False)
    keys = chrom if shared else np.char.add(np.char.add(species, "\t"), chrom)
    uniq, inverse = np.unique(keys, return_inverse=True)
    key_hash = np.array([zlib.crc32(k.encode()) for k in uniq], dtype=np.uint64)[inverse]
    start = np.asarray(start, dtype=np.int64)
    anchors = overlap_anchors(inverse, start - flank, np.asarray(end, dtype=np.int64) + flank) + flank
    _log_moved(start, anchors, split_cfg["bin_size"])
    bins = (anchors // split_cfg["bin_size"]).astype(np.uint64)
    u = (_splitmix64((key_hash << np.uint64(32)) ^ bins) >> np.uint64(11)).astype(np.float64) / float(2**53)

    holdout = split_cfg["holdout_chromosomes"]
    val_f = 0.0 if holdout["val"] else split_cfg["val_fraction"]
    test_f = 0.0 if holdout["test"] else split_cfg["test_fraction"]
    split = np.where(u < test_f, "test", np.where(u < test_f + val_f, "val", "train")).astype(object)
    if holdout["val"] or holdout["test"]:
        log.warning(
            "chromosome hold-out: windows of whole chromosomes go to val/test; a model cannot learn "
            "a chromosome block for chromosomes it never trains on"
        )
        if held_out is None:
            held_out, _ = held_out_splits(chrom, holdout, ChromAliases(np.unique(chrom)))
        held = np.asarray(held_out).astype(str)
        split[held != ""] = held[held != ""]
    return split


def held_out_splits(
    chrom: np.ndarray, holdout: Mapping[str, list[str]], matcher: ChromAliases
) -> tuple[np.ndarray, list[str]]:
    """The split each window's chromosome is held out for, and the listed names that matched.

    Args:
        chrom: ``[n]`` one genome's window chromosomes (its FASTA's names).
        holdout: ``extract.split.holdout_chromosomes``, ``{"val": [...], "test": [...]}``.
        matcher: how listed names meet this genome's (its alias table, or the auto rule).

    Returns:
        ``(object [n] of "val", "test" or "", the listed names found in this genome)``.
    """
    chrom = np.asarray(chrom).astype(str)
    held = np.full(len(chrom), "", dtype=object)
    matched: list[str] = []
    for name in ("val", "test"):
        mapping = matcher.match(holdout[name])
        held[np.isin(chrom, list(mapping.values()))] = name
        matched += sorted(mapping)
    return held, matched


def _log_moved(start: np.ndarray, anchors: np.ndarray, bin_size: int) -> None:
    """Say how many windows take the split of a chain begun in an earlier bin, and warn of chains so long
    that the split fractions are drawn from few of them."""
    moved = int((start // bin_size != anchors // bin_size).sum())
    if moved:
        log.info(
            "%d of %d windows overlap a chain of windows begun in an earlier %d bp bin and take its split",
            moved, len(start), bin_size,
        )  # fmt: skip
    span = start - anchors
    if len(span) and span.max() > LONG_CHAIN_BINS * bin_size:
        log.warning(
            "overlapping windows chain over %.1f Mb (%d split bins), so whole stretches of the genome share a "
            "split and the fractions asked are met only roughly: are the peaks tiled? Merge close summits "
            "(extract.merge_distance) or hold out chromosomes (extract.split.holdout_chromosomes)",
            span.max() / 1e6, span.max() // bin_size,
        )  # fmt: skip


def check_holdout(
    holdout: Mapping[str, list[str]], chrom: np.ndarray, split: np.ndarray, matched: set[str] | None = None
) -> None:
    """Check ``extract.split.holdout_chromosomes`` against the windows of every genome.

    Args:
        holdout: ``{"val": [...], "test": [...]}`` chromosome names, as configured.
        chrom: ``[n]`` every window's chromosome (the FASTA's names).
        split: ``[n]`` every window's split, as :func:`assign_split` gave it.
        matched: the listed names that matched a chromosome of some genome (:func:`held_out_splits`);
            None: matched against ``chrom`` by the auto rule.

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
        found = set(harmonise_chrom_names(listed, chroms)) if matched is None else matched
        unmatched = sorted(set(listed) - found)
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


def check_test_split(split_cfg: Mapping[str, Any], split: np.ndarray) -> None:
    """Warn when the hashed test split came out empty although ``test_fraction`` asks for one.

    Few bins (a small genome or few peaks) or one long chain of overlapping
    windows can leave it empty; ``seqae evaluate`` would then fail after
    training. A warning, not an error: extraction alone, or training alone,
    on a few windows is a fair use.

    Args:
        split_cfg: ``extract.split``.
        split: ``[n]`` every window's split, as :func:`assign_split` gave it.
        matched: the listed names that matched a chromosome of some genome (:func:`held_out_splits`);
            None: matched against ``chrom`` by the auto rule.
    """
    if split_cfg["holdout_chromosomes"]["test"] or split_cfg["test_fraction"] == 0:
        return
    if (np.asarray(split) == "test").any():
        return
    log.warning(
        "extract.split: no window fell in the test split (%d windows, test_fraction %s, bins of %d bp), so seqae "
        "evaluate will fail: lower extract.split.bin_size or hold out a chromosome "
        "(extract.split.holdout_chromosomes.test)",
        len(split), split_cfg["test_fraction"], split_cfg["bin_size"],
    )  # fmt: skip
