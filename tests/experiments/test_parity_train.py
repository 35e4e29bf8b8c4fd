"""experiments.parity_train: the project's training step under mpii_official equals the official
one on ../shared/parity/train, and each part of the recipe is needed for it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deephar.losses import coordinate_loss, keras_binary_crossentropy
from deephar.tasks.base import OptimSettings, build_optimizer
from deephar.tasks.schedule import build_scheduler
from experiments.config import ConfigError, load_config

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "parity" / "train"
NAME = "mpii_train_k2"
needs_fixture = pytest.mark.skipif(
    not (FIXTURES / f"{NAME}.h5").is_file(), reason="needs ../shared/parity/train"
)


def test_mpii_official_names_the_official_recipe():
    cfg = load_config("mpii_official")
    assert (cfg.loss.pose, cfg.loss.visibility_joints, cfg.loss.keras_bce) == (
        "l1l2bincross", "all", True)  # fmt: skip
    assert cfg.loss.visibility_weight == pytest.approx(0.01)
    o = cfg.optim
    assert (o.name, o.lr, o.rho, o.eps, o.momentum, o.weight_decay) == (
        "rmsprop", 1e-3, 0.9, 1e-7, 0.0, 0.0)  # fmt: skip
    assert (o.schedule, list(o.milestones), o.gamma) == ("milestones", [80, 100], 0.2)
    assert (cfg.data.batch_size, cfg.trainer.max_epochs, cfg.trainer.gradient_clip_val) == (
        24, 120, 0.0)  # fmt: skip
    default = load_config("mpii")  # the project's own defaults stay as they were
    assert (default.loss.pose, default.loss.visibility_joints, default.optim.schedule) == (
        "l1l2", "annotated", "cosine")  # fmt: skip


def test_milestone_schedule_is_the_official_one():
    """Keras' LearningRateScheduler counts epochs from 0: lr × 0.2 from epoch index 80, × 0.04
    from 100 (the epoch scheduler is stepped once per epoch by Lightning)."""
    settings = OptimSettings(**load_config("mpii_official").optim)
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], settings)
    entry = build_scheduler(opt, settings, total_steps=1)
    assert entry["interval"] == "epoch"
    rates = []
    for _ in range(120):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        entry["scheduler"].step()
    assert rates[79] == pytest.approx(1e-3) and rates[80] == pytest.approx(2e-4)
    assert rates[99] == pytest.approx(2e-4) and rates[100] == pytest.approx(4e-5)
    assert rates[119] == pytest.approx(4e-5)


def test_rmsprop_is_keras_rmsprop_by_hand():
    """a ← ρa + (1 − ρ)g², p ← p − lr·g / (√a + ε) from a = 0 (Keras 2.1.4), two steps."""
    settings = OptimSettings(lr=1e-3, rho=0.9, eps=1e-7)
    p = torch.nn.Parameter(torch.tensor([0.5, -0.2, 0.1], dtype=torch.float64))
    opt = build_optimizer([p], settings)
    ref, a = p.detach().clone(), torch.zeros(3, dtype=torch.float64)
    for g in (torch.tensor([1e-3, -2.0, 1e-8]), torch.tensor([-5e-4, 1.0, 3e-7])):
        g = g.double()
        p.grad = g.clone()
        opt.step()
        a = 0.9 * a + 0.1 * g.square()
        ref = ref - 1e-3 * g / (a.sqrt() + 1e-7)
    torch.testing.assert_close(p.detach(), ref, rtol=1e-12, atol=1e-15)


def test_bincross_hand_computed_and_keras_clip():
    pred = torch.tensor([[[0.25, 0.5], [0.9, 0.1]]])  # (N=1, J=2, D=2)
    target = torch.tensor([[[0.5, 0.5], [-1e9, 0.2]]])
    valid = target > 0
    bce = lambda p, t: -(t * torch.log(p) + (1 - t) * torch.log(1 - p))  # noqa: E731
    terms = [(0.25, 0.5), (0.5, 0.5), (0.1, 0.2)]
    expected = sum(abs(p - t) + (p - t) ** 2 + 0.01 * float(bce(torch.tensor(p), torch.tensor(t)))
                   for p, t in terms) / 3  # fmt: skip
    assert coordinate_loss(pred, target, valid, "l1l2bincross").item() == pytest.approx(expected)
    assert coordinate_loss(pred, target, valid, "l1").item() == pytest.approx(0.35 / 3)
    # saturated probabilities cost -log(1e-7) at most, without gradient (Keras' clip)
    p = torch.tensor([1.0, 0.0], requires_grad=True)
    loss = keras_binary_crossentropy(p, torch.tensor([0.0, 1.0]))
    assert loss.detach().max().item() == pytest.approx(15.94, abs=0.2)
    loss.sum().backward()
    assert p.grad.abs().max().item() == 0.0


def test_unknown_loss_options_fail_naming_the_key():
    with pytest.raises(ConfigError, match="loss.pose"):
        load_config("mpii_official", ["loss.pose=l3"])
    with pytest.raises(ConfigError, match="loss.visibility_joints"):
        load_config("mpii_official", ["loss.visibility_joints=some"])


@needs_fixture
def test_parity_passes_and_writes_plain_tensors(tmp_path, capsys):
    from experiments.parity_train import main

    out = tmp_path / "out.pt"
    assert main([str(FIXTURES), NAME, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "parity: PASS" in text and "<= 3e-05" in text and ">= 0.9995" in text
    saved = torch.load(out, weights_only=True)
    assert saved["loss"].shape == (3,)  # K = 2 outputs and their sum
    assert set(saved["grad"]) == set(saved["step2"]) and len(saved["grad"]) == 87
    assert all(k.endswith(("running_mean", "running_var")) for k in saved["bn"])


@needs_fixture
@pytest.mark.parametrize(
    "override",
    ["loss.pose=l1l2", "loss.visibility_joints=annotated", "optim.rho=0.99", "optim.eps=1e-8",
     "optim.schedule=cosine", "trainer.gradient_clip_val=1.0"],
)  # fmt: skip
def test_parity_fails_when_any_part_of_the_recipe_changes(override, capsys):
    from experiments.parity_train import main

    assert main([str(FIXTURES), NAME, override]) == 1
    assert "parity: FAIL" in capsys.readouterr().out
