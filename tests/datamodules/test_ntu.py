"""NTU RGB+D: the .skeleton parser on real files, main-actor selection, splits, and a tiny NTU
folder (skeleton text + PyAV video written here) read end to end."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from datamodules.base import SampleReadError
from datamodules.layouts import PA20J
from datamodules.ntu import (
    NTUDataset,
    is_train,
    main_actor,
    parse_skeleton,
    read_missing_list,
    release_names,
)
from datamodules.sample import missing_keys
from datamodules.video import VideoReader
from deephar.images import batch_to_float

REAL = "S001C001P001R001A001"
EMPTY = "S001C002P006R001A008"
HEAD = 4 - 1  # README: Kinect joint 4 (1-based) is the head
SPINE_BASE = 1 - 1


# --- real files ------------------------------------------------------------------------------------


def test_parse_real_skeleton(samples_dir):
    path = samples_dir / "ntu" / f"{REAL}.skeleton"
    sk = parse_skeleton(path)
    assert sk.num_frames == 103 and sk.joints.shape == (103, 25, 12)
    assert len(set(sk.body_id)) == 1 and np.array_equal(sk.frame, np.arange(103))
    lines = path.read_text().splitlines()
    # line 4 is frame 0 / body 0 / joint 0; the last line is frame 102's last joint
    np.testing.assert_allclose(sk.joints[0, 0], [float(v) for v in lines[4].split()])
    np.testing.assert_allclose(sk.joints[-1, -1], [float(v) for v in lines[-1].split()])
    assert sk.body_id[0] == lines[2].split()[0]  # 17-digit id kept exactly (not a float)


def test_real_skeleton_units_are_a_person(samples_dir):
    xyz, uv, valid = main_actor(parse_skeleton(samples_dir / "ntu" / f"{REAL}.skeleton"))
    assert valid.all()
    height_mm = np.ptp(xyz[..., 1], axis=1)  # Kinect y is up: head-to-foot extent
    assert 1200 < np.median(height_mm) < 2000
    assert 1500 < np.median(xyz[:, SPINE_BASE, 2]) < 5000  # depth in mm, in front of the camera
    assert np.all((uv >= 0) & (uv < [1920, 1080]))
    box_h = np.ptp(uv[..., 1], axis=1)
    assert np.all((box_h > 0.15 * 1080) & (box_h < 0.9 * 1080))


def test_colour_joints_fall_on_the_person(samples_dir):
    """Patches at the colour joints differ from the background at the same image rows."""
    _, uv, _ = main_actor(parse_skeleton(samples_dir / "ntu" / f"{REAL}.skeleton"))
    t = 50
    frame = VideoReader(samples_dir / "ntu" / f"{REAL}_rgb.avi").read([t])[0].astype(float)
    width = np.ptp(uv[t, :, 0])

    def patches(dx: float) -> np.ndarray:
        return np.stack([frame[int(y) - 4 : int(y) + 5, int(x + dx) - 4 : int(x + dx) + 5].mean((0, 1))
                         for x, y in uv[t]])  # fmt: skip

    on_person = np.abs(patches(0) - patches(-3 * width)).mean()
    background = np.abs(patches(-3 * width) - patches(-4 * width)).mean()
    assert on_person > 4 * background


def test_empty_skeleton_and_missing_lists(samples_dir):
    sk = parse_skeleton(samples_dir / "ntu" / f"{EMPTY}.skeleton")
    assert sk.num_frames == 71 and sk.joints.shape == (0, 25, 12)
    with pytest.raises(ValueError, match="no body"):
        main_actor(sk)
    ntu60 = read_missing_list(samples_dir / "ntu" / "NTU_RGBD_samples_with_missing_skeletons.txt")
    ntu120 = read_missing_list(
        samples_dir / "ntu" / "NTU_RGBD120_samples_with_missing_skeletons.txt"
    )
    assert (len(ntu60), len(ntu120)) == (302, 535)
    assert EMPTY in ntu60 and EMPTY in ntu120


# --- a tiny NTU folder ---------------------------------------------------------------------------

NF, VW, VH = 24, 192, 108  # frames; video size (1/10 of Kinect's 1920×1080 colour frames)


def actor(t: int) -> np.ndarray:
    """(25, 12) joints of the moving actor at frame t: colour pixels around (900 + 10·t, 540)."""
    rng = np.random.default_rng(0)
    j = np.zeros((25, 12))
    j[:, :2] = rng.uniform(-0.3, 0.3, (25, 2))
    j[:, 1] += np.linspace(-0.8, 0.8, 25)
    j[:, 2] = 3.0 + 0.01 * t + rng.uniform(-0.1, 0.1, 25)
    j[:, 5] = 900 + 10 * t + 300 * j[:, 0]
    j[:, 6] = 540 - 250 * j[:, 1]
    j[:, 11] = 2
    return j


def noise_body(offset: float) -> np.ndarray:
    j = actor(0)
    j[:, 5] = 200 + offset
    j[:, 6] = 200
    return j


def skeleton_text(frames: list[list[tuple[str, np.ndarray]]]) -> str:
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body_id, joints in bodies:
            lines += [f"{body_id} 0 1 1 1 1 0 0.01 0.02 2", "25"]
            lines += [" ".join(f"{v:.7g}" for v in row) for row in joints]
    return "\n".join(lines) + "\n"


def tiny_frames() -> list[list[tuple[str, np.ndarray]]]:
    frames = []
    for t in range(NF):
        bodies = [("72057594037931101", actor(t)), ("72057594037931102", noise_body(0))]
        if t == 3:
            bodies = []
        if t == 5:
            bodies.append(("72057594037931103", noise_body(50)))
        frames.append(bodies)
    return frames


def write_video(path: Path) -> None:
    """Black frames with a white 5×5 square on the actor's spine base (colour pixels / 10)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = VW, VH, "yuv420p"
        for t in range(NF):
            img = np.zeros((VH, VW, 3), np.uint8)
            x, y = (actor(t)[SPINE_BASE, 5:7] / 10).round().astype(int)
            img[y - 2 : y + 3, x - 2 : x + 3] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


NAMES = {
    "S001C001P001R001A001": "xsub train, xview test",
    "S001C002P003R001A002": "xsub test, xview train",
    "S001C003P002R002A010": "xsub train, xview train",
    "S018C001P010R001A061": "NTU120 only",
    "S001C002P005R002A008": "on the official missing list",
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ntu")
    (root / "nturgb+d_skeletons").mkdir()
    (root / "nturgb+d_rgb").mkdir()
    text = skeleton_text(tiny_frames())
    for name in NAMES:
        (root / "nturgb+d_skeletons" / f"{name}.skeleton").write_text(text)
    write_video(root / "nturgb+d_rgb" / "S001C001P001R001A001_rgb.avi")
    missing = root / "NTU_RGBD_samples_with_missing_skeletons.txt"
    missing.write_text("S001C002P005R002A008\nS001C002P006R001A008\n")  # official format
    return root


def test_main_actor_ignores_static_noise_bodies(root):
    sk = parse_skeleton(root / "nturgb+d_skeletons" / "S001C001P001R001A001.skeleton")
    assert sk.num_frames == NF and len(sk.frame) == 2 * (NF - 1) + 1
    xyz, uv, valid = main_actor(sk)
    assert not valid[3].any() and valid[np.arange(NF) != 3].all()
    np.testing.assert_allclose(uv[7], actor(7)[:, 5:7], rtol=1e-6)
    np.testing.assert_allclose(xyz[7], 1000 * actor(7)[:, :3], rtol=1e-6)


def test_splits(root):
    def names(**kw):
        return NTUDataset(root, mode="poses", **kw).names

    assert names(split="train") == ["S001C001P001R001A001", "S001C003P002R002A010"]
    assert names(split="test") == ["S001C002P003R001A002"]
    assert names(split="train", benchmark="xview") == [
        "S001C002P003R001A002",
        "S001C003P002R002A010",
    ]
    assert names(split="test", version=120) == ["S001C002P003R001A002", "S018C001P010R001A061"]
    (root / "empty.txt").write_text("")
    assert "S001C002P005R002A008" in names(split="train", missing_list=root / "empty.txt")
    assert is_train("S002C003P040R001A001", "xset", 120) and not is_train(REAL, "xset", 120)


def test_images_clip_end_to_end(root):
    ds = NTUDataset(root, split="train", augment=False, clip_length=4, input_size=64, subsample=1)
    s = batch_to_float(ds[0])  # the network's input
    assert missing_keys(s, clip=True) == []
    assert s["image"].shape == (4, 3, 64, 64) and s["pose"].shape == (4, 20, 3)
    assert (
        s["action"] == 0 and s["dataset"] == "ntu" and s["video_id"] == "ntu/S001C001P001R001A001"
    )
    frames = [int(s["sample_id"].split("/")[-1]) + 2 * k for k in range(4)]  # video_step 2
    pelvis = PA20J.index("pelvis")
    xy = (s["pose"][:, pelvis, :2] * 64).round().long()
    for t in range(4):
        assert s["image"][t, :, xy[t, 1], xy[t, 0]].min() > 0.5  # the white square
    assert s["image"][:, :, :2, :2].max() < -0.9
    head = PA20J.index("head")
    expected = np.stack([1000 * actor(f)[HEAD, :3] for f in frames])
    np.testing.assert_allclose(s["pose_mm"][:, head].numpy(), expected, rtol=1e-5)
    # depth: root mean ↦ 0.5, and z_mm = origin + z·range on valid joints
    assert s["pose"][:, pelvis, 2].mean() == pytest.approx(0.5, abs=1e-5)
    z_mm = s["depth"][:, None, 0] + s["pose"][..., 2] * s["depth"][:, None, 1]
    ok = s["pose_valid"][..., 2]
    assert ok.any()
    np.testing.assert_allclose(z_mm[ok].numpy(), s["pose_mm"][..., 2][ok].numpy(), atol=1e-2)


def test_augmented_clip_keeps_image_and_pose_aligned(root):
    ds = NTUDataset(root, split="train", augment=True, clip_length=4, input_size=64)
    pelvis = PA20J.index("pelvis")
    for _ in range(3):
        s = batch_to_float(ds[0])
        vis = s["visible"][:, pelvis] > 0
        xy = (s["pose"][:, pelvis, :2] * 64).round().long()
        for t in np.flatnonzero(vis.numpy()):
            patch = s["image"][t, :, xy[t, 1] - 1 : xy[t, 1] + 2, xy[t, 0] - 1 : xy[t, 0] + 2]
            assert patch.max() > 0.5


def test_poses_mode_needs_no_video(root, tmp_path):
    poses_root = tmp_path / "ntu"
    (poses_root / "nturgb+d_skeletons").mkdir(parents=True)
    src = root / "nturgb+d_skeletons" / "S001C002P003R001A002.skeleton"
    (poses_root / "nturgb+d_skeletons" / src.name).write_text(src.read_text())
    ds = NTUDataset(poses_root, split="test", mode="poses", clip_length=5)
    s = ds[0]
    assert "image" not in s and missing_keys(s, clip=True) == []
    assert s["pose"].shape == (5, 20, 3) and s["action"] == 1
    assert bool(s["pose_valid"].any()) and float(s["pose"][..., :2].max()) < 1
    with pytest.raises(FileNotFoundError, match="nturgb"):
        NTUDataset(poses_root, split="test", mode="images")


def test_multi_clips_cover_the_video(root):
    ds = NTUDataset(root, split="train", mode="poses", clip_sampling="multi", clip_length=4,
                    subsample=1, augment=False)  # fmt: skip
    per_video = [ds.names[v] for v, _ in ds.items]
    assert per_video.count("S001C001P001R001A001") > 1
    ends = [int(c[-1]) for v, c in ds.items if v == 0]
    assert max(ends) >= NF - 2
    assert ds[1]["video_id"] == ds[0]["video_id"]


def test_malformed_skeleton_names_the_file(tmp_path):
    text = skeleton_text(tiny_frames()).splitlines()
    bad = tmp_path / "S001C001P001R001A001.skeleton"
    bad.write_text("\n".join(text[:-7]) + "\n")  # truncated inside the last body
    with pytest.raises(SampleReadError, match="S001C001P001R001A001.skeleton"):
        parse_skeleton(bad)
    bad.write_text("\n".join(text[:5] + ["1 2 3"] + text[6:]) + "\n")
    with pytest.raises(SampleReadError, match="line 6"):
        parse_skeleton(bad)


def test_download_check_counts_the_release(root, capsys):
    from datamodules.ntu import check_download

    problems = check_download(root)
    assert any("the release has 56880" in p for p in problems)
    assert any("3 videos missing" in p for p in problems)
    assert "ntu60 xsub: train/test (2, 1)" in capsys.readouterr().out


def test_release_names_keep_sample_names_of_the_release_sorted():
    names = ["S018C001P008R002A120", "S001C002P001R001A060", "S001C001P001R001A061", "notes",
             "S001C001P001R001A001_rgb", "S001C001P001R001A001"]  # fmt: skip
    assert release_names(names, 60) == ["S001C001P001R001A001", "S001C002P001R001A060"]
    assert release_names(names, 120) == ["S001C001P001R001A001", "S001C001P001R001A061",
                                         "S001C002P001R001A060", "S018C001P008R002A120"]  # fmt: skip
