"""Run a preparation: one job per video over ``--workers`` processes, resumable, verified, indexed.

Folder written (``out``)::

    frames/<video key>/<frame:06d>.jpg   the stored crops (0-based frame numbers of the video)
    parts/<n>.npz, parts/<n>.json        one video's index rows + poses, and its completion marker
    videos.csv                           one row per video: key, dataset fields, pose_start/_count
    index.csv                            one row per stored frame: video, frame, file, x0, y0, side,
                                         stored (the region and its stored side, see ``store``)
    <pose array>.npy                     per-dataset pose arrays (memory-mapped by the readers)
    prepared.json                        settings + counts; written last: marks a complete folder

Resume: a video whose marker exists, records the same options and whose frames folder holds the
marker's file count and byte total is skipped; any other video is redone from scratch. Verification (last): every indexed file
exists, has the size of a Q×Q JPEG that decodes. Alphabet: N stored frames, V videos.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from datamodules.base import read_image
from datamodules.storage.prepared import (  # noqa: F401  (load_prepared, Prepared: re-exported)
    FRAME_COLUMNS,
    MANIFEST,
    VERSION,
    Prepared,
    load_prepared,
    part_file,
)


@dataclass
class Part:
    """One video's output: ``video`` scalars (a row of videos.csv), ``frames`` per stored frame
    (frame (n,), x0 (n, 2), side (n,), stored (n,)), ``poses`` arrays of any first length."""

    video: dict[str, Any]
    frames: dict[str, np.ndarray]
    poses: dict[str, np.ndarray] = field(default_factory=dict)
    bytes: int = 0


@dataclass(frozen=True)
class Job:
    """One video to prepare: ``key`` (its frames folder, unique) and what the dataset needs."""

    key: str
    args: dict[str, Any]


JobFn = Callable[[Job, Path, dict], Part]
JOB_UNITS = {"mpii": "groups of persons"}  # what a job is, when not a video


def _marker(out: Path, n: int) -> tuple[Path, Path]:
    npz = part_file(out, n)
    return npz, npz.with_suffix(".json")


def is_done(out: Path, n: int, job: Job, options: dict | None = None) -> bool:
    """The video's marker matches its frames folder (file count and byte total) and, when given,
    the run's ``options`` (a rerun with other options redoes the video)."""
    npz, marker = _marker(out, n)
    try:
        meta = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    files = list((out / "frames" / job.key).glob("*.jpg"))
    return (
        npz.is_file()
        and meta.get("key") == job.key
        and (options is None or meta.get("options") == json.loads(json.dumps(options)))
        and len(files) == meta["count"]
        and sum(p.stat().st_size for p in files) == meta["bytes"]
    )


def run_one(fn: JobFn, job: Job, n: int, out: Path, options: dict) -> str:
    """Prepare one video from scratch and write its part, then its marker (last)."""
    folder = out / "frames" / job.key
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    part = fn(job, folder, options)
    npz, marker = _marker(out, n)
    arrays = {f"frames.{k}": v for k, v in part.frames.items()}
    arrays |= {f"poses.{k}": v for k, v in part.poses.items()}
    with open(npz, "wb") as f:
        np.savez(f, video=np.array(json.dumps(part.video)), **arrays)
    count = len(part.frames["frame"])
    marker.write_text(
        json.dumps({"key": job.key, "count": count, "bytes": part.bytes, "options": options})
    )
    return job.key


def run_jobs(fn: JobFn, jobs: list[Job], out: Path, options: dict, workers: int = 1) -> int:
    """Run every unfinished job (progress bar with ETA on stderr); returns the number run."""
    (out / "parts").mkdir(parents=True, exist_ok=True)
    todo = [(n, job) for n, job in enumerate(jobs) if not is_done(out, n, job, options)]
    bar = tqdm(
        total=len(jobs),
        initial=len(jobs) - len(todo),
        unit="video",
        file=sys.stderr,
        desc=f"prepare → {out}",
        dynamic_ncols=True,
    )
    try:
        if workers <= 1:
            for n, job in todo:
                run_one(fn, job, n, out, options)
                bar.update()
        else:
            with ProcessPoolExecutor(workers) as pool:
                futures = [pool.submit(run_one, fn, job, n, out, options) for n, job in todo]
                for future in as_completed(futures):
                    future.result()
                    bar.update()
    finally:
        bar.close()
    return len(todo)


def merge(out: Path, jobs: list[Job]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Concatenate the parts into videos.csv, index.csv and one .npy per pose array."""
    videos, frames, poses, start = [], [], {}, 0
    for n, job in enumerate(jobs):
        with np.load(_marker(out, n)[0]) as part:
            row = json.loads(str(part["video"]))
            count = None
            for name in (k for k in part.files if k.startswith("poses.")):
                poses.setdefault(name[6:], []).append(part[name])
                count = len(part[name])
            row |= {"key": job.key, "pose_start": start, "pose_count": count or 0}
            start += count or 0
            f = {k[7:]: part[k] for k in part.files if k.startswith("frames.")}
        videos.append(row)
        frames.append(
            pd.DataFrame(
                {
                    "video": n,
                    "frame": f["frame"],
                    "file": [f"frames/{job.key}/{i:06d}.jpg" for i in f["frame"]],
                    "x0": f["x0"][:, 0],
                    "y0": f["x0"][:, 1],
                    "side": f["side"],
                    "stored": f["stored"],
                }
            )
        )
    index = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FRAME_COLUMNS)
    table = pd.DataFrame(videos)
    table.to_csv(out / "videos.csv", index=False)
    index.to_csv(out / "index.csv", index=False)
    for name, arrays in poses.items():
        np.save(out / f"{name}.npy", np.concatenate(arrays))
    return table, index


def _verify_chunk(out: Path, files: list[str], stored: list[int]) -> list[str]:
    problems = []
    for name, q in zip(files, stored):
        try:
            image = read_image(out / name)
            if image.shape[:2] != (q, q):
                problems.append(f"{out / name}: {image.shape[1::-1]} instead of {q}×{q}")
        except OSError as err:
            problems.append(str(err))
    return problems


def verify(out: Path, index: pd.DataFrame, workers: int = 1, chunk: int = 2048) -> list[str]:
    """Every indexed frame exists, decodes, and has its stored size; returns the problems."""
    files, stored = index["file"].tolist(), index["stored"].astype(int).tolist()
    chunks = [(files[i : i + chunk], stored[i : i + chunk]) for i in range(0, len(files), chunk)]
    if workers <= 1:
        return [p for f, q in chunks for p in _verify_chunk(out, f, q)]
    with ProcessPoolExecutor(workers) as pool:
        results = pool.map(_verify_chunk, [out] * len(chunks), *zip(*chunks)) if chunks else []
        return [p for r in results for p in r]


def prepare(
    dataset: str,
    fn: JobFn,
    jobs: list[Job],
    out: str | Path,
    options: dict,
    workers: int = 1,
    log: Callable[[str], None] = print,
) -> dict:
    """Run, merge, verify; write ``prepared.json`` when every frame verifies. Returns its dict.
    Raises RuntimeError listing (up to 10 of) the files that failed verification."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    start = time.perf_counter()
    ran = run_jobs(fn, jobs, out, options, workers)
    unit = JOB_UNITS.get(dataset, "videos")
    log(f"{dataset}: {ran} {unit} prepared, {len(jobs) - ran} already done")
    videos, index = merge(out, jobs)
    problems = verify(out, index, workers)
    if problems:
        raise RuntimeError(
            f"{out}: {len(problems)} prepared frames failed verification (rerun to redo them):\n"
            + "\n".join(problems[:10])
        )
    manifest = {
        "version": VERSION,
        "dataset": dataset,
        "videos": len(videos),
        "frames": len(index),
        "options": options,
        "seconds": round(time.perf_counter() - start, 1),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str))
    log(f"{dataset}: {len(index)} frames of {len(videos)} {unit} verified → {out}")
    return manifest
