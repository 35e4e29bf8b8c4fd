"""The convolutional trunk of a ``PoseNet`` run by OpenVINO's CPU engine.

``for_inference`` uses it on CPUs when OpenVINO is installed: the stem and the K prediction blocks
(BatchNorm already folded) are converted once (``openvino.convert_model``, a few seconds) into one
graph with a dynamic batch, and compiled for the machine's precision (``INFERENCE_PRECISION_HINT``
bf16 where the CPU multiplies bf16 natively, f32 elsewhere). Soft-argmax decoding, visibility, the
appearance pooling and the action head stay in PyTorch fp32, on the graph's fp32 outputs.

`make bench` (cpu_pose) measures it beside PyTorch's own fast paths and the Keras replica.
"""

from __future__ import annotations

import functools
import importlib.util
import warnings

import numpy as np
import torch
from torch import Tensor, nn

from deephar.models.precision import Precision

PRECISION_HINTS = {torch.float32: "f32", torch.bfloat16: "bf16"}


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def openvino_version() -> str:
    import openvino as ov

    return ov.get_version().split("-")[0]


@functools.cache
def _core():
    """One OpenVINO ``Core`` per process (its CPU plugin and thread pools are shared)."""
    import openvino as ov

    return ov.Core()


class TrunkGraph(nn.Module):
    """What is converted: images (B, 3, H, W) → ([features,] logits of block 1, …, block K);
    the appearance features only when an action head will read them, the blocks before the last
    only when ``posenet.decode_all``."""

    def __init__(self, posenet: nn.Module, features: bool) -> None:
        super().__init__()
        self.posenet, self.features = posenet, features

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        features, logits = self.posenet.trunk(x)
        logits = logits if self.posenet.decode_all else logits[-1:]
        return (features, *logits) if self.features else tuple(logits)


class OpenVINOTrunk(nn.Module):
    """``PoseNet.trunk`` compiled by OpenVINO for (B, 3, size, size) fp32 input, any B.

    posenet: a BN-folded eval copy (``prepare_for_inference``) without a runtime of its own;
    precision: bf16 or fp32 (the engine's inference precision); features: also return the
    appearance features (else None: a pose-only network saves their copy); threads: the engine's
    threads (default: PyTorch's intra-op thread count).
    """

    def __init__(
        self,
        posenet: nn.Module,
        size: int,
        precision: Precision,
        features: bool = True,
        threads: int | None = None,
    ) -> None:
        super().__init__()
        import openvino as ov

        self.size, self.features = size, features
        graph = TrunkGraph(posenet.float().eval(), features)
        # the trace fixes the "same" paddings from the static H, W: what the graph is built for
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            model = ov.convert_model(
                graph,
                example_input=torch.zeros(1, 3, size, size),
                input=[ov.PartialShape([-1, 3, size, size])],
            )
        config = {
            "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
            "INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision.dtype],
            "PERFORMANCE_HINT": "LATENCY",
        }
        self.compiled = _core().compile_model(model, "CPU", config)

    def forward(self, x: Tensor) -> tuple[Tensor | None, list[Tensor]]:
        if x.shape[1:] != (3, self.size, self.size):
            raise ValueError(
                f"the OpenVINO trunk was compiled for (B, 3, {self.size}, {self.size}) input, got "
                f"{tuple(x.shape)} (for_inference(..., runtime='torch') runs any size)"
            )
        if len(x) == 0:
            raise ValueError("the OpenVINO trunk needs at least one image")
        result = self.compiled(np.ascontiguousarray(x.detach().float().cpu().numpy()))
        outputs = [torch.from_numpy(np.asarray(result[i])) for i in range(len(result))]
        return (outputs[0], outputs[1:]) if self.features else (None, outputs)
