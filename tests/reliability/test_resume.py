"""Defects 3 and 4: a killed run resumed with ``resume=auto`` ends with the uninterrupted run's
weights, optimiser, scheduler and best-so-far tracker; SIGTERM / SIGINT save the current step
and exit non-zero. Real subprocesses (``tests.reliability.child``: the train entry point plus a
step beacon), CPU, augmentation and validation on, 0 and 2 data workers; 3 epochs of 4 steps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist

from experiments.faults import SaveOnSignal
from tests.reliability.conftest import REPO, TINY

STEPS, EPOCHS = 4, 3


def train_args(world: Path, out: Path, workers: int, *extra: str) -> list[str]:
    return ["demo_pose", f"data.root={world}", f"out_dir={out}", *TINY, "data.test=[]",
            f"data.steps_per_epoch={STEPS}", f"trainer.max_epochs={EPOCHS}", "data.augment=true",
            f"data.num_workers={workers}", "optim.schedule=plateau", "optim.plateau_patience=0",
            *extra]  # fmt: skip


def start(args: list[str], tmp: Path, sleep: float = 0.0,
          val_sleep: float = 0.0) -> tuple[subprocess.Popen, Path]:  # fmt: skip
    """The child training process (a session of its own: with DDP, its ranks are its process
    group) and its beacon file (rank 0's); TMPDIR is a folder of its own."""
    beacon = tmp / f"beacon-{time.monotonic_ns()}"
    (tmp / "tmpdir").mkdir(exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", BEACON=str(beacon), STEP_SLEEP=str(sleep),
               VAL_SLEEP=str(val_sleep), TMPDIR=str(tmp / "tmpdir"))  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "tests.reliability.child", *args], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    return proc, beacon


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def wait_for_step(proc: subprocess.Popen, beacon: Path, step: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if beacon.is_file() and int(beacon.read_text() or 0) >= step:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before step {step}: {proc.communicate()[1]}")
        time.sleep(0.05)
    raise AssertionError(f"step {step} not reached in {timeout} s")


def run_to_end(args: list[str], tmp: Path) -> None:
    code, err = finish(start(args, tmp)[0])
    assert code == 0, err


def last(out: Path) -> dict:
    return torch.load(out / "demo_pose" / "last.ckpt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def reference(world, tmp_path_factory) -> dict[int, dict]:
    """The uninterrupted runs' final checkpoints, per number of workers (computed on demand)."""
    tmp, done = tmp_path_factory.mktemp("reference"), {}

    def get(workers: int, *extra: str) -> dict:
        key = (workers, *extra)
        if key not in done:
            out = tmp / f"run{len(done)}"
            run_to_end(train_args(world, out, workers, *extra), tmp)
            done[key] = last(out)
        return done[key]

    return get


def assert_same_run(resumed: dict, uninterrupted: dict) -> None:
    assert resumed["global_step"] == uninterrupted["global_step"] == STEPS * EPOCHS
    torch.testing.assert_close(resumed["state_dict"], uninterrupted["state_dict"])
    torch.testing.assert_close(resumed["optimizer_states"], uninterrupted["optimizer_states"])
    assert resumed["plateau"] == uninterrupted["plateau"]  # every plateau step, none lost
    assert resumed["plateau"]["last_epoch"] == EPOCHS  # one step per validation
    assert any(k.startswith("val_best.") for k in resumed["state_dict"])  # the best so far too


@pytest.mark.parametrize("workers", [0, 2])
def test_sigkill_mid_epoch_then_resume_equals_the_uninterrupted_run(world, tmp_path, reference,
                                                                    workers):  # fmt: skip
    args = train_args(world, tmp_path / "runs", workers)
    proc, beacon = start(args, tmp_path, sleep=0.2)
    wait_for_step(proc, beacon, 2 * STEPS + 2)  # mid-epoch 3: two epoch ends behind it
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stale = tmp_path / "runs" / "demo_pose" / ".last.ckpt.99.partial"
    stale.write_bytes(b"half a checkpoint")  # what a kill during a save leaves
    run_to_end([*args, "resume=auto"], tmp_path)
    assert_same_run(last(tmp_path / "runs"), reference(workers))
    assert not stale.exists(), "partial checkpoint writes are not cleaned up"
    assert not list((tmp_path / "tmpdir").iterdir()), "checkpoint temp files left in TMPDIR"


@pytest.mark.parametrize(("signum", "code", "workers"),
                         [(signal.SIGTERM, 143, 0), (signal.SIGINT, 130, 2)])  # fmt: skip
def test_signal_saves_the_current_step_and_exits_nonzero(world, tmp_path, reference, signum, code,
                                                         workers):  # fmt: skip
    args = train_args(world, tmp_path / "runs", workers)
    proc, beacon = start(args, tmp_path, sleep=0.3)
    wait_for_step(proc, beacon, STEPS + 1)  # inside epoch 2
    proc.send_signal(signum)
    returned, err = finish(proc)
    assert returned == code, err
    saved = last(tmp_path / "runs")
    step = saved["global_step"]
    assert STEPS < step < STEPS * EPOCHS and f"step {step} saved to" in err, err
    assert int(beacon.read_text()) == step  # the very step it stopped at, nothing lost
    run_to_end([*args, "resume=auto"], tmp_path)
    assert_same_run(last(tmp_path / "runs"), reference(workers))


def test_sigterm_during_validation_saves_and_resumes_to_the_same_run(world, tmp_path, reference):
    """Stopped inside epoch 1's validation: the epoch's step is saved, exit 143, and the resumed
    run equals the uninterrupted one (no validation, plateau step or best-so-far lost)."""
    args = train_args(world, tmp_path / "runs", 0)
    proc, beacon = start(args, tmp_path, val_sleep=1.0)
    wait_for_step(proc, Path(f"{beacon}.val"), STEPS)  # a validation batch after epoch 1
    proc.send_signal(signal.SIGTERM)
    returned, err = finish(proc)
    assert returned == 143, err
    step = last(tmp_path / "runs")["global_step"]
    assert STEPS <= step < STEPS * EPOCHS and f"step {step} saved to" in err, err
    run_to_end([*args, "resume=auto"], tmp_path)
    assert_same_run(last(tmp_path / "runs"), reference(0))


# two gloo ranks on the CPU; the tiny world's single MPII validation image cannot feed two ranks
DDP = ("trainer.devices=2", "trainer.strategy=ddp", "data.val=[h36m]", "optim.monitor=val/mpjpe",
       "optim.monitor_mode=min")  # fmt: skip


@pytest.mark.parametrize("who", ["every rank", "rank 0"])
def test_ddp_sigterm_stops_every_rank_at_one_step_and_resumes_to_the_same_run(world, tmp_path,
                                                                             reference, who):  # fmt: skip
    """SLURM signals every rank; ``kill <pid>`` only the launching rank 0. Either way both ranks
    save and exit at the same step (no hang), and the resumed run equals the uninterrupted one."""
    args = train_args(world, tmp_path / "runs", 0, *DDP)
    proc, beacon = start(args, tmp_path, sleep=0.3)
    wait_for_step(proc, beacon, STEPS + 1)  # inside epoch 2
    if who == "every rank":
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    returned, err = finish(proc, timeout=120)
    assert returned == 143, err
    step = last(tmp_path / "runs")["global_step"]
    assert STEPS < step < STEPS * EPOCHS, err
    assert err.count(f"stopped by SIGTERM: step {step} saved to") == 2, err  # both ranks
    run_to_end([*args, "resume=auto"], tmp_path)
    assert_same_run(last(tmp_path / "runs"), reference(0, *DDP))


@pytest.mark.parametrize("ranks", [(), DDP])
def test_sigterm_while_testing_ends_the_run_by_the_signal(world, tmp_path, ranks):
    """No step to save while testing: the process ends by SIGTERM (not with status 0, as if the
    test had passed), every rank, the checkpoints of the finished training in place."""
    args = train_args(world, tmp_path / "runs", 0, *ranks, "data.test=[h36m]",
                      "data.eval_batch_size=1", "trainer.max_epochs=1")  # fmt: skip
    proc, beacon = start(args, tmp_path, val_sleep=0.5)
    wait_for_step(proc, Path(f"{beacon}.test"), STEPS)  # a test batch after training
    os.killpg(proc.pid, signal.SIGTERM)
    returned, err = finish(proc, timeout=120)
    assert returned == -signal.SIGTERM, err
    assert last(tmp_path / "runs")["global_step"] == STEPS


def test_ddp_ranks_vote_on_a_signal_at_log_steps_only(monkeypatch):
    """The ranks' agreement (a gloo all-reduce) at every ``log_every_n_steps``-th step, not at
    every step; a signal stops every rank at the first vote after it."""
    votes: list[int] = []
    monkeypatch.setattr(dist, "all_reduce", lambda t, op, group: votes.append(trainer.global_step))
    callback = SaveOnSignal("last.ckpt")
    callback.ranks = object()  # as under DDP
    trainer = SimpleNamespace(global_step=0, log_every_n_steps=3,
                              _signal_connector=SimpleNamespace(received_sigterm=False))  # fmt: skip
    for step in range(1, 8):
        trainer.global_step = step
        if step == 4:
            callback.received = signal.SIGTERM
        callback.on_train_batch_end(trainer)
        assert trainer._signal_connector.received_sigterm is (step >= 6)
    assert votes == [3, 6]


@pytest.mark.parametrize("gap", [0.02, 0.12])
def test_a_second_ctrl_c_aborts_at_once_saving_nothing(world, tmp_path, gap):
    """The first Ctrl+C asks for a save at the end of the step; a second one, 20 or 120 ms later,
    ends the process at once with 130 (it had saved and exited 130 as if there was one)."""
    args = train_args(world, tmp_path / "runs", 0)
    proc, beacon = start(args, tmp_path, sleep=2.0)
    wait_for_step(proc, beacon, 1)  # asleep after step 1, in epoch 1: nothing saved yet
    proc.send_signal(signal.SIGINT)
    time.sleep(gap)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    returned, err = finish(proc, timeout=60)
    assert returned == 130, err
    assert time.monotonic() - sent < 1.5, "not at once: the step's sleep ran out"
    assert "aborted by a second Ctrl+C" in err and "saved to" not in err, err
    assert not (tmp_path / "runs" / "demo_pose" / "last.ckpt").exists()
