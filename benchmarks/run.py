"""`make bench`: every benchmark, in one run on one machine; Markdown results in benchmarks/results/.

    python -m benchmarks.run [--quick] [--threads 2] [--out benchmarks/results] [--only cpu_pose]

Benchmarks are callables `fn(ctx: BenchContext) -> BenchReport | None` in `BENCHMARKS`. A module
`benchmarks/bench_*.py` joins by decorating its callables with `@register` (run.py imports every
such module before running); `None` means "nothing to measure here" (e.g. no GPU).

`cpu_pose` (`benchmarks/bench_cpu_pose.py`) puts every CPU inference variant of our K=8 pose model
and the official Keras model (the tf.keras replica of `benchmarks/keras_reference.py`, served in
`.venv-keras` by a subprocess) side by side, interleaved, with the same thread count for both: the
project's speed target is PyTorch ≤ 0.5 × Keras ms/image.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
KERAS_PY = Path(os.environ.get("KERAS_PY", REPO / ".venv-keras" / "bin" / "python"))
SHARED = Path(os.environ.get("DEEPHAR_SHARED", REPO.parent / "shared")).resolve()
SPEED_TARGET = 0.5  # PyTorch ms/image ≤ 0.5 × Keras ms/image


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
