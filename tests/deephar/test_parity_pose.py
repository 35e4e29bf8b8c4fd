"""The PyTorch pose network IS the official Keras one: converted fixture weights, same outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deephar.config import H36M_3D, MPII_2D
from deephar.convert import load_keras_weights
from deephar.models.pose import PoseNet


def _within_tolerance(ours: np.ndarray, ref: np.ndarray) -> tuple[bool, float]:
    err = float(np.abs(ours - ref).max())
    return err <= 1e-4 * max(1.0, float(np.abs(ref).max())), err


@pytest.mark.parametrize("name", ["mpii_2d_k2", "h36m_3d_k2"])
def test_pose_parity(parity_dir, name):
    meta = json.loads((parity_dir / f"{name}.json").read_text())
    base = MPII_2D if meta["dim"] == 2 else H36M_3D
    cfg = base.with_(pose_blocks=meta["num_blocks"], num_joints=meta["num_joints"])
    net = PoseNet(cfg).eval()
    load_keras_weights(net, parity_dir / f"{name}.h5")
    data = np.load(parity_dir / f"{name}.npz")
    x = torch.from_numpy((data["image"].astype(np.float32) / 255.0 - 0.5) * 2.0).permute(0, 3, 1, 2)
    with torch.inference_mode():
        out = net(x)
    for k in range(cfg.pose_blocks):
        pose = torch.cat([out.pose[k], out.visibility[k][..., None]], dim=-1).numpy()
        heat = out.heatmaps[k].permute(0, 2, 3, 1).numpy()  # NCHW → NHWC as stored
        for label, ours, ref in [
            ("pose", pose, data[f"output_{2 * k}"]),
            ("heatmaps", heat, data[f"output_{2 * k + 1}"]),
        ]:
            assert ours.shape == ref.shape, (label, k)
            ok, err = _within_tolerance(ours, ref)
            assert ok, f"{name} block {k + 1} {label}: max |ours − ref| = {err:.3g}"
