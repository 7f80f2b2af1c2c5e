"""Background genome sequence: GC isochores, CpG depletion, repeat families, N runs.

Chromosomes differ only in subtle, realistic ways, so that a k-mer classifier
can tell them apart clearly above chance but far from perfectly:

* each has its own mean GC (``gc_mean + i * gc_step``), a few percent apart;
* GC varies along the chromosome in 5-20 kb blocks (isochore-like), which
  blurs the per-chromosome difference in any 1 kb window;
* CpG dinucleotides are depleted everywhere, as in vertebrate genomes (by
  turning C->T or G->A, as methylated-CpG deamination does);
* each chromosome carries 2-3 repeat families of its own (100-400 bp
  consensus sequences), inserted as diverged, often truncated copies;
* interspersed repeat families shared by every chromosome, as SINEs and LINEs
  are in real genomes (about half of a mammalian genome), cover
  ``interspersed_repeat_density`` of each chromosome: SINE-like 250-350 bp
  and LINE-like 1.5-3 kb consensus sequences, copies 5-25 % diverged (old and
  young insertions), LINE copies 5'-truncated to at most 1 kb, their CpGs
  decayed as the background's. They give a window sequence structure beyond
  its dinucleotide composition that is not specific to a chromosome (a
  window's dinucleotide shuffle keeps its composition and loses them), and
  the background's GC is drawn so that each chromosome keeps its GC target.

Everything is vectorised over bases; loops run per chromosome, per repeat
family or per repeat copy (a few thousand per Mb).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from seqae import alphabet
from seqae.simulate.context import BASES, C, G, N, SimContext
from seqae.simulate.layout import promoter_window

#: Length range of the GC blocks (bp).
ISOCHORE_MIN, ISOCHORE_MAX = 5000, 20000
#: Standard deviation of the GC of a block around the chromosome mean.
ISOCHORE_SD = 0.015
#: Share of CpG dinucleotides removed from the background (human: ~0.75-0.8);
#: each chromosome has its own value within +- CPG_DEPLETION_SPREAD of it
#: (CpG observed/expected differs between real chromosomes too).
CPG_DEPLETION = 0.75
CPG_DEPLETION_SPREAD = 0.08
#: Divergence of repeat copies from their consensus (substitutions per base).
REPEAT_DIVERGENCE = (0.10, 0.20)
#: Divergence between the units of the satellite array.
SATELLITE_DIVERGENCE = 0.03
#: Interspersed families shared by all chromosomes: (name prefix, count, consensus length range in bp,
#: relative copy number per family). SINEs are the most numerous copies, as Alu elements are.
INTERSPERSED_FAMILIES = (("SINE", 3, (250, 350), 3.0), ("LINE", 3, (1500, 3000), 1.0))
#: Divergence of interspersed copies from their consensus.
INTERSPERSED_DIVERGENCE = (0.05, 0.25)
#: Longest interspersed copy (bp).
INTERSPERSED_MAX_COPY = 1000
#: Spread of the interspersed families' GC around the genome mean.
INTERSPERSED_GC_SPREAD = 0.08
#: FASTA line width.
LINE_WIDTH = 60

_LOOKUP = np.frombuffer(BASES, dtype=np.uint8)


def random_bases(rng: np.random.Generator, gc: np.ndarray | float, n: int) -> np.ndarray:
    """``n`` independent bases with P(G or C) = ``gc`` (scalar or shape ``(n,)``); uint8 codes."""
    is_gc = rng.random(n) < gc
    pick = rng.integers(0, 2, size=n, dtype=np.uint8)
    # C=1, G=2 for GC bases; A=0, T=3 for AT bases.
    return np.where(is_gc, 1 + pick, 3 * pick).astype(np.uint8)


def deplete_cpg(rng: np.random.Generator, seq: np.ndarray, strength: float) -> None:
    """Remove a share ``strength`` of the CpG dinucleotides of ``seq`` in place.

    Each chosen CpG becomes TpG or CpA (deamination on either strand); neither
    change can create a new CpG, so one vectorised pass is exact.
    """
    pos = np.flatnonzero((seq[:-1] == C) & (seq[1:] == G))
    pos = pos[rng.random(len(pos)) < strength]
    on_minus = rng.random(len(pos)) < 0.5
    seq[pos[~on_minus]] = 3  # C -> T
    seq[pos[on_minus] + 1] = 0  # G -> A


def gc_for_depletion(gc: np.ndarray | float, strength: float) -> np.ndarray | float:
    """GC to draw with so that after CpG depletion the GC is ``gc``.

    Drawing with GC ``g`` gives CpGs at ``(g / 2) ** 2`` per base and depletion
    turns one G or C of a share ``strength`` of them into A or T, so solve
    ``g - strength * g**2 / 4 = gc`` for ``g``.
    """
    if strength <= 0:
        return gc
    return (1.0 - np.sqrt(1.0 - strength * np.asarray(gc))) / (strength / 2.0)


def isochore_gc(rng: np.random.Generator, length: int, gc_mean: float) -> np.ndarray:
    """Per-base GC probability, shape ``(length,)``: constant in 5-20 kb blocks around ``gc_mean``."""
    n_blocks = length // ISOCHORE_MIN + 2
    sizes = rng.integers(ISOCHORE_MIN, ISOCHORE_MAX + 1, size=n_blocks)
    ends = np.cumsum(sizes)
    sizes = sizes[: int(np.searchsorted(ends, length)) + 1]
    sizes[-1] -= int(sizes.sum()) - length
    block_gc = gc_mean + rng.normal(0.0, ISOCHORE_SD, size=len(sizes))
    # Re-centre so that the length-weighted mean is exactly the chromosome target.
    block_gc += gc_mean - float(np.average(block_gc, weights=sizes))
    return np.repeat(np.clip(block_gc, 0.05, 0.95), sizes)


def interspersed_families(rng: np.random.Generator, gc_mean: float) -> dict[str, np.ndarray]:
    """The genome's shared repeat families, name -> consensus codes (uint8), see :data:`INTERSPERSED_FAMILIES`."""
    families = {}
    for prefix, count, (low, high), _ in INTERSPERSED_FAMILIES:
        for k in range(count):
            gc = float(np.clip(gc_mean + rng.uniform(-INTERSPERSED_GC_SPREAD, INTERSPERSED_GC_SPREAD), 0.2, 0.8))
            families[f"{prefix}{k + 1}"] = random_bases(rng, gc, int(rng.integers(low, high + 1)))
    return families


def background(rng: np.random.Generator, length: int, gc_mean: float, cpg_depletion: float) -> np.ndarray:
    """Background sequence of one chromosome, shape ``(length,)``, uint8 codes (no N)."""
    gc = isochore_gc(rng, length, gc_mean)
    seq = random_bases(rng, gc_for_depletion(gc, cpg_depletion), length)
    deplete_cpg(rng, seq, cpg_depletion)
    return seq


def mutate(rng: np.random.Generator, seq: np.ndarray, rate: float) -> np.ndarray:
    """Copy of ``seq`` with each base substituted by a different one with probability ``rate``."""
    out = seq.copy()
    hit = rng.random(len(seq)) < rate
    out[hit] = (out[hit] + rng.integers(1, 4, size=int(hit.sum()), dtype=np.uint8)) % 4
    return out


def reverse_complement(seq: np.ndarray) -> np.ndarray:
    """Reverse complement of codes along the last axis, as ``uint8`` (:func:`seqae.alphabet.reverse_complement`)."""
    return alphabet.reverse_complement(seq).astype(np.uint8)


def gc_fraction(seq: np.ndarray) -> float:
    """GC share of the non-N bases of ``seq``."""
    acgt = seq[seq != N]
    return float(np.isin(acgt, (C, G)).mean()) if len(acgt) else float("nan")


def _blocked_for_repeats(ctx: SimContext, name: str) -> np.ndarray:
    """``bool [length]``: where no repeat copy may go: N runs, the satellite and the promoter windows
    (the promoter grammar is written there later and must stay intact)."""
    blocked = ctx.reserved[name].copy()
    for start, end, strand in ctx.layout[name]:
        a, b = promoter_window(start, end, strand)
        blocked[a:b] = True
    return blocked


def _place_copies(
    rng: np.random.Generator,
    chrom: str,
    families: dict[str, np.ndarray],
    weights: np.ndarray,
    target_bp: int,
    blocked: np.ndarray,
    fragment: Callable[[np.random.Generator, int], tuple[int, int]],
    divergence: tuple[float, float],
    cpg_depletion: float | None = None,
) -> list[tuple[int, np.ndarray, dict]]:
    """Diverged copies of ``families`` (name -> consensus) at free places of ``blocked`` until ~``target_bp``.

    ``fragment(rng, consensus length) -> (offset, length)`` picks the part of the
    consensus a copy keeps; ``cpg_depletion`` decays the copy's CpGs. Returns
    ``(start, codes as written on the + strand, truth row)`` per copy; marks the
    copies in ``blocked``. One loop iteration per copy (a few thousand per Mb).
    """
    names = list(families)
    length = len(blocked)
    copies: list[tuple[int, np.ndarray, dict]] = []
    covered, tries = 0, 0
    while covered < target_bp and tries < 20 * max(1, target_bp // 100):
        tries += 1
        fam = names[int(rng.choice(len(names), p=weights))]
        cons = families[fam]
        off, frag = fragment(rng, len(cons))
        start = int(rng.integers(0, length - frag))
        if blocked[start : start + frag].any():
            continue
        div = float(rng.uniform(*divergence))
        copy = mutate(rng, cons[off : off + frag], div)
        if cpg_depletion is not None:
            deplete_cpg(rng, copy, cpg_depletion)
        strand = "+" if rng.random() < 0.5 else "-"
        blocked[start : start + frag] = True
        covered += frag
        row = {"family": fam, "chrom": chrom, "start": start, "end": start + frag, "strand": strand, "divergence": div}
        copies.append((start, copy if strand == "+" else reverse_complement(copy), row))
    return copies


def _three_prime_fragment(rng: np.random.Generator, cons_len: int) -> tuple[int, int]:
    """Interspersed copies: 5'-truncated (they keep the consensus' 3' end), at most INTERSPERSED_MAX_COPY bp."""
    frag = min(INTERSPERSED_MAX_COPY, max(50, int(cons_len * rng.uniform(0.3, 1.0))))
    return cons_len - frag, frag


def _any_fragment(rng: np.random.Generator, cons_len: int) -> tuple[int, int]:
    """Chromosome-specific copies: most are fragments, from anywhere in the consensus."""
    frag = max(50, int(cons_len * rng.uniform(0.5, 1.0)))
    return int(rng.integers(0, cons_len - frag + 1)), frag


def _plan_interspersed(
    ctx: SimContext, rng: np.random.Generator, name: str, families: dict[str, np.ndarray], blocked: np.ndarray
) -> list[tuple[int, np.ndarray, dict]]:
    """Copies of the shared families covering ~``interspersed_repeat_density`` of chromosome ``name``.

    Returns ``(start, codes, truth row)`` per copy; marks the copies in ``blocked``.
    """
    info = ctx.chrom(name)
    target_bp = int(ctx.settings["interspersed_repeat_density"] * info.length)
    copy_number = {prefix: weight for prefix, _, _, weight in INTERSPERSED_FAMILIES}
    weights = rng.dirichlet(np.full(len(families), 4.0)) * [copy_number[n.rstrip("0123456789")] for n in families]
    copies = _place_copies(rng, name, families, weights / weights.sum(), target_bp, blocked, _three_prime_fragment,
                           INTERSPERSED_DIVERGENCE, info.cpg_depletion)  # fmt: skip
    info.interspersed_bp = sum(len(codes) for _, codes, _ in copies)
    return copies


def _insert_repeats(
    ctx: SimContext, rng: np.random.Generator, name: str, seq: np.ndarray, blocked: np.ndarray
) -> list[dict]:
    """Create this chromosome's repeat families and insert copies covering ~``repeat_density``."""
    info = ctx.chrom(name)
    target_bp = int(ctx.settings["repeat_density"] * len(seq))
    n_fam = int(rng.integers(2, 4))
    families = {}
    for k in range(n_fam):
        fam = f"{name}_rep{k + 1}"
        cons_len = int(rng.integers(100, 401))
        # Families differ in composition (AT-rich LINE-like to GC-rich SINE-like).
        families[fam] = random_bases(rng, float(np.clip(info.gc_target + rng.uniform(-0.12, 0.12), 0.2, 0.8)), cons_len)
        info.repeat_families[fam] = cons_len
        info.repeat_bp[fam] = 0
    weights = rng.dirichlet(np.full(n_fam, 2.0))
    copies = _place_copies(rng, name, families, weights, target_bp, blocked, _any_fragment, REPEAT_DIVERGENCE)
    for start, codes, row in copies:
        seq[start : start + len(codes)] = codes
        info.repeat_bp[row["family"]] += len(codes)
    return [row for _, _, row in copies]


def _write_satellite(rng: np.random.Generator, seq: np.ndarray, a: int, b: int) -> None:
    """Fill ``seq[a:b]`` with a tandem array of one ~170 bp AT-rich unit."""
    unit = random_bases(rng, 0.38, int(rng.integers(150, 181)))
    n_units = (b - a) // len(unit) + 1
    array = mutate(rng, np.tile(unit, n_units), SATELLITE_DIVERGENCE)
    seq[a:b] = array[: b - a]


def simulate_sequence(ctx: SimContext) -> None:
    """Stage ``sequence``: background, repeat copies, satellite and N runs of every chromosome.

    Fills ``ctx.genome`` and ``ctx.repeats``; the repeat coverage goes into ``ctx.chromosomes``.
    """
    rows: list[dict] = []
    # Evenly spaced CpG depletion levels in random order, so that no two
    # chromosomes happen to share one and the order is unrelated to GC.
    n = len(ctx.chromosomes)
    levels = np.linspace(-1.0, 1.0, n)[ctx.rng("sequence/cpg").permutation(n)]
    shared = interspersed_families(ctx.rng("sequence/interspersed"), ctx.settings["gc_mean"])
    for info, level in zip(ctx.chromosomes, levels, strict=True):
        info.cpg_depletion = float(CPG_DEPLETION + CPG_DEPLETION_SPREAD * level)
        # One stream per chromosome: chromosomes do not depend on each other's draws.
        rng = ctx.rng(f"sequence/{info.name}")
        blocked = _blocked_for_repeats(ctx, info.name)
        copies = _plan_interspersed(ctx, ctx.rng(f"sequence/interspersed/{info.name}"), info.name, shared, blocked)
        # Background GC such that background plus shared copies meet the chromosome's target.
        copy_bp = sum(len(c) for _, c, _ in copies)
        copy_gc = sum(int(np.isin(c, (C, G)).sum()) for _, c, _ in copies)
        gc = (info.gc_target * info.length - copy_gc) / max(1, info.length - copy_bp)
        seq = background(rng, info.length, float(np.clip(gc, 0.1, 0.9)), info.cpg_depletion)
        for start, codes, row in copies:
            seq[start : start + len(codes)] = codes
            rows.append(row)
        rows += _insert_repeats(ctx, rng, info.name, seq, blocked)
        if info.satellite is not None:
            _write_satellite(rng, seq, *info.satellite)
        for a, b in info.n_runs:
            seq[a:b] = N
        ctx.genome[info.name] = seq
    ctx.repeats = pd.DataFrame(rows, columns=["family", "chrom", "start", "end", "strand", "divergence"])


def write_fasta(path: str | Path, genome: dict[str, np.ndarray], line_width: int = LINE_WIDTH) -> None:
    """Write ``genome`` (name -> codes) as FASTA with ``line_width``-character lines.

    Each chromosome is turned into one byte buffer with newlines inserted by
    reshaping, so no Python loop runs per line.
    """
    with open(path, "wb") as fh:
        for name, seq in genome.items():
            fh.write(f">{name}\n".encode())
            letters = _LOOKUP[seq]
            n_full = len(letters) // line_width
            body = np.empty((n_full, line_width + 1), dtype=np.uint8)
            body[:, :line_width] = letters[: n_full * line_width].reshape(n_full, line_width)
            body[:, line_width] = ord("\n")
            fh.write(body.tobytes())
            rest = letters[n_full * line_width :]
            if len(rest):
                fh.write(rest.tobytes() + b"\n")
