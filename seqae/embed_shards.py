"""Sharded embedding: ``seqae embed --shard K --shards N`` jobs, then ``seqae embed-gather``.

A cluster embeds a large windows file faster as several jobs at once. Shard
``K`` of ``N`` runs the model over a contiguous range of the selected windows
in genome order (file order for files ``seqae extract`` writes), cut on the
grid of blocks the single job uses (``max(8192, batch_size)`` windows), so
every batch holds the same windows as in the single job and gives the same
numbers. It writes ``<outdir>/shards/embed_shard_KKK.h5`` (temporary name,
then renamed): per window its index, latent ``float32 [m, D]``, anomaly score
and base accuracy; per block the bigWig runs of its reconstructed tracks
(``runs/<first position>/{chrom,start,length}`` ``int64 [r]`` and ``values``
``float32 [T, sum(length)]``), whose owned bases are decided on all the
windows, so shard edges change nothing.

The gather reads every shard (checking that each is there and belongs to
this split into ``N``), writes the Parquet rows in file order with the
anomaly rank over all windows, ``anomaly.bw``, and each ``recon_<track>.bw``
from the runs in the order the single job sends them: the same outputs as
``seqae embed`` without shards (tested on the Parquet rows and the bigWig
values).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Unpack

import h5py
import numpy as np

from seqae import embed as _embed
from seqae.embed import EmbedJob, EmbedResult, EmbedSettings, finish_job, prepare_job
from seqae.embed_bigwig import open_run_writer, track_runs, write_anomaly_bigwig
from seqae.embed_blocks import BlockRunner, prefetched_blocks
from seqae.embed_parquet import LabelRows, ParquetRows, finish_parquet, scratch_file
from seqae.errors import SeqaeError
from seqae.fileio import atomic_output, output_folder, remove_stale_temporaries
from seqae.progress import progress_bar
from seqae.windows.reader import WindowReader

#: The format attribute of a shard file.
SHARD_FORMAT = "seqae-embed-shard"


def shard_path(outdir: str | os.PathLike[str], shard: int) -> Path:
    """Where shard ``shard`` of an embedding into ``outdir`` is written."""
    return Path(outdir) / "shards" / f"embed_shard_{shard:03d}.h5"


def shard_positions(n: int, shard: int, shards: int, block_rows: int) -> tuple[int, int]:
    """Positions ``[lo, hi)`` (in genome order) of the ``n`` selected windows that shard ``shard`` embeds.

    Shards take whole blocks of ``block_rows`` windows, as evenly as blocks allow
    (a shard may be empty when there are fewer blocks than shards).

    Raises:
        SeqaeError: ``shard`` outside ``0 .. shards - 1``.
    """
    if shards < 1 or not 0 <= shard < shards:
        raise SeqaeError(f"shard {shard} of {shards}: shards are numbered 0 to {shards - 1}")
    n_blocks = -(-n // block_rows)
    lo, hi = shard * n_blocks // shards, (shard + 1) * n_blocks // shards
    return min(lo * block_rows, n), min(hi * block_rows, n)


def _genome_order(job: EmbedJob) -> np.ndarray:
    """Selected-window indices in the order shards cut them: genome order (the bigWigs' order)."""
    return job.placement.order


def embed_shard(
    model_path: str | os.PathLike[str],
    windows_path: str | os.PathLike[str],
    outdir: str | os.PathLike[str],
    shard: int,
    shards: int,
    progress: bool = True,
    **settings: Unpack[EmbedSettings],
) -> Path:
    """Embed shard ``shard`` of ``shards`` and write its file (see the module docstring); return its path.

    Other arguments as :func:`seqae.embed.embed_windows`; the same ``batch_size``,
    ``splits``, ``chrom_sizes`` and ``recon_tracks`` must be given to every shard
    and to :func:`gather_embedding`.

    Raises:
        SeqaeError: as :func:`~seqae.embed.embed_windows`, or a shard number out of range.
    """
    job = prepare_job(model_path, windows_path, outdir, **settings)
    n = len(job.rows)
    block_rows = _embed.block_rows_for(settings.get("batch_size"))
    lo, hi = shard_positions(n, shard, shards, block_rows)
    order = _genome_order(job)
    path = shard_path(outdir, shard)
    output_folder(path.parent)
    remove_stale_temporaries(path.parent, [path.name])  # a killed run of this shard left its temporary file
    bar = progress_bar(hi - lo, "embed", "window", progress)
    runner = BlockRunner(job.model, job.device, job.schema.window_len, job.batch_size, bar, job.dtype)
    with (
        contextlib.closing(bar),
        atomic_output(path) as tmp,
        h5py.File(tmp, "w") as f,
        WindowReader(windows_path) as reader,
    ):
        f.attrs.update({"format": SHARD_FORMAT, "shard": shard, "shards": shards, "n_windows": n, "lo": lo, "hi": hi})
        f.attrs["recon_tracks"] = bool(job.tracks_out)
        f.attrs["precision"] = job.precision
        f.attrs["source"] = job.source
        f["index"] = order[lo:hi]
        latent = f.create_dataset("latent", (hi - lo, job.model.layout.dim), dtype=np.float32)
        score = f.create_dataset("score", (hi - lo,), dtype=np.float32)
        accuracy = f.create_dataset("accuracy", (hi - lo,), dtype=np.float32)
        runs = f.create_group("runs")
        with contextlib.closing(prefetched_blocks(reader, job.rows, block_rows, order, positions=(lo, hi))) as blocks:
            for a, b, seq, tracks in blocks:
                out = runner.run(seq, tracks, want_tracks=bool(job.tracks_out))
                latent[a - lo : b - lo], score[a - lo : b - lo], accuracy[a - lo : b - lo] = (
                    out.latent, out.score, out.accuracy
                )  # fmt: skip
                if out.tracks is not None:
                    _store_runs(runs, a, track_runs(job.placement, order[a:b], out.tracks, job.schema.track_transform))
    return path


def _store_runs(group: h5py.Group, position: int, runs: tuple | None) -> None:
    """One block's bigWig runs (:func:`~seqae.embed_bigwig.track_runs`) under ``group/<position>``."""
    block = group.create_group(f"{position:012d}")  # names sort as positions
    if runs is None:
        return
    chrom, start, length, values = runs
    block["chrom"], block["start"], block["length"] = chrom, start, length
    block.create_dataset("values", data=np.stack(values), compression="gzip", compression_opts=1, shuffle=True)


def _open_shards(job: EmbedJob, outdir: Path, shards: int, block_rows: int) -> list[h5py.File]:
    """Every shard file, checked to be this split's (one-line :class:`SeqaeError` naming the file otherwise)."""
    n = len(job.rows)
    for k in range(shards):
        path = shard_path(outdir, k)
        if not path.is_file():
            raise SeqaeError(
                f"{path}: shard {k} of {shards} is missing (run `seqae embed --shard {k} --shards {shards}`)"
            )
    files: list[h5py.File] = []
    try:
        for k in range(shards):
            path = shard_path(outdir, k)
            try:
                f = h5py.File(path, "r")
            except OSError:
                raise SeqaeError(
                    f"{path}: not a readable HDF5 file (truncated?); run `seqae embed --shard {k} --shards {shards}` "
                    "again"
                ) from None
            files.append(f)
            want = {"format": SHARD_FORMAT, "shard": k, "shards": shards, "n_windows": n}
            lo, hi = shard_positions(n, k, shards, block_rows)
            want.update({"lo": lo, "hi": hi, "recon_tracks": bool(job.tracks_out)})
            if f.attrs.get("source", job.source) != job.source:
                raise SeqaeError(
                    f"{path}: was embedded from another model or windows file than these; embed shard {k} again "
                    "with the same --model and --windows"
                )
            for key, value in want.items():
                if key not in f.attrs or f.attrs[key] != value:
                    got = f.attrs.get(key)
                    got = got.item() if isinstance(got, np.generic) else got
                    raise SeqaeError(
                        f"{path}: not shard {k} of {shards} of these windows ({key} is {got!r}, expected {value!r}); "
                        "embed it again with the same windows, splits and batch size"
                    )
    except BaseException:
        for f in files:
            f.close()
        raise
    return files


def gather_embedding(
    model_path: str | os.PathLike[str],
    windows_path: str | os.PathLike[str],
    outdir: str | os.PathLike[str],
    shards: int,
    batch_size: int | None = None,
    splits: Sequence[str] | str | None = None,
    chrom_sizes: str | os.PathLike[str] | None = None,
    recon_tracks: bool = True,
) -> EmbedResult:
    """Write the outputs of :func:`~seqae.embed.embed_windows` from ``shards`` shard files in ``outdir/shards``.

    The model is loaded for its metadata only (on the CPU). ``batch_size``,
    ``splits``, ``chrom_sizes`` and ``recon_tracks`` must be those the shards
    were given.

    Raises:
        SeqaeError: a shard missing or from another split, as well as the errors of ``embed_windows``.
    """
    started = time.perf_counter()
    outdir = Path(outdir)
    job = prepare_job(
        model_path, windows_path, outdir, batch_size=batch_size, device="cpu", splits=splits,
        chrom_sizes=chrom_sizes, recon_tracks=recon_tracks,
    )  # fmt: skip
    n = len(job.rows)
    block_rows = _embed.block_rows_for(batch_size)
    latent = np.empty((n, job.model.layout.dim), dtype=np.float32)
    scores = np.empty(n, dtype=np.float32)
    accuracy = np.empty(n, dtype=np.float32)
    parts = _open_shards(job, outdir, shards, block_rows)
    _embed.remove_killed_temporaries(job)
    precisions = sorted({str(part.attrs.get("precision", "fp32")) for part in parts})
    if len(precisions) > 1:
        for part in parts:
            part.close()
        raise SeqaeError(
            f"{outdir / 'shards'}: the shards were embedded at different precisions ({', '.join(precisions)})"
        )
    precision = precisions[0]
    use_processes = len(job.tracks_out) > 0 and n >= _embed._PROCESS_WRITERS_MIN_WINDOWS
    with contextlib.ExitStack() as stack:
        for part in parts:
            stack.callback(part.close)
        for part in parts:
            index = part["index"][:]
            latent[index], scores[index], accuracy[index] = part["latent"][:], part["score"][:], part["accuracy"][:]
        tmp_parquet = stack.enter_context(atomic_output(job.paths["embeddings"]))
        tmp_anomaly = stack.enter_context(atomic_output(job.paths["anomaly"]))
        tmp_tracks = [stack.enter_context(atomic_output(path)) for path in job.tracks_out.values()]
        stack.push(_embed.replaced_on_success(job))  # exits before the renames above
        scratch = stack.enter_context(scratch_file(outdir, ".embeddings.parquet.", ".part"))
        # Entered last, so closed (or, after an error, abandoned) before the renames above.
        writers = [stack.enter_context(open_run_writer(tmp, job.placement.header, use_processes)) for tmp in tmp_tracks]
        # The runs in the order the single job sends them: shard by shard, block by block.
        for part in parts:
            for name in sorted(part["runs"]):
                block = part["runs"][name]
                if "chrom" not in block:
                    continue
                chrom, start, length = block["chrom"][:], block["start"][:], block["length"][:]
                values = block["values"][:]
                for t, writer in enumerate(writers):
                    writer.add_runs(chrom, start, length, values[t])
        for writer in writers:
            writer.close()
        # Parquet row groups in file order, as the single job writes them.
        rows_table = LabelRows(job.labels, job.rows)
        parquet = ParquetRows(scratch, rows_table.schema, job.column_names)
        stack.callback(parquet.close)
        for lo in range(0, n, block_rows):
            hi = min(lo + block_rows, n)
            parquet.write(rows_table.slice(lo, hi), latent[lo:hi], scores[lo:hi], accuracy[lo:hi])
        parquet.close()
        write_anomaly_bigwig(tmp_anomaly, job.placement, scores)
        finish_parquet(scratch, tmp_parquet, scores, {"seqae": json.dumps(job.metadata_json)})
    # The shards' precision, not this process's: the summary file says what the embeddings were computed at.
    return finish_job(job, started, n, {"precision": precision, "shards": shards})


__all__ = ["embed_shard", "gather_embedding", "shard_path", "shard_positions"]
