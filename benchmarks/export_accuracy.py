"""Accuracy of the fast inference paths on a trained pose network: PCK/MPJPE and pose deviation.

    python -m benchmarks.export_accuracy CKPT [--config demo_pose] [key=value ...]

Evaluates the network of CKPT (e.g. the demo's pose checkpoint) on its experiment's test sets
with ``experiments.evaluate``'s protocol, once per variant: eager fp32, ``for_inference`` fp32 and
bf16 trunk (PyTorch and OpenVINO engines), and the ONNX Runtime int8 graph (``deephar.export``) calibrated on
crops of the TRAINING subjects. Prints each variant's metrics and the largest / mean deviation of
its poses from eager fp32 on the test crops, in pixels of the network input, and the deviation
when ONE stage of the trunk (the stem or one prediction block) runs in bf16 and the rest in fp32:
how far mixed precision can bring the bf16 paths towards fp32. Not part of ``make bench`` (it
needs a trained checkpoint and a data set).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from deephar.export import export_onnx, onnx_session
from deephar.export.quantize import quantize_int8
from deephar.images import batch_to_float
from deephar.models.inference import for_inference, posenets
from deephar.outputs import PoseOutput
from experiments import evaluate
from experiments.config import load_config


class OrtPose(nn.Module):
    """An exported pose graph behind ``forward_pose`` (what the evaluation protocols call)."""

    def __init__(self, path: Path, cfg, threads: int) -> None:
        super().__init__()
        self.session, self.cfg = onnx_session(path, threads), cfg

    def forward_pose(self, images: Tensor) -> PoseOutput:
        pose, vis = self.session.run(None, {"images": images.float().contiguous().numpy()})
        return PoseOutput([torch.from_numpy(pose)], [torch.from_numpy(vis)], [])


def crops(cfg, key: str, count: int, **overrides) -> np.ndarray:
    """The first ``count`` test-protocol crops (B, 3, S, S) of source ``key``."""
    out, total = [], 0
    for batch in evaluate.eval_loader(cfg, key, count, **overrides):
        out.append(batch_to_float(batch)["image"].numpy())
        total += len(out[-1])
        if total >= count:
            break
    return np.concatenate(out)[:count].astype(np.float32)


def one_stage_bf16(posenet: nn.Module, images: Tensor, stage: int) -> Tensor:
    """Final 2D pose (B, J, 2) in [0, 1] with stage ``stage`` (0: stem, k: block k) in bf16
    autocast and every other stage in fp32."""
    x, logits = images, None
    for i, module in enumerate([posenet.stem, *posenet.blocks]):
        with torch.autocast("cpu", torch.bfloat16, enabled=i == stage):
            out = module(x)
        x, logits = (out, logits) if i == 0 else (out[2], out[1])
        x = x.float() if x is not None else None
    return posenet.decode(logits.float())[0][..., :2]


def scalars(results: dict) -> dict[str, float]:
    return {
        f"{k}/{m}": float(v)
        for k, res in results.items()
        for m, v in res.items()
        if np.isscalar(v) and not isinstance(v, str)
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--config", default="demo_pose")
    ap.add_argument("--calibration", type=int, default=256, help="calibration crops")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="test samples per source (0: all)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    eager = evaluate.load_model(cfg, args.checkpoint, fast=False)
    key = next(k for k in cfg.data.test if cfg.data.sources[k].dataset == "h36m")
    train_subjects = {"subjects": list(cfg.data.sources[key].train_options.subjects)}
    calibration = crops(cfg, key, args.calibration, **train_subjects)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(eager, Path(tmp) / "pose.onnx", "pose")
        batches = [calibration[i : i + 16] for i in range(0, len(calibration), 16)]
        int8 = quantize_int8(fp32, Path(tmp) / "pose.int8.onnx", batches)
        variants = {
            "eager fp32": eager,
            "for_inference fp32": for_inference(eager, precision="fp32", runtime="torch"),
            "for_inference bf16 trunk": for_inference(eager, precision="bf16", runtime="torch"),
            "for_inference OpenVINO fp32": for_inference(
                eager, precision="fp32", runtime="openvino"
            ),
            "for_inference OpenVINO bf16": for_inference(
                eager, precision="bf16", runtime="openvino"
            ),
            "ONNX Runtime int8 trunk": OrtPose(int8, eager.cfg, args.threads),
        }
        test = torch.from_numpy(crops(cfg, key, 256))
        size = eager.cfg.input_size
        protocol = evaluate.Protocol(crops="single", limit=args.limit)
        with torch.inference_mode():
            reference = eager.forward_pose(test).pose[-1][..., :2]
            for name, net in variants.items():
                dev = (net.forward_pose(test).pose[-1][..., :2].float() - reference).abs() * size
                metrics = scalars(evaluate.evaluate(cfg, net, protocol))
                print(
                    f"{name}: Δpose max {dev.max():.3f} px, mean {dev.mean():.4f} px "
                    f"({len(test)} {key} test crops, {size}² input); "
                    + ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items())),
                    flush=True,
                )
            posenet = posenets(eager)[0]
            for stage in range(len(posenet.blocks) + 1):
                dev = (one_stage_bf16(posenet, test, stage) - reference).abs() * size
                where = f"block {stage}" if stage else "stem"
                print(f"bf16 in the {where} only: Δpose max {dev.max():.3f} px, "
                      f"mean {dev.mean():.4f} px", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
