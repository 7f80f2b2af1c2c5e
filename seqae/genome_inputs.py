"""One genome entry of the config (``genomes[i]``) read into tables on its FASTA's chromosome names.

Peak files and annotations may name chromosomes differently from the FASTA
(``chr1`` / ``1``); both are mapped onto the FASTA's names
(:func:`seqae.genome.harmonise_chrom_names`). Used by the extraction
(:mod:`seqae.extract`) and the ortholog families (:mod:`seqae.orthologs`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from seqae.annotation import read_genes
from seqae.errors import InputError
from seqae.genome import Genome, harmonise_chrom_names
from seqae.intervals import read_peaks, rename_chromosomes

__all__ = ["read_genome_genes", "read_genome_peaks"]

log = logging.getLogger("seqae")


def read_genome_peaks(genome_cfg: Mapping[str, Any], genome: Genome) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Peaks of every TF of one genome, chromosome names mapped onto the FASTA's."""
    frames, per_file = [], {}
    for tf in genome_cfg["tfs"]:
        peaks = read_peaks(tf["peaks"], peak_set=tf["name"])
        mapping = harmonise_chrom_names(peaks["chrom"].unique(), genome.chroms)
        if not mapping:
            shown = ", ".join(sorted(peaks["chrom"].unique())[:5])
            raise InputError(
                tf["peaks"],
                f"no chromosome name in common with the FASTA {genome.path} "
                f"(peaks on: {shown}; FASTA has: {', '.join(genome.chroms[:5])})",
            )
        renamed, dropped = rename_chromosomes(peaks, mapping)
        if len(dropped):
            log.warning(
                "%s: %d peaks on %d chromosomes absent from the FASTA were skipped (%s)",
                tf["peaks"],
                int(dropped.sum()),
                len(dropped),
                ", ".join(f"{k}: {v}" for k, v in dropped.head(5).items()),
            )
        per_file[tf["name"]] = {
            "file": str(tf["peaks"]),
            "n_peaks": len(peaks),
            "n_on_absent_chromosomes": int(dropped.sum()),
            "absent_chromosomes": {str(k): int(v) for k, v in dropped.items()},
        }
        frames.append(renamed)
    return pd.concat(frames, ignore_index=True), per_file



def read_genome_genes(path: str | None, sizes: Mapping[str, int], report: dict[str, Any]) -> pd.DataFrame | None:
    """Genes of one genome's annotation, chromosomes named as in its FASTA (``sizes``).

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
    mapping = harmonise_chrom_names(genes["chrom"].unique(), sizes)
    if not mapping:
        raise InputError(path, "no chromosome name in common with the FASTA")
    renamed, dropped = rename_chromosomes(genes, mapping)
    report["genes"] = {"file": str(path), "n_genes": len(genes), "n_on_absent_chromosomes": int(dropped.sum())}
    return renamed
