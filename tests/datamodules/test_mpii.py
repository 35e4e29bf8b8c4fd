"""MPII reader: the real annotation samples (../shared) and tiny folders written in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import torch

from datamodules.layouts import MPII, PA16J, index_map
from datamodules.mpii import (
    MPIIDataset,
    as_list,
    head_boxes,
    load_annotations,
    load_json,
    load_mat,
    load_release,
    number,
    pair_keys,
    parse_annolist,
)
from datamodules.sample import missing_keys

S = 64
EMPTY = {"_ArrayType_": "double", "_ArraySize_": [0, 0], "_ArrayData_": None}


# --- real samples --------------------------------------------------------------------------------


def test_real_json_entries_split_and_joint_order(samples_dir: Path):
    path = samples_dir / "mpii" / "mpii_annotations_small.json"
    raw = json.loads(path.read_text())
    ann = load_json(path)
    assert len(ann.image) == 168
    expected_val = [e["isValidation"] == 1.0 for e in raw]
    np.testing.assert_array_equal(ann.is_val, expected_val)
    assert 0 < ann.is_val.sum() < 168
    joints = np.array([e["joint_self"] for e in raw])  # (N, 16, 3) MPII order, 1-based
    np.testing.assert_allclose(ann.joints, joints[..., :2] - 1.0)
    np.testing.assert_array_equal(ann.valid, (joints[..., 0] != 0) | (joints[..., 1] != 0))
    assert not ann.valid.all()  # absent joints are stored as [0, 0, 0]
    assert isinstance(raw[2]["objpos_other"], list) or raw[2]["objpos_other"] == EMPTY


def test_real_detections_mat_struct_quirks(samples_dir: Path):
    mat = load_mat(samples_dir / "mpii" / "detections.mat")
    kinds = set()
    for entry in mat["annolist"][:300]:
        for rect in as_list(entry.annorect):  # one struct squeezed, not an array
            kinds |= {type(p.is_visible).__name__ for p in as_list(rect.annopoints.point)}
    assert {"str", "ndarray"} <= kinds  # is_visible as '1' and as [] both occur
    assert number("1") == 1.0 and np.isnan(number(np.zeros((0, 0))))
    ann = parse_annolist(mat["annolist"])
    assert len(ann.image) == 2958
    assert not ann.valid.all() and ann.valid.any(axis=1).all()  # missing joints absent
    assert np.isfinite(ann.head).all() and (ann.head_size() > 0).all()


def test_real_head_boxes_join_json_validation(samples_dir: Path):
    det = samples_dir / "mpii" / "detections.mat"
    keys, boxes = head_boxes(det)
    assert len(keys) == 2958 and len(np.unique(keys)) == 2958
    mat = scipy.io.loadmat(str(det))  # unsqueezed read: an independent path to the first box
    rect = mat["annolist"][0, 0]["annorect"][0, 0]
    first = [float(rect[k][0, 0]) for k in ("x1", "y1", "x2", "y2")]
    np.testing.assert_allclose(boxes[0], first)
    ann = load_json(samples_dir / "mpii" / "mpii_annotations_small.json")
    val_keys = pair_keys(ann.img_index[ann.is_val], ann.person_index[ann.is_val])
    assert np.isin(val_keys, keys).all()  # JSON validation persons = the .mat validation list
    train_keys = pair_keys(ann.img_index[~ann.is_val], ann.person_index[~ann.is_val])
    assert not np.isin(train_keys, keys).any()


def test_real_json_gets_head_boxes_from_detections(samples_dir: Path, tmp_path: Path):
    (tmp_path / "annot").mkdir()
    for name in ("mpii_annotations_small.json", "detections.mat"):
        (tmp_path / "annot" / name).write_bytes((samples_dir / "mpii" / name).read_bytes())
    ann = load_annotations(tmp_path, tmp_path / "annot" / "mpii_annotations_small.json")
    keys, boxes = head_boxes(samples_dir / "mpii" / "detections.mat")
    first_val = np.flatnonzero(ann.is_val)[0]
    row = np.flatnonzero(keys == pair_keys(ann.img_index, ann.person_index)[first_val])[0]
    np.testing.assert_allclose(ann.head[first_val], boxes[row])
    size = ann.head_size()
    assert (size[ann.is_val] > 0).all() and (size[~ann.is_val] == 0).all()


# --- tiny folders ------------------------------------------------------------------------------


def person(x0: float, y0: float, vis: float = 1.0) -> list[list[float]]:
    """16 joints (1-based px, MPII order) around (x0, y0); the left ankle absent."""
    rng = np.random.default_rng(int(x0))
    joints = [[x0 + dx, y0 + dy, vis] for dx, dy in rng.uniform(-15, 15, (16, 2))]
    joints[5] = [0.0, 0.0, 0.0]
    return joints


def write_image(folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(len(name)).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / name), image)


def json_entry(name: str, index: int, people: int, center, is_val: float) -> dict:
    return {
        "dataset": "MPI", "isValidation": is_val, "img_paths": name, "img_width": 160.0,
        "img_height": 120.0, "objpos": list(center), "joint_self": person(*center),
        "scale_provided": 0.3, "joint_others": EMPTY, "scale_provided_other": EMPTY,
        "objpos_other": EMPTY, "annolist_index": float(index), "people_index": float(people),
        "numOtherPeople": 0.0,
    }  # fmt: skip


@pytest.fixture()
def json_root(tmp_path: Path) -> Path:
    entries = [
        json_entry("a.jpg", 1, 1, (60.0, 50.0), 0.0),
        json_entry("b.jpg", 2, 1, (80.0, 60.0), 0.0),
        json_entry("b.jpg", 2, 2, (100.0, 70.0), 1.0),
    ]
    (tmp_path / "annot").mkdir()
    (tmp_path / "annot" / "mpii_annotations.json").write_text(json.dumps(entries))
    for name in ("a.jpg", "b.jpg"):
        write_image(tmp_path / "images", name)
    return tmp_path


def test_tiny_json_folder_end_to_end(json_root: Path):
    train = MPIIDataset(json_root, "train", input_size=S)
    val = MPIIDataset(json_root, "val", input_size=S)
    assert len(train) == 2 and len(val) == 1
    sample = val[0]
    assert missing_keys(sample) == []
    assert sample["image"].shape == (3, S, S) and sample["image"].dtype == torch.uint8
    assert sample["chpower"].tolist() == [1.0, 1.0, 1.0]  # not augmented
    assert sample["pose"].shape == (16, 3) and sample["pose_valid"].shape == (16, 3)
    assert sample["action"].item() == -1 and sample["dataset"] == "mpii"
    assert not sample["pose_valid"][:, 2].any() and not sample["depth"].any()
    assert sample["pck_ref"].item() == 0.0  # no .mat beside the JSON: head size unknown
    # Unaugmented val crop: centre objpos + (0, 12·1.25·scale), window 200·1.25·scale, 0-based.
    s = 1.25 * 0.3
    raw = np.array(person(100.0, 70.0))
    expected = (raw[:, :2] - 1.0 - [99.0, 69.0 + 12 * s]) / (200 * s) + 0.5
    to_pa16 = index_map(MPII, PA16J)
    l_ankle = PA16J.index("l_ankle")
    ok = np.arange(16) != l_ankle
    np.testing.assert_allclose(sample["pose"][ok, :2].numpy(), expected[to_pa16][ok], atol=1e-5)
    assert not sample["pose_valid"][l_ankle].any() and sample["visible"][l_ankle] == 0


def test_tiny_json_train_augments(json_root: Path):
    data = MPIIDataset(json_root, "train", input_size=S)
    torch.manual_seed(0)
    poses = {tuple(data[0]["pose"][3, :2].tolist()) for _ in range(6)}
    assert len(poses) > 1  # random rotation / scale / flip


def write_release(root: Path) -> None:
    """A tiny official-.mat folder: image 1 one person (a squeezed single struct), image 2 two
    persons (a struct array, is_visible as number / string / empty), image 3 a test image."""

    def rect(x0, y0, head):
        pts = np.zeros((1, 3), dtype=[("x", "O"), ("y", "O"), ("id", "O"), ("is_visible", "O")])
        for i, (j, vis) in enumerate([(9, 1), (8, "1"), (0, np.zeros((0, 0)))]):
            pts[0, i] = (x0 + j, y0 - j, j, vis)
        return dict(x1=head[0], y1=head[1], x2=head[2], y2=head[3], annopoints={"point": pts},
                    scale=0.3, objpos={"x": x0, "y": y0})  # fmt: skip

    r1, r2, r3 = (
        rect(60, 50, (50, 30, 62, 46)),
        rect(80, 60, (70, 40, 79, 52)),
        rect(100, 70, (0, 0, 6, 8)),
    )
    two = np.zeros((1, 2), dtype=[(k, "O") for k in r1])
    for i, r in enumerate((r2, r3)):
        two[0, i] = tuple(r[k] for k in r1)
    annolist = np.zeros((1, 3), dtype=[("image", "O"), ("annorect", "O")])
    annolist[0] = [({"name": "a.jpg"}, r1), ({"name": "b.jpg"}, two), ({"name": "c.jpg"}, r1)]
    release = {"annolist": annolist, "img_train": np.array([[1, 1, 0]])}
    scipy.io.savemat(str(root / "mpii_human_pose_v1_u12_1.mat"), {"RELEASE": release})
    val = {"RELEASE_img_index": np.array([[2]]), "RELEASE_person_index": np.array([[2]])}
    scipy.io.savemat(str(root / "detections.mat"), val)
    for name in ("a.jpg", "b.jpg"):
        write_image(root / "images", name)


def test_tiny_release_mat_folder(tmp_path: Path):
    write_release(tmp_path)
    ann = load_release(tmp_path / "mpii_human_pose_v1_u12_1.mat", tmp_path / "detections.mat")
    assert ann.image.tolist() == ["a.jpg", "b.jpg", "b.jpg"]  # test image c.jpg dropped
    assert ann.is_val.tolist() == [False, False, True]
    np.testing.assert_array_equal(ann.valid[:, [0, 8, 9]], True)
    assert ann.valid.sum() == 9
    np.testing.assert_allclose(ann.joints[2, 9], [100 + 9 - 1, 70 - 9 - 1])
    val = MPIIDataset(tmp_path, "val", input_size=S)
    sample = val[0]
    assert missing_keys(sample) == [] and sample["sample_id"] == "mpii/b.jpg/2"
    assert sample["pck_ref"].item() == pytest.approx(0.6 * 10.0)  # 6-8-10 head box
    assert len(MPIIDataset(tmp_path, "train", input_size=S)) == 2


def test_clear_errors(tmp_path: Path, json_root: Path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        MPIIDataset(tmp_path / "nowhere")
    (tmp_path / "empty" / "images").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="mpii_annotations.json"):
        MPIIDataset(tmp_path / "empty")
    (json_root / "images" / "a.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="a.jpg"):
        MPIIDataset(json_root, "train", input_size=S)[0]
    write_release(tmp_path / "empty")
    (tmp_path / "empty" / "detections.mat").unlink()
    with pytest.raises(FileNotFoundError, match="detections.mat"):
        MPIIDataset(tmp_path / "empty")


def test_check_counts_split_and_images(json_root: Path):
    from datamodules.check import check_mpii

    problems = check_mpii(json_root)
    assert any("train: 2 persons" in p for p in problems)
    assert not any("missing" in p for p in problems)
    (json_root / "images" / "b.jpg").unlink()
    assert any("b.jpg" in p for p in check_mpii(json_root))


# --- reduced decodes (JPEG DCT scaling) ------------------------------------------------------------

WIDE = (1280, 720)  # W, H: the usual MPII photo
SCALES = (0.4, 0.6, 1.2, 2.4)  # windows 100, 150, 300, 600 px: factors 1, 2, 4, 8 at S = 64
FACTORS = (1, 2, 4, 8)


def write_wide(root: Path, gray: np.ndarray) -> Path:
    """A 1280×720 JPEG ``a.jpg`` (``gray`` (H, W) float, 0–255, as three equal channels) with one
    person of each of ``SCALES`` near its middle: crop windows inside the image."""
    (root / "images").mkdir(parents=True)
    image = np.repeat(np.clip(gray, 0, 255).round().astype(np.uint8)[..., None], 3, axis=-1)
    cv2.imwrite(str(root / "images" / "a.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    entries = [json_entry("a.jpg", 1, k + 1, (640.0, 330.0), 0.0) for k in range(len(SCALES))]
    for entry, scale in zip(entries, SCALES):
        entry["scale_provided"] = scale
    (root / "mpii_annotations.json").write_text(json.dumps(entries))
    return root


def grid() -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0 : WIDE[1], 0 : WIDE[0]].astype(np.float64)
    return x, y


def paired_samples(root: Path, augment: bool) -> list[tuple[dict, dict]]:
    """(reduced decode, full decode) samples of every person, each pair under one torch seed;
    ``augment``: rotation, flip, shift and gamma, scale 1 (the factors stay 1, 2, 4, 8)."""
    aug = {"angle": 40.0, "scales": (1.0,), "translate": 20.0}
    reduced = MPIIDataset(root, "train", input_size=S, augment=augment, aug=aug)
    full = MPIIDataset(root, "train", input_size=S, augment=augment, aug=aug, reduced_decode=False)
    pairs = []
    for i in range(len(reduced)):
        torch.manual_seed(i)
        a = reduced[i]
        torch.manual_seed(i)
        pairs.append((a, full[i]))
    return pairs


@pytest.mark.parametrize(
    ("window", "size", "factor"),
    [(511.9, 256, 1), (512, 256, 2), (1023, 256, 2), (1024, 256, 4), (2047, 256, 4),
     (2048, 256, 8), (9000, 256, 8), (100, 64, 1), (128, 64, 2), (600, 64, 8)],
)  # fmt: skip
def test_reduced_decode_factor_is_the_largest_keeping_the_crop_resolution(
    tmp_path: Path, window: float, size: int, factor: int
):
    """f = max {f ∈ 1, 2, 4, 8 : window / f ≥ size}: the decoded image keeps at least the crop's
    samples over the window; ``stored`` maps original pixel centres onto the decoded ones."""
    from datamodules.mpii import MPIIFiles

    root = write_wide(tmp_path, grid()[0] / 5)
    frames = MPIIFiles(root, val=False).frames(0, window, size)
    assert frames.images.shape == (-(-WIDE[1] // factor), -(-WIDE[0] // factor), 3)
    if factor == 1:
        assert frames.stored is None
    else:
        k = 1.0 / factor  # decoded pixel q covers original [f·q, f·q + f): centre f·q + (f − 1)/2
        np.testing.assert_allclose(frames.stored, [[k, 0, (k - 1) / 2], [0, k, (k - 1) / 2]])
    off = MPIIFiles(root, val=False, reduced_decode=False).frames(0, window, size)
    assert off.stored is None and off.images.shape == (WIDE[1], WIDE[0], 3)


def test_reduced_decode_png_is_read_full(tmp_path: Path):
    from datamodules.mpii import MPIIFiles

    root = write_wide(tmp_path, grid()[0] / 5)
    cv2.imwrite(str(root / "images" / "a.png"), cv2.imread(str(root / "images" / "a.jpg")))
    files = MPIIFiles(root, val=False)
    files.ann.image[:] = "a.png"
    assert files.frames(0, 2048, 256).stored is None  # DCT scaling is JPEG's alone


@pytest.mark.parametrize("augment", [False, True])
def test_reduced_decode_same_targets_image_within_jpeg_tolerance(tmp_path: Path, augment: bool):
    """Factors f = 1, 2, 4, 8 on a smooth texture: every entry but ``image`` bit-identical to the
    full decode's sample (the geometry stays in original pixels), the crop within f / 4 grey
    levels (of 255) mean absolute difference: 0 at f = 1; measured 0.2, 0.4, 1.3–1.6 (the 1/8
    decode's block filter against the full decode's bilinear warp by 9.4), and 1.3, 4.5, 10 with
    the decoded pixel centres' offset left out of the composed matrix."""
    x, y = grid()
    # smooth (no cv2 filter here: OpenCV's thread pool in this process would hang a later
    # forked worker's cv2.setNumThreads), periods 80–200 px
    texture = 127 + 60 * np.sin(x / 23) * np.cos(y / 31) + 40 * np.sin(x / 17 + y / 19)
    root = write_wide(tmp_path, texture)
    for i, (a, b) in enumerate(paired_samples(root, augment)):
        differ = [
            k for k in a if not (torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k])
        ]
        assert differ == ([] if i == 0 else ["image"]), (i, differ)
        mad = (a["image"].float() - b["image"].float()).abs().mean().item()
        assert mad <= FACTORS[i] / 4, (i, mad)


@pytest.mark.parametrize("augment", [False, True])
def test_reduced_decode_puts_image_points_where_the_full_decode_does(tmp_path: Path, augment: bool):
    """A bright blob's centroid in the crop of a reduced decode is within 0.05 crop pixels of its
    centroid in the full decode's crop (measured ≤ 0.02; a decoded-pixel-centre offset left out
    of the composed matrix moves it by 0.21–0.40)."""
    x, y = grid()
    root = write_wide(tmp_path, 250 * np.exp(-((x - 655) ** 2 + (y - 350) ** 2) / (2 * 20**2)))

    def centroid(image: torch.Tensor) -> torch.Tensor:
        gray = image.double().mean(0)  # (S, S)
        yy, xx = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")
        return torch.stack([(gray * xx).sum(), (gray * yy).sum()]) / gray.sum()

    for a, b in paired_samples(root, augment):
        assert (centroid(a["image"]) - centroid(b["image"])).abs().max() <= 0.05


@pytest.mark.parametrize(("override", "expected"), [([], True), (["false"], False)])
def test_reduced_decode_is_a_source_option_of_the_config(
    json_root: Path, override: list[str], expected: bool
):
    """``data.sources.mpii.options.reduced_decode`` reaches the reader; absent, it is on."""
    from experiments.config import load_config
    from experiments.data import build_dataset

    keys = [f"data.sources.mpii.options.reduced_decode={v}" for v in override]
    cfg = load_config("mpii", [f"data.root={json_root}", *keys])
    assert build_dataset(cfg, "mpii", "test").source.reduced_decode is expected
