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

Start-up is lazy: only the pose files' headers are read (frame counts), no video is opened; a frame
past the end of a video shorter than its poses fails as a bad sample naming the video (``RobustDataset``
replaces it), unless ``video_lengths=True`` (the download check) opens every video to count. With
``prepared=`` (a folder of ``python -m datamodules.prepare h36m``) the frames, poses and intrinsics
come from there (true lengths; the raw root is not read) and give the same samples and crops.
Alphabet: N frames, J joints.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from torch.utils.data import Dataset

from datamodules.base import SampleReadError, read_image, require_dir, sample_rng, to_tensors
from datamodules.h36m_cameras import (  # noqa: F401  (re-exported: the reader's public names)
    CAMERA_FILES,
    Camera,
    load_cameras,
    load_cameras_h5,
    load_cameras_json,
)
from datamodules.layouts import H36M32, convert, get_layout
from datamodules.prepare.runner import load_prepared
from datamodules.prepare.store import Margin, store_matrix
from datamodules.transforms import (
    AugmentParams,
    AugmentRanges,
    crop_sample,
    depth_range,
)
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
H36M_AUG = AugmentRanges(angle=10.0, scales=(0.8, 1.0, 1.2), flip=True)
WINDOW_FACTOR = 2.25
BODY_BOX_MM = 1000.0  # the official crop's W = H: a 1 m box at the root depth


def crop_window(
    f_px: Sequence[float] | np.ndarray, root_depth_mm: float | np.ndarray
) -> float | np.ndarray:
    """The official crop's side in pixels, 2.25 · 1000 mm · max(fx, fy) / d, for the root depth
    d (mm): a float, or (N,) for an array of depths."""
    return WINDOW_FACTOR * BODY_BOX_MM * float(np.max(f_px)) / root_depth_mm


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
        prepared: str | Path | None = None,
        video_lengths: bool = False,
    ):
        if split not in ("train", "test"):
            raise ValueError(f"Human36MDataset: split must be 'train' or 'test', got {split!r}")
        self.layout, self.input_size = get_layout(layout), input_size
        self.augment = split == "train" if augment is None else augment
        self.aug = AugmentRanges(**aug) if isinstance(aug, dict) else (aug or H36M_AUG)
        subjects = subjects or (TRAIN_SUBJECTS if split == "train" else TEST_SUBJECTS)
        step = frame_step or (TRAIN_STEP if split == "train" else TEST_STEP)
        self.prepared = None
        if prepared is not None:
            self._open_prepared(prepared, subjects, actions, step)
            return
        self.root = require_dir(root, "Human3.6M root")
        self.video_lengths = video_lengths
        self.cameras = load_cameras(self.root, cameras)
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
            n = min(cdf_frames(path), cdf_frames(paths["d2"]))
            if self.video_lengths:
                n = min(n, len(VideoReader(paths["video"])))
            out.append(Recording(subject, path.stem, action, cam, n))
        return out

    def _open_prepared(self, folder, subjects, actions, step: int) -> None:
        """Items from a prepared folder: its frames with index % step == 0 of the selection."""
        self.prepared = load_prepared(folder, "h36m", ("uv", "xyz"))
        videos, frames = self.prepared.videos, self.prepared.frames
        margin = Margin(**self.prepared.meta["options"]["margin"])
        if margin.span(1.0) < Margin.of(self.aug, self.input_size).span(1.0) - 1e-9 or (
            self.input_size > margin.input_size
        ):
            raise ValueError(f"{folder}: prepared for {margin}, narrower than {self.aug} at "
                             f"input size {self.input_size}; prepare again with wider ranges")  # fmt: skip
        if absent := sorted(set(subjects) - set(videos["subject"])):
            raise FileNotFoundError(f"{folder}: Human3.6M subjects {absent} were not prepared")
        keep = videos["subject"].isin(subjects).to_numpy()
        if actions is not None:
            keep &= videos["action"].isin(actions).to_numpy()
        self.sequences = [
            Recording(int(v.subject), v.stem, v.action, str(v.camera), int(v.num_frames))
            for v in videos[keep].itertuples()
        ]  # fmt: skip
        rows = np.flatnonzero(keep[frames["video"]] & (frames["frame"] % step == 0))
        expected = sum(-(-s.num_frames // step) for s in self.sequences)
        if len(rows) != expected:
            raise ValueError(
                f"{folder}: holds {len(rows)} of the {expected} frames with index % {step} == 0 "
                f"of the selected recordings; prepare with --frame-step dividing {step}"
            )
        self.item_row = rows.astype(np.int64)
        self.item_seq = np.cumsum(keep)[frames["video"][rows]] - 1
        self.item_frame = frames["frame"][rows].astype(np.int64)

    def __len__(self) -> int:
        return len(self.item_frame)

    def __getitem__(self, i: int) -> dict:
        seq, f = self.sequences[self.item_seq[i]], int(self.item_frame[i])
        if self.prepared is not None:
            p, row = self.prepared, int(self.item_row[i])
            v = p.video(int(p.frames["video"][row]))
            fr = p.frames
            stored = store_matrix(fr["x0"][row : row + 1], fr["side"][row : row + 1],
                                  fr["stored"][row : row + 1])[0]  # fmt: skip
            image = read_image(p.file(row))
            uv, xyz = np.asarray(p.poses["uv"][row]), np.asarray(p.poses["xyz"][row])
            f_px = np.array([v["fx"], v["fy"]], np.float64)
            intrinsics = np.float32([v["fx"], v["fy"], v["cx"], v["cy"]])
        else:
            paths = self.paths(seq.subject, seq.stem)
            xyz = read_cdf_pose(paths["d3"], 3)[f]
            uv = read_cdf_pose(paths["d2"], 2)[f]
            video = VideoReader(paths["video"])
            if f >= video.num_frames:
                raise SampleReadError(paths["video"], f"frame {f} past the video's "
                                      f"{video.num_frames} frames (its poses are longer)")  # fmt: skip
            image, stored = video.read([f])[0], None
            cam = self.cameras[(seq.subject, seq.camera)]
            f_px, intrinsics = cam.f, cam.intrinsics
        out = self.sample(image, stored, uv, xyz, f_px)
        out.update(
            camera=intrinsics,
            action=np.int64(ACTIONS.index(seq.action)),
            dataset="h36m",
            sample_id=f"h36m/S{seq.subject}/{seq.stem}/{f}",
        )
        return to_tensors(out)

    def sample(
        self, image: np.ndarray, stored: np.ndarray | None, uv: np.ndarray, xyz: np.ndarray,
        f_px: np.ndarray,
    ) -> dict:  # fmt: skip
        """The geometric part of a sample: image (H, W, 3) uint8 — the original frame, or a stored
        crop with ``stored`` (2, 3) original → stored pixels — uv (32, 2) px, xyz (32, 3) mm,
        f_px (2,) focal lengths."""
        params = self.aug.sample(sample_rng()) if self.augment else AugmentParams()
        joints, valid = convert(
            np.concatenate([uv, xyz], axis=-1), np.ones(len(H36M32), bool), H36M32, self.layout
        )
        root = self.layout.index("pelvis")
        d = float(joints[root, 4])
        window = crop_window(f_px, d)
        origin, span = depth_range(d, params.scale)
        z = (joints[:, 4:5] - origin) / span
        out = crop_sample(
            image, np.concatenate([joints[:, :2], z], axis=-1), valid, joints[root, :2], window,
            self.input_size, self.layout.flip, params, stored,
        )  # fmt: skip
        xyz = joints[self.layout.flip, 2:] if params.flip else joints[:, 2:]
        out.update(pose_mm=xyz.astype(np.float32), depth=np.float32([origin, span]),
                   pck_ref=np.float32(0.0))  # fmt: skip
        return out


# --- download check (for ``python -m datamodules.check``) ----------------------------------------

SEQUENCES_PER_SUBJECT = 30  # 15 actions × 2 sub-actions (metadata.xml), per camera


def check_download(root: str | Path) -> list[str]:
    """Calibration, 30 recordings × 4 cameras per protocol-1 subject with poses + video, sizes of
    the protocol-1 splits. Opens every video once (its frame count)."""
    problems = []
    for split in ("train", "test"):
        try:
            ds = Human36MDataset(root, split=split, augment=False, video_lengths=True)
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
