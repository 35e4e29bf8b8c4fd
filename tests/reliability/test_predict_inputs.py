"""Issue 22: a 1-frame video to ``predict`` gets its action from the padded clip (it was silently
left out of the JSON); an image to an action network says why it has none."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from datamodules.video import VideoReader
from deephar.config import PENN_MERGE
from deephar.models.multitask import build_model
from experiments import predict


@pytest.fixture()
def action_ckpt(tmp_path) -> Path:
    """A ``deephar.convert``-style file of a tiny random action network (T = 4)."""
    torch.manual_seed(0)
    cfg = PENN_MERGE.with_(input_size=64, pose_blocks=1, num_frames=4, num_actions=3)
    path = tmp_path / "tiny.pt"
    torch.save({"model": "tiny", "config": dataclasses.asdict(cfg),
                "state_dict": build_model(cfg).state_dict()}, path)  # fmt: skip
    return path


def one_frame_video(path: Path) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (96, 80))
    writer.write(np.random.default_rng(0).integers(0, 255, (80, 96, 3), dtype=np.uint8))
    writer.release()
    assert len(VideoReader(path)) == 1
    return path


def test_a_one_frame_video_gets_its_action_from_the_padded_clip(action_ckpt, tmp_path, capsys):
    video = one_frame_video(tmp_path / "one.avi")
    assert predict.main([str(video), f"ckpt={action_ckpt}", "fast=false", "--out",
                         str(tmp_path / "out")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "out" / "one.avi.json").read_text())
    assert result["num_frames"] == 1 and len(result["action"]["scores"]) == 3
    assert result["action"]["note"] == "from 1 frame(s) stretched over the 4-frame clip"
    assert f"action: {result['action']['name']} (class" in out and "stretched" in out, out


def test_an_image_to_an_action_network_says_why_there_is_no_action(action_ckpt, tmp_path,
                                                                   capsys):  # fmt: skip
    cv2.imwrite(str(tmp_path / "img.png"), np.full((80, 96, 3), 128, np.uint8))
    assert predict.main([str(tmp_path / "img.png"), f"ckpt={action_ckpt}", "fast=false",
                         "--out", str(tmp_path / "out")]) == 0  # fmt: skip
    result = json.loads((tmp_path / "out" / "img.png.json").read_text())
    assert result["action"] is None and "still image" in result["no_action"]
    assert f"no action: {result['no_action']}" in capsys.readouterr().out
