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


def test_a_corrupt_chunk_is_named_in_one_line(tiny_inputs):
    """Bytes zeroed inside a chunk of /seq or /tracks (a damaged disk or copy) gave ISA-L's 'Incorrect
    checksum' at the end of a 40-line traceback, from embed, evaluate and train alike."""
    import pytest

    from seqae.errors import SeqaeError

    windows = tiny_inputs["dir"] / "windows.h5"
    extract_windows(tiny_inputs["config"], windows, progress=False)
    n = len(read_labels(windows))
    for dataset in ("seq", "tracks"):
        damaged = tiny_inputs["dir"] / f"damaged_{dataset}.h5"
        damaged.write_bytes(windows.read_bytes())
        with h5py.File(damaged) as f:
            chunk = f[dataset].id.get_chunk_info(0)
        with open(damaged, "r+b") as fh:
            fh.seek(chunk.byte_offset + chunk.size // 2)
            fh.write(bytes(min(200, chunk.size // 3)))
        with pytest.raises(SeqaeError, match=rf"damaged_{dataset}\.h5: /{dataset} is corrupt in the chunk of rows 0-"):
            read_windows(damaged, np.arange(n))
