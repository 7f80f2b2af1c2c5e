"""Embed every window of a windows file with a trained model: latents, anomaly scores, reconstructed tracks.

:func:`embed_windows` runs a model file (``best.pt``) over the windows of a
windows file (all of them, or some splits) and writes into ``outdir``:

``embeddings.parquet``
    One row per window, in file order: every label column of the windows
    file, then one float32 column per latent coordinate named
    ``z_<block>_<i>`` (``z_chrom_00``, ``z_chrom_01``, ..., the index zero-padded to
    the block's width), then ``anomaly_score`` (the model's
    :meth:`~seqae.models.SequenceAutoencoder.anomaly_score`: the sequence's
    cross-entropy in nats per non-N base, for a two-level model its decoder's
    chain's, plus ``weights.tracks`` x the track error), ``anomaly_rank`` (1 = most anomalous; ties keep file order) and
    ``seq_recon_accuracy`` (fraction of the non-N bases whose arg-max logit is
    the stored base; NaN for a window without a called base; for an
    autoregressive decoder the logits are given the true previous bases, so
    this is next-base accuracy, and ``seqae evaluate`` gives the accuracy of
    bases decoded from the latent alone). Plain Parquet
    (zstd), opened by pandas, Polars or R's arrow without options; the
    key-value metadata ``seqae`` holds the model, the latent blocks and the
    windows file as JSON.
``embeddings.h5ad``
    The same as AnnData for scanpy (:mod:`seqae.anndata_out`): labels and
    scores in ``obs``, the latent in ``X``, one ``obsm`` matrix per block.
``recon_<track>.bw``
    The decoder's per-base track on the bigWig's own scale (the stored
    transform inverted, no clamping), over the window proper of every window.
``anomaly.bw``
    The window's anomaly score as a constant over its window proper.
``embed_summary.json``
    ``n_windows``, ``seconds``, ``windows_per_second``, ``device`` and the inputs.

Overlapping windows in the bigWigs (entries of a bigWig may not overlap): a
base takes the value of the window whose centre (``start + window_len // 2``)
is nearest; at equal distance, and for windows with the same start, the
later window (larger start, then later in the file) wins. Equivalently each
window keeps the part of its window proper between the midpoints to its
neighbours' centres, so every window owns at least its own centre.

Chromosome names and sizes: with one species in the windows file the
bigWigs use the FASTA's chromosome names; with several (the ``species``
label) every name is prefixed ``<species>:`` so that chromosomes of different
genomes stay apart. The windows file does not store chromosome lengths, so
without ``chrom_sizes`` a chromosome's size in the bigWig header is the furthest base the
file holds on it (largest window end plus the stored flank). That is enough
to view the windows, but genome browsers need the real sizes to place the
tracks on a whole-genome view and to overlay them with other tracks of the
assembly: pass ``chrom_sizes`` (a UCSC ``chrom.sizes`` file: name and length,
tab-separated; with several species the names may carry the ``species:``
prefix, else the bare name is used). ``seqae extract`` writes one beside the
windows file (``chrom.sizes``), and the workflow's embed rules pass it.

Performance: windows are read in blocks of ``_BLOCK_ROWS`` rows; the HDF5
chunks of a block are decompressed in parallel threads while the previous
block is on the model, and outputs are written by a background thread, so
neither reading nor writing holds up the model. Writing a per-base bigWig
costs libBigWig about 0.4 ms per window and track (compression and zoom
levels, in one thread, holding the GIL), which is slower than a GPU embeds;
for large inputs each reconstructed track is therefore written by its own
process (see :class:`seqae.embed_bigwig.ProcessRunWriter`). ``recon_tracks=False`` skips them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypedDict, Unpack

import numpy as np

from seqae.embed_bigwig import open_run_writer, send_tracks, write_anomaly_bigwig
from seqae.embed_blocks import BlockRunner, prefetched_blocks
from seqae.embed_parquet import LabelRows, ParquetRows, finish_parquet, scratch_file
from seqae.embed_placement import Placement, place_windows
from seqae.errors import SeqaeError
from seqae.fileio import remove_earlier_outputs
from seqae.progress import progress_bar
from seqae.windows.reader import WindowReader

log = logging.getLogger("seqae")

# Rows read from the windows file per block (and per Parquet row group): large
# enough that reads and device transfers are few and big, small enough that
# a block's reconstructed tracks ([rows, T, window_len] float32) stay ~100 MB.
_BLOCK_ROWS = 8192
# From this many windows on, each reconstructed-track bigWig is written by its
# own process (a few hundred ms to start; libBigWig holds the GIL).
_PROCESS_WRITERS_MIN_WINDOWS = 2_000


@dataclass(frozen=True)
class EmbedResult:
    """What :func:`embed_windows` wrote.

    Attributes:
        paths: ``embeddings`` (Parquet), ``anomaly`` (bigWig), ``recon_<track>``
            (bigWig, one per track), ``summary`` (JSON).
        summary: ``n_windows``, ``seconds``, ``windows_per_second``, ``device``,
            and the inputs; the content of ``embed_summary.json``.
    """

    paths: dict[str, Path]
    summary: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------- public API


def embed_windows(
    model_path: str | os.PathLike[str],
    windows_path: str | os.PathLike[str],
    outdir: str | os.PathLike[str],
    batch_size: int | None = None,
    device: str | Any | None = None,
    splits: Sequence[str] | str | None = None,
    progress: bool = True,
    chrom_sizes: str | os.PathLike[str] | None = None,
    recon_tracks: bool = True,
    threads: int | None = None,
    precision: str = "auto",
) -> EmbedResult:
    """Embed the windows of a windows file; write Parquet, bigWigs and a summary (see the module docstring).

    Args:
        model_path: a model file (``best.pt``) or training checkpoint.
        windows_path: the windows HDF5 file.
        outdir: output folder (created if needed); every file in it is
            written to a temporary name and renamed when complete.
        batch_size: windows per forward pass; None: the device's default
            (:func:`seqae.runtime.forward_batch_size`: 512 on a GPU, 32 on the CPU).
        device: ``auto``/None (CUDA when available), ``cpu``, ``cuda`` or a
            ``torch.device``. On CUDA the model runs under bf16 autocast.
        splits: split names to embed (``train``, ``val``, ``test``); None embeds all.
        progress: show a tqdm bar.
        chrom_sizes: UCSC ``chrom.sizes`` file for the bigWig headers (see the
            module docstring); None derives sizes from the windows.
        recon_tracks: write ``recon_<track>.bw`` files.
        threads: CPU threads of the model's kernels (None: torch's default).
        precision: ``auto``, ``fp32`` or ``bf16``, the model's autocast
            (:func:`seqae.inference.precision_dtype`); ``auto`` is bf16 on CUDA
            and on CPUs with AMX or AVX512-BF16, where the job ran 1.0-1.4x as
            fast as fp32 in ``benchmarks/bench_embed.py`` (latents differ from
            fp32's by about 1e-3, scores by about 3e-4 nats per base), else fp32.

    Returns:
        :class:`EmbedResult`.

    Raises:
        SeqaeError: the model does not fit the windows file (window length,
            tracks or track transform, named in one line), unknown splits, no
            window selected, a bad chrom.sizes file, CUDA asked for but absent.
    """
    from seqae.fileio import atomic_output

    started = time.perf_counter()
    job = prepare_job(
        model_path, windows_path, outdir, batch_size=batch_size, device=device, splits=splits,
        chrom_sizes=chrom_sizes, recon_tracks=recon_tracks, threads=threads, precision=precision,
    )  # fmt: skip
    model, schema, labels, rows, placement = job.model, job.schema, job.labels, job.rows, job.placement
    paths, tracks_out, column_names, torch_device = job.paths, job.tracks_out, job.column_names, job.device
    remove_killed_temporaries(job)

    n = len(rows)
    use_processes = len(tracks_out) > 0 and n >= _PROCESS_WRITERS_MIN_WINDOWS
    passes = 1 if placement.genome_sorted or not tracks_out else 2
    bar = progress_bar(n * passes, "embed", "window", progress)
    scores = np.empty(n, dtype=np.float32)
    with contextlib.ExitStack() as stack:
        stack.callback(bar.close)
        tmp_parquet = stack.enter_context(atomic_output(paths["embeddings"]))
        tmp_anomaly = stack.enter_context(atomic_output(paths["anomaly"]))
        tmp_tracks = {name: stack.enter_context(atomic_output(path)) for name, path in tracks_out.items()}
        stack.push(replaced_on_success(job))  # exits before the renames above
        scratch = stack.enter_context(scratch_file(outdir, ".embeddings.parquet.", ".part"))
        # Entered last, so closed (or, after an error, abandoned) before the renames above.
        writers = [
            stack.enter_context(open_run_writer(tmp, placement.header, use_processes)) for tmp in tmp_tracks.values()
        ]
        rows_table = LabelRows(labels, rows)
        parquet = ParquetRows(scratch, rows_table.schema, column_names)
        stack.callback(parquet.close)
        reader = stack.enter_context(WindowReader(windows_path))
        # Exits before the writers and the reader: waits for the task in flight.
        background = stack.enter_context(_Background())
        runner = BlockRunner(model, torch_device, schema.window_len, job.batch_size, bar, job.dtype)

        # Pass 1, file order: Parquet rows; bigWig entries too when file order is genome order.
        block_rows = block_rows_for(batch_size)
        blocks = stack.enter_context(contextlib.closing(prefetched_blocks(reader, rows, block_rows)))
        for lo, hi, seq, tracks in blocks:
            out = runner.run(seq, tracks, want_tracks=bool(writers) and placement.genome_sorted)
            scores[lo:hi] = out.score
            background.submit(parquet.write, rows_table.slice(lo, hi), out.latent, out.score, out.accuracy)
            if out.tracks is not None:
                background.submit(
                    send_tracks, writers, placement, np.arange(lo, hi), out.tracks, schema.track_transform
                )
        background.drain()
        parquet.close()
        # Pass 2, only for a file not in genome order: tracks in genome order.
        if passes == 2:
            blocks = stack.enter_context(
                contextlib.closing(prefetched_blocks(reader, rows, block_rows, placement.order))
            )
            for lo, hi, seq, tracks in blocks:
                out = runner.run(seq, tracks, want_tracks=True)
                idx = placement.order[lo:hi]
                background.submit(send_tracks, writers, placement, idx, out.tracks, schema.track_transform)
            background.drain()
        for writer in writers:
            writer.close()
        write_anomaly_bigwig(tmp_anomaly, placement, scores)
        finish_parquet(scratch, tmp_parquet, scores, {"seqae": json.dumps(job.metadata_json)})
    return finish_job(job, started, n)


@dataclass
class EmbedJob:
    """What every embedding step (a whole run, a shard, the gather) derives from the same inputs.

    ``rows`` are the selected file rows (increasing); ``placement`` places them in the bigWigs;
    ``paths`` are the outputs (see :class:`EmbedResult`); ``tracks_out`` the recon bigWigs by track.
    """

    model: Any
    device: Any
    schema: Any
    labels: Any
    rows: np.ndarray
    placement: Placement
    paths: dict[str, Path]
    tracks_out: dict[str, Path]
    column_names: list[str]
    metadata_json: dict[str, Any]
    batch_size: int
    dtype: Any = None  # the model's autocast dtype (None: full fp32)
    source: str = ""  # digest of the model and the windows' labels: shards of other inputs are not gathered

    @property
    def precision(self) -> str:
        """``fp32`` or ``bf16``: the precision the model runs at."""
        return "fp32" if self.dtype is None else "bf16"


class EmbedSettings(TypedDict, total=False):
    """The keyword arguments of :func:`embed_windows` that every embedding step takes (same meaning and defaults)."""

    batch_size: int | None
    device: str | Any | None
    splits: Sequence[str] | str | None
    chrom_sizes: str | os.PathLike[str] | None
    recon_tracks: bool
    threads: int | None
    precision: str


def prepare_job(
    model_path: str | os.PathLike[str],
    windows_path: str | os.PathLike[str],
    outdir: str | os.PathLike[str],
    **settings: Unpack[EmbedSettings],
) -> EmbedJob:
    """Load the model and the labels, select and place the windows (arguments as :func:`embed_windows`).

    Raises:
        SeqaeError: as :func:`embed_windows`.
    """
    from seqae.checkpoint import check_model_fits, load_model
    from seqae.runtime import forward_batch_size, resolve_device
    from seqae.windows.store import read_labels, read_schema, windows_fingerprint

    batch_size, splits = settings.get("batch_size"), settings.get("splits")
    chrom_sizes, recon_tracks = settings.get("chrom_sizes"), settings.get("recon_tracks", True)
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise SeqaeError(f"batch size must be a positive integer, got {batch_size!r}")
    set_threads(settings.get("threads"))
    outdir = Path(outdir)
    torch_device = resolve_device(settings.get("device"))
    dtype = _model_dtype(settings.get("precision", "auto"), torch_device)
    schema = read_schema(windows_path)
    model, metadata = load_model(model_path, torch_device)
    check_model_fits(metadata, schema, model_path, windows_path)
    labels = read_labels(windows_path)
    rows = select_rows(labels, splits, windows_path)
    placement = place_windows(labels, rows, schema.window_len, schema.flank, chrom_sizes, windows_path)
    tracks_out = {name: outdir / f"recon_{_file_safe(name)}.bw" for name in schema.track_names} if recon_tracks else {}
    paths = {"embeddings": outdir / "embeddings.parquet", "anomaly": outdir / "anomaly.bw"}
    paths.update({f"recon_{name}": path for name, path in tracks_out.items()})
    paths["h5ad"] = outdir / "embeddings.h5ad"  # seqae.anndata_out, from the Parquet
    paths["summary"] = outdir / "embed_summary.json"
    metadata_json = {
        "model": str(model_path),
        "model_name": metadata.get("model_name"),
        "windows": str(windows_path),
        "splits": None if splits is None else list([splits] if isinstance(splits, str) else splits),
        "latent_blocks": {name: [s.start, s.stop] for name in model.layout.names for s in [model.layout.slice(name)]},
    }
    column_names = latent_column_names(model.layout.sizes)
    source = {key: metadata.get(key) for key in ("model_name", "epoch", "step", "val_loss", "seqae_version")}
    source["windows"] = windows_fingerprint(windows_path, labels)
    return EmbedJob(
        model, torch_device, schema, labels, rows, placement, paths, tracks_out, column_names, metadata_json,
        forward_batch_size(batch_size, torch_device), dtype,
        hashlib.sha256(json.dumps(source, sort_keys=True, default=str).encode()).hexdigest(),
    )  # fmt: skip


def _model_dtype(precision: str, device: Any) -> Any:
    """The autocast dtype of ``precision`` on ``device`` (None: fp32); a one-line error for an unknown one,
    a warning where bf16 is asked of a CPU that emulates it."""
    from seqae import inference, runtime

    try:
        dtype = inference.precision_dtype(precision, device)
    except ValueError as exc:
        raise SeqaeError(str(exc)) from None
    if dtype is not None and device.type == "cpu" and not runtime.cpu_has_native_bf16():
        log.warning(
            "precision bf16 on a CPU without bf16 instructions (AMX, AVX512-BF16) is emulated and slower than fp32"
        )
    return dtype


def set_threads(threads: int | None) -> None:
    """Let torch's CPU kernels use ``threads`` threads (None: torch's default, every core it sees).

    On a cluster node shared with other jobs torch's default oversubscribes the
    CPUs the job was given; the workflow passes the rule's ``threads``.
    """
    import torch

    if threads is not None:
        if threads < 1:
            raise SeqaeError(f"threads must be a positive integer, got {threads}")
        torch.set_num_threads(threads)


def block_rows_for(requested_batch: int | None) -> int:
    """Rows per block read from the windows file: ``_BLOCK_ROWS`` (read at call time; tests shrink
    it), or a larger requested batch. The requested batch only, never the device's default, so
    that shards on any device and their gather cut the file on the grid one job does."""
    return max(_BLOCK_ROWS, requested_batch or 0)


#: What an embedding writes in its folder, as globs (the bigWigs of any model's tracks).
OUTPUT_PATTERNS = ("embeddings.parquet", "embeddings.h5ad", "anomaly.bw", "recon_*.bw", "embed_summary.json")


def remove_killed_temporaries(job: EmbedJob) -> None:
    """Remove the hidden temporaries a killed embedding left in the job's folder (bigWigs of GBs).

    Call once the inputs are checked, before this run writes any.
    """
    folder = job.paths["summary"].parent
    removed = remove_earlier_outputs(folder, [f".{pattern}.*" for pattern in OUTPUT_PATTERNS])
    if removed:
        log.info("%s: removed %d temporary files of a killed run (%s)", folder, len(removed),
                 ", ".join(path.name for path in removed[:3]))  # fmt: skip


def replaced_on_success(job: EmbedJob) -> Callable[..., bool]:
    """An exit callback (``ExitStack.push``) that removes an earlier embedding's outputs once this run's are
    complete, before they are renamed into place.

    The outputs are renamed one at a time: a run killed between two renames over another model's outputs
    left a folder that mixed both models, with nothing to tell. Removed first, a killed run leaves some of
    its own outputs and no summary. A run that fails leaves the earlier outputs as they were.
    """

    def remove(exc_type: type[BaseException] | None, *_: object) -> bool:
        if exc_type is None:
            remove_earlier_outputs(job.paths["summary"].parent, OUTPUT_PATTERNS)
        return False

    return remove


def finish_job(job: EmbedJob, started: float, n: int, extra: dict[str, Any] | None = None) -> EmbedResult:
    """The AnnData file (from the finished Parquet) and ``embed_summary.json``; the result of the run.

    ``extra`` keys go into the summary last (a sharded run's precision and shard count).
    """
    from seqae.anndata_out import write_h5ad
    from seqae.fileio import atomic_output

    write_h5ad(job.paths["embeddings"], job.paths["h5ad"])
    seconds = time.perf_counter() - started
    summary = {
        "n_windows": n,
        "seconds": round(seconds, 3),
        "windows_per_second": round(n / seconds, 1) if seconds > 0 else None,
        "device": str(job.device),
        "precision": job.precision,
        "batch_size": job.batch_size,
        **job.metadata_json,
        "latent_dim": job.model.layout.dim,
        "outputs": {key: path.name for key, path in job.paths.items()},
        **(extra or {}),
    }
    with atomic_output(job.paths["summary"]) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    return EmbedResult(paths=job.paths, summary=summary)


def select_rows(labels: Any, splits: Sequence[str] | str | None, windows_path: Any = "windows file") -> np.ndarray:
    """File rows (``int64``, increasing) of the windows in ``splits`` (all when None).

    Raises:
        SeqaeError: a split name absent from the file, or no window selected.
    """
    if splits is None:
        rows = np.arange(len(labels), dtype=np.int64)
    else:
        wanted = [splits] if isinstance(splits, str) else list(splits)
        present = sorted(labels["split"].astype(str).unique()) if "split" in labels else []
        unknown = [s for s in wanted if s not in present]
        if unknown:
            raise SeqaeError(f"{windows_path}: no split {unknown[0]!r} (splits: {', '.join(present) or 'none'})")
        rows = np.flatnonzero(labels["split"].isin(wanted).to_numpy()).astype(np.int64)
    if len(rows) == 0:
        raise SeqaeError(f"{windows_path}: no windows to embed")
    return rows


def latent_column_names(sizes: dict[str, int]) -> list[str]:
    """``z_<block>_<i>`` for every latent coordinate in layout order, ``i`` zero-padded to the block's width (>= 2).

    The ``z_`` prefix is one no label column has, so a block's columns are
    selected by prefix (``z_gene_``) without catching ``gene_id`` or ``gene_name``.
    """
    names = []
    for block, size in sizes.items():
        width = max(2, len(str(size - 1)))
        names.extend(f"z_{block}_{i:0{width}d}" for i in range(size))
    return names


# ---------------------------------------------------------------------- small helpers


class _Background:
    """Runs tasks one at a time, in submission order, in a thread; at most ``depth`` wait.

    A task's exception is raised by a later ``submit`` or by ``drain``.
    """

    def __init__(self, depth: int = 2):
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed-writer")
        self.pending: deque[Future[Any]] = deque()
        self.depth = depth

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self.pending.append(self.pool.submit(fn, *args))
        while len(self.pending) > self.depth or (self.pending and self.pending[0].done()):
            self.pending.popleft().result()

    def drain(self) -> None:
        while self.pending:
            self.pending.popleft().result()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        for future in self.pending:
            future.cancel()
        self.pool.shutdown(wait=True)


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "track"


__all__ = [
    "EmbedJob",
    "EmbedResult",
    "EmbedSettings",
    "block_rows_for",
    "embed_windows",
    "finish_job",
    "latent_column_names",
    "prepare_job",
    "select_rows",
]
