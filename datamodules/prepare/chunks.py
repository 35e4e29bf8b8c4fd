"""LitData chunks of a prepared folder (``python -m datamodules.prepare … --chunks DIR``).

``write_chunks(prepared, out, dataset)`` writes ``out/train`` and ``out/test`` with
``litdata.optimize``: one item per Human3.6M frame of the protocol (JPEG bytes, stored region,
32-joint uv / xyz, intrinsics) or per NTU video (its stored JPEGs concatenated, their offsets and
frame numbers, the main actor's poses). ``datamodules.storage.chunks`` reads them back.
Alphabet: k stored frames, n video frames, J joints.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from datamodules.storage.h36m_files import TEST_STEP, TEST_SUBJECTS, TRAIN_STEP, TRAIN_SUBJECTS
from datamodules.storage.ntu_files import is_train, release_names
from datamodules.storage.prepared import load_prepared


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
    meta = {
        "subject": int(v["subject"]),
        "stem": v["stem"],
        "action": v["action"],
        "camera": str(v["camera"]),
        "num_frames": int(v["num_frames"]),
        "frame": int(p.frames["frame"][row]),
    }
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
    region = (
        np.r_[p.frames["x0"][rows[0]], p.frames["side"][rows[0]], p.frames["stored"][rows[0]]]
        if len(rows)
        else np.zeros(4)
    )
    a, b = int(row["pose_start"]), int(row["pose_start"] + row["pose_count"])
    meta = {
        k: (str(row[k]) if k == "name" else int(row[k]))
        for k in ("name", "num_frames", "width", "height", "skeleton_frames")
    }
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


def split_inputs(
    prepared: str | Path, dataset: str, split: str, benchmark: str = "xsub", version: int = 60
) -> list[tuple[str, int]]:
    """The (folder, row or video) inputs of ``split``: Human3.6M protocol 1 (train subjects every
    5th frame, test subjects every 64th), NTU ``benchmark``."""
    root = str(Path(prepared).resolve())
    p = _prepared(root, dataset)
    if dataset == "h36m":
        subjects, step = (
            (TRAIN_SUBJECTS, TRAIN_STEP) if split == "train" else (TEST_SUBJECTS, TEST_STEP)
        )
        chosen = p.videos["subject"].isin(subjects).to_numpy()[p.frames["video"]]
        rows = np.flatnonzero(chosen & (p.frames["frame"] % step == 0))
        return [(root, int(r)) for r in rows]
    names = p.videos["name"].tolist()
    release = set(release_names(names, version))
    return [
        (root, v)
        for v, n in enumerate(names)
        if n in release and is_train(n, benchmark, version) == (split == "train")
    ]


def write_chunks(
    prepared: str | Path,
    out: str | Path,
    dataset: str,
    workers: int = 1,
    chunk_bytes: str = "64MB",
    splits: tuple[str, ...] = ("train", "test"),
    benchmark: str = "xsub",
    version: int = 60,
) -> None:
    """``litdata.optimize`` the prepared samples of each split into ``out/<split>`` (NTU: the
    split of ``benchmark`` in release ``version``)."""
    from litdata import optimize

    fn = h36m_record if dataset == "h36m" else ntu_record
    for split in splits:
        inputs = split_inputs(prepared, dataset, split, benchmark, version)
        if not inputs:
            continue
        optimize(
            fn=fn,
            inputs=inputs,
            output_dir=str(Path(out) / split),
            chunk_bytes=chunk_bytes,
            num_workers=max(1, workers),
            mode="overwrite",
            verbose=False,
            start_method="fork",
        )
