"""constraints.txt, the exact versions `make venv` installs, against pyproject.toml.

`make lock` writes the file from a fresh venv; these tests catch a dependency
added to pyproject without a new lock, a pin outside pyproject's range, and a
torch pin, which must stay out (the Makefile's TORCH_VERSION and index choose
the CPU or a CUDA build).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
#: The extras `make venv` installs (`pip install -e '.[workflow,dev]'`).
VENV_EXTRAS = ("workflow", "dev")
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)$")


def read_pins(path: Path) -> dict[str, Version]:
    """Canonical package name -> pinned version; comment and blank lines skipped.

    Raises:
        ValueError: a line that is not ``name==version``, or a name pinned twice.
    """
    pins: dict[str, Version] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        if not match:
            raise ValueError(f"{path.name}:{lineno}: not name==version: {line!r}")
        name = canonicalize_name(match["name"])
        if name in pins:
            raise ValueError(f"{path.name}:{lineno}: {name} is pinned twice")
        pins[name] = Version(match["version"])
    return pins


def venv_requirements() -> list[Requirement]:
    """The requirements `make venv` installs that apply to this Python: dependencies and its extras."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"])
    for extra in VENV_EXTRAS:
        texts += project["optional-dependencies"][extra]
    requirements = [Requirement(text) for text in texts]
    return [r for r in requirements if r.marker is None or r.marker.evaluate()]


@pytest.fixture(scope="module")
def pins() -> dict[str, Version]:
    return read_pins(REPO / "constraints.txt")


def test_every_requirement_is_pinned_within_its_range(pins):
    for requirement in venv_requirements():
        name = canonicalize_name(requirement.name)
        if name == "torch":
            continue
        assert name in pins, f"{requirement} has no pin in constraints.txt: run make lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject's {requirement}: run make lock"
        )


def test_torch_and_its_cuda_wheels_are_not_pinned(pins):
    held = [name for name in pins if name in ("torch", "triton") or name.startswith("nvidia-")]
    assert not held, f"constraints.txt pins {held}; the Makefile's TORCH_VERSION chooses torch's build"


def test_read_pins_names_a_bad_line(tmp_path):
    path = tmp_path / "constraints.txt"
    path.write_text("# header\nnumpy==2.4.6\nscipy>=1.11\n")
    with pytest.raises(ValueError, match=r"constraints.txt:3: not name==version"):
        read_pins(path)
    path.write_text("PyYAML==6.0.4\npyyaml==6.0.3\n")
    with pytest.raises(ValueError, match="pyyaml is pinned twice"):
        read_pins(path)
