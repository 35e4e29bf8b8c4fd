"""Fixtures of the fault-injection tests: the tiny synthetic world, a tiny training config, a
trained tiny checkpoint, and a subprocess runner for the entry points."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from datamodules.synthetic import generate_world
from experiments.config import load_config
from experiments.train import run, run_dir

REPO = Path(__file__).resolve().parents[2]

# CPU-sized pose training: 64² input, K = 1, 2 steps of 4 images per epoch, CSV logs only
TINY = [
    "model.input_size=64", "model.pose_blocks=1", "data.steps_per_epoch=2", "data.batch_size=4",
    "data.eval_batch_size=4", "data.num_workers=0", "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false", "logger.kind=csv", "data.limit_val=4",
]  # fmt: skip


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    """The tiny synthetic world (all four dataset formats)."""
    return generate_world(tmp_path_factory.mktemp("world"), "tiny", seed=0)["manifest"].parent


@pytest.fixture(scope="session")
def trained(world, tmp_path_factory) -> Path:
    """The run folder of one tiny pose training (config.yaml, best.ckpt, last.ckpt)."""
    out = tmp_path_factory.mktemp("trained")
    cfg = load_config("demo_pose", [f"data.root={world}", f"out_dir={out}", *TINY, "data.test=[]"])
    run(cfg)
    return run_dir(cfg)


def run_module(module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` from the repository root, one intra-op thread."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", WANDB_MODE="offline")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
