"""The data layer holds no Trainer callback (those live in ``experiments/``): no class of
``datamodules`` derives from Lightning's ``Callback`` and no module imports it. Import-linter
(``make lint``) checks the module graph; it cannot name one class of an external package."""

from __future__ import annotations

import ast
from pathlib import Path

DATAMODULES = Path(__file__).resolve().parents[2] / "datamodules"


def callbacks(path: Path) -> list[str]:
    """Classes deriving from ``Callback`` / ``….Callback`` and imports of ``Callback``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef):
            bases = [ast.unparse(b) for b in node.bases]
            if any(b == "Callback" or b.endswith(".Callback") for b in bases):
                found.append(f"class {node.name}({', '.join(bases)})")
        elif isinstance(node, ast.ImportFrom):
            if any(a.name == "Callback" for a in node.names) or (node.module or "").endswith(
                ".callbacks"
            ):
                found.append(f"from {node.module} import …")
    return found


def test_no_trainer_callback_in_the_data_layer():
    used = {
        str(p.relative_to(DATAMODULES)): callbacks(p) for p in sorted(DATAMODULES.rglob("*.py"))
    }
    assert not {k: v for k, v in used.items() if v}


def test_the_checker_sees_a_callback(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pytorch_lightning as pl\nfrom pytorch_lightning import Callback\n"
        "class A(Callback): pass\nclass B(pl.Callback): pass\n"
    )
    assert len(callbacks(bad)) == 3
