"""Pose2D3DModule: fit / validate / test on the synthetic world, metrics, learning from init."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import default_collate

from datamodules.h36m import Human36MDataset
from datamodules.layouts import PCKH_EXCLUDED, get_layout
from datamodules.mixed import MixedRatioDataModule
from datamodules.mpii import MPIIDataset
from datamodules.synthetic.write_h36m import write_h36m
from datamodules.synthetic.write_mpii import write_mpii
from deephar.config import NetworkConfig
from deephar.models.multitask import build_model
from deephar.outputs import PoseOutput
from deephar.tasks import Pose2D3DModule, PoseMetrics
from tests.deephar.tasks.ranks import run_ranks

SIZE = 64


def exclude(layout: str) -> list[int]:
    return [get_layout(layout).index(j) for j in PCKH_EXCLUDED]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    write_mpii(root / "mpii", 96, 16, 0, seed=0)
    write_h36m(root / "h36m", (1, 9), 1, 24, seed=0)
    return root


def test_metrics_of_a_perfect_prediction(world):
    """PCKh 1 for the ground truth; MPJPE only the lens distortion the decoding ignores."""
    mpii = MPIIDataset(world / "mpii", "val", input_size=SIZE)
    h36m = Human36MDataset(world / "h36m", "test", "pa17j", SIZE, subjects=(9,))
    metrics = PoseMetrics(17, exclude("pa17j"))
    batch = default_collate([h36m[i] for i in range(len(h36m))])
    metrics.update(PoseOutput([batch["pose"]], [batch["visible"]], [None]), batch)
    out = metrics.compute()
    assert set(out) == {"mpjpe", "pa_mpjpe"} and 0 <= out["mpjpe"] < 10.0
    mpii_metrics = PoseMetrics(16, exclude("pa16j"))
    batch = default_collate([mpii[i] for i in range(6)])
    mpii_metrics.update(PoseOutput([batch["pose"][..., :2]], [batch["visible"]], [None]), batch)
    assert mpii_metrics.compute()["pckh@0.5"] == pytest.approx(1.0)
    shifted = batch["pose"][..., :2] + 0.5  # half a crop away: no joint within 0.5 head sizes
    mpii_metrics.reset()
    mpii_metrics.update(PoseOutput([shifted], [batch["visible"]], [None]), batch)
    assert mpii_metrics.compute()["pckh@0.5"] == 0.0


def test_fit_validate_test_3d_logs_metrics(world, tmp_path, cpu_trainer):
    cfg = NetworkConfig(input_size=SIZE, num_joints=17, dim=3, depth_maps=4, context_maps=0,
                        pose_blocks=1)  # fmt: skip
    net = build_model(cfg)
    train = {
        "h36m": Human36MDataset(world / "h36m", "train", "pa17j", SIZE, subjects=(1,)),
        "mpii": MPIIDataset(world / "mpii", "train", "pa17j", SIZE),
    }
    h36m_val = Human36MDataset(world / "h36m", "test", "pa17j", SIZE, subjects=(9,))
    mpii_val = MPIIDataset(world / "mpii", "val", "pa17j", SIZE)
    data = MixedRatioDataModule(train, {"h36m": 1, "mpii": 1}, batch_size=4, steps_per_epoch=2,
                                val={"h36m": h36m_val, "mpii": mpii_val},
                                test={"h36m": h36m_val, "mpii": mpii_val})  # fmt: skip
    module = Pose2D3DModule(net, {"monitor": "val/mpjpe", "monitor_mode": "min"},
                            pckh_exclude=exclude("pa17j"))  # fmt: skip
    before = [p.detach().clone() for p in net.parameters()]
    t = cpu_trainer(max_epochs=1, limit_val_batches=1, limit_test_batches=1)
    t.fit(module, datamodule=data)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    for key in ("val/loss", "val/mpjpe", "val/pa_mpjpe", "val/pckh@0.5", "val/mpjpe_best"):
        assert key in t.callback_metrics, key
    t.test(module, datamodule=data, verbose=False)
    for key in ("test/mpjpe", "test/pckh@0.5", "test/pckh@0.2", "test/pckh_auc"):
        assert key in t.callback_metrics, key
    assert t.callback_metrics["test/mpjpe"] > 0


def val_loss(t: pl.Trainer, module, data) -> float:
    return t.validate(module, datamodule=data, verbose=False)[0]["val/loss"]


@pytest.mark.slow
def test_short_training_lowers_validation_error(world, tmp_path, cpu_trainer):
    torch.manual_seed(0)
    pl.seed_everything(0)
    net = build_model(NetworkConfig(input_size=SIZE, pose_blocks=1))
    data = MixedRatioDataModule(
        {"mpii": MPIIDataset(world / "mpii", "train", input_size=SIZE)}, {"mpii": 1},
        batch_size=8, steps_per_epoch=25,
        val={"mpii": MPIIDataset(world / "mpii", "val", input_size=SIZE)},
    )  # fmt: skip
    module = Pose2D3DModule(net, {"lr": 1e-3}, pckh_exclude=exclude("pa16j"))
    t = cpu_trainer(max_epochs=1)
    initial = val_loss(t, module, data)
    t.fit(module, datamodule=data)
    final = val_loss(t, module, data)
    assert final < 0.8 * initial, (initial, final)


def _scored_batches(world) -> list[dict]:
    """Two Human3.6M batches (MPJPE only) and one MPII batch (PCKh only), predictions at a fixed
    offset from the ground truth."""
    h36m = Human36MDataset(world / "h36m", "test", "pa17j", SIZE, subjects=(9,))
    mpii = MPIIDataset(world / "mpii", "val", "pa17j", SIZE)
    batches = [default_collate([h36m[i] for i in rows]) for rows in ((0, 1), (2, 3))]
    batches.append(default_collate([mpii[i] for i in range(6)]))
    for b, batch in enumerate(batches):
        offset = 0.02 * torch.randn(batch["pose"].shape, generator=torch.Generator().manual_seed(b))
        batch["pred"] = batch["pose"] + offset
    return batches


def _pose_metrics_of(rank: int, world, split: list[list[int]]) -> dict[str, float]:
    metrics, batches = PoseMetrics(17, exclude("pa17j")), _scored_batches(world)
    for b in split[rank]:
        metrics.update(batches[b]["pred"], batches[b])
    return {k: float(v) for k, v in metrics.compute().items()}


def test_ddp_pose_metrics_when_a_rank_saw_no_sample_of_a_kind(world, tmp_path):
    """Rank 1 sees no MPII sample: both ranks still compute PCKh together (a collective; gated on
    each rank's own samples it hung), and every value equals the one process's over all."""
    single = _pose_metrics_of(0, world, [[0, 1, 2]])
    ranks = run_ranks(_pose_metrics_of, 2, tmp_path, world, [[0, 2], [1]])
    assert {"pckh@0.5", "mpjpe"} <= set(single)
    for values in ranks:
        assert values.keys() == single.keys()
        for key, value in single.items():
            assert values[key] == pytest.approx(value, rel=1e-6), key
