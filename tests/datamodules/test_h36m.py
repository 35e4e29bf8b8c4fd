"""Human3.6M: cameras (real files), world → camera, and a tiny release tree written here with
cdflib + PyAV read end to end."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import av
import cdflib
import h5py
import numpy as np
import pytest

from datamodules.h36m import (
    ACTIONS,
    CAMERAS,
    Camera,
    Human36MDataset,
    load_cameras,
    load_cameras_h5,
    load_cameras_json,
    normalise_action,
)
from datamodules.layouts import H36M32, PA17J
from datamodules.sample import missing_keys
from datamodules.transforms import depth_range

PROTOCOL_SUBJECTS = (1, 5, 6, 7, 8, 9, 11)  # README: protocol 1 train + test


# --- real calibration files ----------------------------------------------------------------------


def test_cameras_h5_and_json_agree(samples_dir):
    h5 = load_cameras_h5(samples_dir / "h36m" / "cameras.h5")
    raw = json.loads((samples_dir / "h36m" / "camera-parameters.json").read_text())
    js = load_cameras_json(samples_dir / "h36m" / "camera-parameters.json")
    for s in PROTOCOL_SUBJECTS:
        for cam in CAMERAS:
            a, b = h5[(s, cam)], js[(s, cam)]
            ext, K = (
                raw["extrinsics"][f"S{s}"][cam],
                np.array(raw["intrinsics"][cam]["calibration_matrix"]),
            )
            np.testing.assert_allclose(a.R, ext["R"], atol=1e-9)
            np.testing.assert_allclose(a.t, np.ravel(ext["t"]), atol=1e-6)  # t = −R·T
            np.testing.assert_allclose(K, [[a.f[0], 0, a.c[0]], [0, a.f[1], a.c[1]], [0, 0, 1]])
            dist = raw["intrinsics"][cam]["distortion"]  # k1 k2 p1 p2 k3
            np.testing.assert_allclose(np.r_[a.k[:2], a.p, a.k[2]], dist)
            np.testing.assert_allclose(b.T, a.T, atol=1e-6)
            np.testing.assert_allclose(a.R @ a.R.T, np.eye(3), atol=1e-9)
    assert load_cameras(samples_dir / "h36m").keys() == h5.keys()  # cameras.h5 found first


def test_photo_world_positions_land_in_every_camera(samples_dir):
    with h5py.File(samples_dir / "h36m" / "Photo.h5", "r") as f:
        world = f["3D_positions"][()].T.reshape(-1, 32, 3)  # (96, N) → (N, 32, 3)
    head, ankle = H36M32.index("head"), H36M32.index("r_ankle")
    cams = load_cameras(samples_dir / "h36m")
    raw = json.loads((samples_dir / "h36m" / "camera-parameters.json").read_text())
    wrong = []
    for cam in CAMERAS:
        c = cams[(1, cam)]
        x = c.world_to_camera(world)
        ext = raw["extrinsics"]["S1"][cam]
        np.testing.assert_allclose(x, world @ np.array(ext["R"]).T + np.ravel(ext["t"]), atol=1e-6)
        bones = np.linalg.norm(world[:, 1:] - world[:, :1], axis=-1)
        np.testing.assert_allclose(np.linalg.norm(x[:, 1:] - x[:, :1], axis=-1), bones, atol=1e-6)
        uv = c.project(x)
        assert np.all((x[..., 2] > 2000) & (x[..., 2] < 8000))
        assert np.all((uv > 0) & (uv < 1000))  # the frames are 1000 × 1000 / 1002
        assert np.all(uv[:, head, 1] < uv[:, ankle, 1])  # upright: image y points down
        flipped = Camera(c.R.T, c.T, c.f, c.c, c.k, c.p)  # forgetting the stored transpose
        xw, uvw = flipped.world_to_camera(world), flipped.project(flipped.world_to_camera(world))
        wrong.append(np.any(xw[..., 2] <= 0) or np.any((uvw < 0) | (uvw > 1000)))
    assert any(wrong)


def test_metadata_action_names_normalise_to_table_1(samples_dir):
    root = ET.parse(samples_dir / "h36m" / "metadata.xml").getroot()
    rows = [[td.text for td in tr] for tr in root.find("mapping")]
    names = {n for row in rows[1:] if row[0] and row[0].isdigit() for n in row[2:] if n}
    normalised = {normalise_action(n) for n in names}
    assert normalised - {None} == set(ACTIONS) and len(ACTIONS) == 15
    assert (
        normalise_action("WalkingDog 1") == "WalkDog" and normalise_action("TakingPhoto") == "Photo"
    )
    with pytest.raises(ValueError, match="Dancing"):
        normalise_action("Dancing 1")


# --- a tiny release tree -------------------------------------------------------------------------

N_POSE, N_VIDEO, SIZE = 12, 11, 100
F, C = 1000.0, 50.0


def camera_json() -> dict:
    K = [[F, 0, C], [0, F, C], [0, 0, 1]]
    intr = {cam: {"calibration_matrix": K, "distortion": [0, 0, 0, 0, 0]} for cam in CAMERAS}
    ext = {f"S{s}": {cam: {"R": np.eye(3).tolist(), "t": [[0], [0], [0]]} for cam in CAMERAS}
           for s in PROTOCOL_SUBJECTS}  # fmt: skip
    return {"intrinsics": intr, "extrinsics": ext}


def poses() -> np.ndarray:
    """(N, 32, 3) camera-frame mm: a body 4 m away, pelvis moving right by 10 mm per frame."""
    rng = np.random.default_rng(1)
    body = rng.uniform(-400, 400, (32, 3)) * [0.4, 2, 0.3]
    body[0] = 0
    p = body[None] + np.array([0.0, 0.0, 4000.0])
    return p + np.arange(N_POSE)[:, None, None] * np.array([10.0, 0, 0])


def write_cdf(path: Path, pose: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cdf = cdflib.cdfwrite.CDF(str(path))
    flat = pose.reshape(1, len(pose), -1)
    spec = {"Variable": "Pose", "Data_Type": 21, "Num_Elements": 1, "Rec_Vary": True,
            "Dim_Sizes": list(flat.shape[1:])}  # fmt: skip
    cdf.write_var(spec, var_data=flat.astype(np.float32))
    cdf.close()


def write_video(path: Path, uv_root: np.ndarray) -> None:
    """Black frames with a white 5×5 square on the projected pelvis."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=50)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        for x, y in uv_root[:N_VIDEO].round().astype(int):
            img = np.zeros((SIZE, SIZE, 3), np.uint8)
            img[y - 2 : y + 3, x - 2 : x + 3] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


STEMS = {1: ["Directions 1.54138969", "TakingPhoto.55011271", "_ALL 1.54138969"],
         5: ["WalkDog 1.58860488"], 6: ["Eating.60457274"], 7: ["Sitting 2.54138969"],
         8: ["Greeting.54138969"], 9: ["Walking 1.55011271"],
         11: ["Phoning 3.54138969", "Directions.54138969"]}  # fmt: skip


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("h36m")
    (root / "camera-parameters.json").write_text(json.dumps(camera_json()))
    p3 = poses()
    uv = F * p3[..., :2] / p3[..., 2:] + C
    video = root / "video.mp4"
    write_video(video, uv[:, 0])
    for s, stems in STEMS.items():
        for stem in stems:
            base = root / f"S{s}" / "MyPoseFeatures"
            write_cdf(base / "D3_Positions_mono" / f"{stem}.cdf", p3)
            write_cdf(base / "D2_Positions" / f"{stem}.cdf", uv)
            if (s, stem) != (11, "Directions.54138969"):  # missing in the release
                (root / f"S{s}" / "Videos").mkdir(exist_ok=True)
                shutil.copy(video, root / f"S{s}" / "Videos" / f"{stem}.mp4")
    return root


def test_protocol_1_split(tree):
    train = Human36MDataset(tree, split="train", input_size=64)
    test = Human36MDataset(tree, split="test", input_size=64)
    assert {s.subject for s in train.sequences} == {1, 5, 6, 7, 8}
    assert {s.subject for s in test.sequences} == {9, 11}
    assert len(train.sequences) == 6 and len(test.sequences) == 2  # _ALL and S11 Directions skipped
    assert all(s.num_frames == N_POSE for s in train.sequences)  # lazy: no video opened
    exact = Human36MDataset(tree, split="train", input_size=64, video_lengths=True)
    assert all(s.num_frames == N_VIDEO for s in exact.sequences)  # min(video, poses)
    assert list(exact.item_frame[exact.item_seq == 0]) == [0, 5, 10]  # 1-based f % 5 == 1
    assert list(test.item_frame) == [0, 0]
    assert {s.action for s in train.sequences} >= {"Directions", "Photo", "WalkDog"}


def test_sample_end_to_end(tree):
    ds = Human36MDataset(tree, split="train", subjects=(1,), actions=("Directions",),
                         input_size=64, frame_step=3, augment=False)  # fmt: skip
    assert len(ds) == 4
    s = ds[2]
    assert missing_keys(s) == [] and s["image"].shape == (3, 64, 64) and s["pose"].shape == (17, 3)
    assert s["dataset"] == "h36m" and ACTIONS[int(s["action"])] == "Directions"
    assert s["sample_id"] == "h36m/S1/Directions 1.54138969/6"
    np.testing.assert_allclose(s["camera"].numpy(), [F, F, C, C])
    p3 = poses()[6]
    np.testing.assert_allclose(s["pose_mm"][PA17J.index("pelvis")].numpy(), p3[0], atol=1e-3)
    np.testing.assert_allclose(s["pose_mm"][PA17J.index("head")].numpy(),
                               p3[H36M32.index("head")], atol=1e-3)  # fmt: skip
    root = PA17J.index("pelvis")
    assert s["pose"][root, 2] == pytest.approx(0.5)
    x, y = (s["pose"][root, :2] * 64).round().long()
    assert s["image"][:, y, x].min() > 0.5 and s["image"][:, :3, :3].max() < -0.9
    # window = 2.25·1000 mm·f/d original pixels (a 2.25 m box at the root depth) ↦ 64 crop pixels
    assert s["crop"][0, 0] * (2.25 * 1000.0 * F / p3[0, 2]) == pytest.approx(1.0, rel=1e-4)


def test_depth_normalisation_round_trip(tree):
    ds = Human36MDataset(tree, split="train", subjects=(5,), input_size=64, augment=True)
    for i in range(len(ds)):
        s = ds[i]
        origin, span = s["depth"].numpy().astype(np.float64)
        ok = s["pose_valid"][:, 2].numpy()
        z_mm = origin + s["pose"][:, 2].numpy().astype(np.float64) * span
        np.testing.assert_allclose(z_mm[ok], s["pose_mm"][:, 2].numpy()[ok], atol=1e-2)
        assert np.isclose(span, [1600.0, 2000.0, 2400.0]).any()  # 2000·s, s ∈ {0.8, 1, 1.2}
    z = np.random.default_rng(0).uniform(2000, 6000, 100)
    origin, span = depth_range(4000.0, 1.2)
    np.testing.assert_allclose(origin + ((z - origin) / span) * span, z)
    assert (4000.0 - origin) / span == 0.5


def test_missing_file_is_a_clear_error(tree, tmp_path):
    root = tmp_path / "h36m"
    shutil.copytree(tree, root)
    d2 = root / "S9" / "MyPoseFeatures" / "D2_Positions" / "Walking 1.55011271.cdf"
    d2.unlink()
    with pytest.raises(FileNotFoundError, match="Walking 1.55011271.cdf"):
        Human36MDataset(root, split="test")
    with pytest.raises(FileNotFoundError, match="S5"):
        shutil.rmtree(root / "S5")
        Human36MDataset(root, split="train")
    (root / "camera-parameters.json").unlink()
    with pytest.raises(FileNotFoundError, match="camera"):
        Human36MDataset(root, split="test")


def test_frames_folder_replaces_the_video(tree, tmp_path):
    import cv2

    root = tmp_path / "h36m"
    shutil.copytree(tree, root)
    stem = "Walking 1.55011271"
    video = root / "S9" / "Videos" / f"{stem}.mp4"
    from datamodules.video import VideoReader

    frames = VideoReader(video).read(range(N_VIDEO))
    folder = root / "S9" / "Frames" / stem
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "00001.png"), cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR))
    video.unlink()
    ds = Human36MDataset(root, split="test", subjects=(9,))
    assert len(ds) == 1 and ds.source.paths(9, stem)["video"] == folder
    s = ds[0]
    root_j = PA17J.index("pelvis")
    x, y = (s["pose"][root_j, :2] * 256).round().long()
    assert s["image"][:, y, x].min() > 0.5


def test_download_check_reports_incomplete_subjects(tree, capsys):
    from datamodules.h36m import check_download

    problems = check_download(tree)
    assert len(problems) == 7 and all("expected 30 per camera" in p for p in problems)
    assert "h36m test: 2 frames from 2 recordings" in capsys.readouterr().out
