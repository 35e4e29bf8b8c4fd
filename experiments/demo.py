"""The whole pipeline on the synthetic world, on a CPU: ``python -m experiments.demo``.

    python -m experiments.demo [--size demo|tiny] [--out runs/demo] [--data DIR] [--picture]

1. the synthetic world (``datamodules.synthetic``; generated when absent);
2. pose pre-training on mixed 2D (MPII format) and 3D (Human3.6M format) data;
3. action training on its NTU-format clips: provided (Kinect-file) poses, estimated poses with the
   pose network frozen, then fine-tuning of everything, then the multi-clip protocol
   (``experiments.ablation``: Table 5's rows; resumable);
4. evaluation of the pose network (single- and multi-crop PCKh, MPJPE);
5. ``results.md`` (printed at the end), ``skeletons.png`` (2D overlays and 3D views of predicted
   poses), ``blocks.png`` (accuracy per prediction block, separate vs fine-tuned) and
   ``model.pt``, a portable network for ``python -m experiments.predict <video> ckpt=…``.

``--picture`` draws ``skeletons.png`` again from the pose network of a demo run in ``--out`` (its
``rows/pose.json``), without training: after ``make demo``, or while its action rows still train.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from datamodules.layouts import get_layout, limbs
from datamodules.synthetic.write_ntu import NTU_ACTIONS
from deephar import viz
from deephar.checkpoint import CheckpointError, load_network, network_payload
from deephar.images import batch_to_float
from deephar.metrics import decode_pose_mm
from deephar.tasks.finite import NonFiniteError
from experiments import ablation, evaluate, tables
from experiments.config import load_config, network_config
from experiments.faults import EXIT_NONFINITE, Interrupted
from experiments.logging import log_result_run

TORSO = ("l_shoulder", "r_hip")  # PCK reference: the torso diagonal (LSP-style "torso PCK")
# Share of the demo's wall time per stage and the minutes of the whole demo, measured with
# `make demo` on an idle 2-core machine (docs/synthetic.md): the ETA before a stage has finished; later
# ETAs scale the remaining shares by the pace measured so far.
STAGES = {
    "world": 0.09,
    "pose": 0.34,
    "provided": 0.04,
    "estimated": 0.33,
    "finetuned": 0.15,
    "multiclip": 0.02,
    "pose evaluation": 0.03,
}
QUIET_MINUTES = 10.4


class StageClock:
    """Prints each stage as it starts with the time so far and an overall ETA; ``log`` takes the
    ablation's messages ("[i/n] row: running" starts a row's stage; "finished earlier" skips it).
    A stage done in under a tenth of its expected time (a world already written) counts as
    skipped, so the pace is measured on the stages that worked."""

    def __init__(self) -> None:
        self.start = self.since = time.perf_counter()
        self.current = ""
        self.ran = self.skipped = self.busy = 0.0  # shares run / skipped, seconds of the run ones

    def stage(self, name: str, skipped: bool = False) -> None:
        now = time.perf_counter()
        if self.current:
            spent, share = now - self.since, STAGES[self.current]
            if spent < 0.1 * share * QUIET_MINUTES * 60.0:
                self.skipped += share
            else:
                self.ran, self.busy = self.ran + share, self.busy + spent
        self.skipped += STAGES.get(name, 0.0) if skipped else 0.0
        self.current, self.since = ("" if skipped else name), now
        left = max(0.0, 1.0 - self.ran - self.skipped)
        pace = self.busy / self.ran if self.ran >= 0.05 else QUIET_MINUTES * 60.0
        index = list(STAGES).index(name) + 1 if name in STAGES else 0
        state = "kept from an earlier run" if skipped else "running"
        print(
            f"== stage {index}/{len(STAGES)} {name}: {state}; {(now - self.start) / 60:.1f} min "
            f"so far, ETA {left * pace / 60:.1f} min",
            flush=True,
        )

    def log(self, message: str) -> None:
        head, _, rest = message.partition("] ")
        row = rest.partition(":")[0]
        if head.startswith("[") and row in STAGES:
            self.stage(row, skipped="finished earlier" in rest)
        print(message, flush=True)


def demo_args(size: str, out: Path, data: Path) -> argparse.Namespace:
    """The ablation's arguments for the demo: synthetic world, all rows."""
    return ablation.parse_args(
        [
            "--ft",
            "--multiclip",
            "--dataset",
            "synthetic",
            "--size",
            size,
            "--out",
            str(out),
            "--data",
            str(data),
        ]
    )


def pose_results(args: argparse.Namespace, ckpt: str) -> tuple[dict, object, object]:
    """Single- and multi-crop results of the pose network on the synthetic test sets (exactly
    ``experiments.evaluate``'s protocol and defaults), plus a torso PCK of every test set."""
    cfg = load_config(*ablation.row_overrides("pose", args))
    net = evaluate.load_model(cfg, ckpt)
    protocol = evaluate.Protocol(crops="both", limit=0 if args.size == "demo" else 4)
    results = evaluate.evaluate(cfg, net, protocol)
    for key in cfg.data.test:
        loader = torso_referenced(evaluate.eval_loader(cfg, key, protocol.limit), cfg.data.layout)
        views = evaluate.protocols.multi_crop_views(0, flip=False)
        res = evaluate.evaluate_pose(net, loader, cfg.data.layout, views, f"{key}/torso PCK")
        results[f"{key}/torso-pck"] = {k: v for k, v in res.items() if k.startswith("pck")}
        results[f"{key}/torso-pck"]["joints"] = list(get_layout(cfg.data.layout).joints)
    return results, cfg, net


def torso_table(pose: dict) -> str:
    """Per-part torso PCK@0.5 (%) of every test set (MPII parts: mean of the two sides)."""
    rows = {}
    for key, res in pose.items():
        if key.endswith("/torso-pck"):
            per_joint = dict(zip(res["joints"], res["pck_per_joint"]))
            rows[key.removesuffix("/torso-pck")] = {
                part: np.nanmean([per_joint[j] for j in joints if j in per_joint])
                for part, joints in tables.MPII_PARTS.items()
            } | {"Total": res["pck@0.5"]}
    return "### Torso PCK@0.5 (%) per part\n\n" + tables.to_markdown(tables.accuracy_table(rows))


def torso_referenced(loader, layout: str):
    """The batches of ``loader`` with ``pck_ref`` = the ground-truth torso diagonal
    ‖l_shoulder − r_hip‖ in pixels, scored as plain PCK (any dataset, head box or not)."""
    lay = get_layout(layout)
    a, b = (lay.index(j) for j in TORSO)
    for batch in loader:
        gt = batch["pose_px"]
        ok = batch["pose_px_valid"][:, a] & batch["pose_px_valid"][:, b]
        batch["pck_ref"] = torch.where(ok, (gt[:, a] - gt[:, b]).norm(dim=-1), 0.0)
        batch["dataset"] = ["torso"] * len(gt)
        yield batch


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [−1, 1] → uint8 (H, W, 3)."""
    return ((image.permute(1, 2, 0).numpy() + 1.0) * 127.5).clip(0, 255).astype(np.uint8)


@torch.no_grad()
def skeleton_figure(cfg, net, count: int = 4):
    """Predicted 2D poses over the ground truth on Human3.6M-format test crops (with a legend),
    and their 3D poses (mm, root-relative)."""
    loader = evaluate.eval_loader(cfg, "h36m", limit=count)
    batch = batch_to_float(next(iter(loader)))
    out = net.forward_pose(batch["image"])
    pose = out.final
    size = batch["image"].shape[-1]
    mm = decode_pose_mm(pose, batch["crop"], batch["depth"], batch["camera"])
    mm = mm - mm[:, :1]
    valid = (batch["pose_valid"][..., :2].numpy() > 0).all(-1)  # (B, J): annotated in 2D
    panels = [
        (
            to_uint8(batch["image"][i]),
            pose[i, :, :2].numpy() * size,
            mm[i].numpy(),
            batch["sample_id"][i].split("/", 2)[-1],
            np.where(valid[i, :, None], batch["pose"][i, :, :2].numpy() * size, np.nan),
        )
        for i in range(min(count, len(pose)))
    ]
    return viz.pose_grid(panels, limbs(get_layout(cfg.data.layout)))


def export_model(ckpt: str, cfg, path: Path) -> Path:
    """The fine-tuned network as a ``deephar.convert``-style file (config + state dict)."""
    net = load_network(ckpt, network_config(cfg))  # the plain network, not the inference copy
    names = [f"A{i + 1:03d}" for i in range(cfg.model.num_actions)]  # NTU class codes
    for name, code in NTU_ACTIONS.items():  # the synthetic world's actions by name
        names[code - 1] = name
    torch.save(network_payload(net, source=ckpt, model="ntu") | {"action_names": names}, path)
    return path


def is_number(value: object) -> bool:
    """A figure W&B logs (not a result's label such as its "protocol")."""
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def world_root(size: str, out: Path, data: str | Path | None) -> Path:
    """The synthetic world's folder: ``data``, else data/synthetic (demo size) or ``out``/world."""
    return Path(data) if data else (Path("data/synthetic") if size == "demo" else out / "world")


def draw_skeletons(size: str, out: str | Path, data: str | Path | None = None) -> Path:
    """``skeletons.png`` of the pose row already trained in ``out`` (no training); its path."""
    out = Path(out)
    row = out / "rows" / "pose.json"
    if not row.is_file():
        raise FileNotFoundError(f"{row}: no trained pose row here; run `make demo` first")
    cfg = load_config(
        *ablation.row_overrides("pose", demo_args(size, out, world_root(size, out, data)))
    )
    net = evaluate.load_model(cfg, json.loads(row.read_text())["checkpoint"])
    viz.save_figure(skeleton_figure(cfg, net), out / "skeletons.png")
    return out / "skeletons.png"


def run_demo(size: str = "demo", out: str | Path = "runs/demo", data: str | Path | None = None):
    """Run every stage; returns {"pose": results, "ablation": rows, "markdown": text}."""
    start = time.perf_counter()
    out = Path(out)
    data = world_root(size, out, data)
    args = demo_args(size, out, data)
    print(f"== deephar demo ({size}): world {data}, outputs {out}", flush=True)
    clock = StageClock()
    clock.stage("world")
    rows = ablation.run_ablation(args, log=clock.log)
    clock.stage("pose evaluation")
    pose, cfg, net = pose_results(args, rows["pose"]["checkpoint"])
    texts = [evaluate.write_results(pose, cfg.data.layout, out / "pose"), torso_table(pose)]
    flat = {f"{k}/{m}": v for k, res in pose.items() for m, v in res.items() if is_number(v)}
    log_result_run(cfg, out, "demo-pose-evaluation", flat)
    texts.append((out / "table5.md").read_text())
    viz.save_figure(skeleton_figure(cfg, net), out / "skeletons.png")
    last = rows["finetuned"]
    action_cfg = load_config(last["config"], last["overrides"])
    export_model(last["checkpoint"], action_cfg, out / "model.pt")
    wall = time.perf_counter() - start
    summary = tables.accuracy_table({"demo": _headline(pose, rows)})
    mpjpe = min((v["mpjpe"] for v in pose.values() if "mpjpe" in v), default=float("nan"))
    texts.insert(
        0,
        tables.to_markdown(summary) + f"\nMPJPE (Human3.6M-format test): {mpjpe:.1f} mm"
        f"; torso PCK reference: ‖{' − '.join(TORSO)}‖\nwall time: {wall / 60:.1f} min\n",
    )
    markdown = "\n".join(texts)
    (out / "results.md").write_text(markdown)
    print(markdown)
    print(f"pictures: {out / 'skeletons.png'}, {out / 'blocks.png'}; network: {out / 'model.pt'}")
    return {"pose": pose, "ablation": rows, "markdown": markdown, "wall_s": wall}


def _headline(pose: dict, rows: dict) -> dict[str, float]:
    """The demo's targets as fractions: PCK@0.5 (torso reference) and PCKh@0.5 on the MPII-format
    test set (best of single / multi-crop), action accuracy per branch (the last action row)."""
    best = {}
    for label, prefix, key, pick in (
        ("PCK@0.5 (torso)", "mpii/torso", "pck@0.5", max),
        ("PCKh@0.5", "mpii/", "pckh@0.5", max),
    ):
        found = [v[key] for k, v in pose.items() if k.startswith(prefix) and key in v]
        if found:
            best[label] = pick(found)
    final = rows.get("multiclip") or rows.get("finetuned") or {}
    for branch in evaluate.BRANCHES:
        if branch in final:
            best[f"action {branch}"] = final[branch]
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size", choices=sorted(ablation.SCHEDULE), default="demo")
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--data", default=None, help="world root (default data/synthetic)")
    parser.add_argument(
        "--picture", action="store_true", help="only redraw skeletons.png from --out's pose row"
    )
    args = parser.parse_args(argv)
    # one core per data worker, the rest to the network: oversubscribed cores are ~10× slower
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    try:
        if args.picture:
            print(f"picture: {draw_skeletons(args.size, args.out, args.data)}")
        else:
            run_demo(args.size, args.out, args.data)
    except (CheckpointError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NonFiniteError as err:  # a row / fold diverged: no checkpoint holds its state
        print(f"error: {err}", file=sys.stderr)
        return EXIT_NONFINITE
    except Interrupted as stop:  # its rows train with resume=auto: the same command continues
        print(f"interrupted: {stop}".replace("with resume=auto", "the demo"), file=sys.stderr)
        return stop.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
