"""Shared fixtures: the reference material in ../shared (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEEPHAR_SHARED", REPO.parent / "shared")).resolve()

# One intra-op thread: tiny test networks gain nothing from more, and on a busy 2-core machine two
# threads per process oversubscribe the cores (steps ~100× slower).
torch.set_num_threads(1)
# Configs' `auto` training defaults (bf16-mixed, channels_last) depend on the CPU: the tests train
# in the official recipe's numerics (fp32, NCHW) on any machine, subprocesses included
# (experiments.training_defaults; its own tests clear this).
os.environ.setdefault("DEEPHAR_TRAINING", "reference")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "README.md").exists():
        pytest.skip(f"reference material not found at {SHARED} (set DEEPHAR_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def parity_dir(shared_dir: Path) -> Path:
    return shared_dir / "parity"


@pytest.fixture(scope="session")
def samples_dir(shared_dir: Path) -> Path:
    return shared_dir / "samples"
