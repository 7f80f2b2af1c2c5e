"""Baseline trees for a family: distance NJ and FastTree, each timed.

* ``nj_p``: neighbor joining (:mod:`seqae.phylo.nj`) on p-distances.
* ``bme_p``: the same NJ tree refined by nearest-neighbour interchanges
  under balanced minimum evolution (:mod:`seqae.phylo.nni`), the search the
  latent tree uses by default, here on the raw p-distances.
* ``nj_jc69``: neighbor joining on JC69 distances.
* ``fasttree``: FastTree 2 (``-nt -gtr -gamma``, approximately-maximum-
  likelihood under GTR + Gamma(20 categories)) run as a subprocess on a
  temporary FASTA, when the binary is installed (Debian/Ubuntu package
  ``fasttree``: ``fasttree`` or ``FastTree``); otherwise the result has no
  tree and says why.
* ``iqtree``: IQ-TREE 2 (``-m GTR+G``: GTR + Gamma(4), maximum likelihood
  with its own tree search; :mod:`seqae.phylo.iqtree`), when installed
  (Debian/Ubuntu package ``iqtree``, binary ``iqtree2``); otherwise no tree
  and the reason. Its seed is the stage's, so a rerun gives the same tree.

Times are wall-clock seconds of the whole method (distances + NJ + tree
building; for FastTree and IQ-TREE writing the FASTA, the run and parsing the tree).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqae.errors import SeqaeError
from seqae.phylo.alphabet import decode
from seqae.phylo.compare import normalized_rf
from seqae.phylo.distance import jc69_distance, p_distance
from seqae.phylo.external_names import external_names, restore_names
from seqae.phylo.nj import neighbor_joining
from seqae.phylo.nni import nj_bme_tree

__all__ = [
    "BASELINES",
    "BaselineResult",
    "bme_p_distance",
    "fasttree",
    "find_fasttree",
    "iqtree",
    "nj_jc69",
    "nj_p_distance",
    "run_baselines",
]

FASTTREE_NAMES = ("FastTree", "fasttree")


@dataclass
class BaselineResult:
    """One baseline tree.

    Attributes:
        method: ``"nj_p"``, ``"bme_p"``, ``"nj_jc69"``, ``"fasttree"`` or ``"iqtree"``.
        tree: an ``ete3.Tree`` (unrooted: multifurcating root), or None when
            the method could not run.
        seconds: wall-clock time of the method (NaN when it did not run).
        reason: why there is no tree (None otherwise).
        nrf: normalised Robinson–Foulds distance to a reference tree, when one
            was given to :func:`run_baselines`.
    """

    method: str
    tree: object | None
    seconds: float
    reason: str | None = None
    nrf: float | None = None


def _check(codes: np.ndarray, names: Sequence[str]) -> np.ndarray:
    arr = np.asarray(codes)
    if arr.ndim != 2 or arr.shape[0] != len(names):
        raise ValueError(f"codes must be [n, L] with one row per name; got {arr.shape} for {len(names)} names")
    return arr


def nj_p_distance(codes: np.ndarray, names: Sequence[str]) -> BaselineResult:
    """Neighbor joining on p-distances of an alignment ``[n, L]``."""
    arr = _check(codes, names)
    start = time.perf_counter()
    tree = neighbor_joining(p_distance(arr, names), names)
    return BaselineResult("nj_p", tree, time.perf_counter() - start)


def bme_p_distance(codes: np.ndarray, names: Sequence[str]) -> BaselineResult:
    """Neighbor joining on p-distances, refined by BME nearest-neighbour interchanges."""
    arr = _check(codes, names)
    start = time.perf_counter()
    tree = nj_bme_tree(p_distance(arr, names), names)
    return BaselineResult("bme_p", tree, time.perf_counter() - start)


def nj_jc69(codes: np.ndarray, names: Sequence[str]) -> BaselineResult:
    """Neighbor joining on JC69 distances of an alignment ``[n, L]``."""
    arr = _check(codes, names)
    start = time.perf_counter()
    tree = neighbor_joining(jc69_distance(arr, names), names)
    return BaselineResult("nj_jc69", tree, time.perf_counter() - start)


def find_fasttree() -> str | None:
    """Path of the FastTree binary on PATH, or None."""
    for name in FASTTREE_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def fasttree(
    codes: np.ndarray,
    names: Sequence[str],
    extra_args: Sequence[str] = ("-gtr", "-gamma"),
    timeout: float | None = None,
) -> BaselineResult:
    """FastTree on an alignment ``[n, L]``: ``FastTree -nt <extra_args> aln.fa``.

    Args:
        codes: alignment codes (missing codes are written as ``N``).
        names: sequence names (safe for Newick, as :func:`~seqae.phylo.io.read_family`
            ensures).
        extra_args: model options; default GTR + Gamma.
        timeout: seconds before the run is stopped.

    Returns:
        The tree, or ``tree=None`` and ``reason`` when FastTree is not
        installed.

    Raises:
        SeqaeError: FastTree ran and failed (its last message line is shown).
    """
    from seqae.phylo.ete import Tree

    arr = _check(codes, names)
    binary = find_fasttree()
    if binary is None:
        return BaselineResult(
            "fasttree", None, float("nan"), reason="FastTree is not installed (apt-get install fasttree)"
        )
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="seqae-fasttree-") as folder:
        fasta = Path(folder) / "family.fa"
        # Neutral names out and the family's back, as for IQ-TREE (seqae.phylo.external_names).
        fasta.write_text("".join(f">{label}\n{decode(row)}\n" for label, row in zip(external_names(len(names)), arr)))
        cmd = [binary, "-nt", "-quiet", "-nopr", *extra_args, str(fasta)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise SeqaeError(f"FastTree did not finish within {timeout} s") from None
    if done.returncode != 0 or not done.stdout.strip():
        lines = [x for x in (done.stderr or "").strip().splitlines() if x.strip()]
        last = lines[-1] if lines else "no output"
        raise SeqaeError(f"FastTree failed (exit status {done.returncode}): {last}")
    tree = restore_names(Tree(done.stdout.strip(), format=1), names, "FastTree")
    # FastTree writes local support values as internal labels; keep them as support.
    for node in tree.traverse():
        if not node.is_leaf() and node.name:
            try:
                node.support = float(node.name)
                node.name = ""
            except ValueError:
                pass
    return BaselineResult("fasttree", tree, time.perf_counter() - start)


def iqtree(codes: np.ndarray, names: Sequence[str], seed: int = 1, timeout: float | None = None) -> BaselineResult:
    """IQ-TREE's maximum-likelihood tree under GTR + Gamma(4) (``-m GTR+G``), or no tree and why.

    Args:
        codes: alignment codes, 0..4 or 0..14 (:func:`~seqae.phylo.patterns.partial_codes`,
            which keeps the ambiguity codes as IQ-TREE reads them).
        names: sequence names (Newick-safe).
        seed: IQ-TREE's ``--seed``.
        timeout: seconds before the run is stopped.

    Raises:
        SeqaeError: IQ-TREE ran and failed, or timed out.
    """
    from seqae.phylo.iqtree import find_iqtree, run_iqtree

    arr = _check(codes, names)
    if find_iqtree() is None:
        return BaselineResult("iqtree", None, float("nan"), reason="IQ-TREE is not installed (apt-get install iqtree)")
    start = time.perf_counter()
    result = run_iqtree(arr, names, model="GTR+G", seed=seed, timeout=timeout)
    return BaselineResult("iqtree", result.tree, time.perf_counter() - start)


#: The baselines, in the order trees.tsv lists them.
BASELINES = ("nj_p", "bme_p", "nj_jc69", "fasttree", "iqtree")


def run_baselines(
    codes: np.ndarray,
    names: Sequence[str],
    reference=None,
    methods: Sequence[str] = BASELINES,
    seed: int = 1,
    partials: np.ndarray | None = None,
) -> list[BaselineResult]:
    """Run the baselines; with a reference tree, fill in each result's nRF.

    Args:
        codes: ``[n, L]`` alignment codes.
        names: ``n`` sequence names.
        reference: the true or reference ``ete3.Tree`` on the same names.
        methods: any of :data:`BASELINES`.
        seed: IQ-TREE's seed.
        partials: ``[n, L]`` codes 0..14 that keep the ambiguity codes
            (:func:`~seqae.phylo.patterns.partial_codes`), given to IQ-TREE
            instead of ``codes``.
    """
    runners = {
        "nj_p": nj_p_distance,
        "bme_p": bme_p_distance,
        "nj_jc69": nj_jc69,
        "fasttree": fasttree,
        "iqtree": lambda c, n: iqtree(c if partials is None else partials, n, seed=seed),
    }
    unknown = [m for m in methods if m not in runners]
    if unknown:
        raise ValueError(f"unknown baseline methods {unknown}; choose from {list(runners)}")
    results = []
    for method in methods:
        result = runners[method](codes, names)
        if reference is not None and result.tree is not None:
            result.nrf = normalized_rf(result.tree, reference)
        results.append(result)
    return results
