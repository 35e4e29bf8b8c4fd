"""The tf.keras replica of `make bench` is the official network (counts, parity fixture).

Runs `benchmarks.keras_reference` in an interpreter that has TensorFlow: this one if it can import
it, else `.venv-keras` (created by `make bench-keras-env`); skipped when neither exists (CI).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KERAS_VENV_PY = REPO / ".venv-keras" / "bin" / "python"


def tf_python() -> str:
    if importlib.util.find_spec("tensorflow") is not None:
        return sys.executable
    if KERAS_VENV_PY.exists():
        return str(KERAS_VENV_PY)
    pytest.skip("TensorFlow not importable and .venv-keras absent (make bench-keras-env)")


def run_reference(*args: str) -> dict:
    cmd = [tf_python(), "-m", "benchmarks.keras_reference", "--no-timing", "--json", *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_k8_replica_has_the_official_parameter_counts() -> None:
    report = run_reference("--blocks", "8")
    assert (report["params"]["trainable"], report["params"]["total"]) == (14_669_952, 14_847_936)


def test_k2_replica_loads_the_fixture_and_reproduces_its_outputs(parity_dir: Path) -> None:
    expected = json.loads((parity_dir / "mpii_2d_k2.json").read_text())
    parity = run_reference("--blocks", "2", "--parity", str(parity_dir))["parity"]
    assert tuple(parity["params_k2"]) == (expected["trainable"], expected["total"])
    assert len(parity["per_output"]) == len(expected["outputs"])
    assert parity["constants_match_file"]  # our soft-argmax grids and context sum = the file's
    assert parity["max_rel_error"] <= 1e-4
