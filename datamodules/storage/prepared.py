"""A prepared folder as the readers open it (``python -m datamodules.prepare`` writes it; see
``datamodules.prepare.runner`` for the layout): the videos table, the per-frame index, the
memory-mapped pose arrays. Alphabet: N stored frames.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

VERSION = 1
MANIFEST = "prepared.json"
FRAME_COLUMNS = ("video", "frame", "x0", "y0", "side", "stored")


@dataclass
class Prepared:
    """A complete prepared folder, loaded lazily: ``videos`` table, per-frame numpy columns
    ``frames`` (video, frame (N,), x0 (N, 2), side, stored (N,)), memory-mapped ``poses``."""

    root: Path
    meta: dict
    videos: pd.DataFrame
    frames: dict[str, np.ndarray]
    poses: dict[str, np.ndarray]
    _rows: list[dict] | None = field(default=None, repr=False)

    def video(self, v: int) -> dict:
        """Row ``v`` of videos.csv as a dict (a list lookup per sample, not a pandas ``iloc``)."""
        if self._rows is None:  # built once per process, on first use
            self._rows = self.videos.to_dict("records")
        return self._rows[v]

    def file(self, row: int) -> Path:
        """The JPEG of frame row ``row`` (derived, so no per-frame strings are kept)."""
        key = self.video(int(self.frames["video"][row]))["key"]
        return self.root / "frames" / key / f"{int(self.frames['frame'][row]):06d}.jpg"


def load_prepared(root: str | Path, dataset: str, poses: tuple[str, ...]) -> Prepared:
    """Open a prepared folder of ``dataset``; errors name the folder when it is incomplete."""
    root = Path(root)
    try:
        meta = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        raise FileNotFoundError(
            f"{root / MANIFEST} not found or unreadable: not a complete prepared folder (run "
            f"`python -m datamodules.prepare {dataset} <root> --out {root}`)"
        ) from None
    if meta.get("dataset") != dataset or meta.get("version") != VERSION:
        raise ValueError(
            f"{root}: prepared for {meta.get('dataset')!r} v{meta.get('version')}, "
            f"not {dataset!r} v{VERSION}"
        )
    videos = pd.read_csv(root / "videos.csv", dtype={"key": str})
    cols = pd.read_csv(root / "index.csv", usecols=list(FRAME_COLUMNS), dtype=np.int64)
    frames = {
        "video": cols["video"].to_numpy(np.int32),
        "frame": cols["frame"].to_numpy(np.int32),
        "x0": cols[["x0", "y0"]].to_numpy(np.int32),
        "side": cols["side"].to_numpy(np.int32),
        "stored": cols["stored"].to_numpy(np.int32),
    }
    arrays = {name: np.load(root / f"{name}.npy", mmap_mode="r") for name in poses}
    return Prepared(root, meta, videos, frames, arrays)
