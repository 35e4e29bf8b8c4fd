"""int8 post-training static quantization of an exported ONNX graph (ONNX Runtime, QDQ format).

Only the convolutional trunk is quantized: the stem and prediction-block convolutions (weights int8
per output channel, activations uint8 with ranges calibrated on real crops). The RegMap
convolutions that produce the heat-map logits, the soft-argmax decoding and the action head stay
fp32: soft-argmax turns an 8-bit logit into a coordinate, and one quantization step of a peaked
heat map moves the pose by pixels. ONNX Runtime fuses each DequantizeLinear → Conv →
QuantizeLinear into an integer convolution (VNNI where the CPU has it); OpenVINO reads the same
QDQ graph.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

# initializer names of the trunk's weights (PoseGraph/ActionGraph over PoseNet or DeepHAR)
QUANTIZED_PREFIXES = ("net.stem.", "net.blocks.", "net.pose.stem.", "net.pose.blocks.")
FP32_PARTS = (".regmap.",)  # heat-map logits stay fp32
# ops quantized between the convolutions so that tensors stay int8 from one Conv to the next
QUANTIZED_OPS = ("Conv", "Relu", "Add", "MaxPool", "Resize", "Pad")


def trunk_conv_nodes(model) -> tuple[list[str], list[str]]:
    """(names of the Conv nodes to quantize, names of every other Conv node) of an onnx model."""
    keep, skip = [], []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        weight = node.input[1]
        trunk = weight.startswith(QUANTIZED_PREFIXES) and not any(p in weight for p in FP32_PARTS)
        (keep if trunk else skip).append(node.name)
    return keep, skip


def infinite_pads(model) -> list[str]:
    """Names of the Pad nodes padding with ±inf (max pooling with 'same' padding): an infinite
    value has no int8 scale, so these stay fp32."""
    from onnx import numpy_helper

    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute:
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return [
        n.name
        for n in model.graph.node
        if n.op_type == "Pad"
        and len(n.input) > 2
        and n.input[2] in values
        and not np.isfinite(values[n.input[2]]).all()
    ]


class _Calibration:
    """ONNX Runtime's CalibrationDataReader protocol over batches of one input."""

    def __init__(self, name: str, batches: Iterable[np.ndarray]) -> None:
        self.name = name
        self.batches: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {self.name: np.ascontiguousarray(batch, np.float32)}


def quantize_int8(
    fp32_path: str | Path,
    out_path: str | Path,
    calibration: Iterable[np.ndarray],
    ops: tuple[str, ...] = QUANTIZED_OPS,
) -> Path:
    """Quantize the trunk of ``fp32_path`` into ``out_path``, calibrated on ``calibration``
    (batches shaped like the graph's input, e.g. a few hundred crops in batches of 8–32).

    Activation ranges: min/max of the calibration batches; weights symmetric int8 per channel.
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pre = out_path.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
    model = onnx.load(str(pre))
    trunk, fp32_convs = trunk_conv_nodes(model)
    feeding = _feeding_trunk(model, trunk)
    others = [n.name for n in model.graph.node if n.op_type in ops and n.op_type != "Conv"]
    head = [n for n in others if n not in feeding] + infinite_pads(model)
    quantize_static(
        str(pre),
        str(out_path),
        _Calibration(model.graph.input[0].name, calibration),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(ops),
        nodes_to_exclude=fp32_convs + head,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    pre.unlink(missing_ok=True)
    return out_path


def _feeding_trunk(model, trunk: list[str]) -> set[str]:
    """Names of the nodes whose output reaches a trunk Conv (the trunk's ReLU, Add, MaxPool,
    Resize, Pad). Decoding and the action head feed no trunk Conv and stay fp32."""
    producer = {out: node for node in model.graph.node for out in node.output}
    by_name = {n.name: n for n in model.graph.node}
    seen: set[str] = set()
    stack = [by_name[n] for n in trunk]
    while stack:
        for name in stack.pop().input:
            node = producer.get(name)
            if node is not None and node.name not in seen:
                seen.add(node.name)
                stack.append(node)
    return seen
