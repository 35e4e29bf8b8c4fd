"""A prepared NTU folder as ``NTUDataset(prepared=…)`` reads it: per-video poses and stored crops.

Alphabet: n video frames, T clip frames, J = 25 Kinect joints.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from datamodules.base import SampleReadError, read_image
from datamodules.prepare.runner import load_prepared
from datamodules.prepare.store import Margin, store_matrix

Loaded = tuple[np.ndarray, np.ndarray, np.ndarray, Callable | None, tuple[int, int], np.ndarray]


class PreparedVideos:
    """The videos of a prepared NTU folder (``python -m datamodules.prepare ntu``)."""

    def __init__(self, folder: str | Path):
        self.data = load_prepared(folder, "ntu", ("uv", "xyz", "valid"))
        self.root, self.meta, self.table = self.data.root, self.data.meta, self.data.videos
        self._rows: dict[str, int] | None = None

    def names(self) -> list[str]:
        return self.table["name"].tolist()

    def row(self, name: str) -> int:
        if self._rows is None:  # built once per process, on first use
            self._rows = {n: i for i, n in enumerate(self.table["name"])}
        return self._rows[name]

    def skeleton_frames(self, names: list[str]) -> np.ndarray:
        """(V,) frame counts of the skeleton files of ``names`` (what ``multi`` clips count)."""
        return self.table["skeleton_frames"].to_numpy()[[self.row(n) for n in names]]

    def load(self, name: str, images: bool) -> Loaded:
        """xyz (n, J, 3) mm, uv (n, J, 2) px, valid (n, J), a frames reader (0-based indices →
        (T, Q, Q, 3) uint8 stored crops) or None, the video (W, H), the (2, 3) original → stored
        matrix shared by the video's crops."""
        p, v = self.data, self.row(name)
        row = p.video(v)
        folder = p.root / "frames" / name
        if row["num_frames"] == 0:
            raise SampleReadError(folder, "no body in any frame of the skeleton")
        a, b = int(row["pose_start"]), int(row["pose_start"] + row["pose_count"])
        xyz, uv, valid = (np.asarray(p.poses[k][a:b]) for k in ("xyz", "uv", "valid"))
        first = slice(int(np.searchsorted(p.frames["video"], v)), None)
        stored = store_matrix(p.frames["x0"][first][:1], p.frames["side"][first][:1],
                              p.frames["stored"][first][:1])[0]  # fmt: skip

        def read(idx) -> np.ndarray:
            return np.stack([read_image(folder / f"{int(i):06d}.jpg") for i in idx])

        size = (int(row["width"]), int(row["height"]))
        return xyz, uv, valid, read if images else None, size, stored

    def check(self, reader, version: int, subsamples: set[int]) -> None:
        """The stored regions cover ``reader``'s clips (layout, clip length, video step, subsamples
        ⊆ ``subsamples`` ∪ the prepared ones, augmentation, input size) and its release."""
        o, stored = self.meta["options"], Margin(**self.meta["options"]["margin"])
        covered = subsamples | set(o["subsamples"])
        if (
            (reader.layout.name, reader.video_step) != (o["layout"], o["video_step"])
            or reader.T not in o["clip_lengths"]
            or not set(reader.subsample) <= covered
            or reader.input_size > stored.input_size
            or Margin.of(reader.aug, reader.input_size).span(1.0) > stored.span(1.0) + 1e-9
            or (version == 120 and o.get("version", 60) == 60)
        ):
            raise ValueError(
                f"{self.root}: prepared for NTU{o.get('version', 60)}, layout {o['layout']}, clip "
                f"lengths {o['clip_lengths']}, video step {o['video_step']}, subsamples "
                f"{sorted(covered)}, {stored}; this reader needs NTU{version}, "
                f"{reader.layout.name}, T={reader.T}, step {reader.video_step}, subsample "
                f"{reader.subsample}, {reader.aug} at input {reader.input_size}: prepare again"
            )
