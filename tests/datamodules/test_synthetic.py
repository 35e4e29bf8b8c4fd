"""The synthetic world: determinism, file formats against the real samples, geometry, actions."""

from __future__ import annotations

import json
from pathlib import Path

import cdflib
import decord
import h5py
import numpy as np
import pytest
import scipy.io

from datamodules.layouts import H36M32, MPII, NTU25, PA16J, PA17J, PA20J, PENN, convert
from datamodules.synthetic import ACTIONS, OBJECT_COLOURS, generate_world, look_at, perform, place
from datamodules.synthetic.render import PARTS, Style, render_clip, sample_style
from datamodules.synthetic.skeleton import BODY, joint_index, to_layout
from datamodules.synthetic.world import SIZES
from datamodules.synthetic.write_mpii import person
from datamodules.synthetic.write_ntu import LAB_GAIN, LAB_NOISE, lab_look


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    return generate_world(tmp_path_factory.mktemp("world"), "tiny", seed=0)


def _content(path: Path):
    """Comparable content of a written file (.mat/.cdf/.h5 carry creation times in their bytes)."""
    if path.suffix == ".mat":
        mat = scipy.io.loadmat(path)
        return repr({k: v for k, v in mat.items() if not k.startswith("__")})
    if path.suffix == ".cdf":
        return cdflib.CDF(str(path)).varget("Pose").tobytes()
    if path.suffix == ".h5":
        with h5py.File(path) as f:
            out = []
            f.visititems(
                lambda n, o: out.append((n, o[()].tobytes() if hasattr(o, "shape") else 0))
            )
            return out
    return path.read_bytes()


def _files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_manifest_and_skip(world):
    manifest = json.loads(world["manifest"].read_text())
    tiny = SIZES["tiny"]
    assert manifest["counts"]["penn"] == tiny.penn_videos_per_action * len(ACTIONS)
    assert manifest["counts"]["mpii"] == sum(tiny.mpii)
    assert (
        len(list((world["ntu"] / "nturgb+d_skeletons").glob("*.skeleton")))
        == manifest["counts"]["ntu"]
    )
    stamp = world["manifest"].stat().st_mtime_ns
    generate_world(world["manifest"].parent, "tiny", seed=0)
    assert world["manifest"].stat().st_mtime_ns == stamp


def test_deterministic_for_a_seed(world, tmp_path):
    root = world["manifest"].parent
    again = tmp_path / "again"
    generate_world(again, "tiny", seed=0)
    files = [f for f in _files(root) if f.name != "manifest.json"]
    assert files == [f for f in _files(again) if f.name != "manifest.json"]
    for f in files:
        assert _content(root / f) == _content(again / f), f
    assert not np.array_equal(person(1, seed=0)[0], person(1, seed=1)[0])


def test_penn_labels_like_the_real_files(world, samples_dir):
    real = scipy.io.loadmat(samples_dir / "penn_action" / "0001.mat")
    keys = {k for k in real if not k.startswith("__")}
    for path in sorted((world["penn"] / "labels").glob("*.mat")):
        mat = scipy.io.loadmat(path)
        assert {k for k in mat if not k.startswith("__")} == keys, path
        n = int(mat["nframes"][0, 0])
        assert mat["x"].shape == mat["y"].shape == mat["visibility"].shape == (n, 13)
        assert mat["dimensions"].shape == (1, 3) and mat["dimensions"][0, 2] == n
        assert mat["train"].dtype == real["train"].dtype and mat["train"].shape == (1, 1)
        assert mat["action"].dtype.kind == "U" and mat["action"].shape == (1,)
        frames = sorted((world["penn"] / "frames" / path.stem).glob("*.jpg"))
        assert len(frames) == n and frames[0].name == "000001.jpg"
    quirky = scipy.io.loadmat(world["penn"] / "labels" / "0002.mat")
    assert quirky["x"].dtype == np.uint16  # like 0013.mat
    short = scipy.io.loadmat(world["penn"] / "labels" / "0003.mat")
    assert len(short["bbox"]) == short["nframes"][0, 0] - 1  # like 1154.mat


def test_mpii_files_like_the_real_ones(world, samples_dir):
    real = json.loads((samples_dir / "mpii" / "mpii_annotations_small.json").read_text())
    ours = json.loads((world["mpii"] / "mpii_annotations.json").read_text())
    assert set(ours[0]) == set(real[0])
    assert {e["isValidation"] for e in ours} == {0.0, 1.0}
    assert all((world["mpii"] / "images" / e["img_paths"]).is_file() for e in ours)
    det_real = scipy.io.loadmat(samples_dir / "mpii" / "detections.mat")
    det = scipy.io.loadmat(world["mpii"] / "detections.mat")
    assert {k for k in det_real if not k.startswith("__")} <= set(det)
    rect_real, rect = det_real["annolist"][0, 0]["annorect"], det["annolist"][0, 0]["annorect"]
    assert rect.dtype.names == rect_real.dtype.names
    point = rect[0, 0]["annopoints"][0, 0]["point"]
    assert point.dtype.names == rect_real[0, 0]["annopoints"][0, 0]["point"].dtype.names
    release = scipy.io.loadmat(world["mpii"] / "mpii_human_pose_v1_u12_1.mat")["RELEASE"][0, 0]
    annolist = release["annolist"]
    assert annolist.shape == (1, len(list((world["mpii"] / "images").glob("*.jpg"))))
    first = annolist[0, 0]
    assert first["image"][0, 0]["name"][0] == ours[0]["img_paths"]
    joints = np.array(ours[0]["joint_self"])
    for p in first["annorect"][0, 0]["annopoints"][0, 0]["point"][0]:
        assert np.allclose(
            [float(p["x"][0, 0]), float(p["y"][0, 0])], joints[int(p["id"][0, 0]), :2]
        )
    assert set(release["img_train"].ravel().tolist()) == {0, 1}


def _parse_skeleton(path: Path) -> list[list[tuple[list[str], list[list[str]]]]]:
    """frames → bodies → (body line tokens, joint line tokens); an independent minimal parser."""
    lines = path.read_text().split("\n")
    frames, i = [], 1
    for _ in range(int(lines[0])):
        bodies, i = [], i + 1
        for _ in range(int(lines[i - 1])):
            head, n = lines[i].split(), int(lines[i + 1])
            bodies.append((head, [lines[i + 2 + j].split() for j in range(n)]))
            i += 2 + n
        frames.append(bodies)
    assert all(not rest.strip() for rest in lines[i:]), path
    return frames


def test_ntu_skeletons_like_the_real_ones(world, samples_dir):
    real = _parse_skeleton(samples_dir / "ntu" / "S001C001P001R001A001.skeleton")
    shape = {(len(h), len(j), len(j[0])) for f in real for h, j in f}
    names = sorted((world["ntu"] / "nturgb+d_skeletons").glob("*.skeleton"))
    missing = (world["ntu"] / "NTU_RGBD_samples_with_missing_skeletons.txt").read_text().split()
    assert len(missing) == 1
    for path in names:
        frames = _parse_skeleton(path)
        if path.stem in missing:
            assert all(len(f) == 0 for f in frames)
            continue
        assert {(len(h), len(j), len(j[0])) for f in frames for h, j in f} == shape
        video = decord.VideoReader(str(world["ntu"] / "nturgb+d_rgb" / f"{path.stem}_rgb.avi"))
        assert len(video) == len(frames)
    subjects = {int(p.stem[9:12]) for p in names}
    cameras = {int(p.stem[5:8]) for p in names}
    assert subjects & {1, 2, 4, 5} and subjects - {1, 2, 4, 5}  # X-Sub train and test
    assert cameras & {2, 3} and cameras - {2, 3}  # X-View train and test
    assert any(max(len(f) for f in _parse_skeleton(p)) == 2 for p in names)  # the noise body


def test_h36m_files_and_cameras(world, samples_dir):
    root = world["h36m"]
    with (
        h5py.File(samples_dir / "h36m" / "cameras.h5") as f_real,
        h5py.File(root / "cameras.h5") as f,
    ):
        real = {k: v.shape for k, v in f_real["subject1/camera1"].items()}
        assert {k: v.shape for k, v in f["subject1/camera1"].items()} == real
        g = f["subject9/camera2"]
        R, T = g["R"][()].T, g["T"][()].ravel()
        name = "".join(chr(int(c)) for c in g["Name"][()].ravel())
    mono_files = sorted((root / "S9" / "MyPoseFeatures" / "D3_Positions_mono").glob("*.cdf"))
    assert {p.stem.rpartition(".")[2] for p in mono_files} == {
        "54138969", "55011271", "58860488", "60457274"
    }  # fmt: skip
    stem = next(p.stem for p in mono_files if p.stem.endswith(name))
    mono = cdflib.CDF(str(mono_files[0].parent / f"{stem}.cdf")).varget("Pose")
    d2 = cdflib.CDF(str(root / "S9" / "MyPoseFeatures" / "D2_Positions" / f"{stem}.cdf")).varget(
        "Pose"
    )
    action = stem.rpartition(".")[0]
    world_mm = cdflib.CDF(str(root / "S9" / "MyPoseFeatures" / "D3_Positions" / f"{action}.cdf"))
    world_mm = world_mm.varget("Pose").reshape(-1, 32, 3)
    assert mono.shape == (1, len(world_mm), 96) and d2.shape == (1, len(world_mm), 64)
    np.testing.assert_allclose((world_mm - T) @ R.T, mono.reshape(-1, 32, 3), atol=0.5)
    video = decord.VideoReader(str(root / "S9" / "Videos" / f"{stem}.mp4"))
    assert len(video) == len(world_mm)


def _figure(action: str, seed: int, bg: np.ndarray):
    rng = np.random.default_rng(seed)
    w = place(perform(action, 12, 30.0, rng), np.zeros(2), np.pi)
    cam = look_at([-4.0, 0.3, 1.2], [0, 0, 0.9], 260.0, (bg.shape[1], bg.shape[0]))
    parts = dict(zip(PARTS, np.array([[200.0, 60, 60], [60, 60, 200], [60, 200, 60],
                                      [200, 200, 60], [60, 200, 200]])))  # fmt: skip
    style = Style(parts, np.array([220, 170, 140.0]), OBJECT_COLOURS.get(action))
    xyz = cam.to_camera(w)
    return render_clip(bg, xyz, cam, style), cam.project(xyz), w


def test_joints_land_on_the_figure():
    bg = np.full((240, 320, 3), 7, np.uint8)
    for action in ACTIONS:
        frames, uv, _ = _figure(action, 3, bg)
        px = np.round(to_layout(uv, MPII)).astype(int)
        hit = frames[np.arange(len(px))[:, None], px[..., 1], px[..., 0]]
        assert (hit != 7).any(-1).all(), action


def test_clothes_tell_limbs_from_the_torso_and_each_other():
    """Torso, sleeves and trouser legs never share a colour (RGB distance > 20 for every pair)."""
    for seed in range(200):
        parts = list(sample_style(np.random.default_rng(seed), "wave").parts.values())
        gaps = [np.linalg.norm(a - b) for i, a in enumerate(parts) for b in parts[i + 1 :]]
        assert min(gaps) > 20, seed


def test_ntu_clips_have_a_look_of_their_own():
    """NTU's lab: dimmer and warmer than the pose data (MPII / H36M), softer, noisier; one light
    per clip, drawn from the clip's generator."""
    frames = np.random.default_rng(0).integers(0, 256, (2, 180, 320, 3)).astype(np.uint8)
    flat = np.full((4, 36, 64, 3), 200, np.uint8)
    lab = lab_look(flat, np.random.default_rng(1)).astype(float)
    r, g, b = lab.reshape(-1, 3).mean(0)
    assert 200 * LAB_GAIN[0] - 1 <= r <= 200 * LAB_GAIN[1] + 1 and r > g > b
    assert 0 < np.abs(lab - lab.mean((0, 1, 2))).max() <= LAB_NOISE + 1
    gain = lab.mean((1, 2)) / lab[0].mean((0, 1))
    np.testing.assert_allclose(gain, 1.0, atol=0.01)  # the same light in every frame
    soft = lab_look(frames, np.random.default_rng(1)).astype(float)
    lit = frames * (soft.mean() / frames.mean())
    assert np.abs(np.diff(soft, axis=2)).mean() < 0.8 * np.abs(np.diff(lit, axis=2)).mean()
    np.testing.assert_array_equal(lab_look(frames, np.random.default_rng(1)), soft.astype(np.uint8))


def test_actions_differ_and_objects_differ_only_in_colour():
    bg = np.full((240, 320, 3), 7, np.uint8)
    _, _, wave = _figure("wave", 5, bg)
    _, _, squat = _figure("squat", 5, bg)
    assert np.linalg.norm(wave - squat, axis=-1).mean() > 0.05
    drink, uv, w_drink = _figure("drink", 5, bg)
    phone, _, w_phone = _figure("phone", 5, bg)
    np.testing.assert_array_equal(w_drink, w_phone)
    changed = (drink != phone).any(-1)
    assert changed.any()
    t, y, x = np.nonzero(changed)
    near_hand = np.linalg.norm(np.stack([x, y], 1) - uv[t, joint_index("r_hand")], axis=1)
    assert near_hand.max() < 25
    assert {tuple(c) for c in drink[changed]} & {OBJECT_COLOURS["drink"]}


@pytest.mark.parametrize(
    ("layout", "merged"), [(MPII, PA16J), (PENN, PA16J), (H36M32, PA17J), (NTU25, PA20J)]
)
def test_layouts_keep_anatomical_sides(layout, merged):
    """Body → dataset layout → merged layout (swap_sides honoured) = body → merged layout."""
    joints = np.random.default_rng(0).normal(size=(4, len(BODY), 3))
    via, valid = convert(to_layout(joints, layout), np.ones((4, len(layout)), bool), layout, merged)
    direct = to_layout(joints, merged)
    np.testing.assert_array_equal(via[valid], direct[valid])
    assert valid.any()


# --- through the project's real readers -----------------------------------------------------------


def test_mpii_reader_json_and_mat_agree(world):
    mpii = pytest.importorskip("datamodules.mpii")
    from_json = mpii.load_annotations(world["mpii"])
    from_mat = mpii.load_annotations(world["mpii"], world["mpii"] / "mpii_human_pose_v1_u12_1.mat")
    assert len(from_json.image) == len(from_mat.image) == sum(SIZES["tiny"].mpii[:2])
    np.testing.assert_array_equal(from_json.is_val, from_mat.is_val)
    np.testing.assert_array_equal(from_json.valid, from_mat.valid)
    np.testing.assert_allclose(from_json.joints[from_json.valid], from_mat.joints[from_mat.valid])
    assert (from_json.head_size() > 0).all()
    for split in ("train", "val"):
        sample = mpii.MPIIDataset(world["mpii"], split=split, input_size=64)[0]
        assert sample["image"].shape == (3, 64, 64) and sample["pose_valid"].any()


def test_penn_reader_reads_the_mapped_classes(world):
    penn = pytest.importorskip("datamodules.penn")
    from datamodules.synthetic.write_penn import PENN_ACTIONS

    for split in ("train", "test"):
        data = penn.PennActionDataset(world["penn"], split=split, input_size=64, clip_length=4)
        assert len(data.videos) == len(ACTIONS) * SIZES["tiny"].penn_videos_per_action // 2
        for video in data.videos:
            synthetic = ACTIONS[(int(video.video_id) - 1) % len(ACTIONS)]
            assert video.action == penn.ACTIONS.index(PENN_ACTIONS[synthetic])
        sample = data[0]
        assert sample["image"].shape == (4, 3, 64, 64)


def test_ntu_reader_splits_and_main_actor(world):
    ntu = pytest.importorskip("datamodules.ntu")
    from datamodules.synthetic.write_ntu import NTU_ACTIONS

    missing = (world["ntu"] / "NTU_RGBD_samples_with_missing_skeletons.txt").read_text().split()
    for benchmark in ("xsub", "xview"):
        names = [
            ntu.NTUDataset(world["ntu"], split=s, benchmark=benchmark, mode="poses").names
            for s in ("train", "test")
        ]
        assert all(names) and not set(names[0]) & set(names[1])
        assert missing[0] not in names[0] + names[1]
    noisy = max(
        (world["ntu"] / "nturgb+d_skeletons").glob("*.skeleton"),
        key=lambda p: len(set(ntu.parse_skeleton(p).body_id)),
    )
    xyz, uv, valid = ntu.main_actor(ntu.parse_skeleton(noisy))
    assert valid.all() and len(set(ntu.parse_skeleton(noisy).body_id)) == 2
    data = ntu.NTUDataset(world["ntu"], split="test", input_size=64, clip_length=4)
    assert {int(n[-3:]) for n in data.names} == set(NTU_ACTIONS.values())
    sample = data[0]
    assert int(sample["action"]) == int(data.names[0][-3:]) - 1
    assert sample["image"].shape == (4, 3, 64, 64)


def test_h36m_reader_cameras_reproduce_the_2d(world):
    h36m = pytest.importorskip("datamodules.h36m")
    cams = h36m.load_cameras_h5(world["h36m"] / "cameras.h5")
    feats = world["h36m"] / "S5" / "MyPoseFeatures"
    for path in sorted((feats / "D3_Positions_mono").glob("*.cdf")):
        name, _, cam = path.stem.rpartition(".")
        xyz = h36m.read_cdf_pose(path, 3)
        uv = h36m.read_cdf_pose(feats / "D2_Positions" / path.name, 2)
        np.testing.assert_allclose(cams[(5, cam)].project(xyz), uv, atol=0.05)
        assert h36m.normalise_action(name) in h36m.ACTIONS
    for split, subjects in (("train", (1, 5)), ("test", (9,))):
        data = h36m.Human36MDataset(world["h36m"], split=split, input_size=64, subjects=subjects)
        assert len(data) > 0 and data[0]["image"].shape == (3, 64, 64)
