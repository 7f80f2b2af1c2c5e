"""The embeddings as AnnData (``embeddings.h5ad``), for scanpy and the rest of the scverse tools.

:func:`write_h5ad` reads the finished ``embeddings.parquet`` of
:func:`seqae.embed.embed_windows` and writes the same windows as one AnnData
file:

``obs``
    One row per window (index: ``window_id``): every other label column of
    the windows file (text columns as categoricals), ``anomaly_score`` (the
    reconstruction error), ``anomaly_rank`` (1 = most anomalous) and
    ``seq_recon_accuracy``.
``X`` and ``var``
    The whole latent (float32), one variable per latent coordinate, named as
    the Parquet columns; ``var["block"]`` names each coordinate's block.
``obsm``
    One matrix per latent block, ``X_<block>`` (e.g. ``X_chrom``,
    ``X_residual``): ``sc.pp.neighbors(adata, use_rep="X_residual")`` builds
    the neighbour graph of one block.
``uns["seqae"]``
    The Parquet's ``seqae`` metadata (model, windows file, latent blocks), as JSON text.

Then, e.g.::

    import scanpy as sc
    adata = sc.read_h5ad("results/models/plain/embed/embeddings.h5ad")
    sc.pp.neighbors(adata, use_rep="X")   # or use_rep="X_residual": one block
    sc.tl.umap(adata); sc.tl.leiden(adata, flavor="igraph", n_iterations=2)
    sc.pl.umap(adata, color=["peak_set", "leiden", "anomaly_score"])
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from seqae.fileio import atomic_output

__all__ = ["write_h5ad"]

#: Per-window columns of embeddings.parquet after the latent coordinates.
SCORE_COLUMNS = ("anomaly_score", "anomaly_rank", "seq_recon_accuracy")


def write_h5ad(parquet_path: str | os.PathLike[str], h5ad_path: str | os.PathLike[str]) -> Path:
    """Write the embeddings of ``parquet_path`` (embeddings.parquet) as AnnData to ``h5ad_path``.

    The latent coordinates are the columns just before ``anomaly_score``, as
    many as the blocks of the ``seqae`` metadata hold, in layout order.
    """
    import anndata
    import pandas as pd
    import pyarrow.parquet as pq

    table = pq.read_table(parquet_path)
    meta = json.loads((table.schema.metadata or {}).get(b"seqae", b"{}"))
    blocks: dict[str, list[int]] = meta["latent_blocks"]
    frame = table.to_pandas()
    dim = max(stop for _, stop in blocks.values())
    end = list(frame.columns).index("anomaly_score")
    latent_columns = list(frame.columns[end - dim : end])
    latent = frame[latent_columns].to_numpy(np.float32)
    obs = frame.drop(columns=[*latent_columns, *(["window_id"] if "window_id" in frame else [])])
    # Text as object arrays: anndata's writer does not take pandas 3's Arrow-backed strings.
    for column in obs.columns:
        if not pd.api.types.is_numeric_dtype(obs[column]):
            values = np.asarray(obs[column].astype(object).where(obs[column].notna(), ""), dtype=object)
            obs[column] = pd.Categorical(values, categories=pd.Index(sorted(set(values)), dtype=object))
    names = frame["window_id"] if "window_id" in frame else range(len(frame))
    obs.index = pd.Index([str(name) for name in names], dtype=object)
    block_of = np.empty(dim, dtype=object)
    for name, (start, stop) in blocks.items():
        block_of[start:stop] = name
    var = pd.DataFrame(
        {"block": pd.Categorical(block_of, categories=pd.Index(list(blocks), dtype=object))},
        index=pd.Index(latent_columns, dtype=object),
    )
    adata = anndata.AnnData(
        X=latent,
        obs=obs,
        var=var,
        obsm={f"X_{name}": latent[:, start:stop] for name, (start, stop) in blocks.items()},
        uns={"seqae": json.dumps(meta)},
    )
    with atomic_output(h5ad_path, suffix=".h5ad") as tmp:
        adata.write_h5ad(tmp, compression="gzip")
    return Path(h5ad_path)
