"""seqae.splits: train / val / test splits by genomic bin, and held-out chromosomes."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from seqae.splits import assign_split, overlap_anchors

WINDOW = 100


def split_of(species, chrom, start, settings, **kwargs):
    """:func:`assign_split` of windows ``WINDOW`` bp long starting at ``start``."""
    start = np.asarray(start)
    return assign_split(species, chrom, start, start + WINDOW, settings, **kwargs)


def split_settings(fraction: float, bin_size: int, test: list[str] | None = None) -> dict:
    """``extract`` settings with val and test fractions ``fraction`` and chromosomes ``test`` held out."""
    holdout = {"val": [], "test": list(test or [])}
    return {
        "split": {
            "val_fraction": fraction,
            "test_fraction": fraction,
            "bin_size": bin_size,
            "holdout_chromosomes": holdout,
        }
    }


def test_split_is_a_function_of_the_region():
    settings = split_settings(0.2, 1000)
    chrom = np.array(["c1"] * 20000)
    start = np.arange(20000) * 500
    split = split_of("sp", chrom, start, settings)
    assert split[0] == split[1]  # same 1 kb bin
    frac = pd.Series(split).value_counts(normalize=True)
    assert abs(frac["test"] - 0.2) < 0.03 and abs(frac["val"] - 0.2) < 0.03
    again = split_of("sp", chrom[::-1], start[::-1], settings)[::-1]
    assert (again == split).all()  # independent of the other windows and their order


def test_chromosome_holdout(caplog):
    settings = split_settings(0.1, 100, ["2"])
    chrom = np.array(["chr1"] * 500 + ["chr2"] * 500)
    split = split_of("sp", chrom, np.tile(np.arange(500) * 100, 2), settings)
    assert (split[500:] == "test").all()
    assert "test" not in set(split[:500]) and "val" in set(split[:500])
    assert "chromosome block" in caplog.text


def test_a_holdout_list_that_matches_no_window_stops_before_training(caplog):
    import pytest

    from seqae.errors import ConfigError
    from seqae.splits import check_holdout

    chrom = np.array(["chr1"] * 5 + ["chr2"] * 5)
    settings = split_settings(0.1, 100, ["chr21"])
    split = split_of("sp", chrom, np.tile(np.arange(5) * 100, 2), settings)
    with pytest.raises(ConfigError) as err:
        check_holdout(settings["split"]["holdout_chromosomes"], chrom, split)
    assert str(err.value) == (
        "extract.split.holdout_chromosomes.test: no window lies on chr21, so the test split would be empty "
        "(the windows' chromosomes: chr1, chr2)"
    )
    # A typo beside a good name: the good one holds out, the typo is named.
    holdout = {"val": [], "test": ["2", "chrZZ_typo"]}
    settings["split"]["holdout_chromosomes"] = holdout
    split = split_of("sp", chrom, np.tile(np.arange(5) * 100, 2), settings)
    check_holdout(holdout, chrom, split)
    assert "holdout_chromosomes.test: chrZZ_typo matches no chromosome with windows; left out" in caplog.text


def test_shared_coordinates_give_a_region_one_split_in_every_genome():
    settings = split_settings(0.2, 1000)
    chrom, start = np.array(["chr1"] * 2000), np.arange(2000) * 1000
    apart = [split_of(sp, chrom, start, settings) for sp in ("strain_a", "strain_b")]
    assert (apart[0] != apart[1]).mean() > 0.3  # each genome's bins split on their own
    settings["split"]["shared_coordinates"] = True
    shared = [split_of(sp, chrom, start, settings) for sp in ("strain_a", "strain_b")]
    assert (shared[0] == shared[1]).all()
    assert abs((shared[0] == "test").mean() - 0.2) < 0.03


def test_overlap_anchors_follow_chains_of_overlaps_within_a_group():
    group = np.array([0, 0, 0, 0, 1, 1, 0])
    start = np.array([0, 50, 140, 300, 60, 0, 1000])
    end = start + 100
    # 0-100, 50-150 and 140-240 chain; 300 and 1000 stand alone; group 1 chains on its own.
    assert overlap_anchors(group, start, end).tolist() == [0, 0, 0, 300, 0, 0, 1000]
    touching = overlap_anchors(np.zeros(2, int), np.array([0, 100]), np.array([100, 200]))
    assert touching.tolist() == [0, 100]  # half-open: sharing no base is no overlap
    assert overlap_anchors(np.zeros(0, int), np.zeros(0, int), np.zeros(0, int)).tolist() == []
    # Starts before 0 (a flank reaching past a chromosome's start) do not chain into the previous group.
    crossing = overlap_anchors(np.array([0, 1]), np.array([900, -20]), np.array([1000, 80]))
    assert crossing.tolist() == [900, -20]


def test_windows_that_share_a_base_never_straddle_splits(caplog):
    """Chains of overlapping windows across bin edges keep one split (cut by each window's start, they did not)."""
    caplog.set_level(logging.INFO)
    settings = split_settings(0.3, 1000)
    rng = np.random.default_rng(0)
    start = np.sort(rng.integers(0, 2_000_000, 6000))
    chrom = np.array(["chr1"] * len(start))
    split = split_of("sp", chrom, start, settings, flank=20)
    ext_start, ext_end = start - 20, start + WINDOW + 20
    i, j = np.nonzero(np.triu(ext_start[None, :] < ext_end[:, None], 1) & (np.abs(start[:, None] - start) < 500))
    assert len(i) > 1000
    assert (split[i] == split[j]).all()
    # The old rule (each window's own bin) splits some of these pairs.
    own = assign_split("sp", chrom, start, start, settings)  # zero-length windows chain with nothing
    assert (own[i] != own[j]).any()
    assert "take its split" in caplog.text
    frac = pd.Series(split).value_counts(normalize=True)
    assert abs(frac["test"] - 0.3) < 0.05


def test_a_chain_of_tiled_windows_is_warned_about(caplog):
    start = np.arange(0, 2_000_000, 50)
    split_of("sp", np.array(["chr1"] * len(start)), start, split_settings(0.1, 10_000))
    assert "overlapping windows chain over 2.0 Mb (199 split bins)" in caplog.text
    assert "are the peaks tiled?" in caplog.text


def test_shared_coordinates_chain_windows_across_genomes():
    settings = split_settings(0.3, 1000)
    settings["split"]["shared_coordinates"] = True
    # Two genomes' windows, offset by 60 bp: each overlaps the other genome's, never its own genome's.
    start = np.arange(200) * 150
    species = np.repeat(["strain_a", "strain_b"], 200)
    both = np.concatenate([start, start + 60])
    split = split_of(species, np.array(["chr1"] * 400), both, settings)
    assert len(set(split)) == 1  # one chain of 30 kb, so one split
    apart = split_of(species[:200], np.array(["chr1"] * 200), start, settings)
    assert len(set(apart)) > 1  # alone, each genome's windows do not chain


def test_an_empty_hashed_test_split_is_warned_about_before_training(caplog):
    from seqae.splits import check_test_split

    settings = split_settings(0.1, 10_000)
    start = np.arange(0, 50_000, 50)  # one chain of 1,000 windows over 5 bins: one split for all
    split = split_of("a", np.array(["chr1"] * 1000), start, settings)
    assert set(split) == {"train"}
    check_test_split(settings["split"], split)
    assert (
        "extract.split: no window fell in the test split (1000 windows, test_fraction 0.1, bins of 10000 bp), so "
        "seqae evaluate will fail: lower extract.split.bin_size or hold out a chromosome "
        "(extract.split.holdout_chromosomes.test)"
    ) in caplog.text
    caplog.clear()
    check_test_split(settings["split"], np.array(["train", "test"]))
    settings["split"]["test_fraction"] = 0.0
    check_test_split(settings["split"], split)  # no test split asked for
    assert "test split" not in caplog.text
