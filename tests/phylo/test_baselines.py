"""seqae.phylo.baselines: NJ, BME, FastTree and IQ-TREE baseline trees (the external tools' tests skip
where they are not installed)."""

from __future__ import annotations

import numpy as np
import pytest

from seqae.phylo.baselines import find_fasttree, run_baselines
from seqae.phylo.iqtree import find_iqtree
from seqae.phylo.simulate import SubstitutionModel, simulate_family


def test_baselines_nj() -> None:
    family = simulate_family(10, 5000, np.random.default_rng(4), SubstitutionModel.hky85(2.0), height=0.3)
    methods = ["nj_p", "bme_p", "nj_jc69"]
    results = run_baselines(family.codes, family.names, reference=family.tree, methods=methods)
    assert [r.method for r in results] == methods
    for r in results:
        assert r.tree is not None and r.seconds >= 0 and r.reason is None
        assert r.nrf == 0.0


def test_fasttree_missing_gives_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from seqae.phylo import baselines

    monkeypatch.setattr(baselines.shutil, "which", lambda name: None)
    family = simulate_family(5, 50, np.random.default_rng(0))
    (result,) = run_baselines(family.codes, family.names, methods=["fasttree"])
    assert result.tree is None and "not installed" in result.reason


def test_iqtree_missing_gives_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from seqae.phylo import iqtree

    monkeypatch.setattr(iqtree.shutil, "which", lambda name: None)
    family = simulate_family(5, 50, np.random.default_rng(0))
    (result,) = run_baselines(family.codes, family.names, methods=["iqtree"])
    assert result.method == "iqtree" and result.tree is None and "IQ-TREE is not installed" in result.reason


@pytest.mark.skipif(find_iqtree() is None, reason="IQ-TREE is not installed (apt-get install iqtree)")
def test_iqtree_baseline_is_seeded() -> None:
    family = simulate_family(8, 1000, np.random.default_rng(8), SubstitutionModel.hky85(3.0, alpha=1.0), height=0.3)
    (a,) = run_baselines(family.codes, family.names, reference=family.tree, methods=["iqtree"], seed=5)
    (b,) = run_baselines(family.codes, family.names, methods=["iqtree"], seed=5)
    assert sorted(a.tree.get_leaf_names()) == sorted(family.names) and a.seconds > 0
    assert a.nrf <= 0.2 and a.tree.write(format=9) == b.tree.write(format=9)


@pytest.mark.skipif(find_fasttree() is None, reason="FastTree is not installed (apt-get install fasttree)")
def test_fasttree_baseline() -> None:
    family = simulate_family(10, 3000, np.random.default_rng(8), SubstitutionModel.hky85(3.0, alpha=1.0), height=0.3)
    (result,) = run_baselines(family.codes, family.names, reference=family.tree, methods=["fasttree"])
    assert result.tree is not None and result.seconds > 0
    assert sorted(result.tree.get_leaf_names()) == sorted(family.names)
    assert result.nrf <= 1 / 7  # 0 with FastTree 2.1.11; one split of slack for other versions


#: Names a Newick tree holds (seqae.phylo.io accepts them) that IQ-TREE would rewrite with '_'.
_ODD_NAMES = ["t0+v0", "Müller_é1", "a@b#2", "x&y=3", "p%q!4", "r*s$5", "u~v^6", "w<z7"]


@pytest.mark.parametrize(
    "method",
    [
        pytest.param("fasttree", marks=pytest.mark.skipif(find_fasttree() is None, reason="FastTree is not installed")),
        pytest.param("iqtree", marks=pytest.mark.skipif(find_iqtree() is None, reason="IQ-TREE is not installed")),
    ],
)
def test_external_trees_come_back_under_the_familys_own_names(method: str) -> None:
    family = simulate_family(8, 600, np.random.default_rng(3), SubstitutionModel.hky85(2.0), height=0.3)
    reference = family.tree.copy()
    for leaf in reference.get_leaves():
        leaf.name = _ODD_NAMES[family.names.index(leaf.name)]
    (result,) = run_baselines(family.codes, _ODD_NAMES, reference=reference, methods=[method], seed=2)
    assert sorted(result.tree.get_leaf_names()) == sorted(_ODD_NAMES) and result.nrf <= 0.2


@pytest.mark.skipif(find_iqtree() is None, reason="IQ-TREE is not installed (apt-get install iqtree)")
def test_iqtree_reads_dna_rich_in_ambiguity_codes_as_dna() -> None:
    from seqae.phylo.alphabet import partial_codes

    family = simulate_family(8, 400, np.random.default_rng(5), SubstitutionModel.hky85(2.0), height=0.3)
    rows = np.array([list(family.sequences()[name]) for name in family.names])
    rng = np.random.default_rng(6)
    rows[rng.random(rows.shape) < 0.15] = "R"  # 15% two-base codes: IQ-TREE alone guesses protein
    partials = partial_codes(["".join(r) for r in rows])
    (result,) = run_baselines(family.codes, family.names, methods=["iqtree"], partials=partials)
    assert sorted(result.tree.get_leaf_names()) == sorted(family.names)
