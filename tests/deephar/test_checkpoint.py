"""deephar.checkpoint: one strict, safe loader for the three kinds of weight file."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import torch

from deephar.checkpoint import (
    CheckpointError,
    init_network,
    load_checkpoint,
    load_network,
    load_weights,
    network_payload,
)
from deephar.config import NetworkConfig
from deephar.models.multitask import build_model
from deephar.models.pose import PoseNet

CFG = NetworkConfig(input_size=32, pose_blocks=1, width=0.25)
ACTION = CFG.with_(num_actions=3, num_frames=4)


class Payload:  # a pickled Python object: what weights_only refuses to execute
    def __reduce__(self):
        return (print, ("pickle code ran",))


def test_unusable_files_raise_one_error_naming_file_and_problem(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(network_payload(build_model(CFG)), good)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "text.pt").write_text("not a checkpoint at all")
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": Payload()}, tmp_path / "evil.pt")
    (tmp_path / "raw.pt").write_bytes(pickle.dumps({"state_dict": {}, "extra": Payload()}))
    (tmp_path / "plain.pt").write_bytes(pickle.dumps({"state_dict": {"w": [1.0]}}))
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    code = "refused: it holds Python objects .*print.*, which could run code"
    cases = {"missing.pt": "no such file", "empty.pt": "empty", "cut.pt": "truncated",
             "text.pt": "not a PyTorch checkpoint", "evil.pt": code, "raw.pt": code,
             "plain.pt": "not a PyTorch checkpoint", "other.pt": "no state_dict"}  # fmt: skip
    for name, problem in cases.items():
        with pytest.raises(CheckpointError, match=problem) as err:
            load_checkpoint(tmp_path / name)
        assert str(tmp_path / name) in str(err.value)
    assert set(load_checkpoint(good)) >= {"config", "state_dict"}


def test_converted_pose_file_and_lightning_layout_load_strictly(tmp_path):
    torch.manual_seed(0)
    pose = PoseNet(CFG)  # keys stem.*, blocks.* (the converter's pose files)
    torch.save({"model": "mpii", "config": dataclasses.asdict(CFG),
                "state_dict": pose.state_dict()}, tmp_path / "pose.pt")  # fmt: skip
    net = load_network(tmp_path / "pose.pt")  # the config comes from the file
    assert net.cfg == CFG and not net.training
    for key, value in pose.state_dict().items():
        torch.testing.assert_close(net.state_dict()[f"pose.{key}"], value)
    task = {"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()} | {"x": 1},
            "network_config": dataclasses.asdict(CFG)}  # fmt: skip
    torch.save(task, tmp_path / "task.ckpt")
    assert load_network(tmp_path / "task.ckpt").cfg == CFG
    with pytest.raises(CheckpointError, match="pose_blocks"):
        load_network(tmp_path / "pose.pt", CFG.with_(pose_blocks=2))
    with pytest.raises(CheckpointError, match="missing"):  # no action head in the file
        load_weights(build_model(ACTION), tmp_path / "pose.pt", strict=True)


def test_training_init_fills_the_matching_part(tmp_path):
    torch.manual_seed(0)
    pose = build_model(CFG)
    torch.save(network_payload(pose), tmp_path / "pose.pt")
    net = build_model(ACTION)
    head = {k: v.clone() for k, v in net.state_dict().items() if k.startswith("action.")}
    init_network(net, ckpt=tmp_path / "pose.pt")
    for key, value in pose.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key
    assert all(torch.equal(net.state_dict()[k], v) for k, v in head.items())
    other = build_model(ACTION.with_(num_joints=20))  # another joint count: the heat-map layers
    before = {k: v.clone() for k, v in other.state_dict().items()}
    missing, _ = load_weights(other, tmp_path / "pose.pt", strict=False)
    changed = {k for k, v in other.state_dict().items() if not torch.equal(v, before[k])}
    assert "pose.stem.conv1.conv.weight" in changed and changed.isdisjoint(missing)
    assert any("regmap" in k for k in missing)  # left as initialised
    with pytest.raises(CheckpointError, match="another shape"):
        load_weights(build_model(CFG.with_(num_joints=20)), tmp_path / "pose.pt", strict=True)
    with pytest.raises(CheckpointError, match="no tensor matches"):
        torch.save({"state_dict": {"unrelated.weight": torch.zeros(2)}}, tmp_path / "u.pt")
        init_network(net, ckpt=tmp_path / "u.pt")
