"""deephar.tasks.schedule: the rate is not cut to nothing before the end of training; it scales
with the number of devices when asked to."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from deephar.config import NetworkConfig
from deephar.models.multitask import build_model
from deephar.tasks import Pose2D3DModule
from deephar.tasks.base import OptimSettings
from deephar.tasks.schedule import build_scheduler, cosine_factor, lr_scale


def rates(settings: OptimSettings, total: int, metric=None) -> list[float]:
    """The rate of each of ``total`` steps (plateau: one ``metric`` value per step = epoch)."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], settings.lr)
    entry = build_scheduler(optimizer, settings, total)
    out = []
    for step in range(total):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if entry is None:
            continue
        if settings.schedule == "plateau":
            entry["scheduler"].step(metric(step))
        else:
            entry["scheduler"].step()
    return out


@pytest.mark.parametrize("warmup", [0.0, 0.05])
def test_cosine_keeps_the_rate_until_the_last_fifth(warmup):
    total, lr = 1000, 2e-3
    seen = rates(OptimSettings(lr=lr, schedule="cosine", warmup=warmup), total)
    assert max(seen) == pytest.approx(lr)
    assert min(seen[: int(0.8 * total)]) >= 1e-3 * lr
    assert min(seen[int(0.05 * total) : int(0.8 * total)]) >= 0.09 * lr
    assert min(seen) >= 1e-3 * lr * (1 - 1e-9)  # the floor, reached at the last step
    assert seen[-1] == pytest.approx(1e-3 * lr)
    if warmup:
        assert seen[0] == pytest.approx(lr / 50) and seen[49] == pytest.approx(lr)


def test_plateau_never_goes_below_the_floor():
    """The paper's schedule on a metric that never improves: × 0.2 every 3 epochs, floored."""
    lr = 2e-4
    settings = OptimSettings(lr=lr, schedule="plateau", monitor_mode="max", plateau_patience=2)
    seen = rates(settings, 100, metric=lambda step: 0.5)
    assert seen[-1] == pytest.approx(1e-3 * lr) and min(seen) >= 1e-3 * lr * (1 - 1e-9)


def test_constant_and_unknown():
    assert rates(OptimSettings(lr=0.1, schedule="constant"), 5) == [0.1] * 5
    with pytest.raises(ValueError, match="schedule"):
        build_scheduler(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], 0.1),
                        OptimSettings(schedule="step"), 10)  # fmt: skip


def test_cosine_factor_endpoints():
    assert cosine_factor(0, 100) == pytest.approx(1.0)
    assert cosine_factor(99, 100) == pytest.approx(1e-3)
    assert cosine_factor(49, 99, min_ratio=0.0) == pytest.approx(0.5)


@pytest.mark.parametrize("rule, factor", [("none", 1.0), ("linear", 4.0), ("sqrt", 2.0)])
def test_scale_lr_multiplies_the_rate_by_the_devices_or_their_root(rule, factor):
    """``optim.scale_lr``: ``data.batch_size`` is per device, so 4 devices train with 4× the
    batch; the optimiser and the plateau floor run at lr × 4 (linear) or × 2 (sqrt)."""
    assert lr_scale(rule, 4) == factor
    net = build_model(NetworkConfig(input_size=64, pose_blocks=1))
    module = Pose2D3DModule(net, {"lr": 1e-3, "schedule": "plateau", "scale_lr": rule})
    module._trainer = SimpleNamespace(world_size=4, estimated_stepping_batches=10)
    optimizer = module.configure_optimizers()["optimizer"]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * factor)
    assert module.plateau.min_lrs[0] == pytest.approx(1e-6 * factor)
    assert module.optim.lr == 1e-3  # the checkpoint keeps the config's rate


def test_unknown_lr_scaling_is_refused():
    with pytest.raises(ValueError, match="optim.scale_lr"):
        Pose2D3DModule(build_model(NetworkConfig(input_size=64, pose_blocks=1)),
                       {"scale_lr": "cubic"})  # fmt: skip
