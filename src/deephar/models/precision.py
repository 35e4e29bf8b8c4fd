"""Which floating-point precision the machine runs fastest without giving up accuracy.

bf16 pays only where the hardware multiplies bf16 natively: on x86 CPUs the ``avx512_bf16`` or
``amx_bf16`` instructions (Cooper Lake, Sapphire Rapids and later Xeons, AMD Zen 4 and later), on
ARM ``bf16``, on GPUs compute capability ≥ 8.0. Elsewhere oneDNN emulates bf16 with fp32 and
conversions, and the network runs an order of magnitude SLOWER than in fp32 (issue 13 measured
12–18× on an AVX2-only EPYC), so the default there is fp32.

``DEEPHAR_PRECISION=fp32|bf16`` overrides the choice (e.g. to benchmark both).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 AVX-512 / AMX, ARM (asimd bf16)
PROBE_SPEEDUP = 1.3  # the timing probe picks bf16 only when it is this much faster than fp32


@dataclass(frozen=True)
class Precision:
    """The chosen dtype of the convolutional trunk and the reason, as printed to the user."""

    dtype: torch.dtype
    reason: str

    @property
    def name(self) -> str:
        return "bf16" if self.dtype == torch.bfloat16 else "fp32"


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str] | None:
    """The CPU feature flags of ``cpuinfo`` (x86 ``flags``, ARM ``Features``); None if unreadable."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return None


def isa_name(flags: set[str] | None) -> str:
    """Short name of the widest vector ISA in ``flags`` (for reports)."""
    if not flags:
        return platform.machine() or "unknown"
    extras = [f for f in ("avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8") if f in flags]
    if "avx512f" in flags:
        return "AVX-512" + (f" ({', '.join(extras)})" if extras else "")
    if "avx2" in flags:
        return "AVX2" + (" + FMA" if "fma" in flags else "")
    return "ARM" + (" bf16" if "bf16" in flags else "") if "asimd" in flags else "SSE"


def _probe_bf16_speedup(size: int = 256, repeats: int = 5) -> float:
    """fp32 time ÷ bf16 time of a (size × size) matmul on the CPU (median of ``repeats``)."""
    a = torch.randn(size, size)

    def best(x: torch.Tensor) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(8):
                x @ x
            times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]

    return best(a) / best(a.bfloat16())


def choose_precision(
    device: str | torch.device = "cpu", flags: set[str] | None = None, probe: bool = True
) -> Precision:
    """bf16 where ``device`` multiplies bf16 natively, fp32 otherwise (see the module docstring).

    ``flags``: the CPU flags (default: read from /proc/cpuinfo). Without flags (another OS) a short
    timing probe decides when ``probe`` is true.
    """
    forced = os.environ.get("DEEPHAR_PRECISION", "").lower()
    if forced in ("fp32", "bf16"):
        dtype = torch.bfloat16 if forced == "bf16" else torch.float32
        return Precision(dtype, f"DEEPHAR_PRECISION={forced}")
    if torch.device(device).type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return Precision(torch.bfloat16, "GPU with native bf16")
        return Precision(torch.float32, "GPU without native bf16")
    flags = cpu_flags() if flags is None else flags
    if flags is not None:
        native = sorted(set(NATIVE_BF16_FLAGS) & flags)
        if native:
            return Precision(torch.bfloat16, f"CPU has native bf16 ({', '.join(native)})")
        return Precision(torch.float32, f"CPU has no native bf16 ({isa_name(flags)})")
    if probe:
        speedup = _probe_bf16_speedup()
        dtype = torch.bfloat16 if speedup >= PROBE_SPEEDUP else torch.float32
        return Precision(dtype, f"timing probe: bf16 {speedup:.2f}× the fp32 speed")
    return Precision(torch.float32, "CPU flags unknown")


@dataclass(frozen=True)
class TrainingDefaults:
    """Memory format and Lightning ``trainer.precision`` a training run should default to."""

    channels_last: bool
    precision: str  # "bf16-mixed" | "32-true"
    reason: str

    def describe(self) -> str:
        layout = "channels_last" if self.channels_last else "NCHW"
        return f"{layout}, {self.precision} ({self.reason})"


_ANNOUNCED: set[str] = set()


def choose_training(
    device: str | torch.device = "cpu", flags: set[str] | None = None, verbose: bool = False
) -> TrainingDefaults:
    """Training defaults of ``device``, chosen by measurement (``make bench`` train_vs_keras).

    CPU: channels_last always (one K = 8 MPII training step, batch 8, 2 threads, AVX-512 EPYC:
    0.5× the NCHW time; only channels_last takes ``deephar.depthwise``'s fused depthwise weight
    gradient); bf16-mixed where ``choose_precision`` finds native bf16 (the same step another
    0.53×, 0.67× Keras' step; emulated bf16 is an order of magnitude slower, so fp32 elsewhere).
    CUDA: bf16-mixed + channels_last where the GPU has native bf16 (tensor cores), unmeasured in this project.
    ``DEEPHAR_PRECISION=fp32|bf16`` forces the precision. ``verbose``: print the choice once per
    process (stderr).
    """
    dev = torch.device(device)
    picked = choose_precision(dev, flags=flags)
    bf16 = picked.dtype == torch.bfloat16
    where = "GPU, not measured here" if dev.type == "cuda" else "CPU, make bench train_vs_keras"
    channels_last = dev.type == "cpu" or bf16
    choice = TrainingDefaults(
        channels_last, "bf16-mixed" if bf16 else "32-true", f"{picked.reason}; {where}"
    )
    if verbose and choice.describe() not in _ANNOUNCED:
        _ANNOUNCED.add(choice.describe())
        print(f"deephar training: {choice.describe()}", file=sys.stderr, flush=True)
    return choice
