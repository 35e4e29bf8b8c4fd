"""Export a trained network to ONNX (fp32) and optionally int8, then check the graphs.

    python -m deephar.export CKPT --out exported/ [--keras-model mpii] [--task pose action]
                             [--int8 CROPS] [--threads N]

CKPT: a ``deephar.convert`` / demo ``.pt``, a Lightning checkpoint with its config, or an
official Keras ``.h5`` (with ``--keras-model mpii|h36m|penn|ntu``). Writes ``<task>.onnx`` per
task (opset 18, dynamic batch) and, with ``--int8``, ``<task>.int8.onnx`` calibrated on CROPS:
a ``.npy`` array (N, 3, H, W) in [−1, 1] or a folder of images (resized to the input size, a few
hundred are enough). Each graph is run by ONNX Runtime beside PyTorch and the largest deviation
of the pose (pixels of the input) and action logits is printed.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from deephar.checkpoint import load_network
from deephar.config import PRESETS
from deephar.export.onnx_graph import export_onnx, graph_for, onnx_session
from deephar.export.quantize import quantize_int8

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def load_crops(path: Path, size: int) -> np.ndarray:
    """(N, 3, size, size) float32 in [−1, 1] from a .npy file or a folder of images."""
    if path.suffix == ".npy":
        crops = np.load(path).astype(np.float32)
    else:
        import cv2

        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)})")
        images = [cv2.resize(cv2.imread(str(f))[..., ::-1], (size, size)) for f in files]
        crops = np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0
    if crops.ndim != 4 or crops.shape[1:] != (3, size, size):
        raise ValueError(f"{path}: crops must be (N, 3, {size}, {size}), got {crops.shape}")
    return crops


def batches(crops: np.ndarray, task: str, frames: int, size: int = 16) -> Iterator[np.ndarray]:
    """Calibration batches: images for 'pose', clips of ``frames`` consecutive crops for 'action'."""
    if task == "action":
        n = len(crops) // frames
        crops = crops[: n * frames].reshape(n, frames, *crops.shape[1:])
        size = max(1, size // frames)
    for i in range(0, len(crops), size):
        yield crops[i : i + size]


def compare(net: torch.nn.Module, path: Path, task: str, example: np.ndarray) -> str:
    """Largest |ONNX Runtime − PyTorch| of each output on ``example`` (pose in pixels)."""
    graph, _, names = graph_for(net, task)
    with torch.inference_mode():
        ref = [t.numpy() for t in graph(torch.from_numpy(example))]
    session = onnx_session(path)
    out = session.run(None, {session.get_inputs()[0].name: example})
    size = net.cfg.input_size
    parts = []
    for name, r, o in zip(names, ref, out):
        dev = float(np.abs(r - o).max())
        parts.append(f"{name} {dev * size:.3f} px" if name == "pose" else f"{name} {dev:.2e}")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m deephar.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--out", type=Path, default=Path("exported"))
    ap.add_argument("--keras-model", choices=sorted(PRESETS), help="preset of an official .h5")
    ap.add_argument("--task", nargs="+", choices=("pose", "action"), default=None)
    ap.add_argument("--int8", type=Path, metavar="CROPS", help="calibration crops (.npy/folder)")
    args = ap.parse_args(argv)
    cfg = PRESETS[args.keras_model] if args.keras_model else None
    net = load_network(args.checkpoint, cfg)
    tasks = args.task or (["pose", "action"] if net.action is not None else ["pose"])
    size = net.cfg.input_size
    crops = load_crops(args.int8, size) if args.int8 else None
    for task in tasks:
        path = export_onnx(net, args.out / f"{task}.onnx", task)
        _, example, _ = graph_for(net, task)
        probe = torch.rand_like(example).numpy() * 2 - 1
        if crops is not None:  # real crops show the int8 error where it matters
            probe = next(batches(crops, task, net.cfg.num_frames, size=len(example)))
        print(f"{path}: ONNX Runtime vs PyTorch: {compare(net, path, task, probe)}")
        if crops is not None:
            calib = batches(crops, task, net.cfg.num_frames)
            q = quantize_int8(path, args.out / f"{task}.int8.onnx", calib)
            print(f"{q}: ONNX Runtime int8 vs PyTorch fp32: {compare(net, q, task, probe)}")
    return 0
