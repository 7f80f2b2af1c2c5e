"""Windows file: writing in chunks, reading back, schema checks, the torch Dataset."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from seqae.errors import InputError
from seqae.windows.dataset import WindowDataset
from seqae.windows.reader import read_windows
from seqae.windows.store import WindowsSchema, WindowsWriter, read_labels, read_schema

SCHEMA = WindowsSchema(window_len=8, flank=2, track_names=("A", "B"), track_transform="log1p")


def write_small(path, n=10, chunks=(3, 7)):
    rng = np.random.default_rng(0)
    seq = rng.integers(0, 5, size=(n, SCHEMA.seq_len), dtype=np.uint8)
    tracks = rng.random((n, 2, SCHEMA.seq_len), dtype=np.float32)
    labels = pd.DataFrame(
        {
            "window_id": [f"w{i}" for i in range(n)],
            "chrom": ["c1"] * (n // 2) + ["c2"] * (n - n // 2),
            "start": np.arange(n) * 100,
            "split": ["train", "train", "val", "test", "train"] * (n // 5),
            "gc": rng.random(n),
        }
    )
    with WindowsWriter(path, SCHEMA, "float16", settings={"window_len": 8}) as w:
        lo = 0
        for size in chunks:
            w.append(seq[lo : lo + size], tracks[lo : lo + size])
            lo += size
        w.write_labels(labels)
    return seq, tracks, labels


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


def test_read_rows_in_any_order(tmp_path):
    path = tmp_path / "w.h5"
    seq, _, _ = write_small(path)
    got, _ = read_windows(path, np.array([7, 2, 5]))
    np.testing.assert_array_equal(got, seq[[7, 2, 5]])


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


def test_dataset_items_batches_and_labels(tmp_path):
    path = tmp_path / "w.h5"
    seq, tracks, labels = write_small(path)
    ds = WindowDataset(path, splits="train")
    assert len(ds) == 6
    item = ds[1]
    assert item["seq"].dtype == torch.int64 and item["seq"].shape == (12,)
    assert item["tracks"].shape == (2, 12)
    np.testing.assert_array_equal(item["seq"].numpy(), seq[ds.rows[1]])
    batch = ds.read_batch([3, 0, 3])
    np.testing.assert_array_equal(batch["seq"].numpy(), seq[ds.rows[[3, 0, 3]]])
    codes, cats = ds.label_codes("chrom")
    assert cats == ["c1", "c2"]
    assert codes.tolist() == [0 if c == "c1" else 1 for c in labels["chrom"].iloc[ds.rows]]

    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=0)
    first = next(iter(loader))
    assert first["seq"].shape == (4, 12)


def test_staged_batches_cover_every_row_once(tmp_path):
    path = tmp_path / "w.h5"
    seq, tracks, _ = write_small(path)
    staged = WindowDataset(path).stage("cpu")
    assert staged.seq.dtype == torch.uint8 and staged.tracks.dtype == torch.float16
    seen = []
    for batch in staged.batches(4, generator=torch.Generator().manual_seed(0)):
        rows = batch["index"].numpy()
        np.testing.assert_array_equal(batch["seq"].numpy(), seq[rows])
        np.testing.assert_allclose(batch["tracks"].numpy(), tracks[rows].astype(np.float16), rtol=0)
        seen.extend(rows.tolist())
    assert sorted(seen) == list(range(10))
