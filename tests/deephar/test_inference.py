"""Inference rewrites keep the network's outputs; the precision follows the machine."""

import pytest
import torch

from deephar.config import NetworkConfig
from deephar.models.inference import (
    LowPrecisionStage,
    choose_runtime,
    for_inference,
    prepare_for_inference,
)
from deephar.models.multitask import build_model
from deephar.models.pose import PoseNet
from deephar.models.precision import Precision, choose_precision, cpu_flags, isa_name

FP32 = Precision(torch.float32, "test")
BF16 = Precision(torch.bfloat16, "test")


def _randomise_bn(model: torch.nn.Module) -> None:
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def test_folded_model_gives_the_same_pose_and_heatmaps():
    torch.manual_seed(0)
    for cfg in (
        NetworkConfig(input_size=64, pose_blocks=2),
        NetworkConfig(
            input_size=64, pose_blocks=2, num_joints=17, dim=3, depth_maps=4, context_maps=0
        ),
    ):
        model = PoseNet(cfg).eval()
        _randomise_bn(model)
        fast = prepare_for_inference(model)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
        x = torch.randn(2, 3, 64, 64)
        with torch.inference_mode():
            ref, out = model(x), fast(x.contiguous(memory_format=torch.channels_last))
        for a, b in zip(ref.pose + ref.heatmaps, out.pose + out.heatmaps):
            torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)


def test_original_model_is_untouched():
    model = PoseNet(NetworkConfig(input_size=64, pose_blocks=1)).eval()
    prepare_for_inference(model)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def _action_net() -> torch.nn.Module:
    cfg = NetworkConfig(
        input_size=64, pose_blocks=2, width=0.25, num_actions=4, num_frames=4, action_blocks=2
    )
    net = build_model(cfg).eval()
    _randomise_bn(net)
    return net


def test_for_inference_fp32_is_folded_channels_last_and_exact():
    net = _action_net()
    fast = for_inference(net, precision=FP32, verbose=False, runtime="torch")
    assert type(fast) is type(net) and fast is not net
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    convs = [m for m in fast.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    clips = torch.rand(1, 4, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        ref, out = net.forward_clip(clips), fast.forward_clip(clips)
    torch.testing.assert_close(out.final, ref.final, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.poses.pose[-1], ref.poses.pose[-1], atol=1e-4, rtol=1e-4)
    assert len(out.poses.pose) == 1 < len(ref.poses.pose)  # the last block's outputs only


def test_for_inference_bf16_runs_the_trunk_in_bf16_and_decodes_in_fp32():
    net = _action_net()
    fast = for_inference(net, precision=BF16, verbose=False, runtime="torch")
    stages = [m for m in fast.modules() if isinstance(m, LowPrecisionStage)]
    assert len(stages) == 1 + net.cfg.pose_blocks  # stem + every prediction block
    assert all(p.dtype == torch.bfloat16 for s in stages for p in s.parameters())
    clips = torch.rand(1, 4, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        ref, out = net.forward_clip(clips), fast.forward_clip(clips)
    assert out.final.dtype == torch.float32 and out.poses.pose[-1].dtype == torch.float32
    # bf16 keeps ~3 significant digits: poses (in [0, 1] of the crop) within 1e-2
    torch.testing.assert_close(out.poses.pose[-1], ref.poses.pose[-1], atol=1e-2, rtol=0)


def test_fast_off_is_the_eager_network():
    net = _action_net().train()
    assert for_inference(net, fast=False) is net and not net.training


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"sse2", "avx", "avx2", "fma"}, torch.float32),  # AVX2-only EPYC of issue 13
        ({"avx2", "fma", "avx512f", "avx512_vnni"}, torch.float32),  # Skylake/Cascade Lake
        ({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"}, torch.bfloat16),  # Zen 4/5, CPX
        ({"avx2", "avx512f", "amx_bf16", "amx_int8"}, torch.bfloat16),  # Sapphire Rapids
        ({"fp", "asimd", "bf16"}, torch.bfloat16),  # Graviton 3
    ],
)
def test_precision_follows_the_cpu_flags(monkeypatch, flags, expected):
    monkeypatch.delenv("DEEPHAR_PRECISION", raising=False)
    choice = choose_precision("cpu", flags=flags)
    assert choice.dtype == expected
    assert ("no native bf16" in choice.reason) == (expected == torch.float32)


def test_precision_override_and_unknown_cpu(monkeypatch):
    monkeypatch.setenv("DEEPHAR_PRECISION", "fp32")
    assert choose_precision("cpu", flags={"avx512_bf16"}).dtype == torch.float32
    monkeypatch.delenv("DEEPHAR_PRECISION")
    monkeypatch.setattr("deephar.models.precision.cpu_flags", lambda: None)
    assert choose_precision("cpu", probe=False).dtype == torch.float32


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse2 avx2 fma\n\n")
    flags = cpu_flags(info)
    assert flags == {"fpu", "sse2", "avx2", "fma"}
    assert isa_name(flags) == "AVX2 + FMA"
    assert cpu_flags(tmp_path / "missing") is None


def test_for_inference_follows_the_chosen_precision(monkeypatch):
    net = PoseNet(NetworkConfig(input_size=64, pose_blocks=1)).eval()
    for flags, stages in (({"avx2"}, 0), ({"avx512_bf16"}, 2)):
        monkeypatch.delenv("DEEPHAR_PRECISION", raising=False)
        monkeypatch.setattr("deephar.models.precision.cpu_flags", lambda f=flags: f)
        fast = for_inference(net, verbose=False, runtime="torch")
        assert sum(isinstance(m, LowPrecisionStage) for m in fast.modules()) == stages


def test_predict_runs_the_fast_path(tmp_path, monkeypatch):
    """``experiments.predict`` obtains its network through ``for_inference`` (fast by default)."""
    predict = pytest.importorskip("experiments.predict")
    from deephar.checkpoint import network_payload

    monkeypatch.setenv("DEEPHAR_PRECISION", "fp32")
    net = build_model(NetworkConfig(input_size=64, pose_blocks=1, width=0.25)).eval()
    torch.save(network_payload(net, model="mpii"), tmp_path / "net.pt")
    fast = predict.load_network(tmp_path / "net.pt").model
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    runtime = fast.pose.runtime  # the CPU engine choose_runtime picks here
    assert (runtime is not None) == (choose_runtime(torch.device("cpu")) == "openvino")
    conv = next(m for m in fast.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    eager = predict.load_network(tmp_path / "net.pt", fast=False).model
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in eager.modules())


# ---- the OpenVINO engine (CPU) ----
def test_runtime_choice(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.delenv("DEEPHAR_RUNTIME", raising=False)
    monkeypatch.setattr("deephar.models.inference.openvino_available", lambda: True)
    assert choose_runtime(cpu) == "openvino"
    assert choose_runtime(cpu, compile=True) == "torch"  # torch.compile is PyTorch's
    assert choose_runtime(torch.device("cuda")) == "torch"
    monkeypatch.setenv("DEEPHAR_RUNTIME", "torch")
    assert choose_runtime(cpu) == "torch"
    monkeypatch.delenv("DEEPHAR_RUNTIME")
    monkeypatch.setattr("deephar.models.inference.openvino_available", lambda: False)
    assert choose_runtime(cpu) == "torch"
    with pytest.raises(ValueError, match="openvino"):
        choose_runtime(cpu, "openvino")


@pytest.mark.parametrize(("precision", "atol"), [(FP32, 1e-4), (BF16, 1e-2)])
def test_openvino_trunk_gives_the_same_clip_outputs(precision, atol):
    """Poses, appearance features and action scores through OpenVINO match eager PyTorch (fp32:
    1e-4; bf16 keeps ~3 significant digits); any batch, decoding in fp32."""
    pytest.importorskip("openvino")
    net = _action_net()
    fast = for_inference(net, precision=precision, verbose=False, runtime="openvino")
    assert fast.pose.runtime is not None
    for batch in (1, 2):
        clips = torch.rand(batch, 4, 3, 64, 64) * 2 - 1
        with torch.inference_mode():
            ref, out = net.forward_clip(clips), fast.forward_clip(clips)
        assert out.final.dtype == torch.float32 and out.poses.pose[-1].dtype == torch.float32
        torch.testing.assert_close(out.poses.pose[-1], ref.poses.pose[-1], atol=atol, rtol=0)
        torch.testing.assert_close(out.final.softmax(-1), ref.final.softmax(-1), atol=atol, rtol=0)
    with pytest.raises(ValueError, match="compiled for"):
        fast.forward_pose(torch.zeros(1, 3, 32, 32))


def test_openvino_pose_network_skips_the_appearance_features():
    pytest.importorskip("openvino")
    net = build_model(NetworkConfig(input_size=64, pose_blocks=2, width=0.25)).eval()
    _randomise_bn(net)
    fast = for_inference(net, precision=FP32, verbose=False, runtime="openvino")
    images = torch.rand(3, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        ref, out = net.forward_pose(images), fast.forward_pose(images)
    # the last block only: the earlier ones are intermediate supervision
    assert out.features is None and len(out.pose) == 1 and len(ref.pose) == 2
    torch.testing.assert_close(out.pose[0], ref.pose[-1], atol=1e-4, rtol=0)
    torch.testing.assert_close(out.visibility[0], ref.visibility[-1], atol=1e-4, rtol=0)
