"""The conda environments of the rules (envs/*.yaml) against pyproject.toml and the code.

Snakemake with ``--sdm conda`` runs each rule in the environment its
``conda:`` directive names. These tests catch the two ways that goes wrong
without building any environment: an env that drifts from the package's
declared dependencies, and a rule whose seqae command imports a package its
env lacks (found by following the command's imports through the source).
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

ENVS = REPO / "envs"

#: conda package -> the top-level module it provides.
CONDA_MODULE = {
    "numpy": "numpy",
    "pandas": "pandas",
    "pyarrow": "pyarrow",
    "anndata": "anndata",
    "pyyaml": "yaml",
    "jsonschema": "jsonschema",
    "tqdm": "tqdm",
    "h5py": "h5py",
    "python-isal": "isal",
    "pyfaidx": "pyfaidx",
    "pybigwig": "pyBigWig",
    "biopython": "Bio",
    "ete3": "ete3",
    "six": "six",
    "scipy": "scipy",
    "matplotlib": "matplotlib",
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "scikit-learn": "sklearn",
    "threadpoolctl": "threadpoolctl",
    "pyqt": "PyQt5",
}
#: pip requirement name (pyproject.toml) -> conda package names that satisfy it.
PIP_TO_CONDA = {
    "torch": {"pytorch", "pytorch-cpu"},
    "isal": {"python-isal"},
    "pyBigWig": {"pybigwig"},
    "PyQt5": {"pyqt"},
}
#: conda packages that are not Python requirements of seqae.
NOT_PYTHON = {"python", "pip", "setuptools", "fasttree", "iqtree", "mafft"}
#: ``seqae`` subcommand -> the module its ``_cmd_*`` function imports (seqae/cli.py).
COMMAND_MODULE = {
    "simulate": "seqae.simulate",
    "extract": "seqae.extract",
    "extract-plan": "seqae.shards",
    "extract-shard": "seqae.shards",
    "extract-gather": "seqae.shards",
    "plot-extract": "seqae.plots",
    "train": "seqae.training",
    "embed": "seqae.embed",
    "embed-gather": "seqae.embed_shards",
    "evaluate": "seqae.evaluation",
    "compare": "seqae.compare",
    "trees": "seqae.phylo.stage",
    "trees-gather": "seqae.phylo.trees_table",
    "orthologs": "seqae.orthologs",
    "report": "seqae.report",
}
_SPEC = re.compile(r"^([A-Za-z0-9_.-]+)\s*(.*)$")


def env_packages(path: Path) -> dict[str, str]:
    """conda package -> version constraint ('' if none) of one env file."""
    env = yaml.safe_load(path.read_text())
    out = {}
    for dep in env["dependencies"]:
        name, spec = _SPEC.match(dep).groups()
        out[name] = spec.replace(" ", "")
    return out


def pyproject_requirements() -> dict[str, str]:
    """pip name -> version constraint of [project.dependencies], leaving out those
    for other Pythons than the envs' 3.11 (e.g. legacy-cgi, for 3.13 on)."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    deps = [d for d in deps if ";" not in d or "python_version>='3.13'" not in d.replace(" ", "")]
    assert all(";" not in d for d in deps), "a dependency with a marker this test does not know"
    return {name: spec.replace(" ", "") for name, spec in (_SPEC.match(d).groups() for d in deps)}


def rules_envs_and_commands() -> list[tuple[str, str, str | None]]:
    """(rule, env file name, seqae subcommand or None) of every rule in workflow/rules/."""
    found = []
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        for block in re.split(r"\n(?=\s*(?:rule|checkpoint) \w+:)", text):
            rule = re.search(r"^\s*(?:rule|checkpoint) (\w+):", block, re.MULTILINE)
            if rule is None:
                continue
            env = re.search(r'conda:\s*\n\s*"\.\./\.\./envs/([\w.-]+)"', block)
            command = re.search(r"\{params\.seqae\} ([a-z-]+)", block)
            found.append((rule.group(1), env.group(1) if env else None, command.group(1) if command else None))
    return found


def _module_file(module: str) -> Path | None:
    base = REPO.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _optional(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """True for imports under ``if TYPE_CHECKING`` or in a ``try`` that catches ImportError (or Exception)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
        if isinstance(node, ast.Try) and any(
            h.type is not None and re.search(r"\b(ImportError|Exception)\b", ast.unparse(h.type)) for h in node.handlers
        ):
            return True
    return False


def third_party_imports(module: str) -> set[str]:
    """Top-level third-party modules that ``module`` imports, following seqae's own
    imports transitively, including those inside functions (lazy imports)."""
    seen: set[str] = set()
    external: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run first
        path = _module_file(name)
        if path is None:
            continue
        tree = ast.parse(path.read_text())
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        package = name if path.name == "__init__.py" else ".".join(parts[:-1])
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    root = ".".join(base + ([node.module] if node.module else []))
                else:
                    root = node.module
                targets = [root] + [f"{root}.{a.name}" for a in node.names]
            else:
                continue
            if _optional(node, parents):
                continue
            for target in targets:
                top = target.split(".")[0]
                if top == "seqae":
                    todo.append(target)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    external.add(top)
    return external


def test_every_rule_names_an_existing_env():
    rules = rules_envs_and_commands()
    assert len(rules) >= 9
    for rule, env, _command in rules:
        assert env is not None, f"rule {rule} names no conda env"
        assert (ENVS / env).is_file(), f"rule {rule}: envs/{env} does not exist"


def test_envs_match_pyproject():
    required = pyproject_requirements()
    envs = {path.name: env_packages(path) for path in sorted(ENVS.glob("*.yaml"))}
    assert set(envs) == {"data.yaml", "models.yaml", "trees.yaml"}
    for path_name, packages in envs.items():
        for conda_name, spec in packages.items():
            if conda_name in NOT_PYTHON:
                continue
            pips = [p for p in required if conda_name in PIP_TO_CONDA.get(p, {p.lower()})]
            assert pips, f"envs/{path_name}: {conda_name} is not a dependency in pyproject.toml"
            # The same lower bound; an env may add an upper one (conda-forge's names differ across majors).
            assert spec.split(",")[0] == required[pips[0]], (
                f"envs/{path_name}: {conda_name} {spec} but pyproject.toml has {required[pips[0]]}"
            )
    every = set().union(*(set(p) for p in envs.values()))
    for pip_name in required:
        assert PIP_TO_CONDA.get(pip_name, {pip_name.lower()}) & every, f"{pip_name} is in no env of envs/"


@pytest.mark.parametrize("rule, env, command", [r for r in rules_envs_and_commands() if r[2] is not None])
def test_env_provides_what_the_rule_imports(rule, env, command):
    assert command in COMMAND_MODULE, f"rule {rule}: seqae {command} is not mapped to its module in this test"
    provided = {CONDA_MODULE[name] for name in env_packages(ENVS / env) if name in CONDA_MODULE}
    missing = third_party_imports(COMMAND_MODULE[command]) - provided
    assert not missing, f"rule {rule} runs `seqae {command}` in envs/{env}, which lacks {sorted(missing)}"


def test_import_scan_follows_lazy_imports():
    # seqae.cli imports nothing heavy at module level, but its commands do.
    assert "torch" in third_party_imports("seqae.training")
    assert {"ete3", "torch"} <= third_party_imports("seqae.phylo.stage")
    assert "torch" not in third_party_imports("seqae.extract")


def test_every_cli_command_is_mapped():
    from seqae.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMAND_MODULE)


def test_no_rule_sets_pythonpath():
    # Jobs run the seqae installed in their environment (editable, from this checkout).
    for path in [REPO / "Snakefile", *sorted((REPO / "workflow").rglob("*.smk"))]:
        assert "PYTHONPATH" not in path.read_text(), f"{path.relative_to(REPO)} sets PYTHONPATH"


@pytest.mark.parametrize("env", ["data", "models", "trees"])
def test_every_env_installs_seqae(env):
    script = ENVS / f"{env}.post-deploy.sh"
    assert script.is_file(), f"envs/{env}.yaml has no post-deploy script that installs seqae"
    assert os.access(script, os.X_OK), f"{script.name} is not executable"
    text = script.read_text()
    assert '--editable "$SEQAE_SOURCE"' in text and "--no-deps" in text
    # The script's build needs pip and the build backend in the env (no build isolation: no download).
    packages = env_packages(ENVS / f"{env}.yaml")
    backend = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"][0]
    assert "pip" in packages and packages.get("setuptools") == backend.removeprefix("setuptools")


def test_post_deploy_script_installs_this_checkout(tmp_path):
    """Run one env's post-deploy script as Snakemake would, in a fresh environment: seqae then imports from REPO."""
    # Found, not imported: importing setuptools here would swap distutils under the test process.
    specs = [importlib.util.find_spec(name) for name in ("pip", "setuptools")]
    if not all(spec and spec.origin for spec in specs):
        pytest.skip("pip or setuptools is not installed here")
    backend = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"][0]
    least = int(backend.removeprefix("setuptools>="))
    if int(importlib.metadata.version("setuptools").split(".")[0]) < least:
        pytest.skip(f"setuptools here is older than the build backend's {backend}")
    env_dir = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    # The throwaway env borrows this interpreter's pip and setuptools (a conda env lists its own);
    # a plain path in a .pth file is put on sys.path, without processing the .pth files found there.
    tools = {str(Path(spec.origin).parents[1]) for spec in specs}
    (Path(site) / "borrowed_tools.pth").write_text("\n".join(sorted(tools)) + "\n")
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    environ.update(PATH=f"{env_dir / 'bin'}{os.pathsep}{environ.get('PATH', '')}", SEQAE_SOURCE=str(REPO))
    script = str(ENVS / "data.post-deploy.sh")
    missing = subprocess.run(["bash", script], env={**environ, "SEQAE_SOURCE": ""}, capture_output=True, text=True)
    assert missing.returncode != 0 and "SEQAE_SOURCE" in missing.stderr
    run = subprocess.run(["bash", script], env=environ, capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    where = subprocess.run([str(python), "-c", "import seqae; print(seqae.__file__)"], env=environ,
                           capture_output=True, text=True, cwd=tmp_path, check=True)  # fmt: skip
    assert Path(where.stdout.strip()) == REPO / "seqae" / "__init__.py"
    assert not (Path(site) / "seqae").exists(), "seqae was copied into the env, not installed editable"
