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
by default a chromosome's size in the bigWig header is the furthest base the
file holds on it (largest window end plus the stored flank). That is enough
to view the windows, but genome browsers need the real sizes to place the
tracks on a whole-genome view and to overlay them with other tracks of the
assembly: pass ``chrom_sizes`` (a UCSC ``chrom.sizes`` file: name and length,
tab-separated; with several species the names may carry the ``species:``
prefix, else the bare name is used).

Performance: windows are read in blocks of ``_BLOCK_ROWS`` rows; the HDF5
chunks of a block are decompressed in parallel threads while the previous
block is on the model, and outputs are written by a background thread, so
neither reading nor writing holds up the model. Writing a per-base bigWig
costs libBigWig about 0.4 ms per window and track (compression and zoom
levels, in one thread, holding the GIL), which is slower than a GPU embeds;
for large inputs each reconstructed track is therefore written by its own
process (see :class:`_ProcessRunWriter`). ``recon_tracks=False`` skips them.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypedDict, Unpack

import numpy as np

from seqae.bigwig_writer import BigWigWriter
from seqae.errors import InputError, SeqaeError
from seqae.progress import progress_bar
from seqae.windows.reader import WindowReader

# Rows read from the windows file per block (and per Parquet row group): large
# enough that reads and device transfers are few and big, small enough that
# a block's reconstructed tracks ([rows, T, window_len] float32) stay ~100 MB.
_BLOCK_ROWS = 8192
# Zoom levels of the bigWigs (libBigWig's default is 10). Each level costs
# writing time; 6 levels summarise down to ~4 kb per value, enough for a
# browser to draw a whole chromosome of windows without reading every base.
_ZOOM_LEVELS = 6
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
        chrom_sizes=chrom_sizes, recon_tracks=recon_tracks, threads=threads,
    )  # fmt: skip
    model, schema, labels, rows, placement = job.model, job.schema, job.labels, job.rows, job.placement
    paths, tracks_out, column_names, torch_device = job.paths, job.tracks_out, job.column_names, job.device

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
        scratch = stack.enter_context(_scratch_file(outdir, ".embeddings.parquet.", ".part"))
        # Entered last, so closed (or, after an error, abandoned) before the renames above.
        writers = [
            stack.enter_context(_open_run_writer(tmp, placement.header, use_processes)) for tmp in tmp_tracks.values()
        ]
        rows_table = _LabelRows(labels, rows)
        parquet = _ParquetRows(scratch, rows_table.schema, column_names)
        stack.callback(parquet.close)
        reader = stack.enter_context(WindowReader(windows_path))
        # Exits before the writers and the reader: waits for the task in flight.
        background = stack.enter_context(_Background())
        runner = _BlockRunner(model, torch_device, schema.window_len, job.batch_size, bar)

        # Pass 1, file order: Parquet rows; bigWig entries too when file order is genome order.
        block_rows = block_rows_for(batch_size)
        blocks = stack.enter_context(contextlib.closing(_prefetched(reader, rows, block_rows)))
        for lo, hi, seq, tracks in blocks:
            out = runner.run(seq, tracks, want_tracks=bool(writers) and placement.genome_sorted)
            scores[lo:hi] = out.score
            background.submit(parquet.write, rows_table.slice(lo, hi), out.latent, out.score, out.accuracy)
            if out.tracks is not None:
                background.submit(
                    _send_tracks, writers, placement, np.arange(lo, hi), out.tracks, schema.track_transform
                )
        background.drain()
        parquet.close()
        # Pass 2, only for a file not in genome order: tracks in genome order.
        if passes == 2:
            blocks = stack.enter_context(contextlib.closing(_prefetched(reader, rows, block_rows, placement.order)))
            for lo, hi, seq, tracks in blocks:
                out = runner.run(seq, tracks, want_tracks=True)
                idx = placement.order[lo:hi]
                background.submit(_send_tracks, writers, placement, idx, out.tracks, schema.track_transform)
            background.drain()
        for writer in writers:
            writer.close()
        _write_anomaly_bigwig(tmp_anomaly, placement, scores)
        _finish_parquet(scratch, tmp_parquet, scores, {"seqae": json.dumps(job.metadata_json)})
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


class EmbedSettings(TypedDict, total=False):
    """The keyword arguments of :func:`embed_windows` that every embedding step takes (same meaning and defaults)."""

    batch_size: int | None
    device: str | Any | None
    splits: Sequence[str] | str | None
    chrom_sizes: str | os.PathLike[str] | None
    recon_tracks: bool
    threads: int | None


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
    from seqae.checkpoint import load_model
    from seqae.runtime import forward_batch_size, resolve_device
    from seqae.windows.store import read_labels, read_schema

    batch_size, splits = settings.get("batch_size"), settings.get("splits")
    chrom_sizes, recon_tracks = settings.get("chrom_sizes"), settings.get("recon_tracks", True)
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise SeqaeError(f"batch size must be a positive integer, got {batch_size!r}")
    set_threads(settings.get("threads"))
    outdir = Path(outdir)
    torch_device = resolve_device(settings.get("device"))
    schema = read_schema(windows_path)
    model, metadata = load_model(model_path, torch_device)
    check_model_fits(metadata, schema, model_path, windows_path)
    labels = read_labels(windows_path)
    rows = select_rows(labels, splits, windows_path)
    placement = place_windows(labels, rows, schema.window_len, schema.flank, chrom_sizes)
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
    return EmbedJob(
        model, torch_device, schema, labels, rows, placement, paths, tracks_out, column_names, metadata_json,
        forward_batch_size(batch_size, torch_device),
    )  # fmt: skip


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


def finish_job(job: EmbedJob, started: float, n: int) -> EmbedResult:
    """The AnnData file (from the finished Parquet) and ``embed_summary.json``; the result of the run."""
    from seqae.anndata_out import write_h5ad
    from seqae.fileio import atomic_output

    write_h5ad(job.paths["embeddings"], job.paths["h5ad"])
    seconds = time.perf_counter() - started
    summary = {
        "n_windows": n,
        "seconds": round(seconds, 3),
        "windows_per_second": round(n / seconds, 1) if seconds > 0 else None,
        "device": str(job.device),
        "batch_size": job.batch_size,
        **job.metadata_json,
        "latent_dim": job.model.layout.dim,
        "outputs": {key: path.name for key, path in job.paths.items()},
    }
    with atomic_output(job.paths["summary"]) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    return EmbedResult(paths=job.paths, summary=summary)


def check_model_fits(metadata: dict[str, Any], schema: Any, model_path: Any, windows_path: Any) -> None:
    """Raise a one-line :class:`SeqaeError` naming the first of window length, tracks, track transform
    in which a model (its ``load_model`` metadata) differs from a windows file's :class:`~seqae.windows.store.WindowsSchema`.

    The flank may differ: the model reads the centre crop.
    """
    init = metadata.get("model_init", {})
    trained = dict(metadata.get("data", {}).get("schema", {}))
    trained.setdefault("window_len", init.get("window_len"))
    trained.setdefault("track_transform", init.get("track_transform"))
    model_tracks = trained.get("track_names")
    here = f"{windows_path}: does not fit the model {model_path}"
    if trained["window_len"] != schema.window_len or init.get("window_len", schema.window_len) != schema.window_len:
        raise SeqaeError(f"{here}: window_len is {schema.window_len} here, {trained['window_len']} for the model")
    if init.get("n_tracks", len(schema.track_names)) != len(schema.track_names) or (
        model_tracks is not None and list(model_tracks) != list(schema.track_names)
    ):
        theirs = list(model_tracks) if model_tracks is not None else f"{init.get('n_tracks')} tracks"
        raise SeqaeError(f"{here}: tracks are {list(schema.track_names)} here, {theirs} for the model")
    if trained["track_transform"] != schema.track_transform:
        raise SeqaeError(
            f"{here}: track_transform is {schema.track_transform!r} here, {trained['track_transform']!r} for the model"
        )


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


def read_chrom_sizes(path: str | os.PathLike[str]) -> dict[str, int]:
    """A UCSC ``chrom.sizes`` file: ``name<TAB>length`` per line (extra columns and ``#`` lines ignored).

    Raises:
        InputError: missing file, a line without a positive integer length, a name given twice.
    """
    from seqae.fileio import require_file

    p = require_file(path, "chrom sizes file")
    sizes: dict[str, int] = {}
    with open(p) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split()
            if len(fields) < 2 or not fields[1].isdigit() or int(fields[1]) < 1:
                raise InputError(p, "expected a chromosome name and a positive length", number)
            if fields[0] in sizes:
                raise InputError(p, f"chromosome {fields[0]!r} given twice", number)
            sizes[fields[0]] = int(fields[1])
    if not sizes:
        raise InputError(p, "no chromosome sizes in the file")
    return sizes


# ---------------------------------------------------------------------- genome placement


@dataclass(frozen=True)
class Placement:
    """Where the selected windows go in the bigWigs.

    Attributes (arrays indexed by selected window, in file order):
        header: ``(name, size)`` per bigWig chromosome, in the order entries are written.
        chrom: ``int64`` index into ``header``.
        start: ``int64`` start of the window proper.
        own_start, own_end: ``int64`` the bases this window writes (empty when equal);
            disjoint, see the module docstring for the rule.
        order: ``int64`` window indices in genome order (header order, then start; stable).
        genome_sorted: whether file order already is genome order (``order`` is the identity).
    """

    header: list[tuple[str, int]]
    chrom: np.ndarray
    start: np.ndarray
    own_start: np.ndarray
    own_end: np.ndarray
    order: np.ndarray
    genome_sorted: bool


def place_windows(
    labels: Any,
    rows: np.ndarray,
    window_len: int,
    flank: int = 0,
    chrom_sizes: str | os.PathLike[str] | dict[str, int] | None = None,
) -> Placement:
    """Chromosome names, header sizes and owned intervals of the windows ``rows`` of a label table.

    Names are ``species:chrom`` when the file holds several species. Chromosomes
    are ordered by first appearance in the file (the FASTA's order for files
    written by ``seqae extract``).

    Raises:
        SeqaeError: with ``chrom_sizes``, a chromosome missing from it or shorter than a window's end.
    """
    import pandas as pd

    chrom = labels["chrom"].astype(str).to_numpy()
    if "species" in labels and labels["species"].nunique() > 1:
        names = (labels["species"].astype(str) + ":" + labels["chrom"].astype(str)).to_numpy()
    else:
        names = chrom
    codes, uniques = pd.factorize(names)
    codes = codes.astype(np.int64)
    ends = labels["end"].to_numpy(dtype=np.int64)
    furthest = np.zeros(len(uniques), dtype=np.int64)
    np.maximum.at(furthest, codes, ends)
    if chrom_sizes is None:
        sizes = (furthest + flank).tolist()
    else:
        given = chrom_sizes if isinstance(chrom_sizes, dict) else read_chrom_sizes(chrom_sizes)
        first_row = np.unique(codes, return_index=True)[1]
        sizes = []
        for k, name in enumerate(uniques):
            bare = chrom[first_row[k]]
            size = given.get(name, given.get(bare))
            if size is None:
                raise SeqaeError(f"{chrom_sizes}: no size for chromosome {name!r} of the windows file")
            if size < furthest[k]:
                raise SeqaeError(f"{chrom_sizes}: {name!r} is {size} bp but a window ends at {furthest[k]}")
            sizes.append(int(size))
    header = [(str(name), int(size)) for name, size in zip(uniques, sizes, strict=True)]

    code = codes[rows]
    start = labels["start"].to_numpy(dtype=np.int64)[rows]
    order = np.lexsort((start, code)).astype(np.int64)  # stable
    genome_sorted = bool(np.array_equal(order, np.arange(len(order))))
    own_start = np.empty_like(start)
    own_end = np.empty_like(start)
    own_start[order], own_end[order] = owned_intervals(code[order], start[order], window_len)
    return Placement(header, code, start, own_start, own_end, order, genome_sorted)


def owned_intervals(chrom: np.ndarray, start: np.ndarray, window_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The bases each window writes to a bigWig, for windows in genome order: ``(own_start, own_end)``, ``int64 [n]``.

    Base ``p`` goes to the window whose centre ``start + window_len // 2`` is
    nearest, the later one at equal distance; a window with the same start as
    the next one owns nothing (the later wins). Intervals are disjoint, lie in
    their windows proper and cover their union.
    """
    start = np.asarray(start, dtype=np.int64)
    chrom = np.asarray(chrom)
    n = len(start)
    own_start, own_end = start.copy(), start.copy()
    if n == 0:
        return own_start, own_end
    same_next = np.r_[chrom[1:] == chrom[:-1], False]
    keep = ~(same_next & np.r_[start[1:] == start[:-1], False])
    c, s = chrom[keep], start[keep]
    e = s + window_len
    centre = s + window_len // 2
    same = c[1:] == c[:-1]
    # Bases at or past the cut are nearer the next centre (or tied): they go to the next window.
    cut = (centre[:-1] + centre[1:] + 1) // 2
    lo, hi = s.copy(), e.copy()
    hi[:-1] = np.where(same, np.minimum(e[:-1], cut), e[:-1])
    lo[1:] = np.where(same, np.maximum(s[1:], cut), s[1:])
    own_start[keep], own_end[keep] = lo, hi
    return own_start, own_end


# ---------------------------------------------------------------------- reading


def _prefetched(
    reader: WindowReader,
    rows: np.ndarray,
    block_rows: int,
    order: np.ndarray | None = None,
    positions: tuple[int, int] | None = None,
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """``(lo, hi, seq, tracks)`` per block of selected windows ``order[lo:hi]`` (identity when None),
    the next block read in a thread while the caller works on this one. ``positions`` ``(first, end)``:
    only the blocks of those positions (a shard's, ``first`` a multiple of ``block_rows``)."""
    first, n = positions if positions is not None else (0, len(rows))

    def load(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        if order is None:
            return reader.read(rows[lo:hi])
        idx = order[lo:hi]
        by_row = np.argsort(rows[idx], kind="stable")
        seq, tracks = reader.read(rows[idx][by_row])
        back = np.empty_like(by_row)
        back[by_row] = np.arange(len(by_row))
        return seq[back], tracks[back]

    starts = list(range(first, n, block_rows))
    if not starts:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        pending = pool.submit(load, first, min(first + block_rows, n))
        for k, lo in enumerate(starts):
            hi = min(lo + block_rows, n)
            seq, tracks = pending.result()
            if k + 1 < len(starts):
                pending = pool.submit(load, hi, min(hi + block_rows, n))
            yield lo, hi, seq, tracks


# ---------------------------------------------------------------------- the model


@dataclass
class _BlockOutput:
    latent: np.ndarray  # float32 [n, D]
    score: np.ndarray  # float32 [n]
    accuracy: np.ndarray  # float32 [n]
    tracks: np.ndarray | None  # float32 [n, T, L] on the stored scale, or None


class _BlockRunner:
    """Runs the model over a block of stored windows in batches; results come back to the host once per block."""

    def __init__(self, model: Any, device: Any, window_len: int, batch_size: int, bar: Any):
        self.model = model.eval()
        self.device = device
        self.window_len = window_len
        self.batch_size = batch_size
        self.bar = bar

    def run(self, seq: np.ndarray, tracks: np.ndarray, want_tracks: bool) -> _BlockOutput:
        """``seq uint8 [n, seq_len]``, ``tracks [n, T, seq_len]`` as stored -> outputs of the centre crops."""
        import torch

        from seqae.alphabet import CODE_N
        from seqae.models.augment import centre_crop

        model, device = self.model, self.device
        autocast = (
            torch.autocast(device_type="cuda", dtype=torch.bfloat16)
            if device.type == "cuda"
            else contextlib.nullcontext()
        )
        latents, scores, accuracies, recon = [], [], [], []
        with torch.inference_mode():
            seq_all = torch.from_numpy(seq).to(device, non_blocking=True)
            tracks_all = torch.from_numpy(tracks).to(device, non_blocking=True)
            seq_all, tracks_all = centre_crop(seq_all, tracks_all, self.window_len)
            for lo in range(0, seq_all.shape[0], self.batch_size):
                s = seq_all[lo : lo + self.batch_size].long()
                t = tracks_all[lo : lo + self.batch_size].float()
                with autocast:
                    # Autoregressive decoders: each base's logits given the true previous bases. The
                    # score is model.anomaly_score(s, t), from the same pass (one encoder pass, one
                    # decoder pass that also gives the chain's logits; the direct head is not run).
                    z, logits, tracks_pred, score = model.score_reconstruct(s, t)
                scores.append(score.float())
                called = s < CODE_N
                right = (logits.argmax(1) == s) & called
                n_called = called.sum(1)
                accuracies.append(torch.where(n_called > 0, right.sum(1).float() / n_called.clamp_min(1), float("nan")))
                latents.append(z.float())
                if want_tracks:
                    recon.append(model.tracks_to_stored(tracks_pred))
                self.bar.update(s.shape[0])
            host = [torch.cat(x).cpu().numpy() for x in (latents, scores, accuracies)]
            stored = torch.cat(recon).cpu().numpy() if want_tracks else None
        return _BlockOutput(
            latent=host[0].astype(np.float32, copy=False),
            score=host[1].astype(np.float32, copy=False),
            accuracy=host[2].astype(np.float32, copy=False),
            tracks=stored,
        )


# ---------------------------------------------------------------------- Parquet


class _LabelRows:
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


class _ParquetRows:
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


def _finish_parquet(scratch: Path, target: Path, scores: np.ndarray, metadata: dict[str, str]) -> None:
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


# ---------------------------------------------------------------------- bigWig


def _run_writer_stdio() -> None:
    """Body of a writer process: ``(path, header)``, then runs, then None, pickled on stdin;
    answers ``ok`` or the error on stdout."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    try:
        path, header = pickle.load(stdin)
        writer = BigWigWriter(path, header, _ZOOM_LEVELS)
        while (message := pickle.load(stdin)) is not None:
            writer.add_runs(*message)
        writer.close()
        stdout.write(b"ok")
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        stdout.write(f"{type(exc).__name__}: {exc}".encode())
    stdout.flush()


class _ProcessRunWriter:
    """A :class:`~seqae.bigwig_writer.BigWigWriter` of runs in a child process, so that several bigWigs compress at once.

    A plain ``python -c`` child fed pickles through its stdin: unlike
    ``multiprocessing`` it never re-imports the parent's ``__main__`` (scripts
    read from stdin, notebooks) and never forks a process holding CUDA state
    or threads. ``add`` blocks while the child is behind (pipe back-pressure);
    ``close`` waits until the file is complete.
    """

    def __init__(self, path: str | os.PathLike[str], header: list[tuple[str, int]]):
        self.path = path
        package_root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from seqae.embed import _run_writer_stdio; _run_writer_stdio()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self.closed = False
        self._send((str(path), header))

    def _send(self, message: Any) -> None:
        try:
            pickle.dump(message, self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            self._finish()  # the child stopped: raise its error
            raise SeqaeError(f"{self.path}: the bigWig writer process stopped early") from None

    def add_runs(self, *arrays: np.ndarray) -> None:
        self._send(arrays)

    def close(self) -> None:
        if not self.closed:
            self._send(None)
            self._finish()

    def _finish(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        answer = self.process.stdout.read().decode(errors="replace").strip()
        self.process.stdout.close()
        code = self.process.wait()
        if code != 0 or answer != "ok":
            raise SeqaeError(f"{self.path}: writing the bigWig failed ({answer or f'exit status {code}'})")

    def abandon(self) -> None:
        self.closed = True
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                stream.close()


@contextlib.contextmanager
def _open_run_writer(path: Path, header: list[tuple[str, int]], own_process: bool) -> Iterator[Any]:
    """A run writer, abandoned (process stopped, file closed) when the block raises; the caller closes it."""
    writer = _ProcessRunWriter(path, header) if own_process else BigWigWriter(path, header, _ZOOM_LEVELS)
    try:
        yield writer
    except BaseException:
        with contextlib.suppress(Exception):
            writer.abandon() if isinstance(writer, _ProcessRunWriter) else writer.close()
        raise
    writer.close()


def _send_tracks(writers: list[Any], placement: Placement, idx: np.ndarray, stored: np.ndarray, transform: str) -> None:
    """Owned bases of windows ``idx`` (genome order), tracks ``stored [n, T, L]`` -> one batch of runs per writer."""
    runs = track_runs(placement, idx, stored, transform)
    if runs is None:
        return
    chrom, start, length, values = runs
    for writer, track_values in zip(writers, values, strict=True):
        writer.add_runs(chrom, start, length, track_values)


def track_runs(
    placement: Placement, idx: np.ndarray, stored: np.ndarray, transform: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]] | None:
    """The bigWig runs of windows ``idx`` (genome order) from their tracks ``stored [n, T, L]``.

    Returns:
        ``(chrom, start, length, values)``: ``int64 [r]`` each, and per track ``float32 [sum(length)]``
        on the bigWig's scale; None when the windows own no base.
    """
    from seqae.tracks import invert_transform

    lo, hi = placement.own_start[idx], placement.own_end[idx]
    keep = hi > lo
    if not keep.any():
        return None
    idx, lo, hi, stored = idx[keep], lo[keep], hi[keep], stored[keep]
    chrom, start = placement.chrom[idx], placement.start[idx]
    offset = np.arange(stored.shape[-1])
    owned = (offset >= (lo - start)[:, None]) & (offset < (hi - start)[:, None])  # [n, L]
    # Consecutive windows whose owned bases abut form one run (one bigWig call).
    new_run = np.r_[True, (chrom[1:] != chrom[:-1]) | (lo[1:] != hi[:-1])]
    first = np.flatnonzero(new_run)
    length = np.add.reduceat(hi - lo, first)
    values = [
        invert_transform(stored[:, t, :][owned], transform).astype(np.float32, copy=False)
        for t in range(stored.shape[1])
    ]
    return chrom[first], lo[first], length, values


def _write_anomaly_bigwig(path: Path, placement: Placement, scores: np.ndarray) -> None:
    """The score of each window as a constant over the bases it owns."""
    order = placement.order
    lo, hi = placement.own_start[order], placement.own_end[order]
    chrom, score = placement.chrom[order], scores[order].astype(np.float64)
    keep = (hi > lo) & np.isfinite(score)
    lo, hi, chrom, score = lo[keep], hi[keep], chrom[keep], score[keep]
    with BigWigWriter(path, placement.header, _ZOOM_LEVELS) as bw:
        bounds = np.r_[0, np.flatnonzero(np.diff(chrom)) + 1, len(chrom)]
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            if b > a:
                bw.add_intervals(placement.header[int(chrom[a])][0], lo[a:b], hi[a:b], score[a:b])


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


@contextlib.contextmanager
def _scratch_file(folder: Path, prefix: str, suffix: str) -> Iterator[Path]:
    """A temporary file in ``folder``, removed on the way out whatever happens."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "track"


__all__ = [
    "EmbedResult",
    "Placement",
    "check_model_fits",
    "embed_windows",
    "latent_column_names",
    "owned_intervals",
    "place_windows",
    "read_chrom_sizes",
    "select_rows",
]
