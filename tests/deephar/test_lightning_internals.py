"""Lightning's private internals, used in ``deephar.lightning_internals`` only: each one exists in
the installed Lightning (a failure names the attribute and the version), a missing one is named
by the startup check, and no other module of the project touches them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import pytorch_lightning as pl

from deephar import lightning_internals as internals

ROOT = Path(__file__).resolve().parents[2]
# The distinctive names of the internal paths (private, loops, progress counters): the project's
# other modules use none of them (``current``, ``ready`` … are common words elsewhere).
NAMES = {name for path in internals.INTERNALS for name in path.split(".")
         if name.startswith("_") or name.endswith(("_loop", "_progress"))} | {"is_resuming"}  # fmt: skip


@pytest.fixture
def trainer() -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False)  # fmt: skip


@pytest.mark.parametrize("path", internals.INTERNALS)
def test_the_installed_lightning_has_it(trainer, path):
    internals._lookup(trainer, path)  # LightningInternalsError: "pytorch_lightning X has no …"


def test_a_missing_attribute_is_named_with_the_installed_version(trainer):
    del trainer.fit_loop._data_fetcher
    with pytest.raises(internals.LightningInternalsError) as err:
        internals.check(trainer)
    assert "Trainer.fit_loop._data_fetcher" in str(err.value)
    assert f"pytorch_lightning {pl.__version__}" in str(err.value)


def test_the_accessors_on_a_trainer_before_fit(trainer):
    assert internals.batches_done(trainer) == 0 and internals.epochs_processed(trainer) == 0
    assert internals.take_pending_loader_states(trainer) == []
    trainer.fit_loop._combined_loader_states_to_load = [{"epoch": 1, "batches": 2}]
    assert internals.take_pending_loader_states(trainer) == [{"epoch": 1, "batches": 2}]
    assert trainer.fit_loop._combined_loader_states_to_load == []  # applied by the caller
    assert not internals.lightning_remakes_iterator(trainer)  # epoch 0: the loop makes it
    assert not trainer.received_sigterm
    internals.request_stop(trainer)
    assert trainer.received_sigterm


def internal_uses(path: Path) -> list[str]:
    """``x.<name>`` for every name of ``NAMES`` in one source file."""
    tree = ast.parse(path.read_text())
    return [f"{path.relative_to(ROOT)}:{n.lineno} .{n.attr}" for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and n.attr in NAMES]  # fmt: skip


def test_no_other_module_touches_them():
    sources = [p for d in ("src", "datamodules", "experiments", "benchmarks")
               for p in sorted((ROOT / d).rglob("*.py"))]  # fmt: skip
    found = [u for p in sources if p.name != "lightning_internals.py" for u in internal_uses(p)]
    assert not found, found


def test_the_scan_sees_a_use(tmp_path):
    bad = ROOT / "tests" / "deephar" / "test_lightning_internals.py"  # this file uses two
    assert len(internal_uses(bad)) >= 2
