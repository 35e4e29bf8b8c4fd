"""Max RSS and frames/s of ``python -m experiments.predict`` on synthetic videos of growing length.

    python -m benchmarks.bench_predict_memory                    # 15 s, 120 s, 600 s at 1080p, 2 fps
    python -m benchmarks.bench_predict_memory --seconds 2 16 --size 640x480   # a quick run

Each video (a moving figure on a gradient, MJPG .avi at ``--fps``, 2 by default: the frames
held, not the fps, are what memory depends on) is predicted in its own
subprocess (the CLI: decode → clip protocol → JSON → overlay MP4) whose ``ru_maxrss`` is read at
its end: the predictor streams frames in a clip window, so max RSS must not grow with the length
(the issue's bar: 120 s ≤ 1.3 × 15 s). The network is a random tiny one (``--ckpt`` for a real
file, e.g. the demo's ``runs/demo/model.pt``): the rows measure the pipeline's memory, and its
frames/s only with that network. Joins ``make bench`` through ``benchmarks.run.register``
(``--quick``: 2 s and 16 s at 640×480).
Alphabet: F frames, H×W frame size.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from benchmarks.run import REPO, BenchContext, BenchReport, header, register, table

FULL, QUICK = (15, 120, 600), (2, 16)
FPS = 2  # of the synthetic videos: 600 s at 30 fps (18 000 frames) takes hours on 2 CPU cores
CHILD = """
import json, resource, sys, time
from experiments import predict
start = time.perf_counter()
code = predict.main(sys.argv[1:])
wall = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"code": code, "max_rss_kb": rss, "wall_s": wall}))
"""


@dataclass(frozen=True)
class MemoryRow:
    """One video: ``seconds`` long, F ``frames`` of ``size`` (W, H); the subprocess's max RSS
    (MB), its wall time (s) and frames/s over the whole command."""

    seconds: float
    frames: int
    size: tuple[int, int]
    max_rss_mb: float
    wall_s: float

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.wall_s


def write_video(path: Path, seconds: float, fps: int, size: tuple[int, int]) -> Path:
    """An MJPG .avi of a bright disc moving over a dark gradient (cheap to encode)."""
    w, h = size
    background = np.broadcast_to(np.linspace(20, 90, w, dtype=np.uint8)[None, :, None], (h, w, 3))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for i in range(round(seconds * fps)):
        frame = background.copy()
        x = int((0.2 + 0.6 * abs(np.sin(i / 40))) * w)
        cv2.circle(frame, (x, h // 2), h // 6, (230, 200, 170), -1)
        writer.write(frame)
    writer.release()
    return path


def tiny_checkpoint(path: Path, **changes) -> Path:
    """A ``deephar.convert``-style file of a random small Penn network (16 frames, 64 px,
    width 0.25, unless ``changes`` say otherwise)."""
    from deephar.config import PENN_MERGE
    from deephar.models.multitask import build_model

    torch.manual_seed(0)
    small = {"input_size": 64, "pose_blocks": 1, "num_frames": 16, "width": 0.25}
    cfg = PENN_MERGE.with_(**(small | changes))
    state = build_model(cfg).state_dict()
    torch.save({"model": "penn", "config": dataclasses.asdict(cfg), "state_dict": state}, path)
    return path


def measure(
    video: Path, ckpt: Path, out: Path, options: tuple[str, ...] = (), code_root: Path = REPO
) -> MemoryRow:
    """Predict on ``video`` in a subprocess (the code of ``code_root``); its max RSS and time."""
    env = os.environ | {"PYTHONPATH": f"{code_root / 'src'}{os.pathsep}{code_root}"}
    argv = [str(video), f"ckpt={ckpt}", "fast=false", *options, "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=out.parent,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines or '"code": 0' not in lines[-1]:
        raise RuntimeError(f"predict failed on {video}: {done.stderr[-2000:]}")
    child = json.loads(lines[-1])
    reader = cv2.VideoCapture(str(video))
    frames, fps = int(reader.get(cv2.CAP_PROP_FRAME_COUNT)), reader.get(cv2.CAP_PROP_FPS)
    size = (int(reader.get(cv2.CAP_PROP_FRAME_WIDTH)), int(reader.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    reader.release()
    return MemoryRow(frames / fps, frames, size, child["max_rss_kb"] / 1024, child["wall_s"])


def run_rows(
    seconds: tuple[float, ...],
    size: tuple[int, int],
    fps: int,
    ckpt: Path | None,
    work: Path,
    options: tuple[str, ...] = (),
    code_root: Path = REPO,
) -> list[MemoryRow]:
    """One row per length, each video written, predicted in a subprocess, then deleted."""
    ckpt = ckpt or tiny_checkpoint(work / "tiny.pt")
    rows = []
    for s in seconds:
        video = write_video(work / f"video_{s}s.avi", s, fps, size)
        rows.append(measure(video, ckpt, work / "out", options, code_root))
        video.unlink()
    return rows


def markdown(
    rows: list[MemoryRow], ctx: BenchContext, ckpt: Path | None, options: str = "decode_size=480"
) -> str:
    base = rows[0].max_rss_mb
    body = [
        [
            f"{r.seconds:g} s",
            str(r.frames),
            f"{r.size[0]}×{r.size[1]}",
            f"{r.max_rss_mb:.0f}",
            f"{r.max_rss_mb / base:.2f}",
            f"{r.frames_per_s:.1f}",
        ]
        for r in rows
    ]
    columns = ["video", "frames", "size", "max RSS (MB)", "× shortest", "frames/s (whole CLI)"]
    network = str(ckpt) if ckpt else "random tiny Penn network (64 px, 16 frames, width 0.25)"
    extra = {"network": network, "predict options": f"fast=false, {options}"}
    return header(ctx, "predict: max RSS vs video length", extra) + "\n" + table(body, columns)


@register
def predict_memory(ctx: BenchContext) -> BenchReport:
    """``make bench``: 15 / 120 / 600 s at 1080p, 2 fps (quick: 2 / 16 s at 640×480)."""
    seconds, size = (QUICK, (640, 480)) if ctx.quick else (FULL, (1920, 1080))
    with tempfile.TemporaryDirectory() as tmp:
        rows = run_rows(seconds, size, FPS, None, Path(tmp))
    return BenchReport("predict_memory", markdown(rows, ctx, None))


def main(argv: list[str] | None = None) -> list[MemoryRow]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, nargs="+", default=list(FULL))
    ap.add_argument("--size", default="1920x1080", help="W×H of the synthetic videos")
    ap.add_argument("--fps", type=int, default=FPS)
    ap.add_argument("--ckpt", type=Path, help="a real network instead of the random tiny one")
    ap.add_argument("--decode-size", type=int, default=480, help="predict's decode_size")
    ap.add_argument("--code-root", type=Path, default=REPO, help="the checkout whose predict runs")
    ap.add_argument("--out", type=Path, help="write the Markdown table there")
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().replace("×", "x").split("x"))
    command = "python -m benchmarks.bench_predict_memory " + " ".join(argv or sys.argv[1:])
    ctx = BenchContext(quick=False, threads=torch.get_num_threads(), out_dir=REPO, command=command)
    with tempfile.TemporaryDirectory() as tmp:
        options = (f"decode_size={args.decode_size}",)
        rows = run_rows(
            tuple(args.seconds),
            size,
            args.fps,
            args.ckpt,
            Path(tmp),
            options,
            args.code_root.resolve(),
        )
    text = markdown(rows, ctx, args.ckpt, options[0])
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return rows


if __name__ == "__main__":
    main()
