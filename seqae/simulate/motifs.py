"""Position weight matrices: the shipped JASPAR motifs, sampling and planting instances.

A PWM here is a ``(width, 4)`` array of base probabilities in ``A, C, G, T``
order. Instances are sampled column by column from it (so they vary like real
binding sites rather than all being the consensus) and written into the
genome on a random strand.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
from Bio import motifs as bio_motifs

from seqae.simulate.sequence import reverse_complement

#: Pseudocount added to every JASPAR count before normalising (per base).
PSEUDOCOUNT = 0.5


@dataclass(frozen=True)
class Pwm:
    """A motif: JASPAR-style ``id``, ``name`` and ``probs`` of shape ``(width, 4)`` (rows sum to 1)."""

    id: str
    name: str
    probs: np.ndarray

    @property
    def width(self) -> int:
        return int(self.probs.shape[0])

    def log_odds(self, background: float = 0.25) -> np.ndarray:
        """Log2 odds against a uniform background, shape ``(width, 4)``."""
        return np.log2(self.probs / background)

    def consensus(self) -> str:
        return "".join("ACGT"[i] for i in self.probs.argmax(axis=1))


@cache
def shipped_motifs() -> dict[str, Pwm]:
    """The motifs of ``seqae/data/jaspar_demo.jaspar``, by JASPAR id (file order)."""
    out: dict[str, Pwm] = {}
    with resources.files("seqae").joinpath("data/jaspar_demo.jaspar").open() as fh:
        for m in bio_motifs.parse(fh, "jaspar"):
            counts = np.array([m.counts[b] for b in "ACGT"], dtype=float).T + PSEUDOCOUNT
            probs = counts / counts.sum(axis=1, keepdims=True)
            probs.setflags(write=False)
            out[m.matrix_id] = Pwm(id=m.matrix_id, name=m.name, probs=probs)
    return out


def random_pwm(rng: np.random.Generator, width: int, motif_id: str, specificity: float = 0.85) -> Pwm:
    """A random motif: a random consensus with ``specificity`` on the consensus base per column."""
    probs = np.full((width, 4), (1.0 - specificity) / 3.0)
    probs[np.arange(width), rng.integers(0, 4, size=width)] = specificity
    return Pwm(id=motif_id, name=motif_id, probs=probs)


def sample_instances(rng: np.random.Generator, pwm: Pwm, n: int) -> np.ndarray:
    """``n`` instances drawn from ``pwm``, shape ``(n, width)``, uint8 codes, forward strand."""
    cum = np.cumsum(pwm.probs, axis=1)  # (width, 4)
    u = rng.random((n, pwm.width, 1))
    # Index of the first cumulative probability above u: inverse-CDF sampling
    # of every column of every instance at once.
    return np.minimum((u >= cum[None, :, :]).sum(axis=2), 3).astype(np.uint8)


def score_sites(seq: np.ndarray, starts: np.ndarray, strands: np.ndarray, pwm: Pwm) -> np.ndarray:
    """PWM log-odds (bits) of the windows ``seq[start:start+width]`` read on ``strands``.

    Args:
        seq: uint8 codes; windows containing N score ``-inf``.
        starts: shape ``(n,)``, 0-based.
        strands: shape ``(n,)`` of ``"+"``/``"-"``.
    Returns:
        shape ``(n,)``.
    """
    idx = np.asarray(starts)[:, None] + np.arange(pwm.width)[None, :]
    win = seq[idx]
    has_n = (win > 3).any(axis=1)
    win = np.where(has_n[:, None], 0, win)
    minus = np.asarray(strands) == "-"
    win[minus] = reverse_complement(win[minus])
    lo = pwm.log_odds()
    score = lo[np.arange(pwm.width)[None, :], win].sum(axis=1)
    return np.where(has_n, -np.inf, score)


def plant_near(
    rng: np.random.Generator,
    seq: np.ndarray,
    occupied: np.ndarray,
    pwm: Pwm,
    centers: np.ndarray,
    counts: np.ndarray,
    jitter: int,
    strands: np.ndarray | None = None,
    max_tries: int = 20,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Plant ``counts[k]`` instances of ``pwm`` centred within ``centers[k] +- jitter``.

    A site is placed only where ``occupied`` is False over its whole width, so
    instances never overwrite each other, N runs or earlier planted motifs;
    ``occupied`` is updated in place. A site that finds no free spot in
    ``max_tries`` draws is skipped (rare), so the caller must use the returned
    sites as the truth.

    Args:
        seq: uint8 codes of one chromosome, modified in place.
        occupied: bool mask, same shape as ``seq``.
        centers: shape ``(n,)``, 0-based.
        counts: shape ``(n,)``, instances wanted per center.
        strands: shape ``(n,)`` of ``"+"``/``"-"`` to force an orientation
            per center; random when None.
    Returns:
        ``(center_index, start, strand, score)`` of the planted sites, each shape ``(m,)``.
    """
    n_sites = int(np.sum(counts))
    owner = np.repeat(np.arange(len(centers)), counts)
    inst = sample_instances(rng, pwm, n_sites)
    if strands is None:
        site_strand = np.where(rng.random(n_sites) < 0.5, "+", "-")
    else:
        site_strand = np.asarray(strands)[owner]
    # Offsets are drawn up front for every try, vectorised; the loop below
    # only checks and writes, once per site.
    offsets = rng.integers(-jitter, jitter + 1, size=(n_sites, max_tries))
    w = pwm.width
    kept = np.zeros(n_sites, dtype=bool)
    starts = np.zeros(n_sites, dtype=np.int64)
    for j in range(n_sites):
        for start in centers[owner[j]] + offsets[j] - w // 2:
            if start < 0 or start + w > len(seq) or occupied[start : start + w].any():
                continue
            site = inst[j] if site_strand[j] == "+" else reverse_complement(inst[j])
            seq[start : start + w] = site
            occupied[start : start + w] = True
            kept[j], starts[j] = True, start
            break
    scores = score_sites(seq, starts[kept], site_strand[kept], pwm) if kept.any() else np.zeros(0)
    return owner[kept], starts[kept], site_strand[kept], scores
