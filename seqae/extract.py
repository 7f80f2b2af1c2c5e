"""``seqae extract``: summit-centred windows with tracks and labels -> windows file.

The stage runs in two passes over each genome, chromosome by chromosome and
chunk by chunk, so memory is bounded by the chunk size (and the label table),
not by the genome or the number of windows:

1. *Plan*: read peaks, harmonise chromosome names, merge close summits, place
   windows, drop those crossing a chromosome end, touching the blacklist or
   with too many N; measure GC; draw GC-matched background windows; label
   every window (nearest gene, TSS distance, region class, split).
2. *Write*: per chromosome and chunk, cut the sequence codes and the signal
   of each bigWig out of spans read per cluster of nearby windows
   (:mod:`seqae.spans`), and append both to the HDF5 file.

Neither pass decodes more than a chunk's spans at once, so a chromosome is
never re-read per chunk; what was read against what the windows needed is in
``extract_report.json`` (``genomes[].reads``, ``bigwig_reads``).

Outputs, in the folder of ``out``: the windows file, ``windows.bed``,
``windows.tsv`` and ``extract_report.json``; ``genome_index/<species>/`` holds
the FASTA indexes seqae builds (and the decompressed copy of a plain-gzip
FASTA). The QC figure is drawn from the
windows file by :func:`seqae.plots.plot_extract_qc` (``seqae plot-extract``).
"""

from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from seqae.annotation import annotate_positions
from seqae.background import measure_and_sample_background
from seqae.config import Config
from seqae.errors import InputError
from seqae.fileio import atomic_output, write_tsv
from seqae.genome import ChromAliases, Genome
from seqae.genome_inputs import genome_aliases, read_genome_genes, read_genome_peaks
from seqae.intervals import (
    merge_close_summits,
    overlaps_any,
    read_bed_intervals,
    rename_chromosomes,
)
from seqae.progress import progress_bar
from seqae.spans import ReadStats
from seqae.splits import assign_split
from seqae.tracks import BigWigTrack, read_windows
from seqae.windows.store import WindowsSchema, WindowsWriter

log = logging.getLogger(__name__)

#: Folder beside the windows file holding each genome's FASTA index (and the
#: decompressed copy of a plain-gzip FASTA): seqae never writes beside its inputs.
GENOME_DIR = "genome_index"

LABEL_COLUMNS = [
    "window_id",
    "species",
    "chrom",
    "start",
    "end",
    "summit",
    "kind",
    "peak_set",
    "peak_name",
    "score",
    "n_merged",
    "gene_id",
    "gene_name",
    "gene_biotype",
    "gene_family",
    "tss_distance",
    "region_class",
    "gc",
    "n_fraction",
    "split",
]


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


@dataclass
class GenomePlan:
    """Windows planned on one genome, before any sequence is written.

    ``windows`` has one row per window with the label columns known so far;
    ``tracks`` are the opened bigWigs in track order (None where a TF has no
    bigWig); ``fasta_reads`` and ``track_reads`` count what both passes read.
    """

    species: str
    genome: Genome | None  # None where a gather step only counts rows
    windows: pd.DataFrame
    tracks: list[BigWigTrack | None]
    report: dict[str, Any] = field(default_factory=dict)
    fasta_reads: ReadStats = field(default_factory=ReadStats)
    genome_bases: int = 0
    track_reads: list[ReadStats] = field(init=False)
    track_files: list[dict[str, int]] = field(init=False)

    def __post_init__(self) -> None:
        # One per track, as `tracks`: signal read against need, and data blocks read from the file.
        self.track_reads = [ReadStats() for _ in self.tracks]
        self.track_files = [{} for _ in self.tracks]

    def reads_state(self) -> dict[str, Any]:
        """The read counts as JSON-able data, for a shard to hand to the gather step."""
        files = [t.file_reads() if t is not None else f for t, f in zip(self.tracks, self.track_files, strict=True)]
        return {
            "fasta": asdict(self.fasta_reads),
            "tracks": [asdict(r) for r in self.track_reads],
            "files": files,
        }

    def add_reads(self, state: Mapping[str, Any]) -> None:
        """Add counts from :meth:`reads_state` (of a shard or of the planning job)."""
        self.fasta_reads.add(ReadStats(**state["fasta"]))
        for mine, theirs in zip(self.track_reads, state["tracks"], strict=True):
            mine.add(ReadStats(**theirs))
        for mine, theirs in zip(self.track_files, state["files"], strict=True):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value

    def close(self) -> None:
        """Close the FASTA and the bigWigs."""
        if self.genome is not None:
            self.genome.close()
        for track in self.tracks:
            if track is not None:
                track.close()


@dataclass
class Extraction:
    """A planned extraction: every genome's plan, the label table (file order) and the windows file's schema."""

    plans: list[GenomePlan]
    labels: pd.DataFrame
    schema: WindowsSchema
    track_names: list[str]
    settings: Mapping[str, Any]


def extract_windows(
    config: Config, out: str | Path, progress: bool = True, threads: int | None = None
) -> dict[str, Any]:
    """Run the extraction stage; return the report written to ``extract_report.json``.

    Args:
        config: validated configuration (see ``seqae.config``).
        out: path of the windows HDF5 file to create.
        progress: show a progress bar on stderr.
        threads: CPU threads to use: the main thread, one reading the next
            chunk and ``threads - 1`` compressing (at least one); None: as
            many as this process may run on, up to 5.

    Raises:
        InputError: bad input files (one line: file, line, problem).
    """
    out = Path(out)
    opened: list[Genome] = []
    try:
        return _extract(config, out, progress, opened, threads)
    except BaseException:
        # Nothing a failed run made survives it: FASTA indexes and decompressed copies included.
        for genome in opened:
            genome.discard_created()
        raise


def _extract(
    config: Config, out: Path, progress: bool, opened: list[Genome], threads: int | None = None
) -> dict[str, Any]:
    extraction = plan_extraction(config, out, opened)
    profiles = TrackProfiles()
    with (
        atomic_output(out) as tmp,
        windows_writer(tmp, extraction, threads) as writer,
    ):
        write_rows(extraction, writer, profiles, progress)
        write_labels_and_summary(writer, extraction.labels, profiles)
    for plan in extraction.plans:
        plan.track_files = [t.file_reads() if t is not None else {} for t in plan.tracks]
    return finish_extraction(extraction, out, profiles)


def plan_extraction(config: Config, out: Path, opened: list[Genome]) -> Extraction:
    """Pass 1 over every genome (see the module docstring): the windows, labels and splits, nothing written.

    Genomes opened are appended to ``opened`` (the caller discards what they
    created if the run fails).
    """
    settings = config["extract"]
    rng = np.random.default_rng(config["seed"])
    track_names = collect_track_names(config["genomes"])
    plans = [
        _plan_genome(genome_cfg, track_names, settings, rng, genome_work_dir(out, genome_cfg), opened)
        for genome_cfg in config["genomes"]
    ]
    labels = pd.concat([p.windows for p in plans], ignore_index=True)
    labels["window_id"] = "w" + pd.Series(np.arange(len(labels))).astype(str).str.zfill(7)
    labels = labels[LABEL_COLUMNS]
    return Extraction(plans, labels, windows_schema(settings, track_names), track_names, settings)


def genome_work_dir(out: Path, genome_cfg: Mapping[str, Any]) -> Path:
    """Where a genome's FASTA index (or decompressed copy) goes: beside the windows file, never beside the inputs."""
    return out.parent / GENOME_DIR / genome_cfg["species"]


def windows_schema(settings: Mapping[str, Any], track_names: list[str]) -> WindowsSchema:
    """The windows file's schema for ``extract`` settings and track names."""
    return WindowsSchema(
        window_len=settings["window_len"],
        flank=settings["max_jitter"],
        track_names=tuple(track_names),
        track_transform=settings["track_transform"],
    )


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


def finish_extraction(extraction: Extraction, out: Path, profiles: TrackProfiles) -> dict[str, Any]:
    """The side files beside the windows file (BED, TSV, report); closes the inputs; returns the report."""
    labels = extraction.labels
    report = _report(extraction.plans, labels, extraction.settings, extraction.track_names, profiles)
    folder = out.parent
    _write_bed(labels, folder / "windows.bed")
    write_tsv(labels, folder / "windows.tsv")
    with atomic_output(folder / "extract_report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    for plan in extraction.plans:
        plan.close()
    return report


def collect_track_names(genomes: list[Mapping[str, Any]]) -> list[str]:
    """Track names: one per TF with a bigWig, in order of first appearance across genomes."""
    names: list[str] = []
    for genome in genomes:
        for tf in genome["tfs"]:
            if tf.get("bigwig") and tf["name"] not in names:
                names.append(tf["name"])
    return names


def _plan_genome(
    genome_cfg: Mapping[str, Any],
    track_names: list[str],
    settings: Mapping[str, Any],
    rng: np.random.Generator,
    work_dir: Path,
    opened: list[Genome],
) -> GenomePlan:
    species = genome_cfg["species"]
    genome = Genome(genome_cfg["fasta"], work_dir=work_dir)
    opened.append(genome)
    sizes = genome.chrom_sizes
    report: dict[str, Any] = {"species": species, "fasta": str(genome.path), "n_chromosomes": len(sizes)}

    aliases = genome_aliases(genome_cfg, genome)
    peaks, peak_report = read_genome_peaks(genome_cfg, genome, aliases)
    report["peaks"] = peak_report
    peak_chroms, background_chroms = select_chromosomes(settings["chromosomes"], genome.chroms, peaks["chrom"])
    excluded = ~peaks["chrom"].isin(peak_chroms).to_numpy()
    report["dropped_excluded_chromosome"] = int(excluded.sum())
    report["background_chromosomes"] = len(background_chroms)
    if excluded.all():
        raise InputError(
            genome_cfg["tfs"][0]["peaks"],
            f"every peak is on a chromosome that extract.chromosomes leaves out "
            f"({', '.join(sorted(peaks['chrom'].unique())[:5])})",
        )
    peaks = peaks[~excluded].reset_index(drop=True)
    merged = merge_close_summits(peaks, settings["merge_distance"])
    report["n_summits"] = len(peaks)
    report["n_after_merge"] = len(merged)

    window_len, flank = settings["window_len"], settings["max_jitter"]
    windows = pd.DataFrame(
        {
            "species": species,
            "chrom": merged["chrom"].to_numpy(),
            "start": merged["summit"].to_numpy() - window_len // 2,
            "summit": merged["summit"].to_numpy(),
            "kind": "peak",
            "peak_set": merged["peak_set"].to_numpy(),
            "peak_name": merged["name"].to_numpy(),
            "score": merged["score"].to_numpy(dtype=np.float64),
            "n_merged": merged["n_merged"].to_numpy(dtype=np.int64),
        }
    )
    windows["end"] = windows["start"] + window_len
    chrom_len = windows["chrom"].map(sizes).to_numpy(dtype=np.int64)
    inside = (windows["start"].to_numpy() - flank >= 0) & (windows["end"].to_numpy() + flank <= chrom_len)
    report["dropped_chromosome_end"] = int((~inside).sum())
    windows = windows[inside]

    blacklist = _read_blacklist(genome_cfg.get("blacklist"), aliases)
    if blacklist is not None:
        hit = overlaps_any(
            windows["chrom"].to_numpy(), windows["start"].to_numpy(), windows["end"].to_numpy(), blacklist
        )
        report["dropped_blacklist"] = int(hit.sum())
        windows = windows[~hit]
    else:
        report["dropped_blacklist"] = 0

    windows = windows.reset_index(drop=True)
    fasta_reads = ReadStats()
    windows, background = measure_and_sample_background(
        genome, windows, blacklist, settings, rng, report, chromosomes=background_chroms, stats=fasta_reads
    )
    windows = pd.concat([windows, background], ignore_index=True)
    chrom_order = {c: i for i, c in enumerate(genome.chroms)}
    windows = (
        windows.assign(_order=windows["chrom"].map(chrom_order))
        .sort_values(["_order", "start", "kind"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )

    genes = read_genome_genes(genome_cfg.get("annotation"), sizes, report, aliases)
    centre = windows["start"].to_numpy() + window_len // 2
    if genes is not None:
        gene_labels = annotate_positions(
            windows["chrom"].to_numpy(),
            centre,
            genes,
            promoter_upstream=settings["promoter_upstream"],
            promoter_downstream=settings["promoter_downstream"],
        )
    else:
        gene_labels = _no_gene_labels(len(windows))
    for column in ["gene_id", "gene_name", "gene_biotype", "gene_family", "tss_distance", "region_class"]:
        windows[column] = gene_labels[column].to_numpy()
    windows["split"] = assign_split(species, windows["chrom"].to_numpy(), windows["start"].to_numpy(), settings)

    tracks = open_tracks(genome_cfg, track_names, aliases, windows)
    report["bigwig_chrom_names"] = {
        name: track.chrom_names for name, track in zip(track_names, tracks, strict=True) if track is not None
    }
    return GenomePlan(species, genome, windows, tracks, report, fasta_reads, sum(genome.chrom_sizes.values()))


def select_chromosomes(
    rule: Mapping[str, Any], fasta_chroms: list[str], peak_chroms: pd.Series
) -> tuple[set[str], set[str]]:
    """The chromosomes whose peaks are kept and those background windows are drawn from (``extract.chromosomes``).

    ``include``: ``peaks`` (the chromosomes that hold peaks: background
    windows add no chromosome the peaks lack), ``all`` (every FASTA
    sequence), or a list of names and shell-style patterns (``chr?``,
    ``chr[0-9]*``); ``exclude``: names and patterns removed from both
    (``chrM``, ``*_random``, ``chrUn_*``). Patterns are matched against the
    FASTA's names.
    """

    def matching(patterns: list[str]) -> set[str]:
        return {c for c in fasta_chroms if any(fnmatch.fnmatchcase(c, pat) for pat in patterns)}

    excluded = matching(rule["exclude"])
    with_peaks = set(pd.unique(peak_chroms))
    include = rule["include"]
    if include == "peaks":
        peaks, background = with_peaks, with_peaks
    elif include == "all":
        peaks, background = with_peaks, set(fasta_chroms)
    else:
        chosen = matching(include)
        peaks, background = with_peaks & chosen, chosen
    return peaks - excluded, background - excluded


def _read_blacklist(path: str | None, aliases: ChromAliases) -> pd.DataFrame | None:
    if not path:
        return None
    intervals = read_bed_intervals(path)
    mapping = aliases.map_source(path, intervals["chrom"].unique())
    renamed, _ = rename_chromosomes(intervals, mapping)
    return renamed


def _no_gene_labels(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "gene_id": [""] * n,
            "gene_name": [""] * n,
            "gene_biotype": [""] * n,
            "gene_family": [""] * n,
            "tss_distance": np.full(n, np.nan),
            "region_class": ["intergenic"] * n,
        }
    )


def open_tracks(
    genome_cfg: Mapping[str, Any], track_names: list[str], aliases: ChromAliases, windows: pd.DataFrame
) -> list[BigWigTrack | None]:
    """Open this genome's bigWigs in track order; check they cover every window's chromosome."""
    by_name = {tf["name"]: tf.get("bigwig") for tf in genome_cfg["tfs"]}
    needed = windows["chrom"].value_counts()
    tracks: list[BigWigTrack | None] = []
    for name in track_names:
        path = by_name.get(name)
        if not path:
            tracks.append(None)
            continue
        track = BigWigTrack(path, name, aliases.reference, aliases)
        for chrom, count in needed.items():
            if not track.has_chrom(str(chrom)):
                raise InputError(path, f"bigWig has no chromosome {chrom!r}, which holds {count} windows")
        tracks.append(track)
    return tracks


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


def _write_bed(labels: pd.DataFrame, path: Path) -> None:
    """BED6 of the windows proper: name = window id, score = peak score scaled to 0-1000."""
    score = labels["score"].to_numpy(dtype=np.float64)
    top = np.nanmax(score) if len(score) and np.nanmax(score) > 0 else 1.0
    bed = pd.DataFrame(
        {
            "chrom": labels["chrom"],
            "start": labels["start"],
            "end": labels["end"],
            "name": labels["window_id"],
            "score": np.clip(np.round(1000 * score / top), 0, 1000).astype(np.int64),
            "strand": ".",
        }
    )
    write_tsv(bed, path, header=False)


def _report(
    plans: list[GenomePlan],
    labels: pd.DataFrame,
    settings: Mapping[str, Any],
    track_names: list[str],
    profiles: TrackProfiles,
) -> dict[str, Any]:
    """The extraction report: counts, drops, GC matching and track summaries."""
    peak = labels["kind"] == "peak"
    bg = ~peak
    report: dict[str, Any] = {
        "n_windows": len(labels),
        "n_peak_windows": int(peak.sum()),
        "n_background_windows": int(bg.sum()),
        "window_len": settings["window_len"],
        "flank": settings["max_jitter"],
        "tracks": track_names,
        "track_transform": settings["track_transform"],
        "genomes": [{**p.report, "reads": _read_report(p, track_names)} for p in plans],
        "bigwig_reads": _total_reads([r for p in plans for r in p.track_reads]).to_dict(_SIGNAL_BYTES),
        "windows_per_chromosome": {
            f"{species}:{chrom}": {kind: int(n) for kind, n in row.items()}
            for (species, chrom), row in pd.crosstab([labels["species"], labels["chrom"]], labels["kind"]).iterrows()
        },
        "split": {k: int(v) for k, v in labels["split"].value_counts().items()},
        "region_class": {k: int(v) for k, v in labels["region_class"].value_counts().items()},
        "gc": {
            "peak_mean": float(labels.loc[peak, "gc"].mean()) if peak.any() else None,
            "background_mean": float(labels.loc[bg, "gc"].mean()) if bg.any() else None,
            "ks_distance": _ks_distance(labels.loc[peak, "gc"].to_numpy(), labels.loc[bg, "gc"].to_numpy()),
        },
    }
    if track_names:
        flank, window_len = settings["max_jitter"], settings["window_len"]
        centre = slice(flank + window_len // 2 - 50, flank + window_len // 2 + 50)
        summary = {}
        for t, name in enumerate(track_names):
            entry = {}
            for kind in ("peak", "background"):
                mean_profile = profiles.mean(kind)
                if mean_profile is not None:
                    entry[f"{kind}_centre_mean"] = float(mean_profile[t, centre].mean())
                    entry[f"{kind}_mean"] = float(mean_profile[t].mean())
            summary[name] = entry
        report["track_summary"] = summary
    return report


#: Bytes per base of signal read from a bigWig (float32 values).
_SIGNAL_BYTES = 4


def _total_reads(parts: list[ReadStats]) -> ReadStats:
    total = ReadStats()
    for part in parts:
        total.add(part)
    return total


def _read_report(plan: GenomePlan, track_names: list[str]) -> dict[str, Any]:
    """What one genome's extraction read: FASTA bases (both passes) and bigWig signal per track, against need."""
    with_bigwig = plan.report["bigwig_chrom_names"]
    return {
        "fasta": {**plan.fasta_reads.to_dict(), "genome_bases": plan.genome_bases},
        "bigwig": {
            name: {**stats.to_dict(_SIGNAL_BYTES), **files}
            for name, stats, files in zip(track_names, plan.track_reads, plan.track_files, strict=True)
            if name in with_bigwig
        },
    }


def _ks_distance(a: np.ndarray, b: np.ndarray) -> float | None:
    """Two-sample Kolmogorov-Smirnov distance (max CDF gap); None when a side is empty."""
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if not len(a) or not len(b):
        return None
    grid = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))
