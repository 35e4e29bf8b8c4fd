"""NTU from a prepared folder (``python -m datamodules.prepare ntu``): per-video poses, frame
counts and the stored crops of every ``video_step``-th frame; the raw root is not read.

Alphabet: n video frames, T clip frames, J = 25 Kinect joints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datamodules.base import SampleReadError, read_image
from datamodules.storage.crops import Margin, store_matrix
from datamodules.storage.ntu_files import release_names, skipped
from datamodules.storage.prepared import load_prepared
from datamodules.storage.records import NTUVideo
from datamodules.transforms import AugmentRanges


@dataclass(frozen=True)
class ClipNeeds:
    """What a reader's clips need of the stored regions (checked against the folder's options):
    layout name, clip length, video step, subsamples, augmentation at the input size, release;
    ``covered`` the subsamples every preparation covers."""

    layout: str
    T: int
    video_step: int
    subsample: tuple[int, ...]
    aug: AugmentRanges
    input_size: int
    version: int
    covered: frozenset[int]


class PreparedNTU:
    """The prepared videos of release ``version`` that ``keep`` accepts (less ``missing_list``:
    the default list was applied when preparing); their crops cover ``needs``."""

    def __init__(
        self,
        folder: str | Path,
        images: bool,
        needs: ClipNeeds,
        keep: Callable[[str], bool],
        missing_list: str | Path | None = None,
    ):
        self.data = load_prepared(folder, "ntu", ("uv", "xyz", "valid"))
        self.root, self.table, self.images, self.excluded = (
            self.data.root,
            self.data.videos,
            images,
            {},
        )
        self.check(needs)
        self._rows = {n: i for i, n in enumerate(self.table["name"])}
        skip = skipped(missing_list, None)
        names = release_names(self.table["name"].tolist(), needs.version)
        self.names = [n for n in names if n not in skip and keep(n)]

    def __len__(self) -> int:
        return len(self.names)

    def frame_counts(self) -> dict[str, int]:
        """Frame count of every sample's skeleton file (what ``multi`` clips count)."""
        counts = self.table["skeleton_frames"].to_numpy()[[self._rows[n] for n in self.names]]
        return dict(zip(self.names, map(int, counts)))

    def read(self, v: int) -> NTUVideo:
        """Sample ``v``: poses, the video (W, H), the stored crops and their shared matrix."""
        p, name = self.data, self.names[v]
        row = p.video(self._rows[name])
        folder = p.root / "frames" / name
        if row["num_frames"] == 0:
            raise SampleReadError(folder, "no body in any frame of the skeleton")
        a, b = int(row["pose_start"]), int(row["pose_start"] + row["pose_count"])
        xyz, uv, valid = (np.asarray(p.poses[k][a:b]) for k in ("xyz", "uv", "valid"))
        first = slice(int(np.searchsorted(p.frames["video"], self._rows[name])), None)
        stored = store_matrix(
            p.frames["x0"][first][:1], p.frames["side"][first][:1], p.frames["stored"][first][:1]
        )[0]

        def read(idx: np.ndarray) -> np.ndarray:
            return np.stack([read_image(folder / f"{int(i):06d}.jpg") for i in idx])

        size = (int(row["width"]), int(row["height"]))
        return NTUVideo(name, xyz, uv, valid, size, read if self.images else None, stored)

    def check(self, needs: ClipNeeds) -> None:
        """The stored regions cover the reader's clips (layout, clip length, video step, subsamples
        ⊆ ``needs.covered`` ∪ the prepared ones, augmentation, input size) and its release."""
        o, stored = self.data.meta["options"], Margin(**self.data.meta["options"]["margin"])
        covered = needs.covered | set(o["subsamples"])
        if (
            (needs.layout, needs.video_step) != (o["layout"], o["video_step"])
            or needs.T not in o["clip_lengths"]
            or not set(needs.subsample) <= covered
            or needs.input_size > stored.input_size
            or Margin.of(needs.aug, needs.input_size).span(1.0) > stored.span(1.0) + 1e-9
            or (needs.version == 120 and o.get("version", 60) == 60)
        ):
            raise ValueError(
                f"{self.root}: prepared for NTU{o.get('version', 60)}, layout {o['layout']}, clip "
                f"lengths {o['clip_lengths']}, video step {o['video_step']}, subsamples "
                f"{sorted(covered)}, {stored}; this reader needs NTU{needs.version}, "
                f"{needs.layout}, T={needs.T}, step {needs.video_step}, subsample "
                f"{needs.subsample}, {needs.aug} at input {needs.input_size}: prepare again"
            )
