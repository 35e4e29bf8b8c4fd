"""Penn Action reader: every real label sample (../shared) and tiny folders in tmp_path."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import torch

from datamodules.check import check_penn
from datamodules.layouts import PA16J, PENN, index_map
from datamodules.penn import ACTIONS, PennActionDataset, load_label, whole_video_indices
from datamodules.sample import missing_keys
from datamodules.transforms import clip_box

S, T = 64, 4


# --- real samples --------------------------------------------------------------------------------


def test_every_real_label_loads(samples_dir: Path):
    files = sorted((samples_dir / "penn_action").glob("*.mat"))
    assert len(files) == 15
    for path in files:
        raw = scipy.io.loadmat(str(path))
        video = load_label(path)
        n = int(raw["nframes"][0, 0])
        assert video.joints.shape == (n, 13, 2) and video.joints.dtype == np.float64
        assert video.bbox.shape == (n, 4) and video.action == ACTIONS.index(raw["action"][0])
        assert video.train == (raw["train"][0, 0] == 1)
        assert video.image_hw == tuple(int(v) for v in raw["dimensions"][0, :2])


def test_real_quirks(samples_dir: Path):
    penn = samples_dir / "penn_action"
    small = scipy.io.loadmat(str(penn / "0115.mat"))
    assert small["x"].dtype == np.uint8  # would wrap around without a cast
    video = load_label(penn / "0115.mat")
    np.testing.assert_allclose(video.joints[..., 0], small["x"].astype(float) - 1.0)
    short = load_label(penn / "1154.mat")  # bbox one row short: last row repeated
    np.testing.assert_array_equal(short.bbox[-1], short.bbox[-2])
    invisible = load_label(penn / "1516.mat")
    assert not invisible.valid.any()
    center, window = clip_box(invisible.joints, invisible.valid, invisible.image_hw)
    assert window == max(invisible.image_hw)  # the whole image
    zeros = load_label(penn / "0449.mat")
    raw = scipy.io.loadmat(str(penn / "0449.mat"))
    zero = (raw["x"] == 0) | (raw["y"] == 0)
    assert zero.any() and not zeros.valid[zero].any()
    np.testing.assert_array_equal(zeros.valid, (raw["visibility"] > 0) & ~zero)


def test_clip_box_rule():
    joints = np.zeros((5, 13, 2))
    valid = np.zeros((5, 13), bool)
    joints[0, :2], valid[0, :2] = [[10, 10], [30, 20]], True  # first frame: 20×10 box
    joints[4, :2], valid[4, :2] = [[50, 10], [60, 14]], True  # last frame: 10×4 box
    joints[1, :2], valid[1, :2] = [[500, 500], [600, 600]], True  # not a key frame: ignored
    center, window = clip_box(joints, valid, (100, 100))
    # ×1.5 about each box centre: x ∈ [5, 35] ∪ [47.5, 62.5], y ∈ [7.5, 22.5] ∪ [9, 15].
    np.testing.assert_allclose(center, [(5 + 62.5) / 2, 15.0])
    assert window == pytest.approx(57.5)
    _, tiny = clip_box(joints[:1] * 0 + 5, valid[:1], (100, 100))
    assert tiny == 32.0


# --- tiny folders ------------------------------------------------------------------------------


def write_video(root: Path, vid: str, n: int, train: int, action: str, frames: bool = True):
    rng = np.random.default_rng(int(vid))
    x = rng.uniform(30, 50, (n, 13))
    y = rng.uniform(20, 40, (n, 13))
    vis = np.ones((n, 13), np.uint8)
    vis[:, 0] = 0  # head never visible
    label = {
        "action": action, "pose": "side", "x": x, "y": y, "visibility": vis,
        "train": np.array([[train]], np.int32), "bbox": np.tile([25.0, 15.0, 55.0, 45.0], (n, 1)),
        "dimensions": np.array([[60, 80, n]], np.uint16), "nframes": np.array([[n]], np.uint8),
    }  # fmt: skip
    (root / "labels").mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(root / "labels" / f"{vid}.mat"), label)
    if frames:
        folder = root / "frames" / vid
        folder.mkdir(parents=True)
        for f in range(n):
            image = np.full((60, 80, 3), 10 * f, np.uint8)
            cv2.imwrite(str(folder / f"{f + 1:06d}.jpg"), image)
    return x, y


@pytest.fixture()
def penn_root(tmp_path: Path) -> Path:
    write_video(tmp_path, "0001", 12, 1, "squat")
    write_video(tmp_path, "0002", 3, -1, "bowl")
    write_video(tmp_path, "0003", 20, -1, "pushup")
    return tmp_path


def test_tiny_folder_images_mode(penn_root: Path):
    train = PennActionDataset(penn_root, "train", clip_length=T, input_size=S)
    assert len(train) == 1
    sample = train[0]
    assert missing_keys(sample, clip=True) == []
    assert sample["image"].shape == (T, 3, S, S) and sample["image"].dtype == torch.float32
    assert sample["pose"].shape == (T, 16, 3) and sample["crop"].shape == (T, 2, 3)
    assert sample["action"].item() == ACTIONS.index("squat") and sample["video_id"] == "0001"
    assert sample["pck_ref"].shape == (T,) and torch.all(sample["pck_ref"] == 30.0)
    missing = [PA16J.index(j) for j in ("pelvis", "thorax", "neck", "head")]
    assert not sample["pose_valid"][:, missing].any()


def test_tiny_folder_test_clips(penn_root: Path):
    test = PennActionDataset(penn_root, "test", clip_length=T, input_size=S, subsample=1)
    assert [test[i]["video_id"] for i in range(len(test))] == ["0002", "0003"]
    stretched = test[0]  # 3 frames → T = 4 indices: a frame repeats
    assert stretched["image"].shape == (T, 3, S, S)
    multi = PennActionDataset(penn_root, "test", clip_length=T, clip_sampling="multi",
                              subsample=2, input_size=S)  # fmt: skip
    ids = [multi[i]["video_id"] for i in range(len(multi))]
    assert ids.count("0002") == 1 and ids.count("0003") > 2
    # Unaugmented: brightness of each crop follows its frame (10·f) → frame indices step by 2.
    means = [multi[ids.index("0003")]["image"][t].mean().item() for t in range(T)]
    assert np.all(np.diff(means) > 0)


def test_poses_mode_needs_labels_only(tmp_path: Path):
    x, y = write_video(tmp_path, "0007", 10, -1, "golf_swing", frames=False)
    data = PennActionDataset(tmp_path, "test", clip_length=T, mode="poses", subsample=1)
    sample = data[0]
    assert "image" not in sample and missing_keys(sample, clip=True) == []
    assert sample["video_id"] == "0007" and sample["pose"].shape == (T, 16, 3)
    # Poses are normalised to the clip box: valid joints inside (0, 1), pixels recoverable.
    frames = np.arange(3, 3 + T)  # the middle clip of 10 frames
    penn_px = np.stack([x[frames], y[frames]], -1) - 1.0
    to_pa16 = index_map(PENN, PA16J)
    valid = sample["pose_valid"][..., 0].numpy()
    np.testing.assert_allclose(
        sample["pose_px"].numpy()[valid], penn_px[:, to_pa16.clip(0)][valid], atol=1e-4
    )
    assert (sample["pose"][..., :2][sample["pose_valid"][..., :2]] > 0).all()
    with pytest.raises(FileNotFoundError, match="frames"):
        PennActionDataset(tmp_path, "test", mode="images")


def test_clear_errors(tmp_path: Path, penn_root: Path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        PennActionDataset(tmp_path / "nowhere")
    labels = {p: p.read_bytes() for p in (penn_root / "labels").glob("*.mat")}
    (penn_root / "labels" / "0009.mat").write_bytes(b"MATLAB 5.0 garbage")
    kept = PennActionDataset(penn_root, "test")  # a garbage file leaves its video out, named
    assert list(kept.excluded) == [str(penn_root / "labels" / "0009.mat")]
    for label in labels:
        label.write_bytes(b"MATLAB 5.0 garbage")
    with pytest.raises(ValueError, match="all .* files unreadable, e.g. .*\\.mat"):
        PennActionDataset(penn_root, "test")  # every file garbage: the data is broken
    for label, data in labels.items():
        label.write_bytes(data)
    (penn_root / "frames" / "0003" / "000010.jpg").unlink()  # in the middle clip 8…11
    data = PennActionDataset(penn_root, "test", clip_length=T, subsample=1)
    with pytest.raises(FileNotFoundError, match="000010.jpg"):
        data[1]


def test_check_reports_split_sizes_and_missing_frames(penn_root: Path):
    from datamodules.check import main

    problems = check_penn(penn_root)
    assert any("train: 1 videos" in p for p in problems) and not any(
        "frames" in p for p in problems
    )
    (penn_root / "frames" / "0003" / "000020.jpg").unlink()
    assert any("0003" in p for p in check_penn(penn_root))
    assert main(["penn", str(penn_root)]) == 1


def test_occluded_joints_count_as_valid_when_asked(samples_dir: Path):
    """occluded=True: Penn's occluded joints (visibility 0, with coordinates) join the valid ones;
    zero coordinates never do."""
    penn = samples_dir / "penn_action"
    video = load_label(penn / "0449.mat")
    assert (video.annotated & ~video.valid).any()  # occluded joints with coordinates exist
    assert not (video.valid & ~video.annotated).any()
    zero = (video.joints == -1.0).any(-1)  # 0 in the 1-based file
    assert zero.any() and not (video.annotated & zero).any()
    kept = {}
    for occluded in (False, True):
        ds = PennActionDataset(penn, "train", mode="poses", augment=False, occluded=occluded,
                               clip_sampling="middle", subsample=1)  # fmt: skip
        kept[occluded] = sum(int(ds[i]["pose_valid"][..., 0].sum()) for i in range(len(ds)))
    assert kept[True] > kept[False]


def test_flip_clips_adds_every_clip_mirrored(samples_dir: Path):
    """flip_clips: the fixed clips, then the same clips mirrored (x → 1 − x, left ↔ right)."""
    penn = samples_dir / "penn_action"
    kw = dict(mode="poses", clip_sampling="multi", subsample=2, clip_step=9, augment=False)
    plain = PennActionDataset(penn, "train", **kw)
    both = PennActionDataset(penn, "train", flip_clips=True, **kw)
    n = len(plain)
    assert len(both) == 2 * n and both.num_plain == n
    flip = np.asarray(both.layout.flip)
    for i in (0, n // 2):
        a, b = both[i], both[n + i]
        assert (
            a["sample_id"] == plain[i]["sample_id"] and b["sample_id"] == a["sample_id"] + "/flip"
        )
        assert a["video_id"] == b["video_id"]
        ok = (a["pose_valid"][:, flip, 0] & b["pose_valid"][..., 0]).numpy()
        mirrored = 1.0 - a["pose"][:, flip, 0].numpy()
        np.testing.assert_allclose(b["pose"][..., 0].numpy()[ok], mirrored[ok], atol=1e-5)
        assert ok.any()


def test_whole_video_indices_cover_the_video():
    """T segment middles (fixed) or one random frame per segment: sorted, first and last
    segments reached, a short video repeats frames."""
    np.testing.assert_array_equal(whole_video_indices(8, 4), [1, 3, 5, 7])
    rng = np.random.default_rng(0)
    for n in (5, 40, 301):
        idx = whole_video_indices(n, 16, rng)
        edges = np.linspace(0, n, 17)
        assert len(idx) == 16 and (np.diff(idx) >= 0).all()
        assert ((idx >= np.floor(edges[:-1])) & (idx < np.maximum(edges[1:], 1))).all()
    draws = {tuple(whole_video_indices(100, 4, rng)) for _ in range(5)}
    assert len(draws) > 1  # random per call


def test_whole_sampling_gives_one_clip_per_video(samples_dir: Path):
    penn = samples_dir / "penn_action"
    fixed = PennActionDataset(penn, "train", mode="poses", clip_length=32, clip_sampling="whole",
                              flip_clips=True, augment=False)  # fmt: skip
    assert len(fixed) == 2 * len(fixed.videos)  # plain + mirrored
    n = fixed.videos[0].num_frames
    assert fixed[0]["sample_id"] == f"penn/{fixed.videos[0].video_id}/{n // 64}-{n - 1 - n // 64}"
    drawn = PennActionDataset(penn, "train", mode="poses", clip_length=32,
                              clip_sampling="whole_random", augment=False)  # fmt: skip
    assert len(drawn) == len(drawn.videos) and drawn[0]["pose"].shape[0] == 32


def test_whole_offsets_give_one_view_per_offset_of_each_video(samples_dir: Path):
    penn = samples_dir / "penn_action"
    views = PennActionDataset(penn, "train", mode="poses", clip_length=8, clip_sampling="whole",
                              whole_offsets=(0.25, 0.5, 0.75), augment=False)  # fmt: skip
    assert len(views) == 3 * len(views.videos)
    first = [views[i] for i in range(3)]
    assert len({s["video_id"] for s in first}) == 1  # one video's views: one multi-clip score
    assert len({s["sample_id"] for s in first}) == 3
    n = views.videos[0].num_frames
    np.testing.assert_array_equal(whole_video_indices(n, 8, offset=0.25),
                                  np.floor((np.arange(8) + 0.25) * n / 8))  # fmt: skip
