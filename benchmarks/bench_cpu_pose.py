"""`make bench` cpu_pose: every CPU inference variant of the K=8 MPII pose model (256²) beside the
official model in Keras, interleaved repetition by repetition.

For each variant and batch size: ms/image (median of the rounds), the ratio to the Keras replica
measured in the same rounds, the % of the CPU's fp32 peak (FLOPs from
``torch.utils.flop_counter`` ÷ time ÷ peak), the compile or quantization cost, the largest pose
deviation from eager fp32 in pixels, and which variant ``predict`` picks (``for_inference``).
Each round times one call of every variant and one of Keras (a long-lived ``--serve``
subprocess), so load from other processes hits all of them alike.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchmarks.run import (
    KERAS_PY,
    REPO,
    SHARED,
    SPEED_TARGET,
    BenchContext,
    BenchReport,
    header,
    register,
    table,
)
from deephar.config import MPII_2D
from deephar.models.inference import choose_runtime, for_inference
from deephar.models.openvino_trunk import openvino_available
from deephar.models.pose import PoseNet
from deephar.models.precision import choose_precision, cpu_flags, isa_name

Runner = Callable[[np.ndarray], np.ndarray]  # images (B, 3, H, W) → final pose (B, J, 2)


@dataclass
class Variant:
    name: str
    run: Runner
    setup_s: float  # compile / export + quantization time
    times: dict[int, list[float]] = field(default_factory=dict)  # batch → ms/image per round
    dev_px: float = float("nan")


# ---- the machine's fp32 peak ----
def cpu_peak_gflops(threads: int, flags: set[str] | None = None) -> tuple[float, str]:
    """fp32 peak of ``threads`` cores: cores × 2 FMA pipes × lanes × 2 FLOP × GHz, and how.

    Lanes: 16 with AVX-512 (8 on AMD Zen 4, family 25, which splits 512-bit ops in two), 8 with
    AVX2, 4 otherwise; the clock is /proc/cpuinfo's current 'cpu MHz' (no turbo knowledge).
    """
    flags = cpu_flags() if flags is None else flags
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = dict(ln.split(":", 1) for ln in info.splitlines() if ":" in ln)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    ghz = float(fields.get("cpu MHz", "2000")) / 1000
    family = int(fields.get("cpu family", "0") or 0)
    lanes = 16 if flags and "avx512f" in flags else 8 if flags and "avx2" in flags else 4
    if lanes == 16 and fields.get("vendor_id") == "AuthenticAMD" and family == 25:
        lanes = 8
    peak = threads * 2 * lanes * 2 * ghz
    how = f"{threads} cores × 2 FMA × {lanes} fp32 lanes × 2 FLOP × {ghz:.2f} GHz"
    return peak, how


def gflop_per_image(model: torch.nn.Module, size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / 1e9


# ---- variants ----
def _torch_runner(net: torch.nn.Module) -> Runner:
    def run(x: np.ndarray) -> np.ndarray:
        return net(torch.from_numpy(x)).pose[-1].float().numpy()

    return run


def _fast(model: torch.nn.Module, precision: str, runtime: str, compile: bool = False) -> Runner:
    net = for_inference(model, precision=precision, compile=compile, verbose=False,
                        runtime=runtime)  # fmt: skip
    return _torch_runner(net)


def build_variants(model: torch.nn.Module, ctx: BenchContext, work: Path) -> list[Variant]:
    """Eager, for_inference fp32/bf16 (PyTorch ± compile, OpenVINO engine), ONNX Runtime
    fp32/int8, OpenVINO int8."""
    native = choose_precision("cpu").name == "bf16"
    # emulated bf16 is 12–18× slower than fp32 (issue 13): not worth the bench's time
    precisions = ["fp32", "bf16"] if native else ["fp32"]
    specs: list[tuple[str, Callable[[], Runner]]] = [
        ("eager NCHW fp32", lambda: _torch_runner(model))
    ]
    for p in precisions:
        label = "fp32" if p == "fp32" else "bf16 trunk"
        specs += [
            (f"BN folded + channels_last, {label}", lambda p=p: _fast(model, p, "torch")),
            (f"BN folded + channels_last, {label}, torch.compile",
             lambda p=p: _fast(model, p, "torch", compile=True)),
        ]  # fmt: skip
        if openvino_available():
            specs.append((f"BN folded, OpenVINO engine, {label}",
                          lambda p=p: _fast(model, p, "openvino")))  # fmt: skip
    specs += onnx_specs(model, ctx, work)
    variants = []
    size = MPII_2D.input_size
    sample = {b: np.zeros((b, 3, size, size), np.float32) for b in ctx.batches}
    for name, build in specs:
        t0 = time.perf_counter()
        try:
            run = build()
            with torch.inference_mode():
                for b in ctx.batches:  # compile for every batch size inside the setup time
                    run(sample[b])
        except ImportError as err:
            print(f"cpu_pose: {name} not run: {err}", flush=True)
            continue
        variants.append(Variant(name, run, time.perf_counter() - t0))
    return variants


def onnx_specs(model, ctx: BenchContext, work: Path) -> list[tuple[str, Callable[[], Runner]]]:
    """ONNX Runtime fp32 and int8 (trunk), OpenVINO int8, when installed."""
    try:
        from deephar.export import export_onnx, onnx_session
        from deephar.export.quantize import quantize_int8
    except ImportError:
        return []
    size = MPII_2D.input_size
    fp32, int8 = work / "pose.onnx", work / "pose.int8.onnx"
    gen = np.random.default_rng(0)

    def calibrate() -> list[np.ndarray]:
        # random weights: the activation ranges of random crops are those of any crop
        return [gen.uniform(-1, 1, (8, 3, size, size)).astype(np.float32) for _ in range(4)]

    def ort(path: Path, quantize: bool) -> Runner:
        export_onnx(model, fp32, "pose")
        if quantize:
            quantize_int8(fp32, path, calibrate())
        session = onnx_session(path, ctx.threads)
        return lambda x: session.run(None, {"images": x})[0]

    def openvino() -> Runner:
        import openvino as ov

        if not int8.exists():
            ort(int8, True)
        compiled = ov.Core().compile_model(str(int8), "CPU", {"INFERENCE_NUM_THREADS": ctx.threads})
        return lambda x: compiled(x)[0]

    return [
        ("ONNX Runtime fp32", lambda: ort(fp32, False)),
        ("ONNX Runtime int8 trunk (QDQ, per-channel)", lambda: ort(int8, True)),
        ("OpenVINO int8 trunk (same QDQ graph)", openvino),
    ]


# ---- Keras, served by a subprocess of .venv-keras ----
class KerasServer:
    """``benchmarks.keras_reference --serve`` in ``.venv-keras``: one timed call per request."""

    def __init__(self, threads: int, parity: bool = True) -> None:
        cmd = [str(KERAS_PY), "-m", "benchmarks.keras_reference", "--serve", "--blocks", "8"]
        cmd += ["--threads", str(threads)]
        if parity and (SHARED / "parity" / "mpii_2d_k2.h5").exists():
            cmd += ["--parity", str(SHARED / "parity")]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.report = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"Keras reference exited ({self.proc.wait()})")
        return json.loads(line)

    def time(self, batch: int, train: bool = False) -> float:
        """ms/image of one inference call (``train``: one training step) of ``batch`` images."""
        self.proc.stdin.write(f"{'train ' if train else ''}{batch}\n")
        self.proc.stdin.flush()
        return self._read()["ms_per_image"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# ---- the interleaved measurement ----
def measure(ctx: BenchContext) -> tuple[list[Variant], dict[int, list[float]], dict]:
    """(variants with their times, Keras ms/image per batch per round, Keras report or error)."""
    torch.manual_seed(0)
    model = PoseNet(MPII_2D).eval()
    size = MPII_2D.input_size
    with tempfile.TemporaryDirectory() as tmp:
        variants = build_variants(model, ctx, Path(tmp))
    probe = np.random.default_rng(1).uniform(-1, 1, (2, 3, size, size)).astype(np.float32)
    with torch.inference_mode():
        reference = _torch_runner(model)(probe)
        for v in variants:
            v.dev_px = float(np.abs(v.run(probe) - reference).max()) * size
    keras, report = None, {}
    if KERAS_PY.exists():
        try:
            keras = KerasServer(ctx.threads)
            report = keras.report
        except (OSError, RuntimeError, json.JSONDecodeError) as err:
            report = {"error": f"not run: {err}"}
    else:
        report = {"error": f"not run: {KERAS_PY} missing; create it with `make bench-keras-env`"}
    xs = {b: np.random.default_rng(b).uniform(-1, 1, (b, 3, size, size)) for b in ctx.batches}
    xs = {b: x.astype(np.float32) for b, x in xs.items()}
    keras_ms: dict[int, list[float]] = {b: [] for b in ctx.batches}
    if keras is not None:
        for b in ctx.batches:  # warm-up: the server picks its faster method per batch size
            keras.time(b)
    with torch.inference_mode():
        for r in range(ctx.runs):
            for b in ctx.batches:
                if keras is not None:
                    keras_ms[b].append(keras.time(b))
                k = r % len(variants)  # rotate the order: no variant always runs right after Keras
                for v in variants[k:] + variants[:k]:
                    t0 = time.perf_counter()
                    v.run(xs[b])
                    v.times.setdefault(b, []).append(1000 * (time.perf_counter() - t0) / b)
    if keras is not None:
        keras.close()
    return variants, keras_ms, report


def picked_variant() -> str:
    """The variant ``for_inference(net)`` (predict, evaluate, the demo) builds on this machine."""
    name = "bf16 trunk" if choose_precision("cpu").name == "bf16" else "fp32"
    if choose_runtime(torch.device("cpu")) == "openvino":
        return f"BN folded, OpenVINO engine, {name}"
    return f"BN folded + channels_last, {name}"


def report_rows(
    ctx: BenchContext, variants: list[Variant], keras_ms: dict[int, list[float]], gflop: float
) -> tuple[list[list[str]], dict]:
    peak, _ = cpu_peak_gflops(ctx.threads)
    picked = picked_variant()
    rows, summary = [], {}
    for v in variants:
        for b in ctx.batches:
            t = statistics.median(v.times[b])
            k = statistics.median(keras_ms[b]) if keras_ms[b] else None
            ratio = t / k if k else None
            mark = " ← predict" if v.name == picked else ""
            summary[v.name, b] = (t, ratio)
            rows.append(
                [
                    v.name + mark,
                    str(b),
                    f"{t:.1f}",
                    "not run" if k is None else f"{k:.1f}",
                    "–" if ratio is None else f"{ratio:.2f}",
                    f"{100 * gflop / t / peak * 1000:.0f} %",
                    f"{v.dev_px:.3f}",
                    f"{v.setup_s:.0f}",
                    "–" if ratio is None else ("yes" if ratio <= SPEED_TARGET else "NO"),
                ]
            )
    return rows, summary


@register
def cpu_pose(ctx: BenchContext) -> BenchReport:
    """Side by side: our PyTorch MPII K=8 pose model (every variant) vs the official Keras model."""
    load0 = os.getloadavg()
    variants, keras_ms, keras = measure(ctx)
    load1 = os.getloadavg()
    gflop = gflop_per_image(PoseNet(MPII_2D).eval(), MPII_2D.input_size)
    peak, how = cpu_peak_gflops(ctx.threads)
    flags, picked = cpu_flags(), choose_precision("cpu")
    extra = {
        "ISA": isa_name(flags),
        "what for_inference picks": f"{choose_runtime(torch.device('cpu'))} engine, "
        f"{picked.name} ({picked.reason}) → row marked ← predict",
        "work": f"{gflop:.1f} GFLOP per 256² image (torch.utils.flop_counter, eager fp32)",
        "fp32 peak": f"{peak:.0f} GFLOP/s = {how}",
        "load average (1 min) before / after": f"{load0[0]:.1f} / {load1[0]:.1f}",
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "unset (libgomp spins)")
        + " (`make bench` sets PASSIVE: with other work on the cores, spinning OpenMP threads "
        "made PyTorch 4-5× slower here; ONNX Runtime runs without spinning)",
        "rounds": f"{ctx.runs} (each: one Keras call, then one call of every variant, per batch)",
    }
    if "error" in keras:
        extra["Keras"] = keras["error"]
    else:
        p = keras["params"]
        extra["Keras"] = (
            f"TensorFlow {keras['tensorflow']} tf.keras replica of the official model, "
            f"{keras['threads']} intra/inter-op threads; params {p['trainable']:,} / "
            f"{p['total']:,} = official: {'yes' if keras['params_match_official'] else 'NO'}"
        )
        if "parity" in keras:
            par = keras["parity"]
            extra["Keras parity (mpii_2d_k2)"] = (
                f"{'ok' if par['ok'] else 'FAILED'}, max rel. error {par['max_rel_error']:.1e}"
            )
    rows, _ = report_rows(ctx, variants, keras_ms, gflop)
    columns = [
        "MPII 2D pose K=8, 256²",
        "batch",
        "ms/image",
        "Keras ms/image",
        "ratio",
        "% fp32 peak",
        "max |Δpose| px",
        "setup s",
        f"≤ {SPEED_TARGET}?",
    ]
    note = (
        "\nms/image: median over the rounds; Keras measured in the same rounds (official fp32 "
        "model, same threads). % fp32 peak = FLOPs ÷ time ÷ fp32 peak (bf16/int8 rows can pass "
        "100 %). max |Δpose|: largest deviation of the final pose from eager fp32, pixels of the "
        "256² input, random weights and inputs (trained weights: see docs/performance.md). setup s: build + "
        "first calls at every batch size (torch.compile compiles per input shape; ONNX: export "
        "+ int8 calibration). `--quick`: 3 rounds instead of 10.\n"
    )
    md = header(ctx, "CPU inference, pose model: every variant vs official Keras", extra)
    return BenchReport("cpu_pose", md + "\n" + table(rows, columns) + note)
