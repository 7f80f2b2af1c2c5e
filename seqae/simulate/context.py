"""State shared by the stages of the demo-data generator.

A :class:`SimContext` is created once per :func:`seqae.simulate.simulate_demo`
call and handed to every stage in turn. Stages read what earlier stages left
(layout, genome arrays, genes, peaks) and add their own results; the writer
stages at the end turn it into files.

Conventions used throughout the package:

* sequences are ``numpy.uint8`` arrays of base codes ``A=0, C=1, G=2, T=3,
  N=4`` (so the complement of a base ``b < 4`` is ``3 - b``);
* coordinates are 0-based, half-open ``[start, end)`` (BED style) everywhere
  except in the GTF file, which is 1-based inclusive by definition.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqae import alphabet

#: Base codes: index -> ASCII letter (:mod:`seqae.alphabet`).
BASES = alphabet.BASES.encode()
A, C, G, T, N = 0, 1, 2, 3, alphabet.CODE_N


@dataclass
class ChromosomeInfo:
    """What the generator decided for one chromosome (all lengths in bp)."""

    name: str
    length: int
    gc_target: float
    #: Share of background CpGs removed.
    cpg_depletion: float = 0.0
    #: N runs, ``(start, end)`` pairs.
    n_runs: list[tuple[int, int]] = field(default_factory=list)
    #: Satellite (tandem repeat) array, ``(start, end)``, on at most one chromosome.
    satellite: tuple[int, int] | None = None
    #: Repeat family name -> consensus length (bp).
    repeat_families: dict[str, int] = field(default_factory=dict)
    #: Repeat family name -> bp covered by its copies.
    repeat_bp: dict[str, int] = field(default_factory=dict)
    #: bp covered by copies of the interspersed families shared by all chromosomes.
    interspersed_bp: int = 0


@dataclass
class SimContext:
    """Everything the stages share.

    Attributes:
        settings: ``config["simulate"]`` with defaults filled in.
        outdir: folder that receives every output file.
        chromosomes: per-chromosome decisions, in genome (FASTA) order.
        genome: chromosome name -> base codes, shape ``(length,)``, ``uint8``.
        reserved: chromosome name -> ``bool`` mask, shape ``(length,)``: N runs
            and the satellite array (no gene, repeat copy or peak goes there).
        planted: chromosome name -> ``bool`` mask of bases that later stages
            must not overwrite: N runs, the satellite and every planted motif
            instance, so that each row of the truth tables stays true in the
            final FASTA.
        layout: chromosome name -> list of gene spans ``(start, end, strand)``
            chosen by the layout stage, sorted by start.
        genes: one row per gene (see :mod:`seqae.simulate.genes`).
        exons: one row per exon.
        promoter_sites: one row per planted promoter-grammar motif.
        repeats: one row per inserted repeat copy.
        peaks: TF name -> one row per peak (see :mod:`seqae.simulate.peaks`).
        sites: one row per planted TF motif instance.
        outputs: output key -> path of the written file (the return value).
        extra: free room for plug-in stages.
    """

    settings: dict[str, Any]
    outdir: Path
    chromosomes: list[ChromosomeInfo] = field(default_factory=list)
    genome: dict[str, np.ndarray] = field(default_factory=dict)
    reserved: dict[str, np.ndarray] = field(default_factory=dict)
    planted: dict[str, np.ndarray] = field(default_factory=dict)
    layout: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)
    genes: pd.DataFrame | None = None
    exons: pd.DataFrame | None = None
    promoter_sites: pd.DataFrame | None = None
    repeats: pd.DataFrame | None = None
    peaks: dict[str, pd.DataFrame] = field(default_factory=dict)
    sites: pd.DataFrame | None = None
    outputs: dict[str, Path] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return int(self.settings["seed"])

    @property
    def chrom_names(self) -> list[str]:
        return [c.name for c in self.chromosomes]

    def rng(self, component: str) -> np.random.Generator:
        """An independent random stream for ``component``, derived from the seed.

        The stream is keyed by the component's *name* (not by its position in
        the stage list), so adding a stage later does not change what the
        existing stages draw, and the demo data of a given seed stays the same.
        """
        key = zlib.crc32(component.encode())
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(key,)))

    def chrom(self, name: str) -> ChromosomeInfo:
        for c in self.chromosomes:
            if c.name == name:
                return c
        raise KeyError(name)
