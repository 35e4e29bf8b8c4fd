"""ActionModule: clips with the pose network frozen, provided poses, per-block accuracy."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from datamodules.mixed import MixedRatioDataModule
from datamodules.penn import PennActionDataset
from datamodules.synthetic.motion import ACTIONS
from datamodules.synthetic.write_penn import write_penn
from deephar.config import NetworkConfig
from deephar.models.multitask import build_model
from deephar.outputs import ActionOutput
from deephar.tasks import ActionMetrics, ActionModule, set_bn_momentum
from tests.deephar.tasks.ranks import run_ranks

SIZE, T = 64, 8
NET = NetworkConfig(input_size=SIZE, pose_blocks=1, num_actions=15, num_frames=T)


@pytest.fixture(scope="module")
def penn(tmp_path_factory):
    root = tmp_path_factory.mktemp("penn")
    write_penn(root, 10, (20, 28), seed=0)  # 10 videos per action: 5 train, 5 test
    return root


def datamodule(root, mode, batch_size, steps, augment=True, **test_kwargs) -> MixedRatioDataModule:
    train = PennActionDataset(root, "train", clip_length=T, mode=mode, input_size=SIZE,
                              augment=augment)  # fmt: skip
    test = PennActionDataset(root, "test", clip_length=T, mode=mode, input_size=SIZE, **test_kwargs)
    return MixedRatioDataModule({"penn": train}, {"penn": 1}, batch_size, steps,
                                val={"penn": test}, test={"penn": test})  # fmt: skip


def test_clips_train_the_action_head_only(penn, tmp_path, cpu_trainer):
    net = build_model(NET)
    module = ActionModule(net, {"name": "sgd", "lr": 1e-3, "momentum": 0.9, "nesterov": True,
                                "monitor": "val/acc", "monitor_mode": "max"})  # fmt: skip
    pose_before = {k: v.clone() for k, v in net.pose.state_dict().items()}
    head_before = [p.detach().clone() for p in net.action.parameters()]
    data = datamodule(penn, "images", batch_size=2, steps=2, clip_sampling="multi", clip_step=6)
    t = cpu_trainer(max_epochs=1, limit_val_batches=2, limit_test_batches=3)
    t.fit(module, datamodule=data)
    for key, value in net.pose.state_dict().items():  # weights and BN statistics
        assert torch.equal(value, pose_before[key]), key
    assert any(not torch.equal(a, b) for a, b in zip(head_before, net.action.parameters()))
    assert {"val/acc", "val/video_acc", "val/acc_best", "val/acc_app4"} <= set(t.callback_metrics)
    t.test(module, datamodule=data, verbose=False)
    logged = t.callback_metrics
    blocks = [f"test/acc_{b}" for b in ("pose1", "pose4", "app1", "app4", "agg")]
    for key in ("test/acc", "test/video_acc", *blocks):
        assert key in logged, key
        assert 0.0 <= float(logged[key]) <= 1.0
    assert logged["test/acc"] == logged["test/acc_agg"]  # the aggregate is the final prediction


@pytest.mark.slow
def test_provided_poses_beat_chance(penn, tmp_path, cpu_trainer):
    pl.seed_everything(0)
    net = build_model(NET)
    set_bn_momentum(net, 0.1)  # a short run: running statistics must settle
    module = ActionModule(net, {"name": "adam", "lr": 1e-3})
    data = datamodule(penn, "poses", batch_size=8, steps=60, augment=False)
    t = cpu_trainer(max_epochs=2)
    t.fit(module, datamodule=data)
    t.test(module, datamodule=data, verbose=False)
    logged = t.callback_metrics
    assert "test/acc_app1" not in logged  # provided poses: the pose branch only
    chance = 1 / len(ACTIONS)
    assert logged["test/acc"] >= 3 * chance, float(logged["test/acc"])


def test_action_metrics_ignore_unlabelled_clips_and_pool_views_per_video():
    """Clip accuracy counts labelled clips only (torchmetrics, ignore_index −1); each branch's
    video accuracy pools every update of a video (views of a clip, clips of a video)."""
    from deephar.outputs import ActionOutput
    from deephar.tasks import ActionMetrics

    metrics = ActionMetrics(num_blocks=1, num_actions=2)
    pose = torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, 0.0], [0.0, 3.0]])
    app = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    batch = {"action": torch.tensor([0, 0, -1, 1]), "video_id": ["a", "b", "c", "d"]}
    metrics.update(ActionOutput([pose], [app], aggregate=pose + app), batch)
    out = metrics.compute()
    assert out["acc_pose1"] == pytest.approx(2 / 3) and out["acc_app1"] == pytest.approx(1 / 3)
    assert out["video_acc_pose"] == pytest.approx(2 / 3)
    mirrored = {"action": torch.tensor([0]), "video_id": ["b"]}  # video b seen again, strongly 0
    strong = torch.tensor([[9.0, 0.0]])
    metrics.update(ActionOutput([strong], [strong], aggregate=strong), mirrored)
    assert metrics.compute()["video_acc_pose"] == pytest.approx(3 / 3)
    metrics.reset()
    assert metrics.compute() == {}


def test_ddp_leaves_the_frozen_pose_networks_buffers_out_of_its_broadcast(tmp_path):
    """A frozen pose network's BN statistics cannot change: DDP does not broadcast them every
    step (the action head's are); unfrozen (fine-tuning), they are broadcast again."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)  # fmt: skip
    try:
        net = build_model(NET)
        for freeze, pose_broadcast in ((True, False), (False, True)):
            module = ActionModule(net, freeze_pose=freeze)
            module.setup("fit")  # Lightning calls it before the strategy wraps the module
            names = DistributedDataParallel(module).named_module_buffers
            assert any(n.startswith("net.action.") for n in names)
            assert any(n.startswith("net.pose.") for n in names) is pose_broadcast
    finally:
        dist.destroy_process_group()


def _action_batches() -> list[tuple[ActionOutput, dict]]:
    """Three batches of 4 clips (2 blocks, 5 actions) of videos 0-5, some seen in two batches;
    the last one from provided poses (pose branch only: no appearance, no aggregate)."""
    gen, out = torch.Generator().manual_seed(0), []
    for b in range(3):
        logits = [torch.randn(4, 5, generator=gen) for _ in range(5)]
        appearance = b < 2
        output = ActionOutput(logits[:2], logits[2:4] if appearance else [],
                              logits[4] if appearance else None)  # fmt: skip
        videos = torch.tensor([0, 1, 2, 3]) + 2 * b
        out.append((output, {"action": videos % 5, "video_id": videos}))
    return out


def _action_metrics_of(rank: int, splits: list[list[list[int]]]) -> list[dict[str, float]]:
    """Per split of the batches over the ranks: this rank's ``compute()``."""
    values, batches = [], _action_batches()
    for split in splits:
        metrics = ActionMetrics(2, 5)
        for b in split[rank]:
            metrics.update(*batches[b])
        values.append({k: float(v) for k, v in metrics.compute().items()})
    return values


def test_ddp_action_metrics_when_a_rank_saw_no_sample_of_a_kind(tmp_path):
    """Rank 1 sees no appearance output, then no clip at all: both ranks compute every accuracy
    together (gated on each rank's own updates, the gathers hung), equal to one process's."""
    single = _action_metrics_of(0, [[[0, 1, 2]]])[0]
    assert {"acc_app1", "video_acc_appearance", "acc_pose2"} <= set(single)
    ranks = run_ranks(_action_metrics_of, 2, tmp_path, [[[0, 1], [2]], [[0, 1, 2], []]])
    for values in (v for rank in ranks for v in rank):
        assert values.keys() == single.keys()
        for key, value in single.items():
            assert values[key] == pytest.approx(value, rel=1e-6), key
