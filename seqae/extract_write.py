"""Pass 2 of ``seqae extract``: sequence and tracks of planned windows, chunk by chunk, into the windows file.

Per chromosome and chunk, the sequence codes and the signal of each bigWig
are cut out of spans read per cluster of nearby windows (:mod:`seqae.spans`)
and appended to the HDF5 file; mean track profiles per window kind are
accumulated for QC (:class:`TrackProfiles`).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from seqae.extract_plan import Extraction, GenomePlan
from seqae.progress import progress_bar
from seqae.tracks import read_windows
from seqae.windows.store import WindowsSchema, WindowsWriter


@dataclass
class TrackProfiles:
    """Mean track profile per window kind, accumulated chunk by chunk (for QC).

    ``sums[kind]`` is ``float64 [T, seq_len]``; ``counts[kind]`` the windows summed.
    """

    sums: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    max_per_chunk: int = 64

    def add(self, tracks: np.ndarray, kinds: np.ndarray, present: np.ndarray | None = None) -> None:
        """Add a chunk ``tracks [m, T, seq_len]`` of a block of windows of ``kinds [n]``.

        At most ``max_per_chunk`` evenly spaced windows of each kind of the
        block are summed: a mean profile for a figure needs thousands of
        windows, not millions. ``present`` (``bool [n]``, default all) marks
        the block's windows that ``tracks`` holds (``m`` of them, in order),
        when a shard holds part of a block: the windows chosen are those of
        the whole block, so shards add up to the unsharded sums (exactly, for
        float16 tracks: their sums are exact in float64).
        """
        position = None if present is None else np.cumsum(present) - 1
        for kind in np.unique(kinds):
            rows = np.flatnonzero(kinds == kind)
            rows = rows[:: max(1, len(rows) // self.max_per_chunk)]
            if position is not None:
                rows = position[rows[present[rows]]]
                if not len(rows):
                    continue
            self.merge({str(kind): tracks[rows].sum(axis=0, dtype=np.float64)}, {str(kind): len(rows)})

    def merge(self, sums: Mapping[str, np.ndarray], counts: Mapping[str, int]) -> None:
        """Add sums ``float64 [T, seq_len]`` and counts per kind (another chunk's, or a shard's)."""
        for kind, total in sums.items():
            self.sums[kind] = self.sums[kind] + total if kind in self.sums else np.array(total, dtype=np.float64)
            self.counts[kind] = self.counts.get(kind, 0) + int(counts[kind])

    def mean(self, kind: str) -> np.ndarray | None:
        """``float64 [T, seq_len]`` mean profile of ``kind`` windows, None if none were seen."""
        if not self.counts.get(kind):
            return None
        return self.sums[kind] / self.counts[kind]


def windows_writer(path: Path, extraction: Extraction, threads: int | None) -> WindowsWriter:
    """A writer for ``extraction``'s windows file; ``threads`` as in :func:`extract_windows`."""
    settings = extraction.settings
    deflate = None if threads is None else max(1, threads - 1)
    return WindowsWriter(path, extraction.schema, settings["track_dtype"], settings=settings, deflate_threads=deflate)


def write_rows(
    extraction: Extraction,
    writer: WindowsWriter,
    profiles: TrackProfiles,
    progress: bool,
    rows: tuple[int, int] | None = None,
) -> None:
    """Pass 2 for the windows in file rows ``[lo, hi)`` (default all): sequence and tracks appended to ``writer``."""
    lo, hi = rows if rows is not None else (0, len(extraction.labels))
    kinds = extraction.labels["kind"].to_numpy()
    with progress_bar(hi - lo, "extract", "window", progress) as bar:
        offset = 0
        for plan in extraction.plans:
            n = len(plan.windows)
            if offset < hi and offset + n > lo:
                own = (max(lo - offset, 0), min(hi - offset, n))
                _write_genome(plan, kinds[offset : offset + n], extraction, writer, profiles, bar, own)
            offset += n


def write_labels_and_summary(writer: WindowsWriter, labels: pd.DataFrame, profiles: TrackProfiles) -> None:
    """Complete a windows file: the label table and the mean track profiles."""
    writer.write_labels(labels)
    writer.write_summary(
        {
            f"mean_profile/{kind}": profile.astype(np.float32)
            for kind in ("peak", "background")
            if (profile := profiles.mean(kind)) is not None
        }
    )


def _write_genome(
    plan: GenomePlan,
    kinds: np.ndarray,
    extraction: Extraction,
    writer: WindowsWriter,
    profiles: TrackProfiles,
    bar: tqdm,
    rows: tuple[int, int],
) -> None:
    """Pass 2 on one genome: cut sequence and signal of its windows in ``rows`` (genome-local), chunk by chunk.

    Chunks never span two chromosomes, and each reads only the FASTA and
    bigWig spans its windows cover (:mod:`seqae.spans`): no chromosome is
    decoded whole here, so memory is bounded by a chunk whatever the genome
    size, and a chromosome's bases are read once per pass. Chunks are laid
    out over the whole genome whatever ``rows`` is, so that a shard's chunks
    are the unsharded run's (cut at the shard's ends). The next chunk is read
    in a worker thread while the current one is appended (and compressed by
    the writer's threads): NumPy, the deflate and most of the bigWig work
    release the GIL, so the cores stay busy.
    """
    windows, schema = plan.windows, extraction.schema
    chunk = extraction.settings["chunk_windows"]
    starts_all = windows["start"].to_numpy() - schema.flank
    by_chrom = windows.groupby("chrom", sort=False).indices
    lo, hi = rows
    blocks = []
    for chrom in pd.unique(windows["chrom"]):
        for first in range(0, len(by_chrom[chrom]), chunk):
            block = by_chrom[chrom][first : first + chunk]
            present = (block >= lo) & (block < hi)
            if present.any():
                blocks.append((chrom, block, None if present.all() else present))
    track_dtype = extraction.settings["track_dtype"]
    # One thread per bigWig beside the chunk's reader: inflating a track's
    # blocks releases the GIL, so the tracks of a chunk are read at once.
    n_bigwigs = sum(track is not None for track in plan.tracks)
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="read") as reader,
        ThreadPoolExecutor(max_workers=max(1, n_bigwigs), thread_name_prefix="bigwig") as track_pool,
    ):

        def submit(i: int) -> Future[tuple[np.ndarray, np.ndarray | None]]:
            chrom, block, present = blocks[i]
            return reader.submit(_read_chunk, plan, chrom, starts_all[block if present is None else block[present]],
                                 schema, track_dtype, track_pool)  # fmt: skip

        pending = submit(0) if blocks else None
        for i in range(len(blocks)):
            seq, tracks = pending.result()
            if i + 1 < len(blocks):
                pending = submit(i + 1)
            _, block, present = blocks[i]
            if tracks is not None:
                profiles.add(tracks, kinds[block], present)
            writer.append(seq, tracks)
            bar.update(len(seq))


def _read_chunk(
    plan: GenomePlan,
    chrom: str,
    starts: np.ndarray,
    schema: WindowsSchema,
    track_dtype: str,
    track_pool: ThreadPoolExecutor,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Sequence codes ``uint8 [n, seq_len]`` and tracks ``[n, T, seq_len]`` (None if T = 0) of windows from ``starts``.

    Each bigWig is read in ``track_pool`` while the FASTA is read here; each
    track has its own file handle, block cache and read counts.
    """
    tracks = None
    reads: list[Future[np.ndarray]] = []
    if schema.track_names:
        tracks = np.zeros((len(starts), len(schema.track_names), schema.seq_len), dtype=track_dtype)
        for t, track in enumerate(plan.tracks):
            if track is not None:
                reads.append(track_pool.submit(read_windows, track, chrom, starts, schema.seq_len,
                                               schema.track_transform, out=tracks[:, t], stats=plan.track_reads[t]))  # fmt: skip
    try:
        seq = plan.genome.window_codes(chrom, starts, schema.seq_len, stats=plan.fasta_reads)
    finally:
        wait(reads)  # no read outlives the chunk, whatever failed
    for read in reads:
        read.result()  # a track's error, e.g. a corrupt block
    return seq, tracks
