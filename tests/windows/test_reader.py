"""seqae.windows.reader: rows read in any order, in parallel."""

from __future__ import annotations

import h5py
import numpy as np

from seqae.extract import extract_windows
from seqae.windows.reader import WindowReader, read_windows
from seqae.windows.store import read_labels
from tests.windows.conftest import write_small


def test_read_rows_in_any_order(tmp_path):
    path = tmp_path / "w.h5"
    seq, _, _ = write_small(path)
    got, _ = read_windows(path, np.array([7, 2, 5]))
    np.testing.assert_array_equal(got, seq[[7, 2, 5]])


def test_parallel_reader_matches_h5py(tiny_inputs):
    windows = tiny_inputs["dir"] / "windows.h5"
    extract_windows(tiny_inputs["config"], windows, progress=False)
    n = len(read_labels(windows))
    rows = np.sort(np.random.default_rng(2).choice(n, 9, replace=False))
    with WindowReader(windows) as reader:
        seq, tracks = reader.read(rows)
    with h5py.File(windows) as f:
        np.testing.assert_array_equal(seq, f["seq"][rows])
        np.testing.assert_array_equal(tracks, f["tracks"][rows])
