"""Human3.6M (official release layout) → single-frame 3D samples, protocol 1.

Layout on disk (``root``)::

    cameras.h5  or  camera-parameters.json                    (camera calibration, see below)
    S1/MyPoseFeatures/D3_Positions_mono/<Action>.<cam>.cdf    Pose (1, N, 96) mm, camera frame
    S1/MyPoseFeatures/D2_Positions/<Action>.<cam>.cdf         Pose (1, N, 64) pixels
    S1/Videos/<Action>.<cam>.mp4                              or pre-extracted frames in
    S1/Frames/<Action>.<cam>/00001.jpg …                      (1-based frame numbers; may be sparse)

``<Action>`` is the release's sub-action file name ("Directions 1", "TakingPhoto", "WalkDog 1"…),
normalised to the 15 actions of the paper's Table 1; ``_ALL`` files are skipped. Frames: index i
(0-based) is kept when i % step == 0, i.e. the official 1-based f % step == 1, step 5 for training
(S1 S5 S6 S7 S8) and 64 for evaluation (S9 S11); video and pose lengths may differ by a few frames
(the shorter counts). The release lacks S11 ``Directions.54138969``: tolerated.

Crop (official): centre = root in pixels, window = 2.25·s·max(W·fx/d, H·fy/d) pixels with W = H =
1000 mm (the official call passes a 1 m box: the window spans 2.25 m at the root depth d, whatever
the frame size); depth z_norm = (z − (d − 1000·s)) / (2000·s), so the sample's
``depth`` = (d − 1000·s, 2000·s) and z_mm = origin + z·range.
Alphabet: N frames, J joints.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
from torch.utils.data import Dataset

from datamodules.base import SampleReadError, require_dir, sample_rng, to_tensors
from datamodules.layouts import H36M32, convert, get_layout
from datamodules.transforms import AugmentParams, AugmentRanges, crop_sample, depth_range
from datamodules.video import VideoReader

CAMERAS = ("54138969", "55011271", "58860488", "60457274")
TRAIN_SUBJECTS = (1, 5, 6, 7, 8)
TEST_SUBJECTS = (9, 11)
TRAIN_STEP, TEST_STEP = 5, 64
ACTIONS = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Posing", "Purchases", "Sitting",
    "SittingDown", "Smoking", "Photo", "Waiting", "Walking", "WalkDog", "WalkTogether",
)  # fmt: skip
ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog", "WalkingTogether": "WalkTogether"}
KNOWN_MISSING = {(11, "Directions.54138969")}
CAMERA_FILES = ("cameras.h5", "camera-parameters.json")
H36M_AUG = AugmentRanges(angle=10.0, scales=(0.8, 1.0, 1.2), flip=True)
WINDOW_FACTOR = 2.25
BODY_BOX_MM = 1000.0  # the official crop's W = H: a 1 m box at the root depth


def normalise_action(name: str) -> str | None:
    """Table-1 action of a release file name ("Directions 1" → "Directions", "TakingPhoto" →
    "Photo"); None for the ``_ALL`` recordings."""
    base = re.sub(r"\s*\d+$", "", name.strip())
    if base.startswith("_ALL"):
        return None
    base = ALIASES.get(base, base)
    if base not in ACTIONS:
        raise ValueError(f"unknown Human3.6M action name {name!r}")
    return base


# --- cameras -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Camera:
    """One calibrated camera: R (3, 3) world → camera rotation, T (3,) camera centre (mm, world),
    f (2,), c (2,) pixels, k (3,) radial and p (2,) tangential distortion."""

    R: np.ndarray
    T: np.ndarray
    f: np.ndarray
    c: np.ndarray
    k: np.ndarray
    p: np.ndarray

    @property
    def t(self) -> np.ndarray:
        """Translation of the extrinsics [R | t]: t = −R·T."""
        return -self.R @ self.T

    @property
    def intrinsics(self) -> np.ndarray:
        """(4,) fx, fy, cx, cy."""
        return np.r_[self.f, self.c].astype(np.float32)

    def world_to_camera(self, x: np.ndarray) -> np.ndarray:
        """(…, 3) world mm → camera frame mm: X_cam = R·(X − T)."""
        return (np.asarray(x, np.float64) - self.T) @ self.R.T

    def project(self, x_cam: np.ndarray) -> np.ndarray:
        """(…, 3) camera-frame mm → (…, 2) distorted pixels (the Human3.6M / una-dinosauria
        model: radial k1–k3 and tangential p as in ``cameras.py`` of 3d-pose-baseline)."""
        xy = x_cam[..., :2] / x_cam[..., 2:3]
        r2 = np.sum(xy**2, axis=-1, keepdims=True)
        radial = 1 + r2 * self.k[0] + r2**2 * self.k[1] + r2**3 * self.k[2]
        tan = self.p[0] * xy[..., 1:2] + self.p[1] * xy[..., 0:1]
        xy = xy * (radial + tan) + r2 * self.p[::-1]
        return xy * self.f + self.c


def load_cameras_h5(path: str | Path) -> dict[tuple[int, str], Camera]:
    """una-dinosauria ``cameras.h5``: subject{N}/camera{1..4}/ R (stored transposed), T, f, c, k,
    p, Name (the camera id as character codes)."""
    cams = {}
    try:
        with h5py.File(path, "r") as h5:
            for subject in (k for k in h5 if re.fullmatch(r"subject\d+", k)):
                for group in h5[subject].values():
                    name = "".join(chr(int(v)) for v in np.ravel(group["Name"][()]))
                    cams[(int(subject[7:]), name)] = Camera(
                        R=np.asarray(group["R"][()], np.float64).T,
                        **{k: np.ravel(group[k][()]).astype(np.float64) for k in "Tfckp"},
                    )
    except (OSError, KeyError) as err:
        raise ValueError(f"cannot read Human3.6M cameras {path}: {err!r}") from None
    return cams


def load_cameras_json(path: str | Path) -> dict[tuple[int, str], Camera]:
    """``camera-parameters.json``: intrinsics[cam] K (3, 3) + distortion [k1 k2 p1 p2 k3],
    extrinsics[S{N}][cam] R, t (t = −R·T)."""
    try:
        data = json.loads(Path(path).read_text())
        cams = {}
        for subject, per_cam in data["extrinsics"].items():
            for name, ext in per_cam.items():
                K = np.asarray(data["intrinsics"][name]["calibration_matrix"], np.float64)
                dist = np.asarray(data["intrinsics"][name]["distortion"], np.float64)
                R = np.asarray(ext["R"], np.float64)
                cams[(int(subject[1:]), name)] = Camera(
                    R=R, T=-R.T @ np.ravel(ext["t"]), f=K[[0, 1], [0, 1]], c=K[:2, 2],
                    k=dist[[0, 1, 4]], p=dist[2:4],
                )  # fmt: skip
    except (OSError, KeyError, ValueError, IndexError) as err:
        raise ValueError(f"cannot read Human3.6M cameras {path}: {err!r}") from None
    return cams


def load_cameras(root: str | Path, path: str | Path | None = None) -> dict[tuple[int, str], Camera]:
    """Cameras from ``path`` or the first of ``cameras.h5`` / ``camera-parameters.json`` in root."""
    candidates = [Path(path)] if path else [Path(root) / n for n in CAMERA_FILES]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise FileNotFoundError(
            f"Human3.6M camera file not found; tried {[str(p) for p in candidates]}"
        )
    return load_cameras_json(found) if found.suffix == ".json" else load_cameras_h5(found)


# --- pose files ----------------------------------------------------------------------------------


def cdf_frames(path: Path) -> int:
    """Frame count N of a pose CDF (its ``Pose`` is (1, N, C)) without reading the data."""
    import cdflib

    try:
        dims = cdflib.CDF(str(path)).varinq("Pose").Dim_Sizes
    except Exception as err:  # cdflib raises bare Exceptions on a bad file
        raise SampleReadError(path, f"not a Human3.6M pose CDF ({err})") from None
    return int(dims[0]) if dims else 0


@functools.lru_cache(maxsize=16)
def read_cdf_pose(path: Path, dim: int) -> np.ndarray:
    """(N, 32, dim) float32 ``Pose`` of a D3_Positions_mono (dim 3) or D2_Positions (dim 2) CDF."""
    import cdflib

    if not path.is_file():
        raise FileNotFoundError(f"Human3.6M pose file not found: {path}")
    try:
        pose = np.asarray(cdflib.CDF(str(path)).varget("Pose"), np.float32)
        return pose.reshape(-1, len(H36M32), dim)
    except Exception as err:
        raise SampleReadError(path, f"cannot read Pose ({err})") from None


# --- the dataset ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    """One recording: subject, release file stem "<Action>.<cam>", Table-1 action, frame count."""

    subject: int
    stem: str
    action: str
    camera: str
    num_frames: int


class Human36MDataset(Dataset):
    """Human3.6M frames as sample dicts (``datamodules.sample``), 3D, protocol 1.

    ``action`` is the index in ``ACTIONS`` (for per-action MPJPE; Human3.6M is not an action
    dataset of the paper), ``sample_id`` = "h36m/S<n>/<Action>.<cam>/<frame>".
    """

    def __init__(
        self,
        root: str | Path,
        split: Literal["train", "test"] = "train",
        layout: str = "pa17j",
        input_size: int = 256,
        augment: bool | None = None,
        frame_step: int | None = None,
        subjects: tuple[int, ...] | None = None,
        actions: tuple[str, ...] | None = None,
        cameras: str | Path | None = None,
        aug: AugmentRanges | dict | None = None,
    ):
        if split not in ("train", "test"):
            raise ValueError(f"Human36MDataset: split must be 'train' or 'test', got {split!r}")
        self.root = require_dir(root, "Human3.6M root")
        self.layout, self.input_size = get_layout(layout), input_size
        self.augment = split == "train" if augment is None else augment
        self.aug = AugmentRanges(**aug) if isinstance(aug, dict) else (aug or H36M_AUG)
        self.cameras = load_cameras(self.root, cameras)
        subjects = subjects or (TRAIN_SUBJECTS if split == "train" else TEST_SUBJECTS)
        step = frame_step or (TRAIN_STEP if split == "train" else TEST_STEP)
        self.sequences = [
            s for subject in subjects for s in self._sequences(subject)
            if actions is None or s.action in actions
        ]  # fmt: skip
        frames = [np.arange(0, s.num_frames, step) for s in self.sequences]
        self.item_seq = np.repeat(np.arange(len(frames)), [len(f) for f in frames])
        self.item_frame = np.concatenate(frames) if frames else np.zeros(0, np.int64)

    def paths(self, subject: int, stem: str) -> dict[str, Path]:
        s = self.root / f"S{subject}"
        frames = s / "Frames" / stem
        return {
            "d3": s / "MyPoseFeatures" / "D3_Positions_mono" / f"{stem}.cdf",
            "d2": s / "MyPoseFeatures" / "D2_Positions" / f"{stem}.cdf",
            "video": frames if frames.is_dir() else s / "Videos" / f"{stem}.mp4",
        }

    def _sequences(self, subject: int) -> list[Recording]:
        folder = require_dir(
            self.root / f"S{subject}" / "MyPoseFeatures" / "D3_Positions_mono", "Human3.6M poses"
        )
        out = []
        for path in sorted(folder.glob("*.cdf")):
            name, _, cam = path.stem.rpartition(".")
            action = normalise_action(name) if cam in CAMERAS else None
            if action is None:
                continue
            paths = self.paths(subject, path.stem)
            missing = [p for p in paths.values() if not p.exists()]
            if missing and (subject, path.stem) in KNOWN_MISSING:
                continue
            if missing:
                raise FileNotFoundError(f"Human3.6M file not found: {missing[0]}")
            if (subject, cam) not in self.cameras:
                raise KeyError(f"Human3.6M: no calibration for S{subject} camera {cam}")
            n = min(cdf_frames(path), cdf_frames(paths["d2"]), len(VideoReader(paths["video"])))
            out.append(Recording(subject, path.stem, action, cam, n))
        return out

    def __len__(self) -> int:
        return len(self.item_frame)

    def __getitem__(self, i: int) -> dict:
        seq, f = self.sequences[self.item_seq[i]], int(self.item_frame[i])
        paths = self.paths(seq.subject, seq.stem)
        xyz = read_cdf_pose(paths["d3"], 3)[f]
        uv = read_cdf_pose(paths["d2"], 2)[f]
        video = VideoReader(paths["video"])
        image = video.read([f])[0]
        cam = self.cameras[(seq.subject, seq.camera)]
        params = self.aug.sample(sample_rng()) if self.augment else AugmentParams()
        joints, valid = convert(
            np.concatenate([uv, xyz], axis=-1), np.ones(len(H36M32), bool), H36M32, self.layout
        )
        root = self.layout.index("pelvis")
        d = float(joints[root, 4])
        window = WINDOW_FACTOR * BODY_BOX_MM * max(cam.f[0], cam.f[1]) / d
        origin, span = depth_range(d, params.scale)
        z = (joints[:, 4:5] - origin) / span
        out = crop_sample(
            image, np.concatenate([joints[:, :2], z], axis=-1), valid, joints[root, :2], window,
            self.input_size, self.layout.flip, params,
        )  # fmt: skip
        xyz = joints[self.layout.flip, 2:] if params.flip else joints[:, 2:]
        out.update(
            pose_mm=xyz.astype(np.float32),
            depth=np.float32([origin, span]),
            camera=cam.intrinsics,
            pck_ref=np.float32(0.0),
            action=np.int64(ACTIONS.index(seq.action)),
            dataset="h36m",
            sample_id=f"h36m/S{seq.subject}/{seq.stem}/{f}",
        )
        return to_tensors(out)


# --- download check (for ``python -m datamodules.check``) ----------------------------------------

SEQUENCES_PER_SUBJECT = 30  # 15 actions × 2 sub-actions (metadata.xml), per camera


def check_download(root: str | Path) -> list[str]:
    """Calibration, 30 recordings × 4 cameras per protocol-1 subject with poses + video, sizes of
    the protocol-1 splits. Opens every video once (its frame count)."""
    problems = []
    for split in ("train", "test"):
        try:
            ds = Human36MDataset(root, split=split, augment=False)
        except (OSError, ValueError, KeyError) as err:
            problems.append(f"h36m {split}: {err}")
            continue
        for subject in sorted({s.subject for s in ds.sequences}):
            cams = [s.camera for s in ds.sequences if s.subject == subject]
            counts = {c: cams.count(c) for c in CAMERAS}
            known = sum(1 for s, stem in KNOWN_MISSING if s == subject)
            print(f"h36m S{subject}: recordings per camera {counts}")
            if sum(counts.values()) + known != SEQUENCES_PER_SUBJECT * len(CAMERAS):
                problems.append(f"h36m S{subject}: {counts} recordings, expected 30 per camera")
        print(f"h36m {split}: {len(ds)} frames from {len(ds.sequences)} recordings")
    return problems
