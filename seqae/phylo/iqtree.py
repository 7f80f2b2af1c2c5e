"""IQ-TREE as a subprocess: a maximum-likelihood tree, or a fixed tree's fit, and its model.

Debian/Ubuntu's package ``iqtree`` installs the binary as ``iqtree2`` (older
releases: ``iqtree``); :func:`find_iqtree` looks for ``iqtree2``,
``iqtree3`` and ``iqtree`` on PATH. :func:`run_iqtree` writes the alignment
to a temporary folder, runs

    iqtree2 -s aln.fa -st DNA -m GTR+G4 [-te tree.nwk [-blfix]] -T 1 --seed S -quiet

(``-st DNA``: IQ-TREE would take an alignment rich in ambiguity codes for
protein; the sequences go out as ``s0 .. s{n-1}``, as IQ-TREE rewrites
characters such as ``+`` in names, and come back under their own names)
and reads back the tree (``.treefile``), the log-likelihood and the fitted
GTR rates, frequencies and Gamma shape (``.iqtree`` report). IQ-TREE prints
the model parameters to 4 decimals, which moves a log-likelihood evaluated
with them by well under 0.001 per site.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqae.errors import SeqaeError
from seqae.phylo.alphabet import partial_text
from seqae.phylo.external_names import external_names, renamed_for_external, restore_names
from seqae.phylo.simulate import SubstitutionModel

__all__ = ["IQTREE_NAMES", "IQTreeResult", "find_iqtree", "model_string", "parse_iqtree_report", "run_iqtree"]

IQTREE_NAMES = ("iqtree2", "iqtree3", "iqtree")
_RATE = re.compile(r"^\s*([ACGT])-([ACGT]):\s*([-+0-9.eE]+)\s*$", re.MULTILINE)
_FREQ = re.compile(r"^\s*pi\(([ACGT])\)\s*=\s*([-+0-9.eE]+)\s*$", re.MULTILINE)
_ALPHA = re.compile(r"^Gamma shape alpha:\s*([-+0-9.eE]+)", re.MULTILINE)
_LOGL = re.compile(r"^Log-likelihood of the tree:\s*([-+0-9.eE]+)", re.MULTILINE)
_CATEGORIES = re.compile(r"^Model of rate heterogeneity: Gamma with (\d+) categories", re.MULTILINE)
_PAIR_ORDER = ("AC", "AG", "AT", "CG", "CT", "GT")


@dataclass
class IQTreeResult:
    """One IQ-TREE run.

    Attributes:
        tree: the ``ete3.Tree`` of ``.treefile`` (unrooted, branch lengths in
            expected substitutions per site).
        log_likelihood: the tree's log-likelihood as IQ-TREE reports it.
        model: the fitted substitution model (GTR values; equal rates for
            models without them).
        seconds: wall-clock time of the run (writing, IQ-TREE, reading).
    """

    tree: object
    log_likelihood: float
    model: SubstitutionModel
    seconds: float


def find_iqtree() -> str | None:
    """Path of the IQ-TREE binary on PATH (the first of :data:`IQTREE_NAMES` found), or None."""
    return next(filter(None, map(shutil.which, IQTREE_NAMES)), None)


def model_string(model: SubstitutionModel) -> str:
    """An IQ-TREE ``-m`` string that fixes every parameter of ``model``: ``GTR{..}+F{..}[+G4{alpha}]``."""
    rates = model.exchangeabilities / model.exchangeabilities[-1]
    # repr: the shortest text that reads back as the same double.
    text = (
        "GTR{"
        + ",".join(repr(float(r)) for r in rates[:5])
        + "}+F{"
        + ",".join(repr(float(f)) for f in model.freqs)
        + "}"
    )
    if model.alpha is not None:
        text += f"+G{model.n_categories}{{{float(model.alpha)!r}}}"
    return text


def parse_iqtree_report(text: str, source: str = ".iqtree report") -> tuple[float, SubstitutionModel]:
    """Log-likelihood and model from the text of an ``.iqtree`` report.

    Raises:
        SeqaeError: the report has no log-likelihood or no base frequencies.
    """
    logl = _LOGL.search(text)
    freqs = dict(_FREQ.findall(text))
    if logl is None or set(freqs) != set("ACGT"):
        raise SeqaeError(f"{source}: no 'Log-likelihood of the tree' or no base frequencies found")
    rates = {a + b: float(v) for a, b, v in _RATE.findall(text)}
    exchange = np.array([rates.get(pair, 1.0) for pair in _PAIR_ORDER])
    # Printed to 4 decimals: a base that is rare or absent in the alignment reads 0, which no model can hold;
    # it is floored at the print's resolution.
    pi = np.maximum(np.array([float(freqs[b]) for b in "ACGT"]), 1e-4)
    alpha = _ALPHA.search(text)
    categories = _CATEGORIES.search(text)
    model = SubstitutionModel.gtr(
        exchange,
        pi / pi.sum(),  # printed to 4 decimals: the sum can be 1 +- 2e-4
        alpha=float(alpha.group(1)) if alpha else None,
        n_categories=int(categories.group(1)) if categories else 4,
    )
    return float(logl.group(1)), model


def run_iqtree(
    codes: np.ndarray,
    names: Sequence[str],
    model: str = "GTR+G4",
    tree=None,
    fix_branch_lengths: bool = False,
    seed: int = 1,
    timeout: float | None = None,
) -> IQTreeResult:
    """Run IQ-TREE on an alignment ``[n, L]`` of codes.

    Args:
        codes: alignment codes, 0..4 (:mod:`seqae.phylo.alphabet`; missing
            written as ``N``) or 0..14 (:func:`~seqae.phylo.patterns.partial_codes`),
            rows in ``names`` order.
        names: sequence names (Newick-safe).
        model: IQ-TREE ``-m`` (e.g. ``GTR+G4``, or :func:`model_string` to fix
            every parameter).
        tree: an ``ete3.Tree`` to keep fixed (``-te``): IQ-TREE then fits only
            its branch lengths and the model; None = tree search.
        fix_branch_lengths: with ``tree``, keep its branch lengths too (``-blfix``).
        seed: IQ-TREE's random seed (``--seed``), for repeatable searches.
        timeout: seconds before the run is stopped.

    Raises:
        SeqaeError: IQ-TREE is not installed, failed (its last message line is
            shown), or timed out.
    """
    from seqae.phylo.ete import Tree

    binary = find_iqtree()
    if binary is None:
        raise SeqaeError("IQ-TREE is not installed (apt-get install iqtree)")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="seqae-iqtree-") as folder:
        work = Path(folder)
        (work / "aln.fa").write_text(
            "".join(
                f">{label}\n{partial_text(row)}\n" for label, row in zip(external_names(len(names)), np.asarray(codes))
            )
        )
        cmd = [binary, "-s", "aln.fa", "-st", "DNA", "-m", model, "-T", "1", "--seed", str(seed), "-quiet", "-redo"]
        cmd += ["-pre", "out"]
        if tree is not None:
            neutral = renamed_for_external(tree, names)
            (work / "user.nwk").write_text(neutral.write(format=5, dist_formatter="%0.17g"))
            cmd += ["-te", "user.nwk"] + (["-blfix"] if fix_branch_lengths else [])
        try:
            done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise SeqaeError(f"IQ-TREE did not finish within {timeout} s") from None
        report = work / "out.iqtree"
        if done.returncode != 0 or not report.exists():
            lines = [x for x in (done.stdout + done.stderr).strip().splitlines() if x.strip()]
            last = lines[-1] if lines else "no output"
            raise SeqaeError(f"IQ-TREE failed (exit status {done.returncode}): {last}")
        logl, fitted = parse_iqtree_report(report.read_text(), str(report))
        result_tree = restore_names(Tree((work / "out.treefile").read_text().strip(), format=1), names, "IQ-TREE")
    return IQTreeResult(result_tree, logl, fitted, time.perf_counter() - start)
