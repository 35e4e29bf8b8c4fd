"""`make gpu-check`: what a lent GPU must show in under 10 minutes, as one table.

    python -m benchmarks.gpu_check [--out benchmarks/results/gpu_check.md] [--no-compile] [--dry]

1. environment: torch / CUDA / cuDNN / GPU, and the precision a run should choose;
2. bf16 micro-checks on the device: pixel and millimetre decoding under autocast vs fp32,
   soft-argmax of bf16 logits vs fp32, the uint8 → float input conversion vs the CPU's;
3. host synchronisations: ``torch.cuda.set_sync_debug_mode("warn")`` over 5 training and 5
   validation steps of the real MPII pose module (bf16-mixed, real loaders): unique locations;
4. training-step throughput at batch 24, K = 8, 256² in fp32 / bf16 / bf16 + channels_last /
   + compile (the compilation timed apart), with the % of the GPU's dense bf16 peak reached;
5. a 300-step synthetic MPII run (1280×720 JPEGs, augmentation on) at bf16 with ``nvidia-smi``
   utilisation sampled, 4 vs 12 loader workers.

``--dry`` runs the same code on the CPU, tiny (64², K = 1, a few steps, the compile path through
dynamo's eager backend, host syncs counted by wrapping ``Tensor.item`` / ``tolist`` / ``cpu`` /
``numpy`` / ``__bool__``), so that the script cannot rot: ``tests/benchmarks/test_gpu_check.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks import bench_train
from benchmarks.run import REPO, table
from deephar.config import MPII_2D, NetworkConfig
from experiments.logging import silence_known_warnings

# dense (no sparsity) bf16 tensor-core peaks, FLOP/s, from the NVIDIA datasheets
BF16_PEAK = {"H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}
Row = list[str]  # section, check, value, verdict
EVAL_BATCH = 2  # validation batches of the sync check: 5 of them from the 10 held-out images


@dataclass(frozen=True)
class Plan:
    """Sizes of one check: the real one on a GPU, a tiny one (``--dry``) on the CPU."""

    device: str
    net: NetworkConfig
    batch: int
    timed_steps: int
    run_steps: int
    workers: tuple[int, int]
    world_sizes: str  # RESOLUTIONS key of the synthetic MPII images


FULL = Plan("cuda", MPII_2D, 24, 20, 300, (4, 12), "real")
DRY = Plan("cpu", MPII_2D.with_(input_size=64, pose_blocks=1, width=0.25), 2, 2, 3, (0, 1), "small")


def verdict(ok: bool) -> str:
    return "ok" if ok else "FAIL"


# ---- 1. environment ----
def precision_choice(device: str) -> str:
    if device != "cuda":
        return "32-true (no GPU)"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed (no bf16 on this GPU)"


def environment(plan: Plan) -> list[Row]:
    from experiments.data import available_cores, worker_count

    rows = [["environment", "torch", torch.__version__, ""]]
    if plan.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        rows += [["environment", "GPU", f"{props.name}, {props.total_memory / 2**30:.0f} GiB, "
                  f"sm_{props.major}{props.minor}, {torch.cuda.device_count()} visible", ""],
                 ["environment", "CUDA / cuDNN", f"{torch.version.cuda} / "
                  f"{torch.backends.cudnn.version()}", ""],
                 ["environment", "driver", nvidia_smi("driver_version") or "n/a", ""]]  # fmt: skip
    rows += [["environment", "precision choice", precision_choice(plan.device), ""],
             ["environment", "cores / auto workers per device",
              f"{available_cores()} / {worker_count('auto', 1)}", ""]]  # fmt: skip
    return rows


def nvidia_smi(field: str) -> str:
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout else ""


# ---- 2. bf16 micro-checks ----
def micro_checks(plan: Plan) -> list[Row]:
    from datamodules.transforms import normalize_image
    from deephar.images import image_to_float
    from deephar.metrics import decode_pose_mm, decode_pose_px, encode_pose_px
    from deephar.soft_argmax import soft_argmax_2d

    dev, g = plan.device, torch.Generator().manual_seed(0)
    crop = torch.tensor([[0.004, 0.0, -1.6], [0.0, 0.004, -1.5]]).expand(64, 2, 3).to(dev)
    px = (torch.rand(64, 16, 2, generator=g) * 600 + 390).to(dev)  # 390–990 px, MPII-like
    norm = encode_pose_px(px, crop)
    pose = torch.cat([norm, torch.rand(64, 16, 1, generator=g).to(dev)], -1)
    depth = torch.tensor([[4000.0, 2000.0]], device=dev).expand(64, 2)
    camera = torch.tensor([[1145.0, 1144.0, 512.0, 515.0]], device=dev).expand(64, 4)
    logits = (torch.randn(2, 16, 64, 64, generator=g) * 4).to(dev)
    with torch.autocast(dev, dtype=torch.bfloat16):
        px_amp, mm_amp = decode_pose_px(norm, crop), decode_pose_mm(pose, crop, depth, camera)
        xy_amp = soft_argmax_2d(logits.bfloat16())
    d_pck, d_mpjpe = metric_shift(norm, pose, crop, depth, camera, px, g)
    d_px = (px_amp - decode_pose_px(norm, crop)).abs().max().item()
    d_mm = (mm_amp - decode_pose_mm(pose, crop, depth, camera)).abs().max().item()
    d_xy = (xy_amp - soft_argmax_2d(logits.bfloat16().float())).abs().max().item()
    image = torch.randint(0, 256, (4, 32, 32, 3), generator=g, dtype=torch.uint8)
    gamma = torch.tensor([0.9, 1.0, 1.1])
    on_device = image_to_float(
        image.permute(0, 3, 1, 2).contiguous().to(dev), gamma[None].expand(4, 3)
    )
    d_in = (on_device.cpu() - torch.from_numpy(normalize_image(image.numpy(), (0.9, 1.0, 1.1)))).abs().max().item()  # fmt: skip
    return [["bf16", "decode px: autocast vs fp32 (max abs Δ, 390–990 px)", f"{d_px:.4f} px", verdict(d_px < 0.01)],
            ["bf16", "decode mm: autocast vs fp32 (max abs Δ)", f"{d_mm:.4f} mm", verdict(d_mm < 0.1)],
            ["bf16", "PCKh@0.5 of the same predictions, autocast vs fp32", f"{d_pck:.3f} points",
             verdict(d_pck <= 0.05)],
            ["bf16", "MPJPE of the same predictions, autocast vs fp32", f"{d_mpjpe:.4f} mm",
             verdict(d_mpjpe <= 0.1)],
            ["bf16", "soft-argmax of bf16 logits vs fp32 (max abs Δ, crop units)", f"{d_xy:.2e}",
             verdict(d_xy < 1e-5 and xy_amp.dtype == torch.float32)],
            ["bf16", "uint8 → float on the device vs the CPU's (max abs Δ)", f"{d_in:.1e}",
             verdict(d_in <= 1e-6)]]  # fmt: skip


def metric_shift(norm, pose, crop, depth, camera, gt_px, g) -> tuple[float, float]:
    """|PCKh@0.5 (points) and MPJPE (mm) of noisy predictions decoded under bf16 autocast − the
    same decoded in fp32| (what Lightning's bf16-mixed validation would change in the metrics)."""
    from deephar.metrics import decode_pose_mm, decode_pose_px, mpjpe, pckh

    dev = norm.device
    noise = (torch.randn(pose.shape, generator=g) * 0.02).to(dev)  # ~5 px, ~40 mm
    noisy = pose + noise
    valid, ref = torch.ones(gt_px.shape[:-1], dtype=torch.bool, device=dev), torch.full(
        gt_px.shape[:1], 20.0, device=dev)  # fmt: skip
    gt_mm = decode_pose_mm(pose, crop, depth, camera)
    scores = []
    for autocast in (True, False):
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
            pred_px = decode_pose_px(noisy[..., :2], crop)
            pred_mm = decode_pose_mm(noisy, crop, depth, camera)
        hits, counts = pckh(pred_px, gt_px, valid, ref)
        scores.append((100 * hits.sum() / counts.sum(), mpjpe(pred_mm, gt_mm, valid)))
    (pck_a, mm_a), (pck_f, mm_f) = scores
    return abs(pck_a - pck_f).item(), abs(mm_a - mm_f).item()


# ---- 3. host synchronisations ----
class SyncRecorder:
    """Counter of "file:line" of host synchronisations between ``start`` and ``stop``: CUDA's
    sync debug mode; on the CPU (``--dry``) the Python calls that would synchronise a CUDA
    tensor (``SYNCING``), a proxy that also counts CPU-only tensors."""

    SYNCING = ("item", "tolist", "cpu", "numpy", "__bool__")

    def __init__(self, device: str) -> None:
        self.device, self.found = device, Counter()
        self._caught: contextlib.ExitStack | None = None
        self._real = {n: getattr(torch.Tensor, n) for n in self.SYNCING}
        self._own = {n: n in vars(torch.Tensor) for n in self.SYNCING}  # else inherited

    def start(self) -> None:
        if self.device == "cuda":
            self._caught = contextlib.ExitStack()
            self._log = self._caught.enter_context(warnings.catch_warnings(record=True))
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            return
        for name in self.SYNCING:
            setattr(torch.Tensor, name, self._wrap(name))

    def _wrap(self, name: str):
        real, found = self._real[name], self.found

        def call(tensor, *args, **kwargs):
            frame = traceback.extract_stack(limit=2)[0]
            found[f"{frame.filename}:{frame.lineno}"] += 1
            return real(tensor, *args, **kwargs)

        return call

    def stop(self) -> None:
        if self.device == "cuda":
            if self._caught is not None:
                torch.cuda.set_sync_debug_mode("default")
                self.found.update(f"{w.filename}:{w.lineno}" for w in self._log
                                  if "synchroniz" in str(w.message))  # fmt: skip
                self._caught.close()
                self._caught = None
            return
        for name in self.SYNCING:
            if self._own[name]:
                setattr(torch.Tensor, name, self._real[name])
            elif name in vars(torch.Tensor):
                delattr(torch.Tensor, name)


def recording(recorder: SyncRecorder):
    """A Lightning callback recording from the first training step to the end of validation
    (the set-up's one-off copies are not steps)."""
    import pytorch_lightning as pl

    class Record(pl.Callback):
        def on_train_start(self, trainer, module) -> None:
            recorder.start()

        def on_validation_end(self, trainer, module) -> None:
            recorder.stop()

        def on_exception(self, trainer, module, err) -> None:
            recorder.stop()

    return Record()


def short(location: str) -> str:
    for root in ("site-packages/", str(REPO) + "/"):
        if root in location:
            return location.split(root, 1)[1]
    return location


def mpii_config(world: Path, plan: Plan, workers: int, steps: int):
    from experiments.config import load_config

    net = plan.net
    return load_config("mpii", [
        f"data.root={world}", f"data.num_workers={workers}", f"data.steps_per_epoch={steps}",
        f"data.batch_size={plan.batch}", "data.test=[]",
        f"model.input_size={net.input_size}", f"model.pose_blocks={net.pose_blocks}",
        f"model.width={net.width}", "data.val_fraction=0.25", f"data.eval_batch_size={EVAL_BATCH}",
    ])  # fmt: skip


def fit(world: Path, plan: Plan, workers: int, steps: int, val_batches: int, callbacks=()) -> float:
    """Wall seconds of ``steps`` training steps (+ ``val_batches`` validation batches) of the MPII
    pose module through Lightning: real readers, loaders, uint8 transfer, bf16-mixed on CUDA."""
    import pytorch_lightning as pl

    from deephar.models.multitask import build_model
    from experiments.config import network_config
    from experiments.data import build_datamodule
    from experiments.train import build_module

    cfg = mpii_config(world, plan, workers, steps)
    module = build_module(cfg, build_model(network_config(cfg)))
    trainer = pl.Trainer(accelerator="gpu" if plan.device == "cuda" else "cpu", devices=1,
                         precision="bf16-mixed" if plan.device == "cuda" else "32-true",
                         max_steps=steps, max_epochs=1, limit_val_batches=val_batches,
                         num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=list(callbacks))  # fmt: skip
    start = time.perf_counter()
    trainer.fit(module, datamodule=build_datamodule(cfg))
    return time.perf_counter() - start


def host_syncs(world: Path, plan: Plan, limit: int = 12) -> list[Row]:
    recorder = SyncRecorder(plan.device)
    fit(world, plan, plan.workers[0], 5, 5, [recording(recorder)])
    found = recorder.found
    rows = [["syncs", "5 training + 5 validation steps: unique locations", str(len(found)),
             "see below" if found else "none"]]  # fmt: skip
    for location, count in found.most_common(limit):
        rows.append(["syncs", short(location), f"{count}×", ""])
    return rows


# ---- 4. step throughput ----
def forward_flops(cfg: NetworkConfig) -> float:
    from benchmarks.bench_cpu_pose import gflop_per_image
    from deephar.models.pose import PoseNet

    return gflop_per_image(PoseNet(cfg).eval(), cfg.input_size) * 1e9


def peak_flops(device: str) -> float | None:
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in BF16_PEAK.items() if k in name), None)


def throughput(plan: Plan, compile: bool = True) -> list[Row]:
    variants = [v for v in bench_train.GPU_VARIANTS if compile or "compile" not in v]
    flops, peak = 3 * forward_flops(plan.net), peak_flops(plan.device)  # forward + backward ≈ 3×
    rows = []
    for variant in variants:
        t = bench_train.measure_detail("pose", plan.net, plan.batch, plan.timed_steps,
                                       plan.device, variant)  # fmt: skip
        share = f", {t.samples_per_s * flops / peak:.1%} of bf16 peak" if peak else ""
        extra = f"; warm-up {t.warmup_s:.1f} s" if "compile" in variant else ""
        rows.append(["throughput", f"train step, batch {plan.batch}, K={plan.net.pose_blocks}, "
                     f"{plan.net.input_size}², {variant}",
                     f"{t.samples_per_s:.0f} img/s ({t.step_s * 1e3:.1f} ms/step){share}{extra}",
                     ""])  # fmt: skip
    return rows


# ---- 5. fed from the loaders ----
@contextlib.contextmanager
def utilisation(device: str):
    """GPU utilisation % samples (every 250 ms) of ``nvidia-smi`` during the block."""
    samples: list[float] = []
    if device != "cuda":
        yield samples
        return
    cmd = [
        "nvidia-smi",
        "--query-gpu=utilization.gpu",
        "--format=csv,noheader,nounits",
        "-lms",
        "250",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        yield samples
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
        samples += [float(v) for v in out.split() if v.replace(".", "", 1).isdigit()]


def fed_runs(world: Path, plan: Plan) -> list[Row]:
    rows = []
    for workers in plan.workers:
        with utilisation(plan.device) as util:
            seconds = fit(world, plan, workers, plan.run_steps, 0)
        rate = plan.run_steps * plan.batch / seconds
        mean = (
            f", GPU busy {sum(util) / len(util):.0f} % (mean of {len(util)} samples)"
            if util
            else ""
        )
        precision = "bf16" if plan.device == "cuda" else "fp32"
        rows.append(["fed", f"{plan.run_steps} MPII steps, {precision}, {workers} workers",
                     f"{rate:.0f} img/s, {seconds:.1f} s{mean}", ""])  # fmt: skip
    return rows


# ---- driver ----
def synthetic_mpii(root: Path, plan: Plan) -> Path:
    from datamodules.synthetic.world import RESOLUTIONS
    from datamodules.synthetic.write_mpii import write_mpii

    if not (root / "mpii" / "images").is_dir():
        write_mpii(root / "mpii", 40, 2, 0, seed=0, sizes=RESOLUTIONS[plan.world_sizes]["mpii"])
    return root / "mpii"


def check(plan: Plan, world: Path, compile: bool = True) -> list[Row]:
    torch.backends.cudnn.benchmark = plan.device == "cuda"
    mpii = synthetic_mpii(world, plan)
    rows = environment(plan) + micro_checks(plan)
    rows += host_syncs(mpii, plan)
    rows += throughput(plan, compile)
    return rows + fed_runs(mpii, plan)


def main(argv: list[str] | None = None) -> list[Row]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry", action="store_true", help="the same code tiny on the CPU")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile row")
    ap.add_argument("--out", type=Path, default=None, help="also write the table (Markdown)")
    ap.add_argument(
        "--world", type=Path, default=None, help="synthetic data folder (default: temp)"
    )
    args = ap.parse_args(argv)
    if not args.dry and not torch.cuda.is_available():
        ap.error("no CUDA device: run on a GPU, or --dry for the CPU rehearsal")
    plan = DRY if args.dry else FULL
    silence_known_warnings()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = check(plan, args.world or Path(tmp), compile=not args.no_compile)
    title = "GPU check (--dry: CPU rehearsal)" if args.dry else "GPU check"
    command = " ".join(
        ["python -m benchmarks.gpu_check", *(sys.argv[1:] if argv is None else argv)]
    )
    text = (f"## {title}\n\n- command: `{command}`\n"
            f"- wall: {time.perf_counter() - start:.0f} s\n\n"
            + table(rows, ["section", "check", "value", "verdict"]))  # fmt: skip
    print(text, flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return rows


if __name__ == "__main__":
    main()
