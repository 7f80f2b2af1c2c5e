"""seqae.phylo.iqtree: reading IQ-TREE's report, and a missing IQ-TREE."""

from __future__ import annotations

import numpy as np
import pytest

from seqae.errors import SeqaeError
from seqae.phylo.ete import Tree
from seqae.phylo.iqtree import model_string, parse_iqtree_report, run_iqtree

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPORT = """
Rate parameter R:

  A-C: 0.6421
  A-G: 1.8795
  A-T: 0.3375
  C-G: 0.2559
  C-T: 2.3987
  G-T: 1.0000

State frequencies: (empirical counts from alignment)

  pi(A) = 0.3229
  pi(C) = 0.2013
  pi(G) = 0.1963
  pi(T) = 0.2796

Model of rate heterogeneity: Gamma with 4 categories
Gamma shape alpha: 0.7045

Log-likelihood of the tree: -1760.8263 (s.e. 59.3837)
"""


def test_parse_iqtree_report() -> None:
    logl, model = parse_iqtree_report(REPORT)
    assert logl == -1760.8263
    assert model.exchangeabilities.tolist() == [0.6421, 1.8795, 0.3375, 0.2559, 2.3987, 1.0]
    assert model.freqs == pytest.approx([0.3229, 0.2013, 0.1963, 0.2796], abs=2e-4)
    assert model.alpha == 0.7045 and model.n_categories == 4
    assert model_string(model).startswith("GTR{0.6421,1.8795,0.3375,0.2559,2.3987}+F{0.32")
    with pytest.raises(SeqaeError, match="no 'Log-likelihood of the tree'"):
        parse_iqtree_report("nothing here", "x.iqtree")
    # A base absent from the alignment is printed as 0: read as the print's resolution, not rejected.
    _, absent = parse_iqtree_report(REPORT.replace("pi(T) = 0.2796", "pi(T) = 0.0000"))
    assert absent.freqs[3] == pytest.approx(
        1e-4 / (1 + 1e-4 - 0.2796), rel=1e-3
    ) and absent.freqs.sum() == pytest.approx(1.0)


def test_run_iqtree_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("seqae.phylo.iqtree.find_iqtree", lambda: None)
    with pytest.raises(SeqaeError, match="IQ-TREE is not installed"):
        run_iqtree(np.zeros((4, 5), dtype=np.uint8), list("abcd"), tree=Tree("((a,b),(c,d));"))
