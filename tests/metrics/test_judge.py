"""seqae.metrics.judge: the k-mer judge and swap success."""

from __future__ import annotations

import numpy as np
import pytest

from seqae.metrics import swap_success, train_judge
from tests.metrics.conftest import random_codes


def test_judge_and_swap_success() -> None:
    rng = np.random.default_rng(14)
    gcs = {"chrA": 0.3, "chrB": 0.5, "chrC": 0.7}
    codes = np.concatenate([random_codes(rng, 80, 300, gc) for gc in gcs.values()])
    y = np.repeat(list(gcs), 80)
    judge = train_judge(codes, y, k=(3, 4), seed=0)
    assert judge.heldout_accuracy > 0.9 and judge.n_heldout == 48
    proba = judge.predict_proba(codes[:5])
    assert proba.shape == (5, 3) and np.allclose(proba.sum(axis=1), 1.0)
    assert list(judge.classes) == ["chrA", "chrB", "chrC"]

    # Hand-made swaps: windows drawn with the donor's GC (4 rows), with the recipient's (2),
    # one row whose donor equals its recipient (left out).
    swapped = np.concatenate(
        [random_codes(rng, 4, 300, 0.7), random_codes(rng, 2, 300, 0.3), random_codes(rng, 1, 300, 0.5)]
    )
    donor = np.array(["chrC"] * 4 + ["chrB"] * 2 + ["chrB"])
    recipient = np.array(["chrA"] * 4 + ["chrA"] * 2 + ["chrB"])
    out = swap_success(judge, swapped, donor, recipient)
    assert out["n"] == 6 and out["n_same_label"] == 1
    assert out["donor_fraction"] == pytest.approx(4 / 6)
    assert out["recipient_fraction"] == pytest.approx(2 / 6)
    assert out["other_fraction"] == pytest.approx(0.0)
    assert out["judge_heldout_accuracy"] == judge.heldout_accuracy
    # A donor label the judge never saw is never "assigned".
    out = swap_success(judge, swapped[:2], np.array(["chrZ", "chrZ"]), np.array(["chrA", "chrA"]))
    assert out["donor_fraction"] == 0.0 and out["mean_donor_probability"] == 0.0
