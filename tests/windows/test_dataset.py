"""seqae.windows.dataset: the torch Dataset and windows staged on a device."""

from __future__ import annotations

import numpy as np
import torch

from seqae.windows.dataset import WindowDataset
from tests.windows.conftest import write_small


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


def test_a_corrupt_chunk_read_batch_by_batch_is_named_in_one_line(tmp_path):
    """Read through h5py batch by batch (windows not staged), a damaged chunk gave HDF5's OSError."""
    import h5py
    import pytest

    from seqae.errors import SeqaeError
    from seqae.windows.dataset import WindowDataset
    from tests.windows.conftest import write_small

    path = tmp_path / "w.h5"
    write_small(path)
    with h5py.File(path) as f:
        chunk = f["seq"].id.get_chunk_info(0)
    with open(path, "r+b") as fh:
        fh.seek(chunk.byte_offset + chunk.size // 2)
        fh.write(bytes(max(1, chunk.size // 3)))
    with pytest.raises(SeqaeError, match=r"w\.h5: corrupt data in rows 0-1 "):
        WindowDataset(path).read_batch([0, 1])
