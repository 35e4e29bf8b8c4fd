"""`make bench`: every benchmark, in one run on one machine; Markdown results in benchmarks/results/.

    python -m benchmarks.run [--quick] [--threads 2] [--out benchmarks/results] [--only cpu_pose]

Benchmarks are callables `fn(ctx: BenchContext) -> BenchReport | None` in `BENCHMARKS`. A module
`benchmarks/bench_*.py` joins by decorating its callables with `@register` (run.py imports every
such module before running); `None` means "nothing to measure here" (e.g. no GPU).

`cpu_pose` puts our PyTorch K=8 pose model and the official Keras model (the tf.keras replica of
`benchmarks/keras_reference.py`, run in `.venv-keras` by a subprocess) side by side, with the same
thread count for both: the project's speed target is PyTorch ≤ 0.5 × Keras ms/image.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
KERAS_PY = Path(os.environ.get("KERAS_PY", REPO / ".venv-keras" / "bin" / "python"))
SHARED = Path(os.environ.get("DEEPHAR_SHARED", REPO.parent / "shared")).resolve()
SPEED_TARGET = 0.5  # PyTorch ms/image ≤ 0.5 × Keras ms/image
KERAS_TIMEOUT_S = 1800


@dataclass
class BenchContext:
    quick: bool
    threads: int
    out_dir: Path
    command: str
    runs: int = field(init=False)
    batches: tuple[int, ...] = (1, 8)

    def __post_init__(self) -> None:
        self.runs = 3 if self.quick else 10


@dataclass
class BenchReport:
    name: str  # file stem under the results folder
    markdown: str


Benchmark = Callable[[BenchContext], "BenchReport | None"]
BENCHMARKS: list[Benchmark] = []


def register(fn: Benchmark) -> Benchmark:
    """Add `fn` to the benchmarks `make bench` runs (decorator)."""
    if fn not in BENCHMARKS:
        BENCHMARKS.append(fn)
    return fn


# ---- machine facts ----
def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown"
    names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
    return names[0] if names else platform.processor() or "unknown"


def header(ctx: BenchContext, title: str, extra: dict[str, str]) -> str:
    facts = {
        "command": f"`{ctx.command}`",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": f"{cpu_model()} ({os.cpu_count()} logical cores visible)",
        "threads": str(ctx.threads),
        "torch": torch.__version__,
        **extra,
    }
    return f"## {title}\n\n" + "\n".join(f"- {k}: {v}" for k, v in facts.items()) + "\n"


def table(rows: list[list[str]], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


# ---- PyTorch side ----
def median_ms_per_image(fn: Callable[[], object], batch: int, runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times) / batch


# name -> (fold BN + channels_last, torch.compile, bf16 autocast); see deephar.models.inference
MEMORY_FORMATS = {
    "eager NCHW fp32": (False, False, False),
    "BN folded, channels_last, fp32": (True, False, False),
    "+ torch.compile, fp32": (True, True, False),
    "BN folded, channels_last, bf16 autocast": (True, False, True),
    "+ torch.compile, bf16 autocast": (True, True, True),
}


def pose_variant(model: torch.nn.Module, fast: bool, compiled: bool, bf16: bool):
    from deephar.models.inference import Autocast, compile_for_cpu, prepare_for_inference

    if not fast:
        return model, torch.contiguous_format
    net = prepare_for_inference(model)
    net = compile_for_cpu(net) if compiled else net
    return (Autocast(net) if bf16 else net), torch.channels_last


def torch_pose_cpu(ctx: BenchContext) -> dict:
    """Our K=8 MPII pose model on the CPU, per inference variant.

    Returns {'params': (trainable, float buffers), (variant, batch): ms/image,
    ('dev', variant): max |Δ| of the final pose vs eager fp32, in pixels of the 256² input}.
    """
    from deephar.config import MPII_2D
    from deephar.models.pose import PoseNet

    torch.manual_seed(0)
    model = PoseNet(MPII_2D).eval()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    buffers = sum(b.numel() for b in model.buffers() if b.is_floating_point())
    result: dict = {"params": (trainable, buffers)}
    size = MPII_2D.input_size
    probe = torch.rand(2, 3, size, size) * 2 - 1
    with torch.inference_mode():
        reference = model(probe).pose[-1]
        for name, variant in MEMORY_FORMATS.items():
            net, fmt = pose_variant(model, *variant)
            out = net(probe.contiguous(memory_format=fmt)).pose[-1].float()
            result["dev", name] = float((out - reference).abs().max()) * size
            for b in ctx.batches:
                x = torch.randn(b, 3, size, size).to(memory_format=fmt)
                result[name, b] = median_ms_per_image(lambda x=x, m=net: m(x), b, ctx.runs)
    return result


# ---- Keras side (separate venv, subprocess) ----
def keras_pose_cpu(ctx: BenchContext) -> dict:
    """The official model's timings from `.venv-keras`, or {'error': why} when it cannot run."""
    if not KERAS_PY.exists():
        return {"error": f"not run: {KERAS_PY} missing; create it with `make bench-keras-env`"}
    cmd = [str(KERAS_PY), "-m", "benchmarks.keras_reference", "--json", "--blocks", "8"]
    cmd += ["--threads", str(ctx.threads), "--runs", str(ctx.runs), "--batch"]
    cmd += [str(b) for b in ctx.batches]
    if (SHARED / "parity" / "mpii_2d_k2.h5").exists():
        cmd += ["--parity", str(SHARED / "parity")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=KERAS_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return {"error": f"not run: Keras reference timed out after {KERAS_TIMEOUT_S} s"}
    if proc.returncode != 0:
        return {"error": f"not run: `{' '.join(cmd)}` failed:\n{proc.stderr[-2000:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def keras_summary(keras: dict) -> dict[str, str]:
    if "error" in keras:
        return {"Keras": keras["error"]}
    p = keras["params"]
    facts = {
        "TensorFlow": f"{keras['tensorflow']} (tf.keras replica, TF intra/inter-op threads "
        f"{keras['threads']}; ms/image = best of the medians of `predict_on_batch` and "
        "`tf.function(model)`)",
        "Keras replica = official": f"params {p['trainable']:,} / {p['total']:,}, "
        f"official {p['official'][0]:,} / {p['official'][1]:,}: "
        f"{'match' if keras['params_match_official'] else 'MISMATCH'}",
    }
    if "parity" in keras:
        par = keras["parity"]
        facts["Keras parity (mpii_2d_k2 fixture)"] = (
            f"{'ok' if par['ok'] else 'FAILED'}, max rel. error {par['max_rel_error']:.1e}"
        )
    return facts


def pose_rows(ctx: BenchContext, ours: dict, keras: dict) -> list[list[str]]:
    keras_ms = {t["batch"]: t["ms_per_image"] for t in keras.get("timings", [])}
    label = "PyTorch, {}"
    return [
        pose_row(label.format(fmt), b, ours.get((fmt, b)), keras_ms.get(b), ours.get(("dev", fmt)))
        for fmt in MEMORY_FORMATS
        for b in ctx.batches
    ]


def pose_row(
    label: str, b: int, t_ms: float | None, k_ms: float | None, dev: float | None
) -> list[str]:
    ratio = t_ms / k_ms if t_ms and k_ms else None
    verdict = "–" if ratio is None else ("yes" if ratio <= SPEED_TARGET else "NO")
    return [
        label,
        "–" if dev is None else f"{dev:.3f}",
        str(b),
        "not run" if t_ms is None else f"{t_ms:.1f}",
        "not run" if k_ms is None else f"{k_ms:.1f}",
        "–" if ratio is None else f"{ratio:.2f}",
        verdict,
    ]


@register
def cpu_pose(ctx: BenchContext) -> BenchReport:
    """Side by side: our PyTorch MPII K=8 pose model vs the official Keras model, CPU."""
    try:
        ours = torch_pose_cpu(ctx)
        extra = {"PyTorch params": "{:,} trainable (+ {:,} float buffers)".format(*ours["params"])}
    except ImportError as err:
        ours, extra = {}, {"PyTorch": f"not run: {err}"}
    keras = keras_pose_cpu(ctx)
    extra.update(keras_summary(keras))
    columns = [
        "MPII 2D pose K=8, 256²",
        "max |Δpose| px",
        "batch",
        "PyTorch ms/image",
        "Keras ms/image",
        "ratio",
        "≤ 0.5?",
    ]
    md = header(ctx, "CPU inference, pose model: PyTorch vs official Keras", extra)
    note = (
        "\nMedian of the timed runs after warm-up, random input, inference mode; ratio = "
        "PyTorch / Keras (official fp32 Keras model, same threads). max |Δpose| = largest "
        "deviation of the final pose from eager fp32, in pixels of the 256² input (random "
        "weights). Re-measure on a quiet machine: other processes on the cores skew "
        "both columns.\n"
    )
    return BenchReport("cpu_pose", md + "\n" + table(pose_rows(ctx, ours, keras), columns) + note)


# ---- driver ----
def load_plugins() -> None:
    """Import every `benchmarks/bench_*.py` so that their `@register` callables join."""
    import benchmarks

    for mod in pkgutil.iter_modules(benchmarks.__path__):
        if mod.name.startswith("bench_"):
            importlib.import_module(f"benchmarks.{mod.name}")


def set_torch_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set, or parallel work already started in this process
        pass


def main(argv: list[str] | None = None) -> list[BenchReport]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 timed runs instead of 10")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    args = ap.parse_args(argv)
    command = "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:])
    ctx = BenchContext(args.quick, args.threads, args.out, command.strip())
    set_torch_threads(args.threads)
    load_plugins()
    args.out.mkdir(parents=True, exist_ok=True)
    reports = []
    for fn in BENCHMARKS:
        if args.only and fn.__name__ not in args.only:
            continue
        report = fn(ctx)
        if report is None:
            continue
        (args.out / f"{report.name}.md").write_text(report.markdown)
        print(report.markdown, flush=True)
        reports.append(report)
    return reports


if __name__ == "__main__":
    # Run the registry of the importable `benchmarks.run`, the one `bench_*` modules register in.
    from benchmarks.run import main as run_main

    run_main()
