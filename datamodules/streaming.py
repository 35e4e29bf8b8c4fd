"""LitData chunks of a prepared folder, and a map-style source reading them for many nodes.

``write_chunks(prepared, out, dataset)`` writes ``out/train`` and ``out/test`` with
``litdata.optimize``: one item per Human3.6M frame of the protocol (JPEG bytes, stored region, 32-joint
uv / xyz, intrinsics) or per NTU video (its stored JPEGs concatenated, their offsets and frame
numbers, the main actor's poses). ``StreamingSource(input_dir, dataset, **reader options)`` reads
such a folder — a local path or an object-store URL (``s3://…``; cached under ``cache_dir``) —
through ``litdata.StreamingDataset`` and returns the readers' samples (the same crops as the
prepared folder). It is map-style: inside ``MixedRatioDataModule`` the sampler deals each rank a
disjoint shard of every source and keeps every batch's counts exact, as for the other sources.
Alphabet: k stored frames, n video frames, J joints.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from datamodules.h36m import (
    H36M_AUG,
    TEST_STEP,
    TEST_SUBJECTS,
    TRAIN_STEP,
    TRAIN_SUBJECTS,
    Human36MDataset,
    Recording,
)
from datamodules.layouts import get_layout
from datamodules.ntu import (
    NTU_AUG,
    TEST_SUBSAMPLE,
    TRAIN_SUBSAMPLE,
    NTUDataset,
    is_train,
    release_names,
)
from datamodules.prepare.runner import load_prepared
from datamodules.prepare.store import decode_jpeg, store_matrix
from datamodules.transforms import AugmentRanges


@functools.lru_cache(maxsize=4)
def _prepared(root: str, dataset: str):
    names = ("uv", "xyz") if dataset == "h36m" else ("uv", "xyz", "valid")
    return load_prepared(root, dataset, names)


def h36m_record(args: tuple[str, int]) -> dict:
    """One Human3.6M chunk item from (prepared folder, frame row)."""
    root, row = args
    p = _prepared(root, "h36m")
    v = p.video(int(p.frames["video"][row]))
    region = np.r_[p.frames["x0"][row], p.frames["side"][row], p.frames["stored"][row]]
    meta = {"subject": int(v["subject"]), "stem": v["stem"], "action": v["action"],
            "camera": str(v["camera"]), "num_frames": int(v["num_frames"]),
            "frame": int(p.frames["frame"][row])}  # fmt: skip
    return {
        "jpeg": p.file(row).read_bytes(),
        "region": region.astype(np.int32),
        "uv": np.asarray(p.poses["uv"][row], np.float32),
        "xyz": np.asarray(p.poses["xyz"][row], np.float32),
        "camera": np.float64([v["fx"], v["fy"], v["cx"], v["cy"]]),
        "meta": json.dumps(meta),
    }


def ntu_record(args: tuple[str, int]) -> dict:
    """One NTU chunk item from (prepared folder, video index)."""
    root, v = args
    p = _prepared(root, "ntu")
    row = p.video(v)
    rows = np.flatnonzero(p.frames["video"] == v)
    blobs = [p.file(r).read_bytes() for r in rows]
    region = (np.r_[p.frames["x0"][rows[0]], p.frames["side"][rows[0]], p.frames["stored"][rows[0]]]
              if len(rows) else np.zeros(4))  # fmt: skip
    a, b = int(row["pose_start"]), int(row["pose_start"] + row["pose_count"])
    meta = {k: (str(row[k]) if k == "name" else int(row[k]))
            for k in ("name", "num_frames", "width", "height", "skeleton_frames")}  # fmt: skip
    return {
        "jpegs": b"".join(blobs),
        "offsets": np.cumsum([0, *map(len, blobs)]).astype(np.int64),
        "frames": p.frames["frame"][rows].astype(np.int64),
        "region": region.astype(np.int32),
        "uv": np.asarray(p.poses["uv"][a:b], np.float64).reshape(-1, 25, 2),
        "xyz": np.asarray(p.poses["xyz"][a:b], np.float64).reshape(-1, 25, 3),
        "valid": np.asarray(p.poses["valid"][a:b], np.uint8).reshape(-1, 25),
        "meta": json.dumps(meta),
    }


def split_inputs(prepared: str | Path, dataset: str, split: str, benchmark: str = "xsub",
                 version: int = 60) -> list[tuple[str, int]]:  # fmt: skip
    """The (folder, row or video) inputs of ``split``: Human3.6M protocol 1 (train subjects every
    5th frame, test subjects every 64th), NTU ``benchmark``."""
    root = str(Path(prepared).resolve())
    p = _prepared(root, dataset)
    if dataset == "h36m":
        subjects, step = (TRAIN_SUBJECTS, TRAIN_STEP) if split == "train" else (
            TEST_SUBJECTS, TEST_STEP)  # fmt: skip
        chosen = p.videos["subject"].isin(subjects).to_numpy()[p.frames["video"]]
        rows = np.flatnonzero(chosen & (p.frames["frame"] % step == 0))
        return [(root, int(r)) for r in rows]
    names = p.videos["name"].tolist()
    release = set(release_names(names, version))
    return [(root, v) for v, n in enumerate(names)
            if n in release and is_train(n, benchmark, version) == (split == "train")]  # fmt: skip


def write_chunks(prepared: str | Path, out: str | Path, dataset: str, workers: int = 1,
                 chunk_bytes: str = "64MB", splits: tuple[str, ...] = ("train", "test"),
                 benchmark: str = "xsub", version: int = 60) -> None:  # fmt: skip
    """``litdata.optimize`` the prepared samples of each split into ``out/<split>`` (NTU: the
    split of ``benchmark`` in release ``version``)."""
    from litdata import optimize

    fn = h36m_record if dataset == "h36m" else ntu_record
    for split in splits:
        inputs = split_inputs(prepared, dataset, split, benchmark, version)
        if not inputs:
            continue
        optimize(fn=fn, inputs=inputs, output_dir=str(Path(out) / split), chunk_bytes=chunk_bytes,
                 num_workers=max(1, workers), mode="overwrite", verbose=False,
                 start_method="fork")  # fmt: skip


def _stream(input_dir: str, cache_dir: str | None):
    from litdata import StreamingDataset

    return StreamingDataset(input_dir, cache_dir=cache_dir)


class _H36MFromChunks(Human36MDataset):
    """``Human36MDataset.sample`` configured without files (the chunks carry everything)."""

    def __init__(self, layout: str, input_size: int, augment: bool, aug):
        self.layout, self.input_size, self.augment = get_layout(layout), input_size, augment
        self.aug = AugmentRanges(**aug) if isinstance(aug, dict) else (aug or H36M_AUG)


class _NTUFromChunks(NTUDataset):
    """``NTUDataset`` whose videos come from chunk items (random / middle clips)."""

    def __init__(self, source: StreamingSource, layout: str, clip_length: int, input_size: int,
                 augment: bool, aug, subsample, clip_sampling, video_step: int = 2):  # fmt: skip
        self.source, self.mode, self.layout, self.T = (
            source,
            "images",
            get_layout(layout),
            clip_length,
        )
        self.input_size, self.video_step, self.augment = input_size, video_step, augment
        self.aug = AugmentRanges(**aug) if isinstance(aug, dict) else (aug or NTU_AUG)
        self.clip_sampling = clip_sampling or ("random" if augment else "middle")
        if self.clip_sampling == "multi":
            raise ValueError("StreamingSource(ntu): multi-clip evaluation reads prepared folders")
        default = TRAIN_SUBSAMPLE if augment else TEST_SUBSAMPLE
        self.subsample = tuple(np.atleast_1d(subsample or default).astype(int).tolist())
        self.items = None

    def _load_item(self, v: int) -> tuple[str, tuple]:
        item = self.source.stream[v]
        meta = json.loads(item["meta"])
        from datamodules.base import SampleReadError

        if meta["num_frames"] == 0:
            raise SampleReadError(f"{self.source.input_dir}#{v}", f"{meta['name']}: no body")
        off, frames = item["offsets"], {int(f): i for i, f in enumerate(item["frames"])}

        def read(idx):
            return np.stack([decode_jpeg(item["jpegs"][off[frames[int(i)]] : off[frames[int(i)] + 1]],
                                         f"{meta['name']}/{int(i)}") for i in idx])  # fmt: skip

        r = item["region"]
        stored = store_matrix(r[None, :2], r[None, 2], r[None, 3])[0]
        size = (meta["width"], meta["height"])
        loaded = (item["xyz"], item["uv"], item["valid"].astype(bool), read, size, stored)
        return meta["name"], loaded


class StreamingSource(Dataset):
    """Training samples from LitData chunks of ``write_chunks`` (local folder or object store).

    dataset "h36m": reader options layout, input_size, augment, aug; "ntu": also clip_length,
    subsample, clip_sampling. ``len`` = items of the folder (all ranks: the sampler shards).
    """

    def __init__(self, input_dir: str | Path, dataset: str, cache_dir: str | Path | None = None,
                 layout: str | None = None, input_size: int = 256, augment: bool = True,
                 aug=None, clip_length: int = 20, subsample=None, clip_sampling=None):  # fmt: skip
        self.input_dir, self.dataset = str(input_dir), dataset
        self.cache_dir = str(cache_dir) if cache_dir else None
        if dataset == "h36m":
            self.reader = _H36MFromChunks(layout or "pa17j", input_size, augment, aug)
        elif dataset == "ntu":
            self.reader = _NTUFromChunks(self, layout or "pa20j", clip_length, input_size, augment,
                                         aug, subsample, clip_sampling)  # fmt: skip
        else:
            raise ValueError(f"StreamingSource: dataset must be 'h36m' or 'ntu', got {dataset!r}")
        self._stream = None
        self._len = sum(b - a for a, b in self.stream.region_of_interest)

    @property
    def stream(self):
        """The ``litdata.StreamingDataset`` (opened lazily in each worker process)."""
        if self._stream is None:
            self._stream = _stream(self.input_dir, self.cache_dir)
        return self._stream

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_stream": None}

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int) -> dict:
        if self.dataset == "ntu":
            return self.reader[int(i)]
        from datamodules.base import to_tensors

        item = self.stream[int(i)]
        meta, r = json.loads(item["meta"]), item["region"]
        image = decode_jpeg(item["jpeg"], f"{self.input_dir}#{i}")
        stored = store_matrix(r[None, :2], r[None, 2], r[None, 3])[0]
        out = self.reader.sample(image, stored, item["uv"], item["xyz"], item["camera"][:2])
        seq = Recording(meta["subject"], meta["stem"], meta["action"], meta["camera"], 0)
        out.update(camera=np.float32(item["camera"]), dataset="h36m",
                   action=np.int64(_action_index(seq.action)),
                   sample_id=f"h36m/S{seq.subject}/{seq.stem}/{meta['frame']}")  # fmt: skip
        return to_tensors(out)


def _action_index(action: str) -> int:
    from datamodules.h36m import ACTIONS

    return ACTIONS.index(action)
