"""Table 5 of the paper (and Figure 8): what each ingredient of the action model brings.

    python -m experiments.ablation --ft --multiclip [--dataset ntu|penn|synthetic] [--out DIR]
                                   [--pose-ckpt PATH] [--size tiny|demo] [overrides]

Rows (each its own W&B run, finished before the next, all in the group ``ablation-<dataset>``,
with the row's config and test metrics in its summary; then a summary run with Table 5 as a
``wandb.Table`` and Figure 8 as an image):
  pose        pose pre-training (synthetic only; real data: ``--pose-ckpt`` gives the pose net)
  provided    the pose branch on provided poses (NTU Kinect skeletons / Penn annotations)
  estimated   both branches on estimated poses, pose network frozen ("separate training")
  finetuned   (--ft) ``estimated`` fine-tuned: ``train.run`` with ``finetune.only`` (everything
              trainable, ``optim.lr`` ÷ ``finetune.lr_divisor``, ``finetune.epochs``)
  multiclip   (--multiclip) the last model, multi-clip test protocol (no training)
Columns: pose branch, appearance branch, aggregation (last block of each). Figure 8: accuracy of
every prediction block, separate vs fine-tuned. Every finished row is stored as
``<out>/rows/<row>.json``; a rerun skips those (a half-finished training resumes from its
``last.ckpt``), so an interrupted ablation continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from deephar import viz
from deephar.tasks.action import BRANCHES
from deephar.tasks.finite import NonFiniteError
from experiments import evaluate, tables, train
from experiments.config import load_config
from experiments.faults import EXIT_NONFINITE
from experiments.logging import log_result_run
from experiments.run_folder import best_checkpoint

ROWS = ("pose", "provided", "estimated", "finetuned", "multiclip")
TITLES = {
    "provided": "Provided poses (Kinect / annotated)",
    "estimated": "Estimated poses",
    "finetuned": "+ fine tuning",
    "multiclip": "+ multi-clip",
}
ACTION_CONFIG = {
    "ntu": ("ntu", "ntu_kinect"),
    "penn": ("penn", "penn_poses"),
    "synthetic": ("demo_action", "demo_kinect"),
}
SOURCE = {"ntu": "ntu", "penn": "penn", "synthetic": "ntu"}
POSE_CONFIG = "demo_pose"  # synthetic pose pre-training (mixed MPII 2D + Human3.6M 3D)

# The synthetic world's settings live in configs/demo_{pose,action,kinect}.yaml (the CPU demo);
# ``tiny`` shrinks them further for tests (seconds).
SCHEDULE = {
    "tiny": {
        "common": [
            "model.input_size=64",
            "data.num_workers=0",
            "data.eval_batch_size=4",
            "trainer.enable_progress_bar=false",
            "logger.kind=none",
        ],
        "pose": [
            "data.batch_size=4",
            "data.steps_per_epoch=2",
            "trainer.max_epochs=1",
            "data.limit_val=4",
        ],
        # the tiny world has too few NTU subjects to carve a validation split from training
        "action": [
            "data.batch_size=2",
            "data.steps_per_epoch=2",
            "trainer.max_epochs=1",
            "data.val=[]",
        ],
        "finetune": ["finetune.epochs=1"],
    },
    # the demo logs every row to W&B, offline (``wandb sync`` uploads): the dashboard structure
    "demo": {
        "common": ["logger.kind=wandb", "logger.offline=true"],
        "pose": [],
        "action": [],
        "finetune": [],
    },
}


def row_overrides(row: str, args: argparse.Namespace, pose_ckpt: str = "", init: str = ""):
    """(config name, overrides) of one row: the ONE place where flags become config overrides.

    pose_ckpt: the pose network of the action rows; init: the ``estimated`` checkpoint that the
    ``finetuned`` row continues from.
    """
    name = f"ablation-{args.dataset}-{row}"
    common = [
        f"name={name}",
        f"out_dir={Path(args.out) / 'checkpoints'}",
        "resume=auto",
        f"logger.group=ablation-{args.dataset}",
    ]
    synthetic = args.dataset == "synthetic"
    if synthetic:
        common += [f"data.root={args.data}"] + SCHEDULE[args.size]["common"]
    if row == "pose":
        if not synthetic:
            raise ValueError("pose pre-training rows exist for the synthetic world only")
        return POSE_CONFIG, common + SCHEDULE[args.size]["pose"] + args.overrides
    images, poses = ACTION_CONFIG[args.dataset]
    config = poses if row == "provided" else images
    if synthetic:
        common += SCHEDULE[args.size]["action"]
    if row == "estimated":
        common += [_init_key(pose_ckpt)]
    if row in ("finetuned", "multiclip"):  # fine-tuning = the finetune.* stage of train.run
        common += [f"init.ckpt={init}", "finetune.enabled=true", "finetune.only=true"]
        if synthetic:
            common += SCHEDULE[args.size]["finetune"]
    return config, common + args.overrides


def _init_key(path: str) -> str:
    return f"init.keras_h5={path}" if str(path).endswith(".h5") else f"init.ckpt={path}"


# ---- one row ----
def table5_entry(metrics: dict[str, float], blocks: int) -> dict[str, float]:
    """Test metrics of ``train.run`` → Table 5 columns + per-block accuracies (Figure 8)."""
    get = {k.removeprefix("test/"): v for k, v in metrics.items()}
    entry = {
        "pose": get.get(f"acc_pose{blocks}"),
        "appearance": get.get(f"acc_app{blocks}"),
        "aggregation": get.get("acc_agg"),
    }
    entry = {k: v for k, v in entry.items() if v is not None}
    entry["blocks"] = {
        k.removeprefix("acc_"): v for k, v in get.items() if k.startswith(("acc_pose", "acc_app"))
    }
    return entry


def run_row(row: str, args: argparse.Namespace, done: dict[str, dict]) -> dict:
    """Train (or, for multiclip, evaluate) one row; returns what is stored in its JSON."""
    pose_ckpt = args.pose_ckpt or done.get("pose", {}).get("checkpoint", "")
    parent = "finetuned" if row == "multiclip" and args.ft else "estimated"
    init = done.get(parent, {}).get("checkpoint", "")
    config, overrides = row_overrides(row, args, pose_ckpt, init)
    cfg = load_config(config, overrides)
    if row == "multiclip":
        net = evaluate.load_model(cfg, init)
        key = cfg.data.test[0]
        loader = evaluate.eval_loader(cfg, key, clip_sampling="multi")
        flip = args.dataset == "penn"  # official Penn multi-clip: every clip also mirrored
        res = evaluate.evaluate_action(net, loader, cfg.eval.video_reduction, flip, "multi-clip")
        entry = {k: res[k] for k in BRANCHES if k in res}
        log_result_run(cfg, Path(args.out), cfg.name, {f"test/{k}": v for k, v in entry.items()})
        return {"config": config, "overrides": overrides, "checkpoint": init} | entry
    metrics = train.run(cfg)
    entry = {
        "config": config,
        "overrides": overrides,
        "metrics": metrics,
        "checkpoint": str(best_checkpoint(cfg)),
    }
    if row != "pose":
        entry |= table5_entry(metrics, cfg.model.action_blocks)
    return entry


# ---- the whole ablation ----
def planned_rows(args: argparse.Namespace) -> list[str]:
    rows = ["pose"] if not args.pose_ckpt else []
    rows += ["provided", "estimated"]
    rows += ["finetuned"] if args.ft else []
    rows += ["multiclip"] if args.multiclip else []
    return rows


def run_ablation(args: argparse.Namespace, log: Callable[[str], None] = print) -> dict[str, dict]:
    """Run every planned row not finished yet; write the table and the plot. Returns the rows."""
    if args.dataset != "synthetic" and not args.pose_ckpt:
        raise ValueError(f"--dataset {args.dataset}: pass --pose-ckpt (a pose checkpoint or .h5)")
    out = Path(args.out)
    (out / "rows").mkdir(parents=True, exist_ok=True)
    if args.dataset == "synthetic":
        from datamodules.synthetic import generate_world

        generate_world(args.data, args.size, seed=0, log=log)
    rows = planned_rows(args)
    done: dict[str, dict] = {}
    for i, row in enumerate(rows, 1):
        path = out / "rows" / f"{row}.json"
        if path.is_file():
            done[row] = json.loads(path.read_text())
            log(f"[{i}/{len(rows)}] {row}: finished earlier, kept ({path})")
            continue
        log(f"[{i}/{len(rows)}] {row}: running")
        done[row] = run_row(row, args, done)
        path.write_text(json.dumps(done[row], indent=1))
    log(write_outputs(done, out))
    log_summary(done, args, out)
    return done


def log_summary(done: dict[str, dict], args: argparse.Namespace, out: Path) -> None:
    """The ablation's summary run (same W&B group as its rows): Table 5 as a ``wandb.Table``,
    Figure 8 as an image, every cell in the run summary."""
    last = done[planned_rows(args)[-1]]
    cfg = load_config(last["config"], last["overrides"])
    table = pd.read_csv(out / "table5.csv", index_col=0)
    cells = {
        f"{row}/{col}": float(v)
        for row, values in table.iterrows()
        for col, v in values.items()
        if pd.notna(v)
    }
    log_result_run(
        cfg,
        out,
        f"ablation-{args.dataset}-summary",
        cells,
        tables={"table5": table},
        images={"figure8": out / "blocks.png"},
        config={"rows": list(done), "dataset": args.dataset},
    )


def write_outputs(done: dict[str, dict], out: Path) -> str:
    """``table5.{csv,md}`` and ``blocks.png`` (Figure 8) from the finished rows."""
    table = tables.ablation_table({TITLES[r]: e for r, e in done.items() if r in TITLES})
    text = tables.write_table(table, out, "table5", "Table 5 structure: accuracy (%)")
    curves = {}
    for row, label in (("estimated", "separate"), ("finetuned", "fine-tuned")):
        blocks = done.get(row, {}).get("blocks", {})
        for branch, prefix in (("pose", "pose"), ("appearance", "app")):
            keys = sorted(
                (k for k in blocks if k.startswith(prefix)), key=lambda k: int(k[len(prefix) :])
            )
            if keys:
                curves[f"{branch}, {label}"] = [blocks[k] for k in keys]
    if curves:
        viz.save_figure(
            viz.plot_block_accuracy(curves, "Accuracy per prediction block"), out / "blocks.png"
        )
    return text


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.ablation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--ft", action="store_true", help="add the fine-tuning row")
    parser.add_argument("--multiclip", action="store_true", help="add the multi-clip row")
    parser.add_argument("--dataset", choices=sorted(ACTION_CONFIG), default="synthetic")
    parser.add_argument("--out", default="runs/ablation")
    parser.add_argument("--pose-ckpt", default="", help="pose network of the action rows")
    parser.add_argument("--data", default="data/synthetic", help="synthetic world root")
    parser.add_argument("--size", choices=sorted(SCHEDULE), default="demo")
    parser.add_argument("overrides", nargs="*", help="config overrides for every row (key=value)")
    return parser.parse_intermixed_args(argv)  # options and overrides in any order


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run_ablation(args)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NonFiniteError as err:  # a row / fold diverged: no checkpoint holds its state
        print(f"error: {err}", file=sys.stderr)
        return EXIT_NONFINITE
    return 0


if __name__ == "__main__":
    sys.exit(main())
