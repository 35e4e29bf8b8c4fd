"""Issue 22: what used to fail after minutes of work, or with a traceback, is refused at start-up
with one line naming the key or the folder (exit 2), before any model or dataset is built: an
unknown monitored metric, a run folder that cannot be written, a disk without room for the
checkpoints, a resume with another batch size or epoch length than the saved run. A save that
fails mid-run (disk full) names the folder, keeps the last good checkpoint, exits 1 without a
traceback."""

from __future__ import annotations

import errno
import shutil
from collections import namedtuple
from pathlib import Path

import pytest
import torch

from deephar.tasks import Pose2D3DModule
from experiments import run_folder, train
from experiments.config import load_config, network_config
from tests.reliability.conftest import TINY


def args(world: Path, out: Path, *extra: str) -> list[str]:
    return ["demo_pose", f"data.root={world}", f"out_dir={out}", *TINY, "data.test=[]", *extra]


@pytest.fixture()
def nothing_built(monkeypatch):
    """Fail the test if a dataset is built or the network initialised before the refusal."""

    def built(*args, **kwargs):
        raise AssertionError("work started before the check")

    monkeypatch.setattr(train, "build_datamodule", built)
    monkeypatch.setattr(train, "init_network", built)


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_unknown_monitor_is_refused_naming_what_the_task_logs(world, tmp_path, capsys,
                                                              nothing_built):  # fmt: skip
    assert train.main(args(world, tmp_path, "optim.monitor=val/nonexistent")) == 2
    line = one_error_line(capsys)
    assert "optim.monitor = 'val/nonexistent'" in line and "val/pckh@0.5" in line, line


def test_the_listed_metrics_are_the_logged_ones(trained):
    """Every ``val/`` key a real run logged is one ``val_metrics`` lists (a renamed metric fails
    here, not in a user's run)."""
    header = next(trained.rglob("metrics.csv")).read_text().splitlines()[0].split(",")
    logged = {k for k in header if k.startswith("val/") and not k.endswith("_best")}
    cfg = network_config(load_config("demo_pose", TINY))
    assert logged and logged <= set(Pose2D3DModule.val_metrics(cfg)), logged


def test_read_only_out_dir_is_named_before_work(world, tmp_path, capsys, monkeypatch,
                                                nothing_built):  # fmt: skip
    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    assert train.main(args(world, tmp_path / "ro")) == 2
    line = one_error_line(capsys)
    assert str(tmp_path / "ro" / "demo_pose") in line and "Read-only file system" in line, line


def test_out_dir_under_a_file_is_named_before_work(world, tmp_path, capsys, nothing_built):
    (tmp_path / "file").write_text("not a folder")
    assert train.main(args(world, tmp_path / "file" / "runs")) == 2
    assert "cannot write the run folder" in one_error_line(capsys)


def test_a_disk_without_room_for_the_checkpoints_is_named_before_work(world, tmp_path, capsys,
                                                                      monkeypatch,
                                                                      nothing_built):  # fmt: skip
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**6, 10**6))
    assert train.main(args(world, tmp_path)) == 2
    line = one_error_line(capsys)
    assert "1.0 MB free in" in line and str(tmp_path / "demo_pose") in line, line
    needed = 3 * run_folder.checkpoint_bytes(load_config("demo_pose", TINY))
    assert f"need about {needed / 1e6:.1f} MB" in line, line


def test_the_checkpoint_estimate_is_not_below_a_real_checkpoint(trained):
    cfg = load_config("demo_pose", TINY)
    assert run_folder.checkpoint_bytes(cfg) >= (trained / "last.ckpt").stat().st_size


def test_a_full_disk_mid_run_keeps_the_last_checkpoint_and_exits_without_traceback(
    world, tmp_path, capsys, monkeypatch
):
    saves, real_save = [], torch.save

    def fills_the_disk(obj, file, *a, **k):
        saves.append(1)
        if len(saves) > 2:  # epoch 1's best.ckpt and last.ckpt are written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, file, *a, **k)

    monkeypatch.setattr(torch, "save", fills_the_disk)
    assert train.main(args(world, tmp_path, "trainer.max_epochs=2")) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    line = [x for x in err.splitlines() if x.startswith("error: ")][-1]
    folder = tmp_path / "demo_pose"
    assert f"in {folder}: No space left on device (the last good one there is kept)" in line, line
    saved = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 2  # epoch 1's, intact
    assert not list(folder.glob(".*.partial"))


@pytest.fixture()
def saved_run(trained, tmp_path) -> Path:
    """A copy of a finished tiny run (config.yaml, best.ckpt, last.ckpt) under ``tmp_path``."""
    shutil.copytree(trained, tmp_path / "demo_pose")
    return tmp_path / "demo_pose"


@pytest.mark.parametrize("change", ["data.batch_size=2", "data.steps_per_epoch=5"])
def test_resume_with_another_epoch_is_refused_naming_the_keys(world, tmp_path, saved_run, capsys,
                                                              nothing_built, change):  # fmt: skip
    key, value = change.split("=")
    assert train.main(args(world, tmp_path, "resume=auto", change)) == 2
    line = one_error_line(capsys)
    assert f"{key} = {value} (saved: " in line and f"resume_allow_changes=[{key}]" in line, line
    path = f"resume={saved_run / 'last.ckpt'}"  # a path: the config.yaml beside it
    assert train.main(args(world, tmp_path / "other", path, change)) == 2
    assert f"{key} = {value} (saved: " in one_error_line(capsys)


def test_resume_accepts_an_allowed_change_and_unchanged_keys(world, tmp_path, saved_run):
    allowed = ["resume=auto", "data.batch_size=2", "resume_allow_changes=[data.batch_size]"]
    assert train.main(args(world, tmp_path, *allowed, "trainer.max_epochs=2")) == 0
    # the run's config.yaml now says batch 2: TINY's 4 is a change, 2 is none
    assert train.main(args(world, tmp_path, "resume=auto", "trainer.max_epochs=2")) == 2
    assert train.main(args(world, tmp_path, "resume=auto", "data.batch_size=2",
                           "trainer.max_epochs=2")) == 0  # fmt: skip
