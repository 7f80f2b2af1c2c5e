"""``seqae extract``: summit-centred windows with tracks and labels -> windows file.

The stage runs in two passes over each genome, chromosome by chromosome and
chunk by chunk, so memory is bounded by the chunk size (and the label table),
not by the genome or the number of windows:

1. *Plan* (:mod:`seqae.extract_plan`): read peaks, harmonise chromosome
   names, merge close summits, place windows, drop those crossing a
   chromosome end, touching the blacklist or with too many N; measure GC;
   draw GC-matched background windows; label every window (nearest gene,
   TSS distance, region class, split).
2. *Write* (:mod:`seqae.extract_write`): per chromosome and chunk, cut the
   sequence codes and the signal of each bigWig out of spans read per
   cluster of nearby windows (:mod:`seqae.spans`), and append both to the
   HDF5 file.

Neither pass decodes more than a chunk's spans at once, so a chromosome is
never re-read per chunk; what was read against what the windows needed is in
``extract_report.json`` (``genomes[].reads``, ``bigwig_reads``).

Outputs, in the folder of ``out``: the windows file, ``windows.bed``,
``windows.tsv`` and ``extract_report.json`` (:mod:`seqae.extract_report`);
``genome_index/<species>/`` holds the FASTA indexes seqae builds (and the
decompressed copy of a plain-gzip FASTA). The QC figure is drawn from the
windows file by :func:`seqae.plots.plot_extract_qc` (``seqae plot-extract``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from seqae.config import Config
from seqae.extract_plan import plan_extraction
from seqae.extract_report import finish_extraction
from seqae.extract_write import TrackProfiles, windows_writer, write_labels_and_summary, write_rows
from seqae.fileio import atomic_output
from seqae.genome import Genome

log = logging.getLogger(__name__)


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
    with atomic_output(out) as tmp:
        with windows_writer(tmp, extraction, threads) as writer:
            write_rows(extraction, writer, profiles, progress)
            write_labels_and_summary(writer, extraction.labels, profiles)
        for plan in extraction.plans:
            plan.track_files = [t.file_reads() if t is not None else {} for t in plan.tracks]
        # The side files first: the windows file is renamed into place last.
        return finish_extraction(extraction, out, profiles)
