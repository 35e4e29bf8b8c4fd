"""experiments.distributed: the strategy of a multi-device run; a rank's process group is
destroyed before its interpreter exits."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pytorch_lightning.strategies import DDPStrategy

from experiments.distributed import device_count, global_batch_line, is_rank_zero, resolve_strategy

REPO = Path(__file__).resolve().parents[2]

# a one-rank gloo group; the first atexit handler registered runs last (LIFO) and reports
# whether the group was still alive when the interpreter began to exit
RANK = textwrap.dedent("""
    import atexit, sys
    import torch.distributed as dist
    from experiments.distributed import ReleaseProcessGroup
    dist.init_process_group("gloo", init_method="file://" + sys.argv[1], rank=0, world_size=1)
    atexit.register(lambda: print("alive at exit:", dist.is_initialized()))
    if sys.argv[2] == "release":
        ReleaseProcessGroup().setup(None, None, "fit")
        ReleaseProcessGroup().setup(None, None, "test")  # registered once per process
""")


@pytest.mark.parametrize("mode, alive", [("release", False), ("keep", True)])
def test_the_process_group_is_destroyed_at_exit(tmp_path, mode, alive):
    done = subprocess.run([sys.executable, "-c", RANK, str(tmp_path / "store"), mode], cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("alive at exit:") == 1
    assert f"alive at exit: {alive}" in done.stdout


@pytest.mark.parametrize("strategy, devices, nodes, unused, expected", [
    ("auto", 2, 1, True, True),  # Lightning's auto picks DDP here, without unused-parameter care
    ("auto", "0,1", 1, False, False),
    ("ddp", [0, 1, 2], 1, True, True),
    ("auto", 1, 2, True, True),  # one device on each of two nodes
    ("auto", 1, 1, True, "auto"),  # one device: no DDP at all
    ("ddp", 1, 1, True, True),  # DDP asked for on one device: still told of unused parameters
    ("ddp_spawn", 2, 1, True, "ddp_spawn"),  # an explicit choice is kept
])  # fmt: skip
def test_auto_and_ddp_over_several_devices_get_the_unused_parameter_setting(
    strategy, devices, nodes, unused, expected
):
    resolved = resolve_strategy(strategy, "cpu", devices, nodes, unused)
    if isinstance(expected, str):
        assert resolved == expected
    else:
        assert isinstance(resolved, DDPStrategy)
        assert resolved._ddp_kwargs.get("find_unused_parameters", False) is expected


def test_device_count_of_the_trainer_arguments():
    assert [device_count("cpu", d) for d in (3, "3", [0, 2], "0, 1", "auto", -1)] == [
        3, 3, 2, 2, 1, 1]  # fmt: skip


@pytest.mark.parametrize("env, zero", [
    ({}, True), ({"RANK": "0", "LOCAL_RANK": "0"}, True), ({"RANK": "3", "LOCAL_RANK": "0"}, False),
    ({"LOCAL_RANK": "1"}, False), ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False),
    ({"SLURM_PROCID": "0"}, True), ({"SLURM_PROCID": "5"}, False),
])  # fmt: skip
def test_rank_zero_from_the_launchers_environment(monkeypatch, env, zero):
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert is_rank_zero() is zero


def test_the_global_batch_line():
    assert global_batch_line(8, 24) == "global batch 8 devices × 24 = 192"
    assert global_batch_line(8, 24, 2, 1e-3, "linear") == (
        "global batch 8 devices × 24 × 2 accumulated = 384; "
        "lr 0.001 × 8 (optim.scale_lr=linear) = 0.008"
    )
