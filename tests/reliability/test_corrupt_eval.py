"""Defect 2: evaluation never substitutes a sample. Unreadable test samples are reported by name,
counted in results.json and the printed output, not scored, and the command exits non-zero unless
``eval.allow_missing=true``. Training keeps replacing corrupt samples (counted)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from datamodules.missing import MissingLog
from datamodules.ntu import NTUDataset
from deephar.checkpoint import network_payload
from deephar.models.multitask import build_model
from experiments import evaluate, train
from experiments.config import load_config, network_config
from experiments.data import build_datamodule
from tests.reliability.conftest import TINY

ACTION = ["model.input_size=64", "model.num_frames=4", "data.eval_batch_size=4",
          "data.num_workers=0", "eval.fast=false"]  # fmt: skip


@pytest.fixture()
def broken_ntu(world, tmp_path) -> tuple[Path, list[str]]:
    """A copy of the world's NTU folder whose first two test videos are zero-byte files."""
    root = tmp_path / "world"
    shutil.copytree(world / "ntu", root / "ntu")
    names = NTUDataset(root / "ntu", split="test").names[:2]
    for name in names:
        (root / "ntu" / "nturgb+d_rgb" / f"{name}_rgb.avi").write_bytes(b"")
    return root, names


@pytest.fixture()
def action_net(tmp_path) -> Path:
    """An (untrained) network of the demo_action config as a portable .pt file."""
    cfg = load_config("demo_action", ACTION)
    path = tmp_path / "action.pt"
    torch.save(network_payload(build_model(network_config(cfg))), path)
    return path


def evaluate_args(root: Path, ckpt: Path, out: Path, *extra: str) -> list[str]:
    return ["demo_action", f"ckpt={ckpt}", "clips=single", f"out={out}", f"data.root={root}",
            *ACTION, *extra]  # fmt: skip


def test_zero_byte_test_videos_are_reported_not_replaced(broken_ntu, action_net, tmp_path,
                                                         capsys):  # fmt: skip
    root, names = broken_ntu
    total = len(NTUDataset(root / "ntu", split="test"))
    code = evaluate.main(evaluate_args(root, action_net, tmp_path / "eval"))
    out, err = capsys.readouterr()
    assert code == 3, err
    samples = json.loads((tmp_path / "eval" / "results.json").read_text())["ntu/single-clip"]
    samples = samples["samples"]
    assert samples["total"] == total and samples["scored"] == total - 2  # not substituted
    assert sorted(Path(n).name for n in samples["unreadable"]) == sorted(
        f"{n}_rgb.avi" for n in names
    )
    assert f"scored {total - 2} of {total} samples; 2 unreadable" in out
    assert all(n in err for n in names) and "eval.allow_missing=true" in err


def test_allow_missing_scores_the_rest_and_exits_0(broken_ntu, action_net, tmp_path, capsys):
    root, _ = broken_ntu
    code = evaluate.main(evaluate_args(root, action_net, tmp_path / "e", "eval.allow_missing=true"))
    assert code == 0
    assert "2 unreadable" in capsys.readouterr().out


def test_training_replaces_and_test_reports(world, tmp_path, capsys, caplog):
    """Truncated MPII images: replaced (logged) in training; reported, not scored, in test."""
    root = tmp_path / "world"
    for part in ("mpii", "h36m"):
        shutil.copytree(world / part, root / part)
    names = sorted((root / "mpii" / "images").glob("*.jpg"))  # 8 training, 4 test (val), 2 more
    images = names[:7] + names[8:12:2]  # all training images but one; every other test image
    for image in images:
        image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    # validation on Human3.6M: the carved MPII validation (one training image here) may be corrupt
    args = ["demo_pose", f"data.root={root}", f"out_dir={tmp_path / 'runs'}", *TINY,
            "data.val=[h36m]", "optim.monitor=val/mpjpe", "optim.monitor_mode=min"]  # fmt: skip
    total = len(build_datamodule(load_config(args[0], args[1:])).test_sets["mpii"])
    code = train.main(args)
    out, err = capsys.readouterr()
    assert code == 3, err
    assert "replaced by a random other one" in caplog.text  # training: replaced, as before
    found = re.search(r"test/mpii: scored (\d+) of (\d+) samples; (\d+) unreadable", err)
    assert found, err
    scored, listed, bad = map(int, found.groups())
    assert listed == total and scored + bad == total and bad > 0
    assert re.search(rf"test/mpii/unreadable[ |]+{bad}\b", out)  # counted in the printed table
    assert any(image.name in err for image in images)


def test_missing_log_counts_and_summarises():
    log = MissingLog()
    batch = {"sample_id": ["a", "b"], "unreadable": [("c.jpg", "truncated")]}
    assert log.take(batch) == {"sample_id": ["a", "b"]}
    assert log.take({"unreadable": [("d.jpg", "empty")]}) is None
    assert (log.scored, log.total) == (2, 4)
    assert log.summary() == "scored 2 of 4 samples; 2 unreadable: c.jpg (truncated), d.jpg (empty)"
    assert MissingLog.from_dict(log.as_dict()).summary() == log.summary()


def test_validation_with_no_readable_sample_names_its_source(world, tmp_path, capsys):
    """Every MPII image truncated, validation on MPII only: the run stops with the source named
    (not Lightning's "monitored metric not found"), exit 3."""
    root = tmp_path / "world"
    for part in ("mpii", "h36m"):
        shutil.copytree(world / part, root / part)
    for image in (root / "mpii" / "images").glob("*.jpg"):
        image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    args = ["demo_pose", f"data.root={root}", f"out_dir={tmp_path / 'runs'}", *TINY,
            "data.train=[h36m]", "data.val=[mpii]", "data.test=[]"]  # fmt: skip
    code = train.main(args)
    err = capsys.readouterr().err
    assert code == 3, err
    assert re.search(r"val/mpii: scored 0 of \d+ samples; \d+ unreadable", err), err
    assert "data.val" in err


def test_unreadable_samples_are_counted_one_by_one_their_files_once(broken_ntu, action_net,
                                                                   tmp_path, capsys):  # fmt: skip
    """Multi-clip evaluation of two zero-byte videos: every clip of theirs counts as a sample
    (it said "2 unreadable" whatever the clip count: one per file), each video listed once."""
    root, names = broken_ntu
    multi = NTUDataset(root / "ntu", split="test", clip_sampling="multi", clip_length=4)
    clips = sum(multi.names[v] in names for v, _ in multi.items)
    assert clips > len(names)  # several clips per video
    args = ["demo_action", f"ckpt={action_net}", "clips=multi", f"out={tmp_path / 'e'}",
            f"data.root={root}", *ACTION]  # fmt: skip
    assert evaluate.main(args) == 3
    out = capsys.readouterr().out
    results = json.loads((tmp_path / "e" / "results.json").read_text())
    samples = results["ntu/multi-clip"]["samples"]
    assert samples["total"] == len(multi) and samples["scored"] == len(multi) - clips
    assert len(samples["unreadable"]) == len(names)
    assert f"; {clips} unreadable ({len(names)} files: " in out, out
    assert all(out.count(f"{n}_rgb.avi (") == 1 for n in names), out  # each file listed once


def test_missing_log_counts_samples_and_lists_files_once():
    log, batch = MissingLog(), {"sample_id": ["a"]}
    log.take(batch | {"unreadable": [("v.mp4", "empty file"), ("v.mp4", "empty file")]})
    log.take(batch | {"unreadable": [("w.mp4", "empty file")]})
    assert (log.scored, log.failed, log.total) == (2, 3, 5)
    text = "scored 2 of 5 samples; 3 unreadable (2 files: v.mp4 (empty file), w.mp4 (empty file))"
    assert log.summary() == text
    assert MissingLog.from_dict(log.as_dict()).summary() == text
    assert MissingLog.merge([log, log]).total == 10
