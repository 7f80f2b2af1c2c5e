"""One genome entry of the config (``genomes[i]``) read into tables on its FASTA's chromosome names.

Peak files and annotations may name chromosomes differently from the FASTA
(``chr1`` / ``1``); both are mapped onto the FASTA's names by the genome's
``chrom_aliases`` rule (:class:`seqae.chrom_names.ChromAliases`). Used by the extraction
(:mod:`seqae.extract`) and the ortholog families (:mod:`seqae.orthologs`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import pandas as pd

from seqae.annotation import read_genes
from seqae.chrom_names import ChromAliases
from seqae.errors import InputError
from seqae.genome import Genome
from seqae.intervals import read_peaks, rename_chromosomes

__all__ = ["genome_aliases", "read_genome_genes", "read_genome_peaks", "rename_onto_fasta"]

log = logging.getLogger("seqae")


def rename_onto_fasta(
    table: pd.DataFrame, source: str | os.PathLike[str], aliases: ChromAliases, what: str, level: int = logging.WARNING
) -> tuple[pd.DataFrame, pd.Series, dict[str, str]]:
    """A table's chromosomes renamed as the FASTA names them; its rows on chromosomes the FASTA lacks dropped.

    Args:
        table: rows with a ``chrom`` column, as ``source`` names them.
        source: the file they come from (named in the messages).
        aliases: the genome's chromosome-name rule.
        what: what the rows are (``peaks``, ``genes``, ``blacklist intervals``), in the messages.
        level: the log level of the line counting dropped rows.

    Returns:
        ``(renamed table, rows dropped per source chromosome, source name -> FASTA name)``.

    Raises:
        InputError: not one chromosome name in common with the FASTA (the rows would all be dropped,
            silently for a blacklist, which then excluded nothing).
    """
    mapping = aliases.map_source(source, table["chrom"].unique())
    if len(table) and not mapping:
        shown = ", ".join(sorted(table["chrom"].unique())[:5])
        raise InputError(
            source,
            f"no chromosome name in common with the FASTA ({what} on: {shown}; "
            f"FASTA has: {', '.join(aliases.reference[:5])}; chrom_aliases: {aliases.rule})",
        )
    renamed, dropped = rename_chromosomes(table, mapping)
    if len(dropped):
        log.log(
            level, "%s: %d of %d %s on %d chromosomes absent from the FASTA were skipped (%s)",
            source, int(dropped.sum()), len(table), what, len(dropped),
            ", ".join(f"{k}: {v}" for k, v in dropped.head(5).items()),
        )  # fmt: skip
    return renamed, dropped, mapping


def genome_aliases(genome_cfg: Mapping[str, Any], genome: Genome) -> ChromAliases:
    """The chromosome-name rule of one genome entry (``chrom_aliases``: auto, none or an alias table)."""
    return ChromAliases(genome.chroms, genome_cfg.get("chrom_aliases") or "auto")


def read_genome_peaks(
    genome_cfg: Mapping[str, Any], genome: Genome, aliases: ChromAliases | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Peaks of every TF of one genome, chromosome names mapped onto the FASTA's (``aliases``: the genome's rule)."""
    aliases = aliases or genome_aliases(genome_cfg, genome)
    frames, per_file = [], {}
    for tf in genome_cfg["tfs"]:
        peaks = read_peaks(tf["peaks"], peak_set=tf["name"])
        repeated = peaks.duplicated(["chrom", "summit"]).to_numpy()
        if repeated.any():
            # Concatenated replicates or a file appended twice: the same window again, weighted twice in training.
            log.warning(
                "%s: %d peaks repeat an earlier peak's summit (chromosome and position) and are dropped",
                tf["peaks"], int(repeated.sum()),
            )  # fmt: skip
            peaks = peaks[~repeated].reset_index(drop=True)
        renamed, dropped, mapping = rename_onto_fasta(peaks, tf["peaks"], aliases, "peaks")
        per_file[tf["name"]] = {
            "file": str(tf["peaks"]),
            "chrom_names": {ref: name for name, ref in sorted(mapping.items()) if name != ref},
            "n_peaks": len(peaks) + int(repeated.sum()),
            "n_repeated_summits": int(repeated.sum()),
            "n_on_absent_chromosomes": int(dropped.sum()),
            "absent_chromosomes": {str(k): int(v) for k, v in dropped.items()},
        }
        frames.append(renamed)
    return pd.concat(frames, ignore_index=True), per_file


def read_genome_genes(
    path: str | None, sizes: Mapping[str, int], report: dict[str, Any], aliases: ChromAliases | None = None
) -> pd.DataFrame | None:
    """Genes of one genome's annotation, chromosomes named as in its FASTA (``sizes``; ``aliases``: the rule, auto by default).

    Genes on chromosomes the FASTA lacks are dropped and counted in
    ``report["genes"]``; ``None`` (and ``report["genes"] = None``) without an
    annotation.

    Raises:
        InputError: a bad annotation, or one sharing no chromosome name with the FASTA.
    """
    if not path:
        report["genes"] = None
        return None
    genes = read_genes(path)
    aliases = aliases or ChromAliases(sizes)
    renamed, dropped, mapping = rename_onto_fasta(genes, path, aliases, "genes")
    past = renamed["end"].to_numpy() > renamed["chrom"].map(sizes).to_numpy()
    if past.any():
        first = renamed[past].iloc[0]
        log.warning(
            "%s: %d genes end past their chromosome's end in the FASTA (e.g. %s on %s ends at %d, which is %d bp): "
            "is the annotation for another assembly?",
            path, int(past.sum()), first["gene_id"], first["chrom"], first["end"], sizes[first["chrom"]],
        )  # fmt: skip
    report["genes"] = {
        "file": str(path),
        "n_genes": len(genes),
        "n_on_absent_chromosomes": int(dropped.sum()),
        "n_past_chromosome_end": int(past.sum()),
        "chrom_names": {ref: name for name, ref in sorted(mapping.items()) if name != ref},
    }
    return renamed
