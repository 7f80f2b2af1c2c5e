"""seqae.evaluation.labels: the labels evaluation probes, TSS-distance bins among them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seqae.evaluation import TSS_BIN_NONE, evaluate_settings, tss_bin_names, tss_distance_bins

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_tss_bins_on_hand_made_distances() -> None:
    d = [-20000, -10001, -10000, -5000, -1001, -1000, -999, 0, 1000, 1001, 10000, 10001, np.nan]
    want = ["<-10k", "<-10k", "-10k..-1k", "-10k..-1k", "-10k..-1k", "-1k..1k", "-1k..1k", "-1k..1k",
            "-1k..1k", "1k..10k", "1k..10k", ">10k", TSS_BIN_NONE]  # fmt: skip
    assert tss_distance_bins(d).tolist() == want
    assert tss_bin_names() == ["<-10k", "-10k..-1k", "-1k..1k", "1k..10k", ">10k"]
    assert tss_distance_bins([-600, 0, 2500], edges=[-500, 500, 2000]).tolist() == ["<-500", "-500..500", ">2k"]


def test_evaluation_probes_tf_identity_by_default() -> None:

    from seqae.evaluation.labels import derive_labels

    table = pd.DataFrame({"chrom": ["c1", "c2"], "gene_family": ["F", "G"], "peak_set": ["CTCF", "background"],
                          "region_class": ["promoter", "intergenic"], "tss_distance": [10.0, 5000.0]})  # fmt: skip
    names, values = derive_labels(table, evaluate_settings(), ["chrom", "gene_family"])
    assert names == ["chrom", "gene_family", "peak_set", "region_class", "tss_bin"]
    assert list(values["peak_set"]) == ["CTCF", "background"]
