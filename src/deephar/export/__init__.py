"""Deployment exports of the pose and action networks: ONNX graphs (fp32, dynamic batch) run by
ONNX Runtime or OpenVINO, and their int8 post-training quantization.

    python -m deephar.export model.pt --model mpii --out exported/   # see ``deephar.export.__main__``
"""

from deephar.export.onnx_graph import OPSET, ActionGraph, PoseGraph, export_onnx, onnx_session

__all__ = ["OPSET", "ActionGraph", "PoseGraph", "export_onnx", "onnx_session"]
