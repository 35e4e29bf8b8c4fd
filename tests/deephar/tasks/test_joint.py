"""JointModule: pose and action batches in one step; one backbone shared by the three modules."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from datamodules.mixed import MixedRatioDataModule
from datamodules.mpii import MPIIDataset
from datamodules.penn import PennActionDataset
from datamodules.synthetic.write_mpii import write_mpii
from datamodules.synthetic.write_penn import write_penn
from deephar.config import NetworkConfig
from deephar.models.multitask import build_model
from deephar.tasks import ActionModule, JointModule, Pose2D3DModule, init_network

SIZE, T = 64, 8
NET = NetworkConfig(input_size=SIZE, pose_blocks=1, num_actions=15, num_frames=T)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    write_mpii(root / "mpii", 16, 8, 0, seed=0)
    write_penn(root / "penn", 2, (16, 20), seed=0)
    return root


def test_the_three_modules_share_one_backbone():
    net = build_model(NET)
    modules = [Pose2D3DModule(net), ActionModule(net), JointModule(net)]
    for module in modules:
        assert module.net is net and module.backbone is net.backbone
    assert modules[0].backbone is modules[1].backbone is modules[2].backbone


def test_joint_step_trains_pose_and_action_and_evaluates_both(world, tmp_path):
    net = build_model(NET)
    mpii = {s: MPIIDataset(world / "mpii", s, input_size=SIZE) for s in ("train", "val")}
    penn = {s: PennActionDataset(world / "penn", s, clip_length=T, input_size=SIZE)
            for s in ("train", "test")}  # fmt: skip
    data = MixedRatioDataModule(
        {"mpii": mpii["train"], "penn": penn["train"]}, {"mpii": 2, "penn": 1}, batch_size=3,
        steps_per_epoch=2, groups={"pose": ["mpii"], "action": ["penn"]},
        val={"mpii": mpii["val"], "penn": penn["test"]}, test={"penn": penn["test"]},
    )  # fmt: skip
    module = JointModule(net, {"monitor": "val/acc", "monitor_mode": "max"}, freeze_pose=False)
    stem_before = [p.detach().clone() for p in net.backbone.parameters()]
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False,
                         limit_val_batches=2, limit_test_batches=1, log_every_n_steps=1,
                         default_root_dir=str(tmp_path))  # fmt: skip
    trainer.fit(module, datamodule=data)
    assert any(not torch.equal(a, b) for a, b in zip(stem_before, net.backbone.parameters()))
    logged = set(trainer.callback_metrics)
    assert {"train/pose", "train/action", "val/pckh@0.5", "val/acc", "val/acc_agg"} <= logged
    trainer.test(module, datamodule=data, verbose=False)
    assert {"test/acc", "test/video_acc", "test/acc_app1"} <= set(trainer.callback_metrics)


def test_starts_from_a_pose_checkpoint(tmp_path):
    pose_net = build_model(NET.with_(num_actions=0))
    trainer = pl.Trainer(accelerator="cpu", logger=False, max_epochs=0)
    trainer.strategy.connect(Pose2D3DModule(pose_net))
    trainer.save_checkpoint(tmp_path / "pose.ckpt")
    net = build_model(NET)
    init_network(net, ckpt=tmp_path / "pose.ckpt")
    for key, value in pose_net.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key
    head = [k for k in net.state_dict() if k.startswith("action.")]
    assert head and JointModule(net).net is net
