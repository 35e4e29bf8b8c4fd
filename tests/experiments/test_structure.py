"""The experiments layer on the library: no script reaches into another module's private
helpers (names starting with ``_``); import-linter (``make lint``) checks the module graph."""

from __future__ import annotations

import ast
from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def private_uses(path: Path) -> list[str]:
    """``from experiments.x import _name`` and ``x._name`` on an imported experiments module."""
    tree = ast.parse(path.read_text())
    modules, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("experiments"):
            for alias in node.names:
                if alias.name.startswith("_"):
                    found.append(f"{node.module}.{alias.name}")
                elif node.module == "experiments":
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name.startswith("experiments.")}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and isinstance(node.value, ast.Name) and node.value.id in modules):  # fmt: skip
            found.append(f"{node.value.id}.{node.attr}")
    return found


def test_no_script_uses_another_modules_private_helpers():
    used = {p.name: private_uses(p) for p in sorted(EXPERIMENTS.glob("*.py"))}
    assert not {k: v for k, v in used.items() if v}


def test_the_checker_sees_a_private_use(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from experiments import train\nfrom experiments.data import _x\ntrain._fit()\n")
    assert sorted(private_uses(bad)) == ["experiments.data._x", "train._fit"]
