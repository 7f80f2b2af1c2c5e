"""Pass 1 of ``seqae extract``: the windows of every genome, their labels and the windows file's schema.

Per genome: read the peaks, harmonise chromosome names, merge close summits,
place windows, drop those crossing a chromosome end, touching the blacklist
or with too many N; measure GC; draw GC-matched background windows; label
every window (nearest gene, TSS distance, region class); open the bigWigs.
Then split every genome's windows at once (chains of overlapping windows
keep one split). Nothing is written: :mod:`seqae.extract_write` cuts the windows
from the plan.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqae.annotation import annotate_positions
from seqae.background import measure_and_sample_background
from seqae.chrom_names import ChromAliases
from seqae.config import Config
from seqae.errors import InputError
from seqae.genome import Genome
from seqae.genome_inputs import genome_aliases, read_genome_genes, read_genome_peaks, rename_onto_fasta
from seqae.intervals import (
    merge_close_summits,
    overlaps_any,
    read_bed_intervals,
)
from seqae.spans import ReadStats
from seqae.splits import assign_split, check_holdout, check_test_split, held_out_splits
from seqae.tracks import BigWigTrack
from seqae.windows.store import WindowsSchema

log = logging.getLogger("seqae")

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
    #: Every FASTA sequence's length (bp), for ``chrom.sizes`` and the genome's size.
    chrom_sizes: dict[str, int] = field(default_factory=dict)
    track_reads: list[ReadStats] = field(init=False)
    track_files: list[dict[str, int]] = field(init=False)

    def __post_init__(self) -> None:
        # One per track, as `tracks`: signal read against need, and data blocks read from the file.
        self.track_reads = [ReadStats() for _ in self.tracks]
        self.track_files = [{} for _ in self.tracks]

    @property
    def genome_bases(self) -> int:
        """The genome's size: bases of all its FASTA sequences."""
        return sum(self.chrom_sizes.values())

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


def plan_extraction(config: Config, out: Path, opened: list[Genome]) -> Extraction:
    """Pass 1 over every genome (see the module docstring): the windows, labels and splits, nothing written.

    Genomes opened are appended to ``opened`` (the caller discards what they
    created if the run fails).
    """
    settings = config["extract"]
    rng = np.random.default_rng(config["seed"])
    track_names = collect_track_names(config["genomes"])
    warn_about_genome_inputs(config["genomes"], track_names)
    plans = [
        _plan_genome(genome_cfg, track_names, settings, rng, genome_work_dir(out, genome_cfg), opened)
        for genome_cfg in config["genomes"]
    ]
    labels = pd.concat([p.windows for p in plans], ignore_index=True)
    # Split over every genome at once: with shared coordinates, chains of overlapping windows run across genomes.
    labels["split"] = assign_split(
        labels["species"].to_numpy(),
        labels["split_chrom"].to_numpy() if settings["split"]["shared_coordinates"] else labels["chrom"].to_numpy(),
        labels["start"].to_numpy(),
        labels["end"].to_numpy(),
        settings,
        flank=settings["max_jitter"],
        held_out=labels["held_out"].to_numpy(),
    )
    matched = set().union(*(p.report.get("holdout_matched", ()) for p in plans))
    check_holdout(settings["split"]["holdout_chromosomes"], labels["chrom"].to_numpy(), labels["split"].to_numpy(),
                  matched)  # fmt: skip
    check_test_split(settings["split"], labels["split"].to_numpy())
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


def collect_track_names(genomes: list[Mapping[str, Any]]) -> list[str]:
    """Track names: one per TF with a bigWig, in order of first appearance across genomes."""
    names: list[str] = []
    for genome in genomes:
        for tf in genome["tfs"]:
            if tf.get("bigwig") and tf["name"] not in names:
                names.append(tf["name"])
    return names


def warn_about_genome_inputs(genomes: list[Mapping[str, Any]], track_names: list[str]) -> None:
    """Warn of genome entries that make valid but likely unintended windows, before any is read.

    Several genomes on one FASTA (their identical windows split independently unless
    ``shared_coordinates``); a track some genomes lack (their windows store 0 for it, read as no
    signal); TF names that differ only in case (two tracks and two TF classes where one was meant).
    """
    if len(genomes) < 2:
        return
    by_fasta: dict[str, list[str]] = {}
    for genome in genomes:
        by_fasta.setdefault(os.path.realpath(genome["fasta"]), []).append(genome["species"])
    for fasta, species in by_fasta.items():
        if len(species) > 1:
            log.warning(
                "genomes %s read one FASTA (%s): are they meant to be different genomes?", ", ".join(species), fasta
            )
    for name in track_names:
        lacking = [g["species"] for g in genomes if not any(t["name"] == name and t.get("bigwig") for t in g["tfs"])]
        if lacking:
            log.warning(
                "track %s has no bigWig in genome%s %s: %s windows store 0 for it, which models read as no signal",
                name, "s" if len(lacking) > 1 else "", ", ".join(lacking), "their" if len(lacking) > 1 else "its",
            )  # fmt: skip
    tfs = sorted({t["name"] for g in genomes for t in g["tfs"]})
    folded: dict[str, list[str]] = {}
    for tf in tfs:
        folded.setdefault(tf.lower(), []).append(tf)
    for names in folded.values():
        if len(names) > 1:
            log.warning("TF names %s differ only in case: they are different TFs and tracks here", " and ".join(names))


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
    past = windows["summit"].to_numpy() >= chrom_len
    report["dropped_past_chromosome_end"] = int(past.sum())
    if past.any():
        # Not near an end but beyond it: peaks called on another assembly (or another genome's names).
        first = windows[past].iloc[0]
        log.warning(
            "%s: %d summits lie past their chromosome's end in the FASTA (e.g. %s's peak %s at %s:%d, on a "
            "chromosome of %d bp) and are left out: are the peaks for another assembly?",
            species, int(past.sum()), first["peak_set"], first["peak_name"], first["chrom"], first["summit"],
            sizes[first["chrom"]],
        )  # fmt: skip
    near = ~inside & ~past
    if near.any():
        near_end = windows.loc[near, "chrom"].value_counts()
        log.info(
            "%s: %d summits lie within window_len/2 + max_jitter (%d bp) of a chromosome end and are left out "
            "(most on %s)",
            species, int(near.sum()), window_len // 2 + flank,
            ", ".join(f"{c}: {n}" for c, n in near_end.head(3).items()),
        )  # fmt: skip
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
        log.warning(
            "%s: no annotation: the gene labels (nearest gene, TSS distance, region_class) of its %d windows are "
            "unknown; a latent block labelled with one (the default gene block: region_class) learns from "
            "annotated genomes only, or, with none, needs `label: null`",
            species,
            len(windows),
        )
        gene_labels = _no_gene_labels(len(windows))
    for column in ["gene_id", "gene_name", "gene_biotype", "gene_family", "tss_distance", "region_class"]:
        windows[column] = gene_labels[column].to_numpy()

    tracks = open_tracks(genome_cfg, track_names, aliases, windows, sizes)
    check_track_values(tracks, settings["track_transform"], settings["track_dtype"])
    report["bigwig_chrom_names"] = {
        name: track.chrom_names for name, track in zip(track_names, tracks, strict=True) if track is not None
    }
    # What the split compares across genomes: a chromosome's shared name, and the hold-outs it matches
    # through this genome's own naming (chr1, 1 and an alias table's NC_000001.11 are one chromosome).
    windows["split_chrom"] = windows["chrom"].map(aliases.shared_keys()).to_numpy()
    windows["held_out"], report["holdout_matched"] = held_out_splits(
        windows["chrom"].to_numpy(), settings["split"]["holdout_chromosomes"], aliases.holdout_matcher()
    )
    return GenomePlan(species, genome, windows, tracks, report, fasta_reads, dict(sizes))


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
    renamed, _, _ = rename_onto_fasta(read_bed_intervals(path), path, aliases, "blacklist intervals", logging.INFO)
    return renamed


def _no_gene_labels(n: int) -> pd.DataFrame:
    """Gene labels of windows without an annotation: all unknown (not ``intergenic``, which would be a claim)."""
    return pd.DataFrame(
        {
            "gene_id": [""] * n,
            "gene_name": [""] * n,
            "gene_biotype": [""] * n,
            "gene_family": [""] * n,
            "tss_distance": np.full(n, np.nan),
            "region_class": [""] * n,
        }
    )


def check_track_values(tracks: Sequence[BigWigTrack | None], transform: str, track_dtype: str) -> None:
    """Check the values each bigWig's header records against how they are stored: warn of an empty file, and of
    negative values that ``log1p`` would store as 0.

    Raises:
        InputError: values that overflow float16 storage (``track_transform: none``) to infinity.
    """
    largest_stored = float(np.finfo(np.dtype(track_dtype)).max)
    for track in tracks:
        if track is None:
            continue
        covered, smallest, largest = track.total_summary()
        if covered == 0:
            log.warning("%s: holds no data: its track reads 0 in every window", track.path)
            continue
        if transform == "none" and largest > largest_stored:
            raise InputError(
                track.path,
                f"values up to {largest:g} overflow track_dtype {track_dtype} (largest {largest_stored:g}) with "
                "track_transform none; set extract.track_transform: log1p or extract.track_dtype: float32",
            )
        if smallest < 0 and transform == "log1p":
            log.warning(
                "%s: holds negative values (down to %g), which track_transform log1p stores as 0; for a signed "
                "track (log ratio, conservation score, z-score) set extract.track_transform: none (with the models' "
                "default track_loss mse, which fits the stored values)",
                track.path,
                smallest,
            )


def open_tracks(
    genome_cfg: Mapping[str, Any],
    track_names: list[str],
    aliases: ChromAliases,
    windows: pd.DataFrame,
    sizes: Mapping[str, int],
) -> list[BigWigTrack | None]:
    """Open this genome's bigWigs in track order; check they cover every window's chromosome.

    A chromosome whose length in the bigWig's header differs from the FASTA's (``sizes``, bp)
    is logged as a warning: the usual sign of a bigWig made on another assembly.

    Raises:
        InputError: a bigWig without a chromosome that holds windows (naming the bigWig's own
            chromosomes, the alias rule and how to leave the chromosome out).
    """
    by_name = {tf["name"]: tf.get("bigwig") for tf in genome_cfg["tfs"]}
    needed = windows["chrom"].value_counts()
    tracks: list[BigWigTrack | None] = []
    for name in track_names:
        path = by_name.get(name)
        if not path:
            tracks.append(None)
            continue
        track = BigWigTrack(path, name, aliases.reference, aliases)
        # Every missing chromosome at once: an assembly's unplaced and alt contigs are often
        # missing together, and one run per contig would find them one by one.
        missing = [(str(c), int(n)) for c, n in needed.items() if not track.has_chrom(str(c))]
        if missing:
            (chrom, count), others = missing[0], missing[1:]
            nor = ", ".join(f"{c!r} ({n})" for c, n in others[:5]) + (
                f" and {len(others) - 5} more" if len(others) > 5 else ""
            )
            shown = ", ".join(track.own_chroms()[:5]) or "none"
            raise InputError(
                path,
                f"bigWig has no chromosome {chrom!r}, which holds {count} windows"
                + (f", nor {nor}" if others else "")
                + f" (bigWig has: {shown}; chrom_aliases: {aliases.rule}; "
                "extract.chromosomes.exclude leaves a chromosome out)",
            )
        differ = [str(c) for c in needed.index if track.chrom_size(str(c)) != sizes[str(c)]]
        if differ:
            shorter = any(track.chrom_size(c) < sizes[c] for c in differ)
            log.warning(
                "%s: %d chromosomes holding windows have another length here than in the FASTA (%s%s): "
                "is the bigWig for another assembly?%s",
                path,
                len(differ),
                ", ".join(f"{c}: {track.chrom_size(c)} bp, FASTA {sizes[c]} bp" for c in differ[:3]),
                f" and {len(differ) - 3} more" if len(differ) > 3 else "",
                " Its signal past its own, shorter chromosome ends reads 0" if shorter else "",
            )
        tracks.append(track)
    return tracks
