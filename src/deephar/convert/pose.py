"""Keras groups of the pose network → ``PoseNet`` keys (``deephar.models.pose``).

Each list below is the Keras layer order inside one weight group (Keras ``Model.layers``:
topological by depth, ties in traversal order — as read off the official files), paired with our
module paths. Explicit Keras names are listed as checks; auto-generated ones (``conv2d_47``) are not.
"""

from __future__ import annotations

import numpy as np

from deephar.config import NetworkConfig
from deephar.convert.keras_h5 import KerasLayer
from deephar.convert.mapping import (
    ConstantCheck,
    ConversionPlan,
    GroupPlan,
    LayerSpec,
    bn,
    conv,
    sepconv,
)

BLOCKS_HINT = "The number of pose blocks differs? pass --blocks K (blocks=K)."


def _cbn(p: str) -> list[LayerSpec]:
    return [conv(f"{p}.conv"), bn(f"{p}.bn")]


def _sr_parts(p: str, name: str) -> dict[str, LayerSpec]:
    """Keras layers of an SR module named ``name`` (our prefix ``p``)."""
    return {
        "shortcut_conv": conv(f"{p}.shortcut.conv", f"{name}_shortcut_conv"),
        "shortcut_bn": bn(f"{p}.shortcut.bn", f"{name}_shortcut"),
        "conv": sepconv(f"{p}.sepconv.conv", f"{name}_conv"),
        "bn": bn(f"{p}.sepconv.bn", name),
    }


def stem_specs(p: str = "stem") -> list[LayerSpec]:
    """Keras group ``Stem`` (branch b of mixed2 is deeper, so it starts first)."""
    sr = _sr_parts(f"{p}.sepconv1", "sepconv1")
    a1, a2, b3, b4 = (f"{p}.mixed2_{s}" for s in ("a1", "a2", "b3", "b4"))
    return [
        *_cbn(f"{p}.conv1"),
        *_cbn(f"{p}.conv2"),
        *_cbn(f"{p}.conv3"),
        *_cbn(f"{p}.mixed1"),
        *_cbn(f"{p}.mixed2_b1"),
        *_cbn(f"{p}.mixed2_b2"),
        conv(f"{a1}.conv"),
        conv(f"{b3}.conv"),
        bn(f"{a1}.bn"),
        bn(f"{b3}.bn"),
        conv(f"{a2}.conv"),
        conv(f"{b4}.conv"),
        bn(f"{a2}.bn"),
        bn(f"{b4}.bn"),
        *_cbn(f"{p}.mixed3"),
        sr["shortcut_conv"],
        sr["conv"],
        sr["shortcut_bn"],
        sr["bn"],
    ]


def reception_specs(p: str) -> list[LayerSpec]:
    """Keras group ``rBlockN`` (our ``ReceptionBlock`` at prefix ``p``)."""
    s = {
        n: _sr_parts(f"{p}.{n}", n)
        for n in (
            "sepconv_l1",
            "sepconv_l2_1",
            "sepconv_l2_2",
            "sepconv_l2_3",
            "sepconv_l3_1",
            "sepconv_l3_2",
            "sepconv_l3_3",
        )
    }
    return [
        *_cbn(f"{p}.low_reduce"),
        s["sepconv_l2_1"]["conv"],
        s["sepconv_l2_1"]["bn"],
        s["sepconv_l3_1"]["conv"],
        s["sepconv_l3_1"]["bn"],
        s["sepconv_l3_2"]["conv"],
        s["sepconv_l3_2"]["bn"],
        s["sepconv_l3_3"]["conv"],
        s["sepconv_l2_2"]["conv"],
        s["sepconv_l3_3"]["bn"],
        s["sepconv_l2_2"]["bn"],
        s["sepconv_l2_3"]["shortcut_conv"],
        s["sepconv_l2_3"]["conv"],
        s["sepconv_l1"]["conv"],
        s["sepconv_l2_3"]["shortcut_bn"],
        s["sepconv_l2_3"]["bn"],
        s["sepconv_l1"]["bn"],
    ]


def sepconv_specs(p: str) -> list[LayerSpec]:
    """Keras group ``SepConvN`` → our ``PredictionBlock.sepconv``."""
    return [sepconv(f"{p}.sepconv.conv"), bn(f"{p}.sepconv.bn")]


def regmap_specs(p: str) -> list[LayerSpec]:
    """Keras group ``RegMapN`` → our ``PredictionBlock.regmap``."""
    return [conv(f"{p}.regmap.conv")]


def fremap_specs(p: str) -> list[LayerSpec]:
    """Keras group ``fReMapN`` → our ``PredictionBlock.fremap``."""
    return _cbn(f"{p}.fremap")


def pose_plan(cfg: NetworkConfig, prefix: str = "") -> ConversionPlan:
    """A standalone pose model file (groups Stem, rBlockN, SepConvN, RegMapN, fReMapN)."""
    plan = ConversionPlan(constants=constant_checks(cfg))
    plan.groups.append(GroupPlan(("Stem",), stem_specs(f"{prefix}stem")))
    k = cfg.pose_blocks
    for i in range(1, k + 1):
        p = f"{prefix}blocks.{i - 1}"
        plan.groups += [
            GroupPlan((f"rBlock{i}",), reception_specs(f"{p}.reception"), BLOCKS_HINT),
            GroupPlan((f"SepConv{i}",), sepconv_specs(p), BLOCKS_HINT),
            GroupPlan((f"RegMap{i}",), regmap_specs(p), BLOCKS_HINT),
        ]
        if i < k:
            plan.groups.append(GroupPlan((f"fReMap{i}",), fremap_specs(p), BLOCKS_HINT))
    return plan


def merge_pose_plan(cfg: NetworkConfig, prefix: str) -> ConversionPlan:
    """The pose part of an action (merge) model file: ``td_Stem``, ``td_rBlock1`` and one
    time-distributed model holding blocks 1…K after the first reception block."""
    k = cfg.pose_blocks
    rest: list[LayerSpec] = []
    for i in range(k):
        p = f"{prefix}blocks.{i}"
        if i > 0:
            rest += reception_specs(f"{p}.reception")
        rest += sepconv_specs(p) + regmap_specs(p) + (fremap_specs(p) if i < k - 1 else [])
    return ConversionPlan(
        groups=[
            GroupPlan(("td_Stem",), stem_specs(f"{prefix}stem")),
            GroupPlan(("td_rBlock1",), reception_specs(f"{prefix}blocks.0.reception")),
            GroupPlan(("td_Model1", "td_PoseReg"), rest, BLOCKS_HINT),
        ],
        constants=constant_checks(cfg),
    )


# ---- frozen constants of the official decoding: checked against what soft_argmax.py computes ----
def _fail(layer: KerasLayer, what: str) -> None:
    raise ValueError(f"constant layer {layer.name!r}: {what} differs from deephar.soft_argmax")


def _check_sam(layers: list[KerasLayer]) -> None:
    """sSAM/cSAM: two frozen separable convs (x then y) holding linspace(0, 1, n) grids."""
    if len(layers) != 2 or any(lay.kind != "sepconv" for lay in layers):
        raise ValueError(
            f"soft-argmax group: expected 2 separable convs, got {[lay.describe() for lay in layers]}"
        )
    for axis, layer in zip((1, 0), layers):  # x varies along columns, y along rows
        dw, pw = layer.weights["depthwise_kernel"], layer.weights["pointwise_kernel"]
        n = dw.shape[axis]
        grid = np.linspace(0, 1, n).reshape((1, n) if axis == 1 else (n, 1))
        if not np.allclose(dw[..., 0], np.broadcast_to(grid, dw.shape[:2])[..., None], atol=1e-6):
            _fail(layer, "soft-argmax grid")
        if not np.allclose(pw[0, 0], np.eye(pw.shape[-1]), atol=1e-6):
            _fail(layer, "identity pointwise kernel")


def _check_zsam(layers: list[KerasLayer]) -> None:
    """zSAM: a frozen Conv1D (Nd, J, J) holding linspace(0, 1, Nd) on the diagonal."""
    (layer,) = layers
    k = layer.weights["kernel"]
    want = np.linspace(0, 1, k.shape[0])[:, None, None] * np.eye(k.shape[1])[None]
    if k.shape[1] != k.shape[2] or not np.allclose(k, want, atol=1e-6):
        _fail(layer, "depth soft-argmax grid")


def _agg_checker(num_joints: int, num_context: int):
    def check(layers: list[KerasLayer]) -> None:
        (layer,) = layers
        want = np.kron(np.eye(num_joints), np.ones((num_context, 1)))  # row j·C + c → column j
        if layer.weights["kernel"].shape != want.shape or not np.allclose(
            layer.weights["kernel"], want
        ):
            _fail(layer, "context sum (j·C + c → j)")

    return check


def constant_checks(cfg: NetworkConfig) -> list[ConstantCheck]:
    checks = [ConstantCheck(("sSAM",), _check_sam)]
    if cfg.dim == 3:
        checks.append(ConstantCheck(("zSAM",), _check_zsam))
    elif cfg.context_maps > 0:
        checks += [
            ConstantCheck(("cSAM",), _check_sam),
            ConstantCheck(("Agg",), _agg_checker(cfg.num_joints, cfg.context_maps)),
        ]
    return checks
