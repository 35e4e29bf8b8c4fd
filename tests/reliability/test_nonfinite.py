"""Issue 29 part 1: a non-finite loss stops training with one line and exit 4; no checkpoint
holds a non-finite tensor; under DDP every rank stops at the same step. Real subprocesses of the
train entry point on the tiny synthetic world (CPU, gloo for two ranks)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from experiments.faults import EXIT_NONFINITE
from tests.reliability.conftest import REPO, TINY, run_module

LINE = re.compile(
    r"^error: non-finite loss at step (\d+) \(([^)]*); read at step (\d+)\): "
    r"training stopped; (.*); lower optim.lr or check the data$",
    re.M,
)
DDP = (
    "trainer.devices=2",
    "trainer.strategy=ddp",
    "data.val=[h36m]",
    "optim.monitor=val/mpjpe",
    "optim.monitor_mode=min",
)


def train_args(world: Path, out: Path, *extra: str) -> list[str]:
    return [
        "demo_pose",
        f"data.root={world}",
        f"out_dir={out}",
        *TINY,
        "data.test=[]",
        "trainer.max_epochs=3",
        *extra,
    ]


def with_nan(args: list[str], step: int, rank: int = 0) -> subprocess.CompletedProcess:
    """The train entry point whose loss turns NaN at ``step`` on ``rank`` (``nan_child``)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", NAN_STEP=str(step), NAN_RANK=str(rank))
    return subprocess.run(
        [sys.executable, "-m", "tests.reliability.nan_child", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def checkpoints(out: Path) -> dict[Path, dict]:
    """Every checkpoint written under ``out`` (hidden partial files included), loaded."""
    return {p: torch.load(p, weights_only=True) for p in sorted(out.rglob("*.ckpt*"))}


def assert_all_finite(ckpt: dict, path: Path) -> None:
    """Every floating-point tensor of the network and of the optimiser states is finite."""
    tensors = [(k, v) for k, v in ckpt["state_dict"].items() if k.startswith("net.")]
    for k, optimizer in enumerate(ckpt.get("optimizer_states", [])):
        for p, state in optimizer["state"].items():
            tensors += [(f"optimizer{k}.{p}.{n}", v) for n, v in state.items()]
    bad = [k for k, v in tensors if v.is_floating_point() and not torch.isfinite(v).all()]
    assert not bad, f"{path}: {len(bad)} non-finite tensors, e.g. {bad[:3]}"


def test_a_diverging_run_stops_with_one_line_and_its_exit_code(world, tmp_path):
    """The probe of issue 29: ``optim.lr=1e30`` gave NaN losses every epoch, a test table of
    NaN, exit 0 and checkpoints with 264 of 733 tensors non-finite."""
    done = run_module(
        "experiments.train",
        *train_args(world, tmp_path, "optim.lr=1e30", "data.test=[h36m]"),
        timeout=300,
    )
    assert done.returncode == EXIT_NONFINITE == 4, done.stderr[-3000:]
    assert len(LINE.findall(done.stderr)) == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "test metrics" not in done.stdout
    for path, ckpt in checkpoints(tmp_path).items():
        assert_all_finite(ckpt, path)


def test_the_stop_names_the_step_the_terms_and_the_last_finite_checkpoint(world, tmp_path):
    """NaN from step 3 (epoch 2 of 2 steps), flags read every step: stopped at step 3, before
    any later checkpoint; last.ckpt of step 2 named and kept, every checkpoint finite."""
    done = with_nan(train_args(world, tmp_path, "trainer.log_every_n_steps=1"), step=3)
    assert done.returncode == EXIT_NONFINITE, done.stderr[-3000:]
    ((step, terms, read, last),) = LINE.findall(done.stderr)
    assert (step, read) == ("3", "3") and terms == "loss, visibility", done.stderr[-3000:]
    folder = tmp_path / "demo_pose"
    assert last == f"last finite checkpoint: {folder / 'last.ckpt'} (step 2)"
    saved = checkpoints(tmp_path)
    assert {p.name for p in saved} == {"best.ckpt", "last.ckpt"}
    for path, ckpt in saved.items():
        assert ckpt["global_step"] == 2
        assert_all_finite(ckpt, path)


def test_between_log_steps_the_stop_comes_before_the_epochs_checkpoint(world, tmp_path):
    """Logged every 25 steps (never in these 2-step epochs): a NaN at step 3 is read at the end
    of epoch 2 (step 4), before its validation and checkpoints."""
    done = with_nan(train_args(world, tmp_path), step=3)
    assert done.returncode == EXIT_NONFINITE, done.stderr[-3000:]
    ((step, _, read, _),) = LINE.findall(done.stderr)
    assert (step, read) == ("3", "4")
    assert {c["global_step"] for c in checkpoints(tmp_path).values()} == {2}


@pytest.mark.parametrize("rank", [0, 1])
def test_ddp_every_rank_stops_at_the_same_step(world, tmp_path, rank):
    """Two gloo ranks, the NaN on one rank only: both stop at the step it was read, with the
    same line (the flags are all-reduced at the log steps), exit 4, no hang, nothing
    non-finite saved."""
    done = with_nan(train_args(world, tmp_path, *DDP, "trainer.log_every_n_steps=1"), 3, rank)
    assert done.returncode == EXIT_NONFINITE, done.stderr[-3000:]
    lines = LINE.findall(done.stderr)
    assert len(lines) == 2 and lines[0] == lines[1], done.stderr[-3000:]
    assert lines[0][:3] == ("3", "loss, visibility", "3")
    for path, ckpt in checkpoints(tmp_path).items():
        assert ckpt["global_step"] == 2
        assert_all_finite(ckpt, path)
