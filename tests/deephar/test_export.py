"""ONNX export: the graphs reproduce PyTorch (fp32, ≤ 1e-4) at any batch size; int8 keeps the
heat-map logits and decoding in fp32."""

import numpy as np
import pytest
import torch

from deephar.config import NetworkConfig
from deephar.models.multitask import build_model

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from deephar.export import OPSET, export_onnx, onnx_session  # noqa: E402
from deephar.export.onnx_graph import graph_for  # noqa: E402
from deephar.export.quantize import quantize_int8, trunk_conv_nodes  # noqa: E402

CFG = NetworkConfig(
    input_size=64, pose_blocks=2, width=0.25, num_actions=4, num_frames=4, action_blocks=2
)


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(CFG).eval()
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():  # BN statistics away from identity, so that folding matters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model


@pytest.mark.parametrize("task", ["pose", "action"])
def test_onnx_runtime_matches_pytorch_at_any_batch(net, task, tmp_path):
    torch.set_num_threads(1)
    path = export_onnx(net, tmp_path / f"{task}.onnx", task)
    model = onnx.load(str(path))
    assert model.opset_import[0].version == OPSET
    session = onnx_session(path, threads=1)
    name = session.get_inputs()[0].name
    graph, example, outputs = graph_for(net, task)
    assert [o.name for o in session.get_outputs()] == list(outputs)
    for batch in (1, 3):  # the exported example had 2: the batch dimension is dynamic
        x = torch.rand(batch, *example.shape[1:]) * 2 - 1
        with torch.inference_mode():
            ref = graph(x)
        out = session.run(None, {name: x.numpy()})
        for r, o in zip(ref, out):
            assert o.shape == tuple(r.shape)
            np.testing.assert_allclose(o, r.numpy(), atol=1e-4, rtol=1e-4)


def test_int8_quantizes_the_trunk_only(net, tmp_path):
    fp32 = export_onnx(net, tmp_path / "pose.onnx", "pose")
    trunk, fp32_convs = trunk_conv_nodes(onnx.load(str(fp32)))
    assert trunk and len(fp32_convs) == CFG.pose_blocks  # the RegMap (heat-map logit) convs
    gen = np.random.default_rng(0)
    crops = [gen.uniform(-1, 1, (4, 3, 64, 64)).astype(np.float32) for _ in range(4)]
    q = onnx.load(str(quantize_int8(fp32, tmp_path / "pose.int8.onnx", crops)))
    quantized_weights = {n.input[0] for n in q.graph.node if n.op_type == "DequantizeLinear"}
    assert any("regmap" not in w and w.endswith("weight_quantized") for w in quantized_weights)
    assert not any("regmap" in w for w in quantized_weights)
    assert not any(n.op_type == "DequantizeLinear" for n in q.graph.node if "Softmax" in n.name)
    x = crops[0]
    with torch.inference_mode():
        ref = graph_for(net, "pose")[0](torch.from_numpy(x))[0].numpy()
    out = onnx_session(tmp_path / "pose.int8.onnx", threads=1).run(None, {"images": x})[0]
    assert out.shape == ref.shape and np.isfinite(out).all()
    assert np.abs(out - ref).max() < 0.1  # int8 trunk: poses (in [0, 1]) stay close
    scales = [i for i in q.graph.initializer if i.name.endswith("_scale")]
    assert all(np.isfinite(onnx.numpy_helper.to_array(i)).all() for i in scales)


def test_export_command_writes_checked_graphs(net, tmp_path, capsys):
    from deephar.checkpoint import network_payload
    from deephar.export.cli import main

    torch.save(network_payload(net, model="penn"), tmp_path / "net.pt")
    crops = np.random.default_rng(0).uniform(-1, 1, (16, 3, 64, 64)).astype(np.float32)
    np.save(tmp_path / "crops.npy", crops)
    argv = [str(tmp_path / "net.pt"), "--out", str(tmp_path / "out"), "--task", "pose"]
    assert main([*argv, "--int8", str(tmp_path / "crops.npy")]) == 0
    assert (tmp_path / "out" / "pose.onnx").is_file()
    assert (tmp_path / "out" / "pose.int8.onnx").is_file()
    assert "ONNX Runtime vs PyTorch: pose" in capsys.readouterr().out
