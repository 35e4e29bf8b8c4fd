"""Inference-only rewrites of a trained network: same outputs, less work.

``for_inference(net)`` is what ``predict``, ``evaluate`` and the demo run: a frozen eval-mode copy
with every BatchNorm folded into the convolution before it (the official blocks are Conv→BN, so
each BN becomes a per-channel scale and bias), channels_last (where oneDNN runs the 5×5 depthwise
convolutions fastest), and the convolutional trunk (stem + prediction blocks) in the precision the
machine runs natively (``deephar.models.precision``: bf16 on CPUs with AVX512-BF16/AMX and on
Ampere+ GPUs, fp32 elsewhere). Soft-argmax decoding and the action head stay in fp32, so poses
keep fp32 resolution. The returned module is the same class with the same methods
(``forward_clip``, ``forward_pose``…), only faster.

On a CPU with OpenVINO installed (a dependency of the project), the trunk runs in OpenVINO's
engine instead (``deephar.models.openvino_trunk``, same precision rule): `make bench` measured it
at about half the Keras time where PyTorch's own bf16 path needs ~0.7 of it. ``runtime="torch"``
(or ``DEEPHAR_RUNTIME=torch``) keeps PyTorch; GPUs always run PyTorch.

``torch.compile`` is optional (``compile=True``, PyTorch runtime): `make bench` measures what it
gains per image and what it costs per input shape; it pays for long evaluations, not for one video.
"""

from __future__ import annotations

import copy
import os
import sys

import torch
from torch import Tensor, nn

from deephar.layers import ConvBN, SeparableConv2d
from deephar.models.openvino_trunk import OpenVINOTrunk, openvino_available, openvino_version
from deephar.models.pose import PoseNet
from deephar.models.precision import Precision, choose_precision

_PRINTED: set[str] = set()


@torch.no_grad()
def fold_batchnorm(block: ConvBN) -> None:
    """Fold ``block.bn`` (eval statistics) into ``block.conv`` in place; ``bn`` becomes Identity."""
    bn = block.bn
    if not isinstance(bn, nn.BatchNorm2d):
        return
    conv = block.conv.pointwise if isinstance(block.conv, SeparableConv2d) else block.conv
    scale = torch.rsqrt(bn.running_var + bn.eps)  # (C,); γ ≡ 1 in the official BN
    if bn.weight is not None:
        scale = scale * bn.weight
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    shift = bn.bias - bn.running_mean * scale
    old = conv.bias if conv.bias is not None else torch.zeros_like(shift)
    conv.bias = nn.Parameter(old * scale + shift)
    block.bn = nn.Identity()


def posenets(model: nn.Module) -> list[PoseNet]:
    """Every ``PoseNet`` inside ``model`` (the model itself included)."""
    return [m for m in model.modules() if isinstance(m, PoseNet)]


def prepare_for_inference(
    model: nn.Module, channels_last: bool = True, fuse: bool = True, final_only: bool = False
) -> nn.Module:
    """A frozen eval-mode copy of ``model`` with BN folded and (optionally) channels_last;
    ``final_only``: its ``PoseNet``s return the last prediction block's outputs only (the
    earlier ones are intermediate supervision: still computed, as they feed the next block, but
    not decoded nor returned)."""
    model = copy.deepcopy(model).eval()
    for posenet in posenets(model):
        posenet.decode_all = not final_only
    if fuse:
        for module in model.modules():
            if isinstance(module, ConvBN):
                fold_batchnorm(module)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.requires_grad_(False)


def compile_for_cpu(model: nn.Module) -> nn.Module:
    """``torch.compile`` with frozen weights (Inductor's CPU path: prepacked oneDNN convolutions,
    ReLU/add fused into their producers). Compiles on the first call (tens of seconds)."""
    return torch.compile(model, options={"freezing": True})


class LowPrecisionStage(nn.Module):
    """``module`` run in ``dtype`` on channels_last input; chosen outputs come back in fp32.

    ``fp32_outputs``: indices (into a tuple output) of what leaves the trunk (heat-map logits,
    appearance features); the rest (the next block's input) stays in ``dtype``. A tensor output is
    returned in fp32 unless ``fp32_outputs`` is empty.
    """

    def __init__(
        self, module: nn.Module, dtype: torch.dtype, fp32_outputs: tuple[int, ...] = ()
    ) -> None:
        super().__init__()
        self.module = module.to(dtype)
        self.dtype, self.fp32_outputs = dtype, fp32_outputs

    def forward(self, x: Tensor):
        out = self.module(x.to(self.dtype, memory_format=torch.channels_last))
        if isinstance(out, Tensor):
            return out.float() if self.fp32_outputs else out
        return tuple(
            o.float() if i in self.fp32_outputs and o is not None else o for i, o in enumerate(out)
        )


def lower_trunk_precision(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Run the stem and the prediction blocks of every ``PoseNet`` in ``model`` in ``dtype``.

    A block returns (reception output r, logits h, next input): h always and r of the first
    block (the appearance features) come back in fp32 for decoding and the action head.
    """
    for posenet in posenets(model):
        posenet.stem = LowPrecisionStage(posenet.stem, dtype)
        for i, block in enumerate(posenet.blocks):
            posenet.blocks[i] = LowPrecisionStage(block, dtype, (0, 1) if i == 0 else (1,))
    return model


def _say_once(message: str) -> None:
    if message not in _PRINTED:
        _PRINTED.add(message)
        print(message, file=sys.stderr, flush=True)


def choose_runtime(device: torch.device, requested: str = "auto", compile: bool = False) -> str:
    """ "openvino" on a CPU where it is installed (unless ``compile``), else "torch";
    ``DEEPHAR_RUNTIME=torch|openvino`` or ``requested`` other than "auto" decide instead."""
    forced = os.environ.get("DEEPHAR_RUNTIME", "").lower()
    requested = forced if forced in ("torch", "openvino") else requested
    if requested not in ("auto", "torch", "openvino"):
        raise ValueError(f"runtime must be auto, torch or openvino, got {requested!r}")
    if requested == "auto":
        cpu = device.type == "cpu" and not compile
        return "openvino" if cpu and openvino_available() else "torch"
    if requested == "openvino" and (device.type != "cpu" or not openvino_available()):
        raise ValueError("runtime 'openvino' needs the CPU and the openvino package")
    return requested


def for_inference(
    net: nn.Module,
    fast: bool = True,
    precision: Precision | str | None = None,
    compile: bool = False,
    verbose: bool = True,
    runtime: str = "auto",
) -> nn.Module:
    """The network users run: a frozen eval-mode copy, fast unless ``fast`` is False.

    ``fast``: BN folded, channels_last, trunk in the machine's precision (``precision``: None =
    chosen by ``choose_precision`` for the device of ``net``'s parameters, or "fp32"/"bf16", or a
    ``Precision``) and engine (``runtime``: see ``choose_runtime``), pose outputs of the last
    prediction block only (``PoseOutput`` lists of length 1: what predict / evaluate read);
    ``compile``: PyTorch runtime with ``torch.compile`` on every ``PoseNet`` (frozen weights).
    With ``fast`` False: ``net`` itself in eval mode (eager NCHW fp32, the reference, every
    block). The choice is printed once per process when ``verbose``.
    """
    if not fast:
        if verbose:
            _say_once("deephar inference: eager fp32 (fast path off)")
        return net.eval()
    device = next(net.parameters()).device
    if precision is None:
        precision = choose_precision(device)
    elif isinstance(precision, str):
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
        precision = Precision(dtype, "requested")
    engine = choose_runtime(device, runtime, compile)
    model = prepare_for_inference(net, final_only=True)
    if engine == "openvino":
        features = getattr(model, "action", None) is not None  # read by the appearance branch
        for posenet in posenets(model):
            posenet.runtime = OpenVINOTrunk(posenet, posenet.cfg.input_size, precision, features)
        engine = f"OpenVINO {openvino_version()}"
    elif precision.dtype != torch.float32:
        model = lower_trunk_precision(model, precision.dtype)
    if compile and engine == "torch":
        for name, posenet in list(model.named_modules()):
            if isinstance(posenet, PoseNet):
                model = _replace(model, name, compile_for_cpu(posenet))
    if verbose:
        _say_once(
            f"deephar inference: BN folded, {engine} engine, {precision.name} "
            f"({precision.reason}), torch.compile {'on' if compile else 'off'}"
        )
    return model


def _replace(root: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` at the dotted path ``name`` of ``root`` (the root itself when ``name`` is '')."""
    if not name:
        return new
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name), child, new)
    return root
