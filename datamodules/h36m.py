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

Structure: ``H36MSamples.make_sample`` builds a sample from a record and its frames (the one place
that knows the crop, the depth range and the layout); the record sources of ``datamodules.storage``
(``RawH36M``, ``PreparedH36M``, ``H36MChunks``) read them. Alphabet: N frames, J joints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from torch.utils.data import Dataset

from datamodules.base import sample_rng, to_tensors
from datamodules.h36m_cameras import (  # noqa: F401  (re-exported: the reader's public names)
    CAMERA_FILES,
    Camera,
    load_cameras,
    load_cameras_h5,
    load_cameras_json,
)
from datamodules.layouts import H36M32, Layout, convert, get_layout
from datamodules.storage.h36m_files import (  # noqa: F401  (re-exported: the reader's public names)
    ACTIONS,
    ALIASES,
    CAMERAS,
    KNOWN_MISSING,
    TEST_STEP,
    TEST_SUBJECTS,
    TRAIN_STEP,
    TRAIN_SUBJECTS,
    RawH36M,
    cdf_frames,
    normalise_action,
    read_cdf_pose,
)
from datamodules.storage.h36m_prepared import PreparedH36M
from datamodules.storage.records import Frames, H36MFrame, Recording  # noqa: F401
from datamodules.transforms import (
    AugmentParams,
    AugmentRanges,
    augment_ranges,
    crop_sample,
    depth_range,
)

H36M_AUG = AugmentRanges(angle=10.0, scales=(0.8, 1.0, 1.2), flip=True)
WINDOW_FACTOR = 2.25
BODY_BOX_MM = 1000.0  # the official crop's W = H: a 1 m box at the root depth


def crop_window(
    f_px: Sequence[float] | np.ndarray, root_depth_mm: float | np.ndarray
) -> float | np.ndarray:
    """The official crop's side in pixels, 2.25 · 1000 mm · max(fx, fy) / d, for the root depth
    d (mm): a float, or (N,) for an array of depths."""
    return WINDOW_FACTOR * BODY_BOX_MM * float(np.max(f_px)) / root_depth_mm


@dataclass(frozen=True)
class H36MSamples:
    """The Human3.6M sample builder: crop around the root, depth range, targets in ``layout``."""

    layout: Layout
    input_size: int

    def make_sample(self, record: H36MFrame, frames: Frames, params: AugmentParams) -> dict:
        """The sample dict (``datamodules.sample``) of one frame: frames.images (H, W, 3) uint8,
        the original frame or a stored crop."""
        joints, valid = convert(
            np.concatenate([record.uv, record.xyz], axis=-1),
            np.ones(len(H36M32), bool),
            H36M32,
            self.layout,
        )
        root = self.layout.index("pelvis")
        d = float(joints[root, 4])
        origin, span = depth_range(d, params.scale)
        z = (joints[:, 4:5] - origin) / span
        out = crop_sample(
            frames.images,
            np.concatenate([joints[:, :2], z], axis=-1),
            valid,
            joints[root, :2],
            crop_window(record.focal, d),
            self.input_size,
            self.layout.flip,
            params,
            frames.stored,
        )
        xyz = joints[self.layout.flip, 2:] if params.flip else joints[:, 2:]
        seq = record.recording
        out.update(
            pose_mm=xyz.astype(np.float32),
            depth=np.float32([origin, span]),
            pck_ref=np.float32(0.0),
            camera=record.intrinsics,
            action=np.int64(ACTIONS.index(seq.action)),
            dataset="h36m",
            sample_id=f"h36m/S{seq.subject}/{seq.stem}/{record.frame}",
        )
        return out


class Human36MDataset(Dataset):
    """Human3.6M frames as sample dicts (``datamodules.sample``), 3D, protocol 1.

    ``action`` is the index in ``ACTIONS`` (for per-action MPJPE; Human3.6M is not an action
    dataset of the paper), ``sample_id`` = "h36m/S<n>/<Action>.<cam>/<frame>". The frames come
    from ``source`` when given (e.g. ``H36MChunks``), else from ``prepared``, else from ``root``.
    """

    def __init__(
        self,
        root: str | Path | None,
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
        source: RawH36M | PreparedH36M | None = None,
    ):
        if split not in ("train", "test"):
            raise ValueError(f"Human36MDataset: split must be 'train' or 'test', got {split!r}")
        self.layout, self.input_size = get_layout(layout), input_size
        self.augment = split == "train" if augment is None else augment
        self.aug = augment_ranges(aug, H36M_AUG)
        self.build = H36MSamples(self.layout, input_size)
        subjects = subjects or (TRAIN_SUBJECTS if split == "train" else TEST_SUBJECTS)
        step = frame_step or (TRAIN_STEP if split == "train" else TEST_STEP)
        if source is None and prepared is not None:
            source = PreparedH36M(prepared, subjects, actions, step, self.aug, input_size)
        self.source = source or RawH36M(root, subjects, actions, step, cameras, video_lengths)

    @property
    def sequences(self) -> list[Recording]:
        return self.source.sequences

    @property
    def item_seq(self) -> np.ndarray:
        """(N,) recording of each item (an index into ``sequences``)."""
        return self.source.item_seq

    @property
    def item_frame(self) -> np.ndarray:
        """(N,) frame of each item in its recording (0-based)."""
        return self.source.item_frame

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> dict:
        record, frames = self.source.read(i)
        params = self.aug.sample(sample_rng()) if self.augment else AugmentParams()
        return to_tensors(self.build.make_sample(record, frames, params))


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
