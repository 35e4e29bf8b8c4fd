"""Human3.6M from a prepared folder (``python -m datamodules.prepare h36m``): the stored crops,
poses and intrinsics of the protocol's frames; the raw root is not read. Alphabet: N frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from datamodules.base import read_image
from datamodules.storage.crops import Margin, store_matrix
from datamodules.storage.prepared import load_prepared
from datamodules.storage.records import Frames, H36MFrame, Recording
from datamodules.transforms import AugmentRanges


class PreparedH36M:
    """The prepared frames with index % step == 0 of the selected subjects and actions; the
    stored margin must cover ``aug`` at ``input_size``."""

    def __init__(
        self,
        folder: str | Path,
        subjects: Sequence[int],
        actions: Sequence[str] | None,
        step: int,
        aug: AugmentRanges,
        input_size: int,
    ):
        self.data = load_prepared(folder, "h36m", ("uv", "xyz"))
        videos, frames = self.data.videos, self.data.frames
        margin = Margin(**self.data.meta["options"]["margin"])
        if margin.span(1.0) < Margin.of(aug, input_size).span(1.0) - 1e-9 or (
            input_size > margin.input_size
        ):
            raise ValueError(
                f"{folder}: prepared for {margin}, narrower than {aug} at "
                f"input size {input_size}; prepare again with wider ranges"
            )
        if absent := sorted(set(subjects) - set(videos["subject"])):
            raise FileNotFoundError(f"{folder}: Human3.6M subjects {absent} were not prepared")
        keep = videos["subject"].isin(subjects).to_numpy()
        if actions is not None:
            keep &= videos["action"].isin(actions).to_numpy()
        self.sequences = [
            Recording(int(v.subject), v.stem, v.action, str(v.camera), int(v.num_frames))
            for v in videos[keep].itertuples()
        ]
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

    def read(self, i: int) -> tuple[H36MFrame, Frames]:
        """Item ``i``: its poses and intrinsics, and the stored crop with its matrix."""
        p, row = self.data, int(self.item_row[i])
        v, fr = p.video(int(p.frames["video"][row])), p.frames
        stored = store_matrix(
            fr["x0"][row : row + 1], fr["side"][row : row + 1], fr["stored"][row : row + 1]
        )[0]
        record = H36MFrame(
            self.sequences[self.item_seq[i]],
            int(self.item_frame[i]),
            np.asarray(p.poses["uv"][row]),
            np.asarray(p.poses["xyz"][row]),
            np.array([v["fx"], v["fy"]], np.float64),
            np.float32([v["fx"], v["fy"], v["cx"], v["cy"]]),
        )
        return record, Frames(read_image(p.file(row)), stored)
