"""Reproducible installs: ``make install`` takes every version from ``requirements/constraints.txt``
(torch from the Makefile's ``TORCH``), the lock pins the whole install set within pyproject's
ranges, and the environment the tests run in is the locked one."""

from __future__ import annotations

import importlib.metadata as md
import re
import sysconfig
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "constraints.txt"
tomllib = pytest.importorskip("tomllib")  # Python >= 3.11


def recipe(target: str) -> list[str]:
    """The command lines of a Makefile target (comments left out)."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, li in enumerate(lines) if li.startswith(f"{target}:"))
    body = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        if not line.strip().startswith("#"):
            body.append(line.strip())
    return body


def makefile_variable(name: str) -> str:
    text = (ROOT / "Makefile").read_text()
    return re.search(rf"^{name}\s*\??=\s*(.*)$", text, re.MULTILINE).group(1).strip()


def locked() -> dict[str, str]:
    """{canonical name: version} of the lock's ``name==version`` lines."""
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def project_requirements() -> list[Requirement]:
    """pyproject's dependencies and the test / stream extras, plus litdata's run-time imports."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    names = [*project["dependencies"], *extras["test"], *extras["stream"]]
    names += makefile_variable("LITDATA_DEPS").split()
    return [Requirement(n) for n in names]


def test_every_pip_install_of_make_install_uses_the_lock():
    installs = [li for li in recipe("install") if "pip install" in li]
    assert len(installs) == 5, installs  # pip, torch, the project, litdata, litdata's imports
    assert all("-c $(LOCK)" in li for li in installs), installs
    assert makefile_variable("LOCK") == "requirements/constraints.txt"
    assert "$(TORCH)" in installs[1], "torch is installed (pinned) before the project"


def test_the_lock_pins_every_requirement_within_pyprojects_range():
    pins = locked()
    for req in project_requirements():
        name = canonicalize_name(req.name)
        if name == "torch":  # pinned by the Makefile's TORCH, not by the lock
            assert name not in pins
            assert req.specifier.contains(makefile_variable("TORCH").split("==")[1])
            continue
        assert name in pins, f"{req.name} is not in {LOCK.name}"
        assert req.specifier.contains(pins[name], prereleases=True), (req, pins[name])
    assert "pip" in pins and "deephar-lightning" not in pins


def test_the_installed_environment_is_the_locked_one():
    """After ``make install`` (as in CI) every locked package has its locked version."""
    # site-packages only: an import of setuptools (torch.compile's C++ toolchain) puts its own
    # vendored packaging / platformdirs on sys.path, which pip did not install
    site = list(dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib")))
    installed = {
        canonicalize_name(d.metadata["Name"]): d.version for d in md.distributions(path=site)
    }
    wrong = {n: (installed[n], v) for n, v in locked().items() if installed.get(n, v) != v}
    assert not wrong, f"installed ≠ locked (run `make install`, or `make lock` to upgrade): {wrong}"
