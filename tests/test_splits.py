"""seqae.splits: train / val / test splits by genomic bin, and held-out chromosomes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqae.splits import assign_split


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
    split = assign_split("sp", chrom, start, settings)
    assert split[0] == split[1]  # same 1 kb bin
    frac = pd.Series(split).value_counts(normalize=True)
    assert abs(frac["test"] - 0.2) < 0.03 and abs(frac["val"] - 0.2) < 0.03
    again = assign_split("sp", chrom[::-1], start[::-1], settings)[::-1]
    assert (again == split).all()  # independent of the other windows and their order


def test_chromosome_holdout(caplog):
    settings = split_settings(0.1, 100, ["2"])
    chrom = np.array(["chr1"] * 500 + ["chr2"] * 500)
    split = assign_split("sp", chrom, np.tile(np.arange(500) * 100, 2), settings)
    assert (split[500:] == "test").all()
    assert "test" not in set(split[:500]) and "val" in set(split[:500])
    assert "chromosome block" in caplog.text


def test_a_holdout_list_that_matches_no_window_stops_before_training(caplog):
    import pytest

    from seqae.errors import ConfigError
    from seqae.splits import check_holdout

    chrom = np.array(["chr1"] * 5 + ["chr2"] * 5)
    settings = split_settings(0.1, 100, ["chr21"])
    split = assign_split("sp", chrom, np.tile(np.arange(5) * 100, 2), settings)
    with pytest.raises(ConfigError) as err:
        check_holdout(settings["split"]["holdout_chromosomes"], chrom, split)
    assert str(err.value) == (
        "extract.split.holdout_chromosomes.test: no window lies on chr21, so the test split would be empty "
        "(the windows' chromosomes: chr1, chr2)"
    )
    # A typo beside a good name: the good one holds out, the typo is named.
    holdout = {"val": [], "test": ["2", "chrZZ_typo"]}
    settings["split"]["holdout_chromosomes"] = holdout
    split = assign_split("sp", chrom, np.tile(np.arange(5) * 100, 2), settings)
    check_holdout(holdout, chrom, split)
    assert "holdout_chromosomes.test: chrZZ_typo matches no chromosome with windows; left out" in caplog.text


def test_shared_coordinates_give_a_region_one_split_in_every_genome():
    settings = split_settings(0.2, 1000)
    chrom, start = np.array(["chr1"] * 2000), np.arange(2000) * 1000
    apart = [assign_split(sp, chrom, start, settings) for sp in ("strain_a", "strain_b")]
    assert (apart[0] != apart[1]).mean() > 0.3  # each genome's bins split on their own
    settings["split"]["shared_coordinates"] = True
    shared = [assign_split(sp, chrom, start, settings) for sp in ("strain_a", "strain_b")]
    assert (shared[0] == shared[1]).all()
    assert abs((shared[0] == "test").mean() - 0.2) < 0.03
