"""``embeddings.parquet`` of ``seqae embed``: row groups streamed to a scratch file, then the anomaly rank added.

The rank needs every window's score, so the rows are first written without
it and :func:`finish_parquet` copies them, row group by row group, with
``anomaly_rank`` inserted after ``anomaly_score`` and the ``seqae`` metadata.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


class LabelRows:
    """The label table of the selected rows as Arrow, sliced per block with one schema for every slice."""

    def __init__(self, labels: Any, rows: np.ndarray):
        import pyarrow as pa

        selected = labels.iloc[rows].reset_index(drop=True)
        # One conversion up front: a slice whose text column happens to be all
        # empty must not come out with another type.
        self.table = pa.Table.from_pandas(selected, preserve_index=False).replace_schema_metadata(None)
        self.schema = self.table.schema

    def slice(self, lo: int, hi: int) -> Any:
        return self.table.slice(lo, hi - lo)


class ParquetRows:
    """Streams row groups (labels, latent columns, score, accuracy) to a Parquet file."""

    def __init__(self, path: Path, label_schema: Any, latent_columns: list[str]):
        import pyarrow as pa
        import pyarrow.parquet as pq

        fields = list(label_schema) + [pa.field(name, pa.float32()) for name in latent_columns]
        fields += [pa.field("anomaly_score", pa.float32()), pa.field("seq_recon_accuracy", pa.float32())]
        self.schema = pa.schema(fields)
        self.n_latent = len(latent_columns)
        self.writer: Any = pq.ParquetWriter(str(path), self.schema, compression="zstd")

    def write(self, labels: Any, latent: np.ndarray, score: np.ndarray, accuracy: np.ndarray) -> None:
        import pyarrow as pa

        columns = list(labels.columns)
        columns += [pa.array(latent[:, j]) for j in range(self.n_latent)]
        columns += [pa.array(score), pa.array(accuracy)]
        self.writer.write_table(pa.Table.from_arrays(columns, schema=self.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def finish_parquet(scratch: Path, target: Path, scores: np.ndarray, metadata: dict[str, str]) -> None:
    """Copy the scratch Parquet row group by row group, adding ``anomaly_rank`` after ``anomaly_score``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rank = np.empty(len(scores), dtype=np.int64)
    # Descending score, NaN last, ties in file order.
    key = np.where(np.isnan(scores), -np.inf, scores.astype(np.float64))
    rank[np.argsort(-key, kind="stable")] = np.arange(1, len(scores) + 1)
    source = pq.ParquetFile(str(scratch))
    at = source.schema_arrow.get_field_index("anomaly_score") + 1
    schema = source.schema_arrow.insert(at, pa.field("anomaly_rank", pa.int64())).with_metadata(metadata)
    done = 0
    with pq.ParquetWriter(str(target), schema, compression="zstd") as writer:
        for g in range(source.num_row_groups):
            table = source.read_row_group(g)
            table = table.add_column(at, "anomaly_rank", pa.array(rank[done : done + table.num_rows]))
            writer.write_table(table.replace_schema_metadata(metadata))
            done += table.num_rows


@contextlib.contextmanager
def scratch_file(folder: Path, prefix: str, suffix: str) -> Iterator[Path]:
    """A temporary file in ``folder``, removed on the way out whatever happens."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


__all__ = ["LabelRows", "ParquetRows", "finish_parquet", "scratch_file"]
