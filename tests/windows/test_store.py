"""seqae.windows.store: the windows file written in chunks and read back, and the files it refuses."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from seqae.errors import InputError
from seqae.windows.reader import read_windows
from seqae.windows.store import WindowsWriter, read_labels, read_schema
from tests.windows.conftest import SCHEMA, write_small


def test_round_trip(tmp_path):
    path = tmp_path / "w.h5"
    seq, tracks, labels = write_small(path)
    assert read_schema(path) == SCHEMA
    got_seq, got_tracks = read_windows(path)
    np.testing.assert_array_equal(got_seq, seq)
    np.testing.assert_allclose(got_tracks, tracks.astype(np.float16), rtol=0)
    pd.testing.assert_frame_equal(read_labels(path), labels)
    with h5py.File(path) as f:
        assert f["seq"].compression == "gzip"
        assert f["tracks"].dtype == np.float16
        assert f.attrs["seq_len"] == 12


def test_incomplete_file_is_refused(tmp_path):
    path = tmp_path / "w.h5"
    w = WindowsWriter(path, SCHEMA)
    w.close()
    with pytest.raises(InputError, match="incomplete"):
        read_labels(path)


def test_foreign_hdf5_is_refused(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = [1]
    with pytest.raises(InputError, match="not a seqae windows file"):
        read_schema(path)
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(InputError, match="not an HDF5 file"):
        read_schema(text)
