"""A small windows file for the windows tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqae.windows.store import WindowsSchema, WindowsWriter

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
