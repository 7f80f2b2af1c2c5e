"""Python 3.13 removed the standard ``cgi`` module, which ete3 imports: seqae
must import and draw a tree without it (tested here on any Python by making
``cgi`` unimportable, as it is on 3.13 without legacy-cgi)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from tests.conftest import REPO

SCRIPT = textwrap.dedent(
    """
    import importlib
    import pkgutil
    import sys
    from pathlib import Path

    sys.modules["cgi"] = None  # `import cgi` now raises ImportError, as on Python 3.13
    import seqae

    names = [m.name for m in pkgutil.walk_packages(seqae.__path__, "seqae.") if m.name != "seqae.__main__"]
    for name in names:
        importlib.import_module(name)

    import numpy as np

    from seqae.phylo.ete import Tree, TreeStyle
    from seqae.phylo.distance import p_distance
    from seqae.phylo.nj import neighbor_joining
    from seqae.phylo.render import render_tree
    from seqae.phylo.simulate import simulate_family

    family = simulate_family(8, 60, np.random.default_rng(0))
    tree = neighbor_joining(p_distance(family.codes), family.names)
    assert isinstance(tree, Tree) and TreeStyle is not None
    out = Path(sys.argv[1])
    render_tree(tree, out, labels={name: "a" for name in family.names[:4]}, width=300)
    assert out.stat().st_size > 1000
    assert sys.modules["cgi"] is None, "the stand-in for cgi stayed in sys.modules"
    print(len(names), "modules")
    """
)


def test_seqae_imports_and_draws_a_tree_without_cgi(tmp_path: Path) -> None:
    env = dict(
        os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "tree.png")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[0]) > 40


def test_legacy_cgi_is_a_dependency_from_python_313() -> None:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(
        d.replace(" ", "").startswith("legacy-cgi") and "python_version>='3.13'" in d.replace(" ", "") for d in deps
    )
