"""JointModule takes the single-task modules' loss options (``loss.pose``,
``loss.visibility_joints``, ``loss.keras_bce``, ``loss.label_smoothing``): it ignored them."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import default_collate

from datamodules.mpii import MPIIDataset
from datamodules.penn import PennActionDataset
from datamodules.synthetic.write_mpii import write_mpii
from datamodules.synthetic.write_penn import write_penn
from deephar.config import NetworkConfig
from deephar.images import batch_to_float
from deephar.losses import action_loss, pose_loss
from deephar.models.multitask import build_model
from deephar.tasks import JointModule, action_forward
from experiments.config import load_config, network_config
from experiments.train import build_module

SIZE, T = 64, 8
NET = NetworkConfig(input_size=SIZE, pose_blocks=1, num_actions=15, num_frames=T)
OPTIONS = dict(pose_loss="l1", visibility_joints="all", keras_bce=True, label_smoothing=0.3)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """{"pose": 4 MPII crops, "action": 2 Penn clips}, as the mixed training loader gives."""
    root = tmp_path_factory.mktemp("world")
    write_mpii(root / "mpii", 8, 4, 0, seed=0)
    write_penn(root / "penn", 2, (16, 20), seed=0)
    mpii = MPIIDataset(root / "mpii", "train", input_size=SIZE)
    penn = PennActionDataset(root / "penn", "train", clip_length=T, input_size=SIZE)
    pose = batch_to_float(default_collate([mpii[i] for i in range(4)]))
    return {"pose": pose, "action": batch_to_float(default_collate([penn[i] for i in range(2)]))}


def test_the_training_loss_follows_the_loss_options(batch):
    torch.manual_seed(0)
    net = build_model(NET).eval()  # running BN statistics: the same forward every time
    module = JointModule(net, freeze_pose=False, pose_weight=2.0, **OPTIONS)
    with torch.no_grad():
        loss = module._shared_step(batch, "train")
        action = action_loss(action_forward(net, batch["action"]), batch["action"]["action"], 0.3)
        output = net.forward_pose(batch["pose"]["image"])
        pose, _ = pose_loss(output, batch["pose"], 0.01, "l1", "all", keras_bce=True)
        default = JointModule(net, freeze_pose=False, pose_weight=2.0)._shared_step(batch, "train")
    torch.testing.assert_close(loss, action + 2.0 * pose)
    assert not torch.allclose(loss, default)  # the options change the loss
    assert {k: module.hparams[k] for k in OPTIONS} == OPTIONS  # saved with the checkpoint


@pytest.mark.parametrize(("key", "value"), [("pose_loss", "l3"), ("visibility_joints", "some")])
def test_unknown_loss_choices_are_refused_naming_the_key(key, value):
    config_key = {"pose_loss": "loss.pose", "visibility_joints": "loss.visibility_joints"}[key]
    with pytest.raises(ValueError, match=f"{config_key} = '{value}'"):
        JointModule(build_model(NET), **{key: value})


def test_the_joint_experiment_passes_the_loss_section():
    cfg = load_config(
        "demo",
        [
            "model.input_size=64",
            "model.pose_blocks=1",
            "loss.pose=l2",
            "loss.visibility_joints=all",
            "loss.keras_bce=true",
            "loss.label_smoothing=0.1",
        ],
    )
    module = build_module(cfg, build_model(network_config(cfg)))
    assert isinstance(module, JointModule)
    assert (module.pose_loss, module.visibility_joints) == ("l2", "all")
    assert module.keras_bce is True and module.label_smoothing == pytest.approx(0.1)
