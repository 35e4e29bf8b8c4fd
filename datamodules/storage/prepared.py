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


class PreparedError(ValueError):
    """A damaged prepared folder; the message is one line naming the folder and the damage."""


def part_file(root: Path, n: int) -> Path:
    """The index rows of video ``n`` as its job wrote them (``parts/<n>.npz``)."""
    return root / "parts" / f"{n:07d}.npz"


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
    if len(cols) != meta["frames"]:
        raise PreparedError(index_damage(root, meta["frames"], videos, cols))
    frames = {
        "video": cols["video"].to_numpy(np.int32),
        "frame": cols["frame"].to_numpy(np.int32),
        "x0": cols[["x0", "y0"]].to_numpy(np.int32),
        "side": cols["side"].to_numpy(np.int32),
        "stored": cols["stored"].to_numpy(np.int32),
    }
    arrays = {name: np.load(root / f"{name}.npy", mmap_mode="r") for name in poses}
    return Prepared(root, meta, videos, frames, arrays)


def missing_frames(root: Path, videos: pd.DataFrame, index: pd.DataFrame) -> list[str]:
    """ "<video key> frame <i>" for each frame a video's part holds and ``index`` lacks (videos
    whose part is gone are skipped)."""
    present = index.groupby("video")["frame"].apply(set).to_dict()
    out = []
    for n, key in enumerate(videos["key"]):
        try:
            with np.load(part_file(root, n)) as part:
                frames = part["frames.frame"].tolist()
        except (OSError, KeyError, ValueError):
            continue
        out += [f"{key} frame {f}" for f in frames if f not in present.get(n, ())]
    return out


def index_damage(root: Path, frames: int, videos: pd.DataFrame, index: pd.DataFrame) -> str:
    """One line: the folder, the index's row count against the manifest's, the missing frames."""
    missing = missing_frames(root, videos, index)
    named = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return (
        f"{root}: index.csv holds {len(index)} of the {frames} frames {MANIFEST} records"
        + (f"; missing: {named}" if missing else "")
        + " (a damaged index: rerun the same `python -m datamodules.prepare` command to rebuild it)"
    )
