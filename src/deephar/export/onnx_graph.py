"""ONNX export of the pose and action networks (``torch.onnx.export``, dynamo exporter).

Graphs (opset ``OPSET`` = 18, the batch dimension B dynamic, everything else fixed by the config):

- pose:   ``images`` (B, 3, H, W) in [−1, 1] → ``pose`` (B, J, D) in [0, 1] of the crop,
          ``visibility`` (B, J) — the last prediction block.
- action: ``clips`` (B, T, 3, H, W) in [−1, 1] → ``action`` (B, A) logits (aggregate, or the
          last pose-branch block without appearance), ``pose`` (B, T, J, D), ``visibility`` (B, T, J).

BatchNorm is folded before export (``prepare_for_inference``), so the graph holds Conv + bias only.
The weights are stored inside the .onnx file (< 2 GB: 59 MB for the K=8 MPII model).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from deephar.models.inference import prepare_for_inference

OPSET = 18
POSE_OUTPUTS = ("pose", "visibility")
ACTION_OUTPUTS = ("action", "pose", "visibility")


def _pose_forward(net: nn.Module):
    return getattr(net, "forward_pose", net)


class PoseGraph(nn.Module):
    """Tensor-only pose interface of a ``DeepHAR`` or ``PoseNet``: images → (pose, visibility)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        out = _pose_forward(self.net)(images)
        return out.pose[-1], out.visibility[-1]


class ActionGraph(nn.Module):
    """Tensor-only action interface of a ``DeepHAR``: clips → (action logits, pose, visibility)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, clips: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = self.net.forward_clip(clips)
        return out.final, out.poses.pose[-1], out.poses.visibility[-1]


def graph_for(net: nn.Module, task: str) -> tuple[nn.Module, Tensor, tuple[str, ...]]:
    """(tensor-only module, example input with B = 2, output names) of ``task`` 'pose'|'action'."""
    cfg = net.cfg
    size = cfg.input_size
    if task == "pose":
        return PoseGraph(net).eval(), torch.zeros(2, 3, size, size), POSE_OUTPUTS
    if task == "action":
        if getattr(net, "action", None) is None:
            raise ValueError("task 'action' needs a network with an action head (num_actions > 0)")
        clips = torch.zeros(2, cfg.num_frames, 3, size, size)
        return ActionGraph(net).eval(), clips, ACTION_OUTPUTS
    raise ValueError(f"unknown task {task!r} (pose | action)")


def export_onnx(net: nn.Module, path: str | Path, task: str = "pose", opset: int = OPSET) -> Path:
    """Write ``net`` (BN folded, fp32, eval) as an ONNX graph with a dynamic batch to ``path``.

    The example input has B = 2 (torch.export specialises a dimension of size 1).
    """
    import onnx  # optional dependency: only the export needs it

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folded = prepare_for_inference(net, channels_last=False).float().cpu()
    graph, example, outputs = graph_for(folded, task)
    name = "images" if task == "pose" else "clips"
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.onnx.export(
        graph,
        (example,),
        str(path),
        input_names=[name],
        output_names=list(outputs),
        opset_version=opset,
        dynamo=True,
        dynamic_shapes={name: {0: batch}},
        external_data=False,
        verbose=False,
    )
    onnx.checker.check_model(str(path))
    return path


def onnx_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session of ``path`` with ``threads`` intra-op threads (None: ORT's)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # no busy-waiting between runs: idle ORT threads would steal the cores of whatever runs next
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
