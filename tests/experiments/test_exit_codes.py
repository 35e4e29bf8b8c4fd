"""Every command that trains ends a diverged run as ``experiments.train`` does: one line and exit
``EXIT_NONFINITE`` (4), not a traceback nor the start-up refusal's 2."""

from __future__ import annotations

import pytest

from deephar.tasks.finite import NonFiniteError
from experiments import ablation, crossval, demo
from experiments.faults import EXIT_NONFINITE

LINE = "non-finite loss at step 3 (loss; read at step 3): training stopped"


def diverge(*args, **kwargs):
    raise NonFiniteError(LINE)


@pytest.mark.parametrize(
    ("module", "inner", "argv"),
    [
        (ablation, "run_ablation", ["--dataset", "synthetic"]),
        (crossval, "crossval", ["penn_poses", "folds=2"]),
        (demo, "run_demo", []),
    ],
)
def test_a_diverged_run_exits_4_with_one_line(module, inner, argv, monkeypatch, capsys):
    monkeypatch.setattr(module, inner, diverge)
    if module is crossval:
        monkeypatch.setattr(module, "parse", lambda argv: ())
    assert module.main(argv) == EXIT_NONFINITE == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {LINE}"]
