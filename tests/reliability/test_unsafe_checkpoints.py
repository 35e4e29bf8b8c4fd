"""Defect 1: a checkpoint carrying a pickled payload must never run it, on any loading path.

The payload is a real checkpoint of the project with one extra entry whose unpickling writes a
marker file: every entry point (train init / resume, evaluate, predict, ablation, demo) must
refuse the file with one line naming it, exit non-zero, and leave no marker.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from experiments import ablation, demo, evaluate, predict, train
from tests.reliability.conftest import TINY


class Payload:
    """Unpickling this object creates ``marker`` (what an attacker's code would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture()
def evil(trained, tmp_path) -> tuple[Path, Path]:
    """(checkpoint with a payload, marker path that the payload would write)."""
    marker = tmp_path / "PAYLOAD_RAN"
    state = torch.load(trained / "last.ckpt", map_location="cpu", weights_only=True)
    state["hyper_parameters"]["evil"] = Payload(marker)
    path = tmp_path / "shared_by_another_lab.ckpt"
    torch.save(state, path)
    return path, marker


def refused(code: int, err: str, path: Path, marker: Path) -> None:
    assert not marker.exists(), "the checkpoint's payload was executed"
    assert code != 0, "an unsafe checkpoint was accepted"
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert lines and path.name in lines[-1], f"no one-line error naming {path.name}: {err!r}"


def train_args(world: Path, out: Path, *extra: str) -> list[str]:
    return ["demo_pose", f"data.root={world}", f"out_dir={out}", *TINY, *extra]


def test_train_init_ckpt(world, evil, tmp_path, capsys):
    path, marker = evil
    code = train.main(train_args(world, tmp_path / "runs", f"init.ckpt={path}"))
    refused(code, capsys.readouterr().err, path, marker)


def test_train_resume_from_a_path(world, evil, tmp_path, capsys):
    path, marker = evil
    code = train.main(train_args(world, tmp_path / "runs", f"resume={path}"))
    refused(code, capsys.readouterr().err, path, marker)


def test_train_resume_auto(world, evil, tmp_path, capsys):
    path, marker = evil
    folder = tmp_path / "runs" / "demo_pose"
    folder.mkdir(parents=True)
    (folder / "last.ckpt").write_bytes(path.read_bytes())
    code = train.main(train_args(world, tmp_path / "runs", "resume=auto"))
    refused(code, capsys.readouterr().err, folder / "last.ckpt", marker)


def test_evaluate(world, evil, tmp_path, capsys):
    path, marker = evil
    args = ["demo_pose", f"ckpt={path}", f"out={tmp_path / 'eval'}", f"data.root={world}", *TINY]
    code = evaluate.main(args)
    refused(code, capsys.readouterr().err, path, marker)


def test_predict(world, evil, tmp_path, capsys):
    path, marker = evil
    video = next((world / "h36m").rglob("*.mp4"))
    code = predict.main([str(video), f"ckpt={path}", "--out", str(tmp_path / "pred")])
    refused(code, capsys.readouterr().err, path, marker)


def finished_rows(out: Path, pose_ckpt: Path) -> None:
    """An interrupted ablation whose finished rows point at ``pose_ckpt`` (a rerun resumes)."""
    (out / "rows").mkdir(parents=True)
    (out / "rows" / "pose.json").write_text(json.dumps({"checkpoint": str(pose_ckpt)}))
    (out / "rows" / "provided.json").write_text(json.dumps({"pose": 0.5}))


def test_ablation_pose_ckpt(world, evil, tmp_path, capsys):
    path, marker = evil
    out = tmp_path / "ablation"
    finished_rows(out, path)  # `provided` done: the next row initialises from --pose-ckpt
    args = ["--pose-ckpt", str(path), "--size", "tiny", "--out", str(out), "--data", str(world)]
    code = ablation.main(args)
    refused(code, capsys.readouterr().err, path, marker)


def test_demo_rerun(world, evil, tmp_path, capsys):
    path, marker = evil
    out = tmp_path / "demo"
    finished_rows(out, path)  # the demo's pose row "finished" with a swapped checkpoint
    code = demo.main(["--size", "tiny", "--out", str(out), "--data", str(world)])
    refused(code, capsys.readouterr().err, path, marker)


@pytest.mark.parametrize("kind", ["torch.save", "pickle.dumps"])
def test_the_refusal_says_why_for_both_payload_kinds(world, trained, tmp_path, capsys, kind):
    """torch 2.13 words the two refusals differently ("Unsupported global" / "Unsupported operand
    149"): the reason comes from the file's pickle opcodes, not from torch's message."""
    marker = tmp_path / "PAYLOAD_RAN"
    state = torch.load(trained / "last.ckpt", map_location="cpu", weights_only=True)
    state["hyper_parameters"]["evil"] = Payload(marker)
    path = tmp_path / "payload.ckpt"
    if kind == "torch.save":
        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps(state))
    code = train.main(train_args(world, tmp_path / "runs", f"init.ckpt={path}"))
    err = capsys.readouterr().err
    refused(code, err, path, marker)
    line = err.strip().splitlines()[-1]
    assert "refused: it holds Python objects (" in line and "open" in line, line  # named
    assert line.endswith("which could run code"), line
