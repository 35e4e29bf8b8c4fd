"""Keras .h5 → state dict: name parsing, order independence, loud failures, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deephar.config import MPII_2D, PENN_MERGE
from deephar.convert import convert_file, keras_state_dict, main
from deephar.convert.keras_h5 import (
    KerasLayer,
    KerasWeightFile,
    is_auto_name,
    name_matches,
    parse_weight_name,
)
from deephar.convert.mapping import TENSOR_RULES
from deephar.convert.pose import _check_zsam, stem_specs
from deephar.models.pose import PoseNet


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sepconv_l2_1_1/beta:0", ("sepconv_l2_1_1", "beta")),
        ("conv2d_47/kernel:0", ("conv2d_47", "kernel")),
        ("Stem/sepconv1_conv/depthwise_kernel:0", ("sepconv1_conv", "depthwise_kernel")),
        ("batch_normalization/moving_variance:0", ("batch_normalization", "moving_variance")),
    ],
)
def test_parse_weight_name(name, expected):
    assert parse_weight_name(name) == expected


def test_parse_weight_name_rejects_garbage():
    with pytest.raises(ValueError, match="unexpected Keras weight name"):
        parse_weight_name("kernel:0")


@pytest.mark.parametrize(
    ("found", "expected", "ok"),
    [
        ("sepconv_l2_1", "sepconv_l2_1", True),
        ("sepconv_l2_1_1", "sepconv_l2_1", True),  # TF1 uniquified, second reception block
        ("sepconv_l2_1_2", "sepconv_l2_1", True),
        ("sepconv_l2_10", "sepconv_l2_1", False),
        ("sepconv_l3_1", "sepconv_l2_1", False),
        ("sepconv1_shortcut", "sepconv1", False),
    ],
)
def test_name_matches_strips_tf1_suffix(found, expected, ok):
    assert name_matches(found, expected) is ok


def test_auto_names():
    assert is_auto_name("conv2d_47") and is_auto_name("batch_normalization")
    assert not is_auto_name("sepconv_l2_1") and not is_auto_name("sepconv1_conv")


def test_stem_specs_cover_the_stem_once():
    keys = [
        f"{s.prefix}.{suffix}"
        for s in stem_specs("stem")
        for suffix, _ in TENSOR_RULES[s.kind].values()
    ]
    ours = [k for k in PoseNet(MPII_2D.with_(pose_blocks=1)).state_dict() if k.startswith("stem.")]
    assert len(keys) == len(set(keys))
    assert set(keys) == {k for k in ours if not k.endswith("num_batches_tracked")}


def test_file_order_is_not_creation_order(parity_dir):
    """Keras orders a group by graph depth: the stem's deeper branch b starts before branch a."""
    with KerasWeightFile(parity_dir / "mpii_2d_k2.h5") as kfile:
        shapes = [lay.weights["kernel"].shape for lay in kfile.layers("Stem") if lay.kind == "conv"]
    assert shapes[4] == (1, 1, 160, 64) and shapes[5] == (5, 1, 64, 64)  # b1, b2 before a1
    assert shapes[6] == (1, 1, 160, 64) and shapes[7] == (1, 5, 64, 64)  # then a1, b3


def test_renamed_trainable_file_gives_the_same_pose_net(parity_dir):
    cfg = PENN_MERGE.with_(pose_blocks=2)
    a = keras_state_dict(PoseNet(cfg), parity_dir / "penn_merge_k2_t8.h5")
    b = keras_state_dict(PoseNet(cfg), parity_dir / "penn_merge_k2_t8_trainable_renamed.h5")
    assert a.keys() == b.keys() and len(a) == len(PoseNet(cfg).state_dict())
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pose_part_of_merge_file_equals_standalone_layout(parity_dir):
    """Stem weights of the merge file land in the same keys as from a pose-model file."""
    cfg = PENN_MERGE.with_(pose_blocks=2)
    state = keras_state_dict(PoseNet(cfg), parity_dir / "penn_merge_k2_t8.h5")
    with KerasWeightFile(parity_dir / "penn_merge_k2_t8.h5") as kfile:
        first = kfile.layers("td_Stem")[0].weights["kernel"]
    assert torch.equal(state["stem.conv1.conv.weight"], torch.from_numpy(first).permute(3, 2, 0, 1))


def test_shape_mismatch_names_layer_key_and_shapes(parity_dir):
    net = PoseNet(MPII_2D.with_(pose_blocks=2, num_joints=17))
    with pytest.raises(ValueError) as err:
        keras_state_dict(net, parity_dir / "mpii_2d_k2.h5")
    msg = str(err.value)
    assert "RegMap1" in msg and "blocks.0.regmap.conv.weight" in msg
    assert "(51, 576, 1, 1)" in msg and "(48, 576, 1, 1)" in msg


def test_missing_blocks_suggests_the_option(parity_dir):
    with pytest.raises(ValueError, match="fReMap2.*--blocks"):
        keras_state_dict(PoseNet(MPII_2D.with_(pose_blocks=3)), parity_dir / "mpii_2d_k2.h5")


def test_missing_and_truncated_files(parity_dir, tmp_path):
    net = PoseNet(MPII_2D.with_(pose_blocks=2))
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        keras_state_dict(net, tmp_path / "nope.h5")
    cut = tmp_path / "cut.h5"
    cut.write_bytes((parity_dir / "mpii_2d_k2.h5").read_bytes()[:200_000])
    with pytest.raises(ValueError, match="cut.h5"):
        keras_state_dict(net, cut)


def test_constant_check_rejects_other_grids():
    nd, j = 4, 2
    good = np.linspace(0, 1, nd)[:, None, None] * np.eye(j)[None]
    _check_zsam([KerasLayer("conv1d", {"kernel": good})])
    half_bin = np.linspace(1 / 8, 7 / 8, nd)[:, None, None] * np.eye(j)[None]
    with pytest.raises(ValueError, match="depth soft-argmax grid"):
        _check_zsam([KerasLayer("conv1d", {"kernel": half_bin})])


def test_cli_converts_and_rejects_a_wrong_model(parity_dir, tmp_path, capsys):
    out = tmp_path / "mpii.pt"
    assert (
        main([str(parity_dir / "mpii_2d_k2.h5"), str(out), "--model", "mpii", "--blocks", "2"]) == 0
    )
    saved = torch.load(out, weights_only=True)
    assert saved["model"] == "mpii" and saved["config"]["pose_blocks"] == 2
    net = PoseNet(MPII_2D.with_(pose_blocks=2))
    net.load_state_dict(saved["state_dict"])  # strict
    assert (
        main(
            [
                str(parity_dir / "mpii_2d_k2.h5"),
                str(tmp_path / "x.pt"),
                "--model",
                "h36m",
                "--blocks",
                "2",
            ]
        )
        == 1
    )
    assert "error:" in capsys.readouterr().err and not (tmp_path / "x.pt").exists()
    with pytest.raises(ValueError, match="unknown model"):
        convert_file(parity_dir / "mpii_2d_k2.h5", tmp_path / "y.pt", "coco")
