"""The run folder owns itself (issue 28): its lock, its saved config, its partial writes, the
start-up refusals of a partial dataset and of a broken YAML, and crossval workers that end with
their parent."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from datamodules.penn import load_label
from datamodules.synthetic import generate_world
from deephar.checkpoint import run_config
from experiments import train
from experiments.config import load_config
from experiments.run_folder import RunLock, RunLocked, remove_partial_writes

REPO = Path(__file__).resolve().parents[2]
TINY = ["data.num_workers=0", "logger.kind=csv", "data.test=[]"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return generate_world(tmp_path_factory.mktemp("world"), "tiny", seed=0)["manifest"].parent


class Built(Exception):
    """Raised where the run would start working: every start-up check passed."""


@pytest.fixture()
def stop_at_work(monkeypatch):
    def built(*args, **kwargs):
        raise Built

    monkeypatch.setattr(train, "build_datamodule", built)
    monkeypatch.setattr(train, "init_network", built)


def holder(folder: Path) -> subprocess.Popen:
    """Another process holding ``folder``'s lock until killed (prints "held" once it does)."""
    code = textwrap.dedent(f"""
        import time
        from experiments.run_folder import RunLock
        RunLock({str(folder)!r}).acquire()
        print("held", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_folder_and_the_holder(world, tmp_path, capsys):
    args = ["demo_pose", f"data.root={world}", f"out_dir={tmp_path}", *TINY]
    folder = tmp_path / "demo_pose"
    first = holder(folder)
    try:
        assert train.main(args) == 2
    finally:
        first.kill()
        first.wait()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(folder) in lines[0] and f"pid {first.pid}" in lines[0], lines


def test_a_stale_lock_is_taken_over_with_a_line(world, tmp_path, capsys, stop_at_work):
    folder = tmp_path / "demo_pose"
    first = holder(folder)
    first.send_signal(signal.SIGKILL)  # dies holding it
    first.wait()
    args = ["demo_pose", f"data.root={world}", f"out_dir={tmp_path}", *TINY]
    with pytest.raises(Built):  # past the lock: the run starts
        train.main(args)
    out = capsys.readouterr().out
    assert f"taking over the stale lock of pid {first.pid}" in out and str(folder) in out, out
    assert not (folder / ".lock").exists()  # released when the run ended


def test_only_rank_zero_takes_the_lock(tmp_path, monkeypatch):
    first = holder(tmp_path)
    try:
        monkeypatch.setenv("LOCAL_RANK", "1")  # a DDP rank Lightning started: not refused
        with RunLock(tmp_path) as lock:
            assert not lock.held
        monkeypatch.delenv("LOCAL_RANK")
        with pytest.raises(RunLocked, match=f"pid {first.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        first.kill()
        first.wait()


def test_partial_writes_of_others_are_left_alone(tmp_path):
    code = "import os; print(os.getpid())"
    dead = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    ).stdout.strip()
    ours = tmp_path / f".last.ckpt.{dead}.partial"
    live = tmp_path / f".best.ckpt.{os.getpid()}.partial"  # a live writer's
    other = tmp_path / f".model.pt.{dead}.partial"  # not a checkpoint of the run
    for path in (ours, live, other):
        path.write_bytes(b"x")
    assert remove_partial_writes(tmp_path) == [ours]
    assert live.exists() and other.exists()


def test_the_saved_config_is_found_from_any_checkpoint_inside_the_run(tmp_path):
    (tmp_path / "finetune").mkdir()
    OmegaConf.save(load_config("demo_pose"), tmp_path / "config.yaml")
    for ckpt in (tmp_path / "best.ckpt", tmp_path / "finetune" / "last.ckpt"):
        assert run_config(ckpt).name == "demo_pose"
    assert run_config(tmp_path.parent / "elsewhere.ckpt") is None


# ---- a partial dataset folder: refused before training ----
@pytest.fixture()
def penn_world(world, tmp_path) -> Path:
    """A copy of the world's manifest and Penn labels (no frames: the check reads labels)."""
    root = tmp_path / "world"
    (root / "penn").mkdir(parents=True)
    shutil.copy(world / "manifest.json", root)
    shutil.copytree(world / "penn" / "labels", root / "penn" / "labels")
    (root / "mpii").symlink_to(world / "mpii")
    return root


def remove_labels(root: Path, train_split: bool, keep: float) -> int:
    labels = sorted((root / "penn" / "labels").glob("*.mat"))
    split = [p for p in labels if load_label(p).train == train_split]
    for path in split[round(len(split) * keep) :]:
        path.unlink()
    return len(split)


def demo_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["demo", f"data.root={root}", f"out_dir={out}", "data.num_workers=0", *extra]


def test_half_the_training_labels_are_refused_before_training(
    penn_world, tmp_path, capsys, stop_at_work
):
    total = remove_labels(penn_world, True, 0.5)
    assert train.main(demo_args(penn_world, tmp_path / "runs")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    line = f"penn train: {total - total // 2} videos, the official split has {total}"
    assert len(err) == 1 and line in err[0] and "data.allow_partial=true" in err[0], err
    with pytest.raises(Built):  # allowed: trains on what is there
        train.main(demo_args(penn_world, tmp_path / "runs", "data.allow_partial=true"))


def test_an_empty_test_split_is_named_before_training(penn_world, tmp_path, capsys, stop_at_work):
    remove_labels(penn_world, False, 0.0)
    with pytest.raises(Built):
        train.main(demo_args(penn_world, tmp_path / "runs"))
    out = capsys.readouterr().out
    assert "data.sources.penn: penn test: 0 videos" in out and "not tested" in out, out


# ---- a broken experiment YAML: one line, file:line:column, exit 2 ----
@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("name: x\ntask: [pose,\n", ":3:1:", "expected"),
        ("name: x\ntask: pose\nname: y\n", ":3:1:", "duplicate key"),
        ("name: x\nmodel:\n\twidth: 1\n", ":3:1:", "tab"),
    ],
)
def test_a_broken_yaml_is_one_line_naming_file_line_column(tmp_path, capsys, text, where, what):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    assert train.main([str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{path}{where}" in err[0] and what in err[0], err


# ---- crossval jobs=N: the workers end with their parent ----
PARENT = """
import os, time
from experiments.crossval import fold_pool
pool = fold_pool(2)
for _ in range(2):  # each worker prints its pid ($PPID of its shell), then waits
    pool.submit(os.system, "echo $PPID; exec sleep 60")
time.sleep(300)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0]
    return state != "Z"  # a zombie has ended


def test_crossval_workers_end_with_a_killed_parent():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    workers = [int(parent.stdout.readline()) for _ in range(2)]
    assert all(alive(p) for p in workers)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(alive(p) for p in workers), "workers outlived their parent"
