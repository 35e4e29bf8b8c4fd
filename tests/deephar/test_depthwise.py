"""Depthwise convolutions in CPU training: the weight gradient by ``deephar.depthwise`` (fused
fp32 tap sums) where oneDNN's is slow; the forward, the input gradient and every other case as
before."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deephar import depthwise
from deephar.config import MPII_2D
from deephar.layers import SeparableConv2d
from deephar.losses import pose_loss
from deephar.models.multitask import build_model

CL = torch.channels_last
C, K, S = 6, 5, 7


def run(sep: SeparableConv2d, x0: torch.Tensor, grad: torch.Tensor, bf16: bool, old: bool):
    """Output, input gradient and depthwise weight gradient of ``sep.depthwise`` (``old``: plain
    ``F.conv2d``, the code before ``deephar.depthwise``)."""
    x = x0.clone().requires_grad_(True)
    sep.depthwise.weight.grad = None
    with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        w = sep.depthwise.weight
        y = F.conv2d(x, w, None, 1, K // 2, 1, C) if old else sep.depthwise(x)
    y.backward(grad.to(y.dtype))
    return y.detach(), x.grad, sep.depthwise.weight.grad.clone()


def exact_weight_grad(x: torch.Tensor, grad: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """fp64 weight gradient from the (already rounded) tensors the convolution saw."""
    return torch.ops.aten.convolution_backward(
        grad.double(),
        x.double(),
        w.double(),
        None,
        [1, 1],
        [K // 2] * 2,
        [1, 1],
        False,
        [0, 0],
        C,
        [False, True, False],
    )[1]


def inputs(memory_format=CL) -> tuple[SeparableConv2d, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    sep = SeparableConv2d(C, 4, K).to(memory_format=memory_format)
    x = torch.randn(2, C, S, S).contiguous(memory_format=memory_format)
    return sep, x, torch.randn(2, C, S, S).contiguous(memory_format=memory_format)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


@pytest.mark.parametrize("how", ["inductor", "fp32"])
def test_bf16_autocast_channels_last_weight_grad_is_fp32_accurate(monkeypatch, how):
    """Under CPU bf16 autocast, channels_last: the forward and the input gradient are oneDNN's
    as before (bit for bit), the depthwise weight gradient is accumulated in fp32 (before: rounded
    to bf16, ~2e-3 relative; fails on the code before ``deephar.depthwise``)."""
    monkeypatch.setenv(depthwise.ENV, how)
    sep, x, grad = inputs()
    new, old = run(sep, x, grad, True, old=False), run(sep, x, grad, True, old=True)
    assert new[0].dtype == torch.bfloat16 and new[2].dtype == torch.float32
    assert torch.equal(new[0], old[0]) and torch.equal(new[1], old[1])
    exact = exact_weight_grad(x.bfloat16(), grad.bfloat16(), sep.depthwise.weight.bfloat16())
    assert rel(new[2], exact) < 1e-5
    assert rel(new[2], old[2]) < 1e-2  # within bf16 tolerance of the former gradient


def test_fp32_channels_last_equal_to_before_within_rounding(monkeypatch):
    monkeypatch.setenv(depthwise.ENV, "inductor")
    sep, x, grad = inputs()
    new, old = run(sep, x, grad, False, old=False), run(sep, x, grad, False, old=True)
    assert torch.equal(new[0], old[0]) and torch.equal(new[1], old[1])
    assert rel(new[2], old[2]) < 1e-5


def test_nchw_inference_and_aten_mode_take_the_former_path(monkeypatch):
    sep, x, _ = inputs(torch.contiguous_format)
    w = sep.depthwise.weight
    assert not depthwise.applies(x, w, (1, 1), (2, 2))  # NCHW: fp32 results bit for bit as before
    pooled = x[:, :, :1, :1].contiguous()  # (B, C, 1, 1): contiguous in both formats
    assert not depthwise.applies(pooled, w, (1, 1), (2, 2))  # an NCHW network's: the former path
    xc = x.contiguous(memory_format=CL)
    assert depthwise.applies(xc, w, (1, 1), (2, 2))
    with torch.no_grad():
        assert not depthwise.applies(xc, w, (1, 1), (2, 2))
    assert not depthwise.applies(xc, w.detach(), (1, 1), (2, 2))
    monkeypatch.setenv(depthwise.ENV, "aten")
    assert not depthwise.applies(xc, w, (1, 1), (2, 2))
    monkeypatch.setenv(depthwise.ENV, "fast")
    with pytest.raises(ValueError, match="DEEPHAR_DEPTHWISE_GRAD='fast'"):
        depthwise.mode()


def test_inductor_failure_falls_back_to_onednn_fp32_with_one_line(monkeypatch, capsys):
    def broken(*args):
        raise RuntimeError("no C++ compiler\nmore")

    monkeypatch.setenv(depthwise.ENV, "inductor")
    monkeypatch.setattr(depthwise, "_inductor_tap_sums", broken)
    monkeypatch.setattr(depthwise, "_inductor_failed", False)
    sep, x, grad = inputs()
    new = run(sep, x, grad, True, old=False)
    run(sep, x, grad, True, old=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "deephar: depthwise weight gradient by Inductor failed (RuntimeError: no C++ compiler); "
        "oneDNN fp32 used instead"
    ]
    exact = exact_weight_grad(x.bfloat16(), grad.bfloat16(), sep.depthwise.weight.bfloat16())
    assert rel(new[2], exact) < 1e-5


def test_network_training_step_gradients_as_before_within_bf16(monkeypatch):
    """A bf16-mixed channels_last training step of a (tiny) pose network: loss equal, every
    gradient within bf16 tolerance of the former path's (``DEEPHAR_DEPTHWISE_GRAD=aten``)."""
    cfg = MPII_2D.with_(input_size=32, pose_blocks=1, width=0.125)
    torch.manual_seed(0)
    net = build_model(cfg).to(memory_format=CL)
    images = (torch.rand(2, 3, 32, 32) * 2 - 1).contiguous(memory_format=CL)
    batch = {
        "pose": torch.rand(2, cfg.num_joints, 3),
        "pose_valid": torch.ones(2, cfg.num_joints, 3, dtype=torch.bool),
        "visible": torch.ones(2, cfg.num_joints),
    }
    results = {}
    for how in ("aten", "inductor"):
        monkeypatch.setenv(depthwise.ENV, how)
        net.zero_grad(set_to_none=True)
        with torch.autocast("cpu", torch.bfloat16):
            loss = pose_loss(net.forward_pose(images), batch)[0]
        loss.backward()
        results[how] = (loss.detach(), {n: p.grad.clone() for n, p in net.named_parameters()})
    assert torch.equal(results["aten"][0], results["inductor"][0])
    old, new = results["aten"][1], results["inductor"][1]
    assert old.keys() == new.keys() and any("depthwise" in n for n in new)
    for name in old:
        scale = old[name].abs().max().clamp_min(1e-6)
        assert (new[name] - old[name]).abs().max() / scale < 2e-2, name


def test_compiled_network_traces_the_weight_gradient_in_one_graph(monkeypatch):
    """Inside ``torch.compile`` the tap sums join the backward graph: no graph break, gradients
    as in eager within fp32 rounding (aot_eager: dynamo's graphs run by aten kernels)."""
    monkeypatch.setenv(depthwise.ENV, "inductor")
    sep, x, grad = inputs()
    x = x.requires_grad_(True)

    def loss(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", torch.bfloat16):
            return (sep.depthwise(x).float() * grad).sum()

    explained = torch._dynamo.explain(loss)(x)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0)
    grads = {}
    for name, fn in (("eager", loss), ("compiled", torch.compile(loss, backend="aot_eager"))):
        sep.zero_grad(set_to_none=True)
        fn(x).backward()
        grads[name] = sep.depthwise.weight.grad.clone()
    assert rel(grads["compiled"], grads["eager"]) < 1e-5
