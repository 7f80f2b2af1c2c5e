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
    # A copy cut short is HDF5 all the same: said as what it is.
    whole = tmp_path / "whole.h5"
    write_small(whole)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(InputError, match=r"cut\.h5: truncated: [\d,]+ of its [\d,]+ bytes; copy it again"):
        read_schema(cut)


def _retype_seq(f: h5py.File) -> None:
    seq = f["seq"][()].astype(np.int64)
    del f["seq"]
    f["seq"] = seq


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda f: f.__delitem__("labels"), "no group /labels"),
        (lambda f: f.__delitem__("seq"), "no dataset /seq"),
        (lambda f: f["labels"].__delitem__("split"), "no label column /labels/split, which label_columns lists"),
        (lambda f: f.attrs.__setitem__("track_names", "[not json"), "unreadable attributes"),
        (lambda f: f.attrs.__delitem__("flank"), "no attribute flank"),
        (lambda f: f.attrs.__setitem__("window_len", 9), "/seq has shape (10, 12), the attributes say (10, 13)"),
        (lambda f: f.attrs.__setitem__("seq_len", 13), "attribute seq_len is 13, but window_len + 2 * flank is 12"),
        (_retype_seq, "/seq has dtype int64, not the uint8 base codes seqae writes"),
    ],
)
def test_a_damaged_file_is_refused_in_one_line(tmp_path, damage, problem):
    """A file edited by other tools: named with what is wrong, never an HDF5 traceback."""
    path = tmp_path / "w.h5"
    write_small(path)
    with h5py.File(path, "r+") as f:
        damage(f)
    with pytest.raises(InputError) as err:
        read_labels(path)
    assert str(err.value).startswith(f"{path}: damaged windows file: {problem}")


def test_labels_shorter_than_the_windows_are_refused(tmp_path):
    """Read in part, such a file trained and embedded a subset of its windows silently."""
    path = tmp_path / "w.h5"
    _, _, labels = write_small(path)
    with h5py.File(path, "r+") as f:
        data = f["labels"]["chrom"].asstr()[()][:3]
        del f["labels"]["chrom"]
        f["labels"].create_dataset("chrom", data=data.astype(object), dtype=h5py.string_dtype())
    with pytest.raises(InputError, match=r"damaged windows file: /labels/chrom has 3 rows for 10 windows"):
        read_schema(path)


def test_a_split_label_outside_train_val_test_is_refused(tmp_path):
    from seqae.windows.dataset import WindowDataset

    path = tmp_path / "w.h5"
    write_small(path)
    with h5py.File(path, "r+") as f:
        split = f["labels"]["split"].asstr()[()]
        split[3] = "holdout"
        del f["labels"]["split"]
        f["labels"].create_dataset("split", data=split.astype(object), dtype=h5py.string_dtype())
    with pytest.raises(InputError, match=r"w.h5: split label 'holdout' is none of train, val, test"):
        WindowDataset(path, "train")


def test_an_exception_inside_the_writer_is_not_replaced_by_the_flush(tmp_path, monkeypatch):
    """SIGTERM (an exception) while append() sent chunks left a half-updated queue, which close() then
    flushed: a ValueError traceback in place of "terminated", and now and then a hang."""
    from seqae.windows import store

    calls = {"n": 0}
    write_oldest = store._ChunkWriter._write_oldest

    def interrupted(self):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        write_oldest(self)

    monkeypatch.setattr(store, "_MAX_IN_FLIGHT", 1)
    monkeypatch.setattr(store._ChunkWriter, "_write_oldest", interrupted)
    rng = np.random.default_rng(0)
    n = 2000  # several chunks of 256 sequence and 64 track rows
    with pytest.raises(KeyboardInterrupt):
        with WindowsWriter(tmp_path / "w.h5", SCHEMA, "float16") as writer:
            writer.append(rng.integers(0, 5, (n, SCHEMA.seq_len), dtype=np.uint8), rng.random((n, 2, SCHEMA.seq_len)))
    assert calls["n"] == 3  # nothing was written after the interruption
