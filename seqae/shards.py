"""Sharded extraction: plan once, write groups of chromosomes as separate jobs, gather one windows file.

What a cluster runs in parallel (``extract.shards`` > 1 in the workflow):

1. ``seqae extract-plan``: pass 1 over every genome, as ``seqae extract``
   does it (windows, GC-matched background, labels, splits: everything the
   seed decides), written to ``shards/labels.parquet`` and ``shards/plan.json``
   beside the windows file, with the row range of each shard: groups of whole
   chromosomes in file order, balanced by windows, each starting on the
   windows file's chunk grid (:data:`seqae.windows.store.ROW_ALIGN` rows).
2. ``seqae extract-shard --shard K``: pass 2 for shard K's rows, opening only
   the genomes they lie on, into ``shards/shard_K.h5`` (sequence and tracks,
   compressed as the windows file is).
3. ``seqae extract-gather``: the windows file, its chunks copied from the
   shards as they are (no inflate, no deflate), then the labels and the mean
   profiles; the BED, TSV and report beside it, with the reads of every job.

The windows file is the one ``seqae extract`` writes for the same
configuration: same rows, bytes and labels (tested).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from seqae.config import Config, genome_input_files
from seqae.errors import InputError
from seqae.extract_plan import (
    Extraction,
    GenomePlan,
    collect_track_names,
    genome_work_dir,
    open_tracks,
    plan_extraction,
    windows_schema,
)
from seqae.extract_report import finish_extraction
from seqae.extract_write import TrackProfiles, windows_writer, write_labels_and_summary, write_rows
from seqae.fileio import atomic_output, output_folder, require_file
from seqae.genome import Genome
from seqae.genome_inputs import genome_aliases
from seqae.windows.store import ROW_ALIGN

log = logging.getLogger(__name__)

PLAN_LABELS = "labels.parquet"
PLAN_JSON = "plan.json"


def shard_dir(out: str | Path) -> Path:
    """The folder of the plan and the shards, beside the windows file ``out``."""
    return Path(out).parent / "shards"


def shard_path(out: str | Path, shard: int) -> Path:
    """Shard ``shard``'s file."""
    return shard_dir(out) / f"shard_{shard:03d}.h5"


def shard_rows(labels: pd.DataFrame, n_shards: int, align: int = ROW_ALIGN) -> list[tuple[int, int]]:
    """Row ranges ``[lo, hi)`` of ``n_shards`` shards of the label table (file order).

    Each boundary is the start of a chromosome (or genome) nearest to an
    equal split of the windows, moved back to a multiple of ``align`` so that
    shards start on the chunk grid: a shard holds whole chromosomes, give or
    take the windows of one chunk. Shards may be empty when chromosomes are
    fewer than shards.
    """
    n = len(labels)
    keys = labels["species"].astype(str) + "\0" + labels["chrom"].astype(str)
    starts = np.flatnonzero(np.r_[True, keys.to_numpy()[1:] != keys.to_numpy()[:-1]]) if n else np.zeros(1, np.int64)
    bounds = [0]
    for k in range(1, n_shards):
        target = k * n / n_shards
        nearest = int(starts[np.argmin(np.abs(starts - target))])
        bounds.append(max(bounds[-1], nearest // align * align))
    bounds.append(n)
    return [(lo, max(lo, hi)) for lo, hi in itertools.pairwise(bounds)]


def plan_shards(config: Config, out: str | Path, n_shards: int) -> dict[str, Any]:
    """Step 1: plan the extraction and write the plan of ``n_shards`` shards; return the plan (``plan.json``)."""
    out = Path(out)
    opened: list[Genome] = []
    try:
        extraction = plan_extraction(config, out, opened)
        folder = shard_dir(out)
        output_folder(folder)
        plan = {
            "config": _planned_config(config),
            "n_windows": len(extraction.labels),
            "shards": shard_rows(extraction.labels, n_shards),
            "genomes": [_genome_plan(p) for p in extraction.plans],
        }
        with atomic_output(folder / PLAN_LABELS) as tmp:
            extraction.labels.to_parquet(tmp, index=False)
        with atomic_output(folder / PLAN_JSON) as tmp:
            tmp.write_text(json.dumps(plan, indent=1) + "\n")
    except BaseException:
        for genome in opened:
            genome.discard_created()
        raise
    for p in extraction.plans:
        p.close()
    return plan


def _genome_plan(plan: GenomePlan) -> dict[str, Any]:
    """What the shard and gather jobs need of one genome's plan."""
    return {
        "species": plan.species,
        "n_windows": len(plan.windows),
        "report": plan.report,
        "chrom_sizes": plan.chrom_sizes,
        "reads": plan.reads_state(),
    }


def _read_plan(config: Config, out: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    folder = shard_dir(out)
    plan = json.loads(require_file(folder / PLAN_JSON, "extraction plan (seqae extract-plan)").read_text())
    labels = pd.read_parquet(require_file(folder / PLAN_LABELS, "extraction plan's labels"))
    if [g["species"] for g in plan["genomes"]] != [g["species"] for g in config["genomes"]]:
        raise InputError(folder / PLAN_JSON, "planned for other genomes than the configuration's; plan again")
    planned, given = plan.get("config"), _planned_config(config)
    if planned is not None and planned != given:
        # A shard of other settings would be written in full before the gather found out (or not at all).
        raise InputError(folder / PLAN_JSON, f"{_difference(planned, given)}; plan again (seqae extract-plan)")
    return plan, labels


def _planned_config(config: Config) -> dict[str, Any]:
    """The parts of the configuration a plan fixes (extraction settings, genome inputs), as JSON values,
    and the size and modification time of each input file (a FASTA replaced after the plan)."""
    files = {}
    for path in genome_input_files(config["genomes"]):
        if os.path.isfile(path):
            stat = os.stat(path)
            files[path] = [stat.st_size, stat.st_mtime_ns]
    return json.loads(json.dumps({"extract": config["extract"], "genomes": config["genomes"], "files": files}))


def _difference(planned: dict[str, Any], given: dict[str, Any]) -> str:
    """The first setting in which two :func:`_planned_config` differ, in words."""
    for key in sorted(set(planned["extract"]) | set(given["extract"])):
        was, now = planned["extract"].get(key), given["extract"].get(key)
        if was != now:
            return f"planned with extract.{key} = {json.dumps(was)}, the configuration has {json.dumps(now)}"
    differ = next((i for i, (a, b) in enumerate(zip(planned["genomes"], given["genomes"])) if a != b), None)
    if differ is not None:
        return f"planned with other inputs of genomes[{differ}] ({given['genomes'][differ]['species']})"
    was = planned.get("files", {})
    changed = next(path for path in sorted(set(was) | set(given["files"])) if was.get(path) != given["files"].get(path))
    return f"planned before {changed} changed (its size or modification time)"


def _extraction(
    config: Config, out: Path, plan: Mapping[str, Any], labels: pd.DataFrame, rows: tuple[int, int] | None
) -> Extraction:
    """The planned extraction again, its genomes opened where they hold rows in ``rows`` (None: none opened)."""
    settings = config["extract"]
    track_names = collect_track_names(config["genomes"])
    plans = []
    offset = 0
    for genome_cfg, planned in zip(config["genomes"], plan["genomes"], strict=True):
        n = int(planned["n_windows"])
        windows = labels.iloc[offset : offset + n]
        genome, tracks = None, [None] * len(track_names)
        if rows is not None and offset < rows[1] and offset + n > rows[0]:
            genome = Genome(genome_cfg["fasta"], work_dir=genome_work_dir(out, genome_cfg))
            tracks = open_tracks(genome_cfg, track_names, genome_aliases(genome_cfg, genome), windows,
                                 genome.chrom_sizes)  # fmt: skip
        plans.append(GenomePlan(genome_cfg["species"], genome, windows, tracks, planned["report"],
                                chrom_sizes=planned["chrom_sizes"]))  # fmt: skip
        offset += n
    if offset != len(labels):
        raise InputError(shard_dir(out) / PLAN_JSON, f"plans {offset} windows, its labels hold {len(labels)}")
    return Extraction(plans, labels, windows_schema(settings, track_names), track_names, settings)


def write_shard(config: Config, out: str | Path, shard: int, threads: int | None = None, progress: bool = True) -> Path:
    """Step 2: write shard ``shard`` of the plan (temporary file, renamed when complete); return its path."""
    out = Path(out)
    plan, labels = _read_plan(config, out)
    if not 0 <= shard < len(plan["shards"]):
        raise InputError(shard_dir(out) / PLAN_JSON, f"has shards 0 to {len(plan['shards']) - 1}, not {shard}")
    rows = tuple(plan["shards"][shard])
    extraction = _extraction(config, out, plan, labels, rows)
    profiles = TrackProfiles()
    try:
        with atomic_output(shard_path(out, shard)) as tmp, windows_writer(tmp, extraction, threads) as writer:
            write_rows(extraction, writer, profiles, progress, rows)
            meta = {"rows": list(rows), "reads": [p.reads_state() for p in extraction.plans], "counts": profiles.counts}
            writer.finish_shard(meta, {f"profile_sum/{kind}": total for kind, total in profiles.sums.items()})
    finally:
        for p in extraction.plans:
            p.close()
    return shard_path(out, shard)


def gather_shards(config: Config, out: str | Path, threads: int | None = None) -> dict[str, Any]:
    """Step 3: the windows file from the shards, and its BED, TSV and report; return the report."""
    out = Path(out)
    plan, labels = _read_plan(config, out)
    extraction = _extraction(config, out, plan, labels, None)
    for p, planned in zip(extraction.plans, plan["genomes"], strict=True):
        p.add_reads(planned["reads"])
    profiles = TrackProfiles()
    with atomic_output(out) as tmp:
        with windows_writer(tmp, extraction, threads) as writer:
            for shard, rows in enumerate(plan["shards"]):
                path = shard_path(out, shard)
                with h5py.File(require_file(path, "windows shard (seqae extract-shard)"), "r") as f:
                    meta = json.loads(f.attrs.get("shard", "{}"))
                    if meta.get("rows") != list(rows):
                        raise InputError(
                            path, f"holds rows {meta.get('rows')}, the plan's shard {shard} is {list(rows)}"
                        )
                    sums = {kind: f[f"shard/profile_sum/{kind}"][()] for kind in meta["counts"]}
                writer.append_shard(path)
                profiles.merge(sums, meta["counts"])
                for p, reads in zip(extraction.plans, meta["reads"], strict=True):
                    p.add_reads(reads)
            write_labels_and_summary(writer, labels, profiles)
        # The side files first: the windows file is renamed into place last.
        return finish_extraction(extraction, out, profiles)
