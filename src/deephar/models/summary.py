"""Parameter counts and output shapes of the paper's configurations.

``python -m deephar.models.summary`` prints, per configuration, our trainable / total counts in
Keras' convention next to the official numbers (SPEC.md). Keras counts as non-trainable, besides
frozen weights: the BatchNorm moving mean and variance, and the frozen decoding constants of the
official graph (soft-argmax grids sSAM, cSAM, zSAM and the context sum Agg) that we compute on the
fly. Shapes come from a forward on the meta device (no compute).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import torch
from torch import nn

from deephar.config import H36M_3D, MPII_2D, NTU_MERGE, PENN_MERGE, NetworkConfig
from deephar.models.pose import PoseNet


@dataclass(frozen=True)
class Official:
    trainable: int
    total: int | None = None


POSE_MODELS: dict[str, tuple[NetworkConfig, Official]] = {
    "MPII 2D, K=8": (MPII_2D, Official(14_669_952, 14_847_936)),
    "H36M 3D, K=8": (H36M_3D, Official(16_605_312, 16_721_938)),
    "Penn pose net, K=4": (PENN_MERGE, Official(7_838_592)),
    "NTU pose net, K=4": (NTU_MERGE, Official(8_290_176)),
}
MERGE_MODELS: dict[str, tuple[NetworkConfig, Official]] = {
    "Penn merge (pose frozen)": (PENN_MERGE, Official(4_916_320, 12_906_496)),
    "NTU merge (pose frozen)": (NTU_MERGE, Official(8_599_976, 16_988_568)),
}


def keras_constant_count(cfg: NetworkConfig) -> int:
    """Elements of the official frozen decoding layers for ``cfg`` (not parameters here).

    Soft-argmax over n maps of H×W: two separable convs (x, y), each H·W·n + n². 2D adds the
    context soft-argmax over C·J maps and the (C·J, J) context-sum Dense; 3D adds the depth
    soft-argmax Conv1D (Nd, J, J).
    """
    hw, j = cfg.map_size**2, cfg.num_joints

    def sam(n: int) -> int:
        return 2 * (hw * n + n * n)

    if cfg.dim == 3:
        return sam(j) + cfg.depth_maps * j * j
    cj = cfg.context_maps * j
    return sam(j) + (sam(cj) + cj * j if cj else 0)


def keras_counts(model: nn.Module, cfg: NetworkConfig) -> tuple[int, int]:
    """(trainable, total) as Keras' ``model.summary()`` counts them."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    params = sum(p.numel() for p in model.parameters())
    stats = sum(
        b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var"))
    )
    return trainable, params + stats + keras_constant_count(cfg)


def _shapes(obj) -> str:
    """Compact shape listing of a PoseOutput / ActionOutput / tensor."""
    if isinstance(obj, torch.Tensor):
        return "x".join(map(str, obj.shape))
    fields = {
        k: v for k, v in vars(obj).items() if v is not None and not (isinstance(v, list) and not v)
    }
    parts = []
    for k, v in fields.items():
        if isinstance(v, list):
            parts.append(f"{k}: {len(v)}×{_shapes(v[0])}")
        elif isinstance(v, torch.Tensor):
            parts.append(f"{k}: {_shapes(v)}")
    return ", ".join(parts)


def summarize(
    name: str, model: nn.Module, cfg: NetworkConfig, official: Official, clip: bool
) -> str:
    trainable, total = keras_counts(model, cfg)
    size = (
        (1, cfg.num_frames, 3, cfg.input_size, cfg.input_size)
        if clip
        else (1, 3, cfg.input_size, cfg.input_size)
    )
    with torch.no_grad():
        out = model(torch.empty(size, device="meta"))
    ok = "ok" if trainable == official.trainable and official.total in (None, total) else "MISMATCH"
    ref_total = f"{official.total:,}" if official.total else "—"
    return (
        f"| {name} | {trainable:,} | {official.trainable:,} | {total:,} | {ref_total} | {ok} | "
        f"{_shapes(out)} |"
    )


def main() -> None:
    rows = [
        "| model | trainable | official | total (Keras) | official | check | outputs (B=1, 256²) |",
        "|---|---|---|---|---|---|---|",
    ]
    with torch.device("meta"):
        for name, (cfg, official) in POSE_MODELS.items():
            rows.append(summarize(name, PoseNet(cfg), cfg, official, clip=False))
        try:
            multitask = importlib.import_module("deephar.models.multitask")
        except ImportError as e:
            rows.append(f"| merge models skipped: {e} |")
        else:
            for name, (cfg, official) in MERGE_MODELS.items():
                model = multitask.build_model(cfg)
                model.freeze_pose()
                rows.append(summarize(name, model, cfg, official, clip=True))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
