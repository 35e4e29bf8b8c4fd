"""Record sources over LitData chunks (``datamodules.prepare.chunks`` writes them from a prepared
folder): one item per Human3.6M frame or per NTU video, read through ``litdata.StreamingDataset``
from a local folder or an object store (``s3://…``, cached under ``cache_dir``).
Alphabet: k stored frames of a video.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from datamodules.base import SampleReadError
from datamodules.storage.crops import decode_jpeg, store_matrix
from datamodules.storage.records import Frames, H36MFrame, NTUVideo, Recording


class Chunks:
    """A chunk folder; the ``litdata.StreamingDataset`` opens lazily in each worker process."""

    def __init__(self, input_dir: str | Path, cache_dir: str | Path | None = None):
        self.input_dir = str(input_dir)
        self.cache_dir = str(cache_dir) if cache_dir else None
        self._stream = None
        self._len = sum(b - a for a, b in self.stream.region_of_interest)

    @property
    def stream(self):
        if self._stream is None:
            from litdata import StreamingDataset

            self._stream = StreamingDataset(self.input_dir, cache_dir=self.cache_dir)
        return self._stream

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_stream": None}

    def __len__(self) -> int:
        return self._len

    def item(self, i: int) -> tuple[dict, dict]:
        """Item ``i`` and its meta."""
        item = self.stream[int(i)]
        return item, json.loads(item["meta"])


def stored_matrix(item: dict) -> np.ndarray:
    """The (2, 3) original → stored pixels matrix of an item's region (x0, y0, side, stored)."""
    r = item["region"]
    return store_matrix(r[None, :2], r[None, 2], r[None, 3])[0]


class H36MChunks(Chunks):
    """Human3.6M frames of a chunk folder (one split)."""

    def read(self, i: int) -> tuple[H36MFrame, Frames]:
        """Item ``i``: its poses and intrinsics, and the stored crop with its matrix."""
        item, meta = self.item(i)
        seq = Recording(meta["subject"], meta["stem"], meta["action"], meta["camera"], 0)
        record = H36MFrame(
            seq,
            meta["frame"],
            item["uv"],
            item["xyz"],
            item["camera"][:2],
            np.float32(item["camera"]),
        )
        return record, Frames(
            decode_jpeg(item["jpeg"], f"{self.input_dir}#{i}"), stored_matrix(item)
        )


class NTUChunks(Chunks):
    """NTU videos of a chunk folder (one split, chosen when writing); single clips only (no frame
    counts without reading every item), and no names list."""

    @property
    def excluded(self) -> dict[str, str]:
        return {}  # an unreadable video fails as a bad sample when read

    def frame_counts(self) -> dict[str, int]:
        raise ValueError("StreamingSource(ntu): multi-clip evaluation reads prepared folders")

    def read(self, v: int) -> NTUVideo:
        """Video ``v``: poses, the video (W, H), its stored crops (read on demand) and matrix."""
        item, meta = self.item(v)
        if meta["num_frames"] == 0:
            raise SampleReadError(f"{self.input_dir}#{v}", f"{meta['name']}: no body")
        off, frames = item["offsets"], {int(f): i for i, f in enumerate(item["frames"])}

        def read(idx: np.ndarray) -> np.ndarray:
            return np.stack(
                [
                    decode_jpeg(
                        item["jpegs"][off[frames[int(i)]] : off[frames[int(i)] + 1]],
                        f"{meta['name']}/{int(i)}",
                    )
                    for i in idx
                ]
            )

        size = (meta["width"], meta["height"])
        return NTUVideo(
            meta["name"],
            item["xyz"],
            item["uv"],
            item["valid"].astype(bool),
            size,
            read,
            stored_matrix(item),
        )
