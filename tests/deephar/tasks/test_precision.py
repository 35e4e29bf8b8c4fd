"""Mixed precision: training steps of the three task modules under ``bf16-mixed`` on the CPU.

CUDA autocast refuses ``F.binary_cross_entropy`` (unsafe on probabilities); the CPU does not, so
the test makes it refuse here too: the losses must go through logits.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from datamodules.mixed import MixedRatioDataModule
from datamodules.mpii import MPIIDataset
from datamodules.penn import PennActionDataset
from datamodules.synthetic.write_mpii import write_mpii
from datamodules.synthetic.write_penn import write_penn
from deephar.config import NetworkConfig
from deephar.models.multitask import build_model
from deephar.tasks import ActionModule, JointModule, Pose2D3DModule

SIZE, T = 64, 4
NET = NetworkConfig(input_size=SIZE, pose_blocks=1, num_actions=15, num_frames=T, width=0.25)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    write_mpii(root / "mpii", 8, 4, 0, seed=0)
    write_penn(root / "penn", 1, (8, 10), seed=0)
    return root


@pytest.fixture
def cuda_like_autocast(monkeypatch):
    """``binary_cross_entropy`` fails under autocast, as it does on CUDA."""
    real = F.binary_cross_entropy

    def refuse(*args, **kwargs):
        if torch.is_autocast_enabled("cpu"):
            raise RuntimeError("binary_cross_entropy is unsafe to autocast")
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "binary_cross_entropy", refuse)


def data_for(world, kind: str) -> MixedRatioDataModule:
    mpii = MPIIDataset(world / "mpii", "train", input_size=SIZE)
    penn = PennActionDataset(world / "penn", "train", clip_length=T, input_size=SIZE)
    train = {
        "pose": {"mpii": mpii},
        "action": {"penn": penn},
        "joint": {"mpii": mpii, "penn": penn},
    }
    groups = {"pose": ["mpii"], "action": ["penn"]} if kind == "joint" else None
    return MixedRatioDataModule(train[kind], {k: 1 for k in train[kind]}, batch_size=2,
                                steps_per_epoch=2, groups=groups)  # fmt: skip


@pytest.mark.parametrize("kind", ["pose", "action", "joint"])
def test_bf16_mixed_training_steps(world, kind, cpu_trainer, cuda_like_autocast):
    torch.manual_seed(0)
    net = build_model(NET if kind != "pose" else NET.with_(num_actions=0))
    module = {"pose": lambda: Pose2D3DModule(net),
              "action": lambda: ActionModule(net),
              "joint": lambda: JointModule(net, freeze_pose=False)}[kind]()  # fmt: skip
    trained = [p for p in net.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trained]
    trainer = cpu_trainer(precision="bf16-mixed", max_steps=2, limit_val_batches=0,
                          log_every_n_steps=1)  # fmt: skip
    trainer.fit(module, datamodule=data_for(world, kind))
    assert trainer.global_step == 2
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert all(p.dtype == torch.float32 for p in trained)  # master weights stay fp32
    assert any(not torch.equal(a, b) for a, b in zip(before, trained))
    with torch.autocast("cpu", torch.bfloat16), pytest.raises(RuntimeError, match="unsafe"):
        F.binary_cross_entropy(torch.rand(3), torch.rand(3))  # the guard is live
