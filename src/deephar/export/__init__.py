"""Deployment exports of the pose and action networks: ONNX graphs (fp32, dynamic batch) run by
ONNX Runtime or OpenVINO, and their int8 post-training quantization.

    python -m deephar.export model.pt --out exported/ [--int8 crops.npy]   # ``deephar.export.cli``
"""

from deephar.export.cli import main
from deephar.export.onnx_graph import OPSET, ActionGraph, PoseGraph, export_onnx, onnx_session

__all__ = ["OPSET", "ActionGraph", "PoseGraph", "export_onnx", "main", "onnx_session"]
