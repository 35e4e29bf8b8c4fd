"""The converted merge models ARE the official Keras networks (parity/, see its README).

Tolerance (parity/README.md): max |ours − ref| ≤ 1e-4 · max(1, max |ref|) per output tensor.
Ours are logits; the official outputs are their softmax.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from deephar.config import NTU_MERGE, PENN_MERGE
from deephar.convert import keras_state_dict
from deephar.convert.action import weighting_groups
from deephar.convert.keras_h5 import KerasWeightFile
from deephar.models.action import appearance_features
from deephar.models.multitask import build_model, joint_probability
from deephar.soft_argmax import spatial_softmax

FIXTURES = {"penn_merge_k2_t8": PENN_MERGE, "ntu_merge_k2_t8": NTU_MERGE}


def assert_parity(ours: torch.Tensor | np.ndarray, ref: np.ndarray, what: str) -> None:
    ours = ours.detach().numpy() if isinstance(ours, torch.Tensor) else ours
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs {ref.shape}"
    err, tol = np.abs(ours - ref).max(), 1e-4 * max(1.0, np.abs(ref).max())
    assert err <= tol, f"{what}: max error {err:.3g} > {tol:.3g}"


def fixture_config(parity_dir, name: str):
    info = json.loads((parity_dir / f"{name}.json").read_text())
    return FIXTURES[name].with_(pose_blocks=info["num_blocks"], num_frames=info["num_frames"])


@pytest.fixture(scope="module", params=sorted(FIXTURES))
def merge(request, parity_dir):
    """(converted model in inference mode, outputs npz, intermediate npz) of one fixture."""
    name = request.param
    model = build_model(fixture_config(parity_dir, name)).eval()
    model.load_state_dict(keras_state_dict(model, parity_dir / f"{name}.h5"))
    return (
        model,
        np.load(parity_dir / f"{name}.npz"),
        np.load(parity_dir / f"{name}_intermediate.npz"),
    )


def test_action_branches_on_official_intermediates(merge):
    """Branch-level parity: the official poses, probabilities and features in → the 9 outputs."""
    model, ref, mid = merge
    with torch.no_grad():
        out = model.action(
            torch.from_numpy(mid["pose"]),
            torch.from_numpy(mid["pose_prob"][..., 0]),
            torch.from_numpy(mid["appearance_features"]),
        )
    assert out.pose_members is None  # one pose branch: the official network
    for i, logits in enumerate(out.all_logits):
        assert_parity(torch.softmax(logits, -1), ref[f"output_{i}"], f"output_{i}")


def test_end_to_end_clip_parity(merge):
    """Clip images → pose net (time-distributed) → both branches → the 9 official outputs."""
    model, ref, mid = merge
    images = torch.from_numpy(ref["image"]).float()  # (B, T, H, W, 3) uint8 values
    clips = ((images / 255 - 0.5) * 2).permute(0, 1, 4, 2, 3)  # (B, T, 3, H, W)
    b, t = clips.shape[:2]
    with torch.no_grad():
        out = model.forward_clip(clips)
    assert len(out.all_logits) == 9
    for i, logits in enumerate(out.all_logits):
        assert_parity(torch.softmax(logits, -1), ref[f"output_{i}"], f"output_{i}")

    cfg, poses = model.cfg, out.poses
    assert_parity(poses.pose[-1], mid["pose"], "pose")
    prob = joint_probability(poses.logits[-1].flatten(0, 1), cfg.num_joints, cfg.dim)
    assert_parity(prob.unflatten(0, (b, t))[..., None], mid["pose_prob"], "pose_prob")
    prob_maps = spatial_softmax(poses.heatmaps[-1].flatten(0, 1))
    feats = appearance_features(poses.features.flatten(0, 1), prob_maps, t)
    assert_parity(feats, mid["appearance_features"], "appearance_features")


def test_renamed_file_converts_to_the_same_state(parity_dir):
    """Same weights saved with the pose net trainable and shifted automatic names."""
    model = build_model(fixture_config(parity_dir, "penn_merge_k2_t8"))
    a = keras_state_dict(model, parity_dir / "penn_merge_k2_t8.h5")
    b = keras_state_dict(model, parity_dir / "penn_merge_k2_t8_trainable_renamed.h5")
    assert a.keys() == b.keys() == model.state_dict().keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_mismatched_model_fails_naming_layer_and_key(parity_dir):
    cfg = fixture_config(parity_dir, "penn_merge_k2_t8").with_(pose_branch="v2")
    with pytest.raises(ValueError) as err:
        keras_state_dict(build_model(cfg), parity_dir / "penn_merge_k2_t8.h5")
    msg = str(err.value)
    assert "PoseAR" in msg and "action.pose_branch.temporal.0.conv.weight" in msg
    assert "(12, 2, 3, 1)" in msg and "(8, 2, 3, 1)" in msg  # ours (v2) vs the file's (v1)

    cfg = fixture_config(parity_dir, "penn_merge_k2_t8").with_(action_blocks=3)
    with pytest.raises(ValueError, match="PoseAR.*layers"):
        keras_state_dict(build_model(cfg), parity_dir / "penn_merge_k2_t8.h5")


def test_weighting_convs_found_by_content_in_file_order(tmp_path):
    """Auto-named top-level 1×1 separable convs over A actions: pose weighting first."""
    path = tmp_path / "w.h5"
    groups = {"separable_conv2d_9": 4, "zz_other": 3, "separable_conv2d_2": 4}  # file order
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in groups]
        for name, a in groups.items():
            g = f.create_group(name)
            g.attrs["weight_names"] = [
                f"{name}/{w}:0".encode() for w in ("depthwise_kernel", "pointwise_kernel")
            ]
            g[f"{name}/depthwise_kernel:0"] = np.ones((1, 1, a, 1), np.float32)
            g[f"{name}/pointwise_kernel:0"] = np.eye(a, dtype=np.float32)[None, None]
    with KerasWeightFile(path) as kfile:
        assert weighting_groups(kfile, 4) == ["separable_conv2d_9", "separable_conv2d_2"]
        with pytest.raises(ValueError, match="expected 2"):
            weighting_groups(kfile, 3)
