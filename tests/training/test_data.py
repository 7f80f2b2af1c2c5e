"""seqae.training.data: staged and streamed windows, and the label values that mean no label."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seqae.training import train_model
from tests.training.conftest import assert_same_run, make_config, make_windows

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_staged_and_streamed_data_train_identically(windows, tmp_path):
    staged, streamed = tmp_path / "staged", tmp_path / "streamed"
    train_model(make_config(epochs=2, stage_on_device=True), "plain", windows, staged, progress=False)
    train_model(make_config(epochs=2, stage_on_device=False, num_workers=1), "plain", windows, streamed, progress=False)
    assert json.loads((staged / "model.json").read_text())["n_train"] == 60
    assert_same_run(staged, streamed)


def test_label_values_that_mean_no_label_are_no_class(tmp_path):
    """ "NaN", "nan", "None" and "" are one set of unknowns for training, as for evaluation."""
    import h5py

    from seqae.windows.store import UNKNOWN_LABELS

    path = make_windows(tmp_path / "windows.h5")
    with h5py.File(path, "r+") as f:
        families = f["labels/gene_family"][:].astype(str)
        unknown = ["NaN", "nan", "None", ""]
        families = np.array([unknown[i % 4] if v == "" else v for i, v in enumerate(families)])
        del f["labels/gene_family"]
        f["labels/gene_family"] = families.astype("S")
    train_model(make_config(epochs=1, max_steps=1), "plain", path, tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "model.json").read_text())
    assert saved["label_categories"]["gene_family"] == ["F1", "F2"]
    assert set(unknown) == UNKNOWN_LABELS
