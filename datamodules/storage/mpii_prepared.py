"""MPII from a prepared folder (``python -m datamodules.prepare mpii``): the annotated persons of
a split and their crops stored per training scale; the raw root is not read.
Alphabet: N persons of the split, P persons of the folder, K stored scales.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datamodules.base import read_image
from datamodules.storage.crops import Margin, store_matrix
from datamodules.storage.mpii_files import MPIIAnnotations, person_crops
from datamodules.storage.prepared import PreparedError, load_prepared
from datamodules.storage.records import Frames
from datamodules.transforms import AugmentRanges

# the per-person arrays of MPIIAnnotations, stored one .npy each (row = the person's row)
ANNOTATION_ARRAYS = tuple(MPIIAnnotations.__dataclass_fields__)


class PreparedMPII:
    """The persons of one split (``val``) of a prepared folder, with ``MPIIFiles``' interface;
    the stored regions must cover ``aug`` at ``input_size`` (each of its scales stored)."""

    def __init__(self, folder: str | Path, val: bool, aug: AugmentRanges, input_size: int):
        self.data = load_prepared(folder, "mpii", ANNOTATION_ARRAYS)
        options = self.data.meta["options"]
        self.scales = np.asarray(options["scales"], np.float64)  # (K,)
        margin = Margin(**options["margin"])
        absent = [s for s in {1.0, *aug.scales} if not np.isclose(self.scales, s).any()]
        if absent or not margin.covers(aug, input_size):
            raise ValueError(
                f"{folder}: prepared for {margin} at scales {self.scales.tolist()}, which does "
                f"not hold every crop of {aug} at input size {input_size}; prepare again"
            )
        poses = self.data.poses
        self.rows = np.flatnonzero(np.asarray(poses["is_val"]) == val)  # (N,) person rows
        self.ann = MPIIAnnotations(**{k: np.asarray(poses[k][self.rows]) for k in poses})
        self.window = person_crops(self.ann).window  # (N,) the scale-1 windows
        self.table = self.frame_rows(len(poses["image"]))

    def frame_rows(self, persons: int) -> np.ndarray:
        """(P, K) index row of each person's crop at each scale; an error naming the folder and
        the persons whose crops the index lacks."""
        k, frame = len(self.scales), self.data.frames["frame"].astype(np.int64)
        table = np.full((persons, k), -1, np.int64)
        table[frame // k, frame % k] = np.arange(len(frame))
        if (table < 0).any():
            lacking = np.flatnonzero((table < 0).any(axis=1))
            raise PreparedError(
                f"{self.data.root}: index.csv lacks the crops of {len(lacking)} persons (rows "
                f"{lacking[:10].tolist()}); prepare again with the same command to rebuild it"
            )
        return table

    def __len__(self) -> int:
        return len(self.rows)

    def frames(self, i: int, window: float, size: int) -> Frames:
        """The stored crop of person ``i`` for a crop of ``window`` pixels (its window × a stored
        scale) with ``stored`` its original → stored matrix (``size``: checked at start-up)."""
        error = np.abs(self.scales * self.window[i] - window)  # (K,) pixels
        k = int(np.argmin(error))
        if error[k] > 1e-6 * window:
            raise ValueError(
                f"{self.data.root}: scale {window / self.window[i]:.3f} of person {i} not "
                f"prepared (scales {self.scales.tolist()})"
            )
        row, fr = int(self.table[self.rows[i], k]), self.data.frames
        stored = store_matrix(
            fr["x0"][row : row + 1], fr["side"][row : row + 1], fr["stored"][row : row + 1]
        )[0]
        return Frames(read_image(self.data.file(row)), stored)
