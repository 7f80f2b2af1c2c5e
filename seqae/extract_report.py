"""The side files of ``seqae extract`` beside the windows file: ``windows.bed``, ``windows.tsv`` and
``extract_report.json`` (counts, drops, GC matching, what was read, track summaries).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqae.extract_plan import Extraction, GenomePlan
from seqae.extract_write import TrackProfiles
from seqae.fileio import atomic_output, write_tsv_to
from seqae.spans import ReadStats

#: The side files, beside the windows file.
SIDE_FILES = ("windows.bed", "windows.tsv", "extract_report.json", "chrom.sizes")


def finish_extraction(extraction: Extraction, out: Path, profiles: TrackProfiles) -> dict[str, Any]:
    """The side files beside the windows file (BED, TSV, report, chrom.sizes); closes the inputs; returns the report.

    Each is written to a temporary file, and they are renamed into place only once all
    four are written. Called inside the windows file's own :func:`atomic_output`, so
    that a run that fails leaves every output as it was: no windows file beside the
    side files of another run.
    """
    labels = extraction.labels
    report = _report(extraction.plans, labels, extraction.settings, extraction.track_names, profiles)
    with contextlib.ExitStack() as outputs:
        bed, tsv, summary, sizes = (outputs.enter_context(atomic_output(out.parent / name)) for name in SIDE_FILES)
        _write_bed(labels, bed, name=out.parent / SIDE_FILES[0])
        write_tsv_to(labels, tsv, name=out.parent / SIDE_FILES[1])
        summary.write_text(json.dumps(report, indent=2) + "\n")
        sizes.write_text(chrom_sizes_text(extraction.plans))
    for plan in extraction.plans:
        plan.close()
    return report


def chrom_sizes_text(plans: list[GenomePlan]) -> str:
    """UCSC ``chrom.sizes`` of every genome's FASTA sequences: ``name<TAB>length`` (bp) per line.

    With several genomes each name is ``species:chrom``, as the embeddings' bigWigs name them;
    ``seqae embed --chrom-sizes`` takes it, so that their headers carry the assembly's lengths.
    """
    several = len(plans) > 1
    return "".join(
        f"{plan.species + ':' if several else ''}{chrom}\t{size}\n"
        for plan in plans
        for chrom, size in plan.chrom_sizes.items()
    )


def _write_bed(labels: pd.DataFrame, path: Path, name: Path | None = None) -> None:
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
    write_tsv_to(bed, path, header=False, name=name)


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
