"""Evaluate a checkpoint by the run's own test protocol and the paper's, with tables and pictures.

    python -m experiments.evaluate <config> ckpt=PATH [protocol=…] [options] [config overrides]
    python -m experiments.evaluate penn_poses ckpt=runs/penn_poses/best.ckpt data.root=…
    python -m experiments.evaluate mpii ckpt=weights_PE_MPII_cvpr18_19-09-2017.h5 data.root=…

Every option is a key of the config's ``eval`` section, read with the config in one OmegaConf
dot-list as ``train`` reads it (``experiments/config.py``: ``ProtocolConfig``, ``EvalConfig``);
the short forms stand for them: ckpt=PATH (``eval.ckpt``: a Lightning checkpoint, a
``deephar.convert`` .pt or an official Keras .h5, converted on the fly into the network of the
config), protocol=run (a comma list of the protocols below), crops=single|multi|both and
clips=single|multi|both (the paper's crop / clip protocols, short forms), displacement=8 (multi-crop
shift, crop pixels), clip_flip=false (single- / multi-clip: each clip also mirrored),
reduction=mean|prod (``eval.video_reduction``), limit=0 (first N samples or videos per source),
out=DIR (default ``<out_dir>/<name>/eval``), fast=false (``eval.fast``: the eager fp32 network).
A checkpoint inside a run folder (its ``config.yaml`` beside it, or above for ``finetune/``) is
evaluated with that run's config, the command line's overrides on top.

Protocols (docs/evaluation.md), each figure labelled with its name in ``results.json`` and the
tables:
- ``run`` (the default when no protocol, crops or clips is named): the training's own test stage — the task module's test step and metrics on
  the run's test sources with their ``test_options`` (clip sampling, mirrors, ensemble members,
  reduction), eager fp32: the figure ``experiments.train`` printed at the end of the run.
- ``single-crop`` / ``multi-crop`` (MPII, H36M): the centred crop; it and 4 shifts, each mirrored.
- ``crop-views`` (MPII, H36M, a diagnostic): each of multi-crop's 10 views scored alone.
- ``single-clip`` / ``multi-clip`` (Penn, NTU): the middle clip; clips every T/2 frames.
- ``official`` (Penn, NTU): 16-frame clips at subsampling 2 every 8 frames, each also mirrored,
  softmax scores averaged per video.
Per test source: MPII PCKh@0.5 / @0.2 / AUC per body part; H36M MPJPE (protocol 1) per action;
Penn / NTU accuracy for the pose branch, the appearance branch and their aggregation. The scores
come from the task modules' own metric objects (``PoseMetrics``, ``ActionMetrics``); multi-crop
and multi-clip are views in front of them (``experiments.protocols``). Pictures
(``experiments.figures``): per-class accuracy and the confusion matrix of every action figure,
per-joint PCKh / PCK of every pose figure.
Alphabet: B batch, T frames, J joints, D 2|3, A actions.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from datamodules.h36m import ACTIONS as H36M_ACTIONS
from datamodules.layouts import get_layout
from datamodules.missing import MissingLog, MissingSamples, check_missing, collate_readable
from datamodules.mixed import fork_safe_opencv, init_worker
from deephar.checkpoint import CheckpointError, config_path, load_network
from deephar.images import batch_to_float
from deephar.models.inference import for_inference
from deephar.tasks.action import BRANCHES, ActionMetrics, action_forward
from deephar.tasks.base import updated_anywhere
from deephar.tasks.pose import PoseMetrics
from experiments import figures, protocols, tables
from experiments.cli import arguments
from experiments.config import (
    EVALUATE_KEYS,
    ConfigError,
    ProtocolConfig,
    expand_short_keys,
    load_config,
    network_config,
)
from experiments.data import build_dataset, pckh_exclude, worker_count
from experiments.device import model_device, resolve_device, to_device
from experiments.modules import build_module
from experiments.run_folder import run_dir
from experiments.training_defaults import resolve_training_defaults

POSE_DATASETS, ACTION_DATASETS = ("mpii", "h36m"), ("penn", "ntu")


Protocol = ProtocolConfig  # the protocol keys of the config's eval section, as a dataclass


def protocol_of(cfg: DictConfig) -> Protocol:
    """The protocol the config's ``eval.*`` keys describe."""
    return Protocol(**{f.name: cfg.eval[f.name] for f in fields(Protocol)})


# ---- network ----
def load_model(cfg: DictConfig, ckpt: str | Path, fast: bool | None = None) -> nn.Module:
    """The config's network filled from ``ckpt`` (strict), on ``eval.device`` (auto: CUDA when
    there is one), ready for inference: through ``for_inference`` unless ``fast`` (default
    ``cfg.eval.fast``) is off."""
    net = load_network(ckpt, network_config(cfg)).to(resolve_device(cfg.eval.device))
    return for_inference(net, fast=cfg.eval.fast if fast is None else fast)


def crop_shift(cfg: DictConfig, displacement: int = -1) -> int:
    """Multi-crop shift in crop pixels: ``displacement``, or for -1 ``eval.crop_shift`` (pixels of
    a 256² input) scaled to ``model.input_size``; at least 1 pixel."""
    if displacement >= 0:
        return displacement
    return max(1, round(cfg.eval.crop_shift * cfg.model.input_size / 256))


# ---- data ----
def eval_loader(cfg: DictConfig, key: str, limit: int = 0, **options: Any) -> DataLoader:
    """Test loader of source ``key`` with reader ``options`` (e.g. clip_sampling="multi")."""
    cfg = cfg.copy()
    OmegaConf.set_struct(cfg, False)
    source = cfg.data.sources[key]
    source.test_options = {**OmegaConf.to_container(source.test_options), **options}
    dataset = build_dataset(cfg, key, "test")
    if 0 < limit < len(dataset):
        dataset = Subset(dataset, list(range(limit)))
    workers = worker_count(cfg.data.num_workers)
    fork_safe_opencv(workers)
    return DataLoader(
        dataset,
        batch_size=cfg.data.eval_batch_size,
        collate_fn=collate_readable,
        num_workers=workers,
        worker_init_fn=init_worker if workers else None,
    )


# ---- pose protocols ----
@torch.no_grad()
def evaluate_pose(
    net: nn.Module, loader, layout: str, views: Sequence[protocols.CropView], desc: str = ""
) -> dict[str, Any]:
    """``PoseMetrics`` (PCKh, PCK, MPJPE per H36M action) of the predictions of ``views`` averaged
    (``protocols.multi_crop``) over ``loader``; ``PoseMetrics.details()``."""
    lay, device = get_layout(layout), model_device(net)
    metrics = PoseMetrics(len(lay), pckh_exclude(layout), lay.index("pelvis"), len(H36M_ACTIONS))
    metrics.to(device)
    predict = protocols.pose_predictor(net)
    missing = MissingLog()  # unreadable samples: never replaced, reported under "samples"
    for batch in tqdm(missing.track(loader), desc=desc, leave=False, disable=None):
        batch = batch_to_float(to_device(batch, device))  # uint8 → the network's input
        pose, _ = protocols.multi_crop(predict, batch["image"], lay.flip, views)  # (B, J, D)
        metrics.update(pose, batch)
    return metrics.details() | {"protocol": desc.split("/")[-1], "samples": missing.as_dict()}


# ---- action protocols ----
@torch.no_grad()
def evaluate_action(
    net: nn.Module, loader, reduction: str = "mean", flip: bool = False, desc: str = ""
) -> dict[str, float]:
    """``ActionMetrics`` over the loader's clips (one clip per video: single-clip; all clips:
    multi-clip), scores combined per ``video_id`` by ``reduction``; with ``flip`` every clip is
    also seen mirrored. → {"pose", "appearance", "aggregation"} (video accuracy of each branch)
    and the clip accuracy of every block ``acc_pose1`` …"""
    cfg, device = net.cfg, model_device(net)
    metrics = ActionMetrics(cfg.action_blocks, cfg.num_actions, reduction, cfg.pose_members).to(
        device
    )
    missing = MissingLog()  # unreadable samples: never replaced, reported under "samples"
    for batch in tqdm(missing.track(loader), desc=desc, leave=False, disable=None):
        batch = batch_to_float(to_device(batch, device))  # uint8 → the network's input
        views = protocols.clip_views(batch["image"], flip) if "image" in batch else [None]
        for images in views:
            metrics.update(action_forward(net, batch, images), batch)
    out = {k: float(v) for k, v in metrics.compute().items()}
    return (
        {b: out[f"video_acc_{b}"] for b in BRANCHES if f"video_acc_{b}" in out}
        | {k: v for k, v in out.items() if k.startswith(("acc", "video_acc"))}
        | metric_details(metrics)
        | {"samples": missing.as_dict()}
    )


# ---- the run's own protocol: the training's test stage ----
@torch.no_grad()
def evaluate_run(cfg: DictConfig, net: nn.Module, limit: int = 0) -> dict[str, Any]:
    """The test stage of ``experiments.train`` on ``net`` (eager, as trained): the task module of
    ``cfg`` (``experiments.modules.build_module``) runs its own ``test_step`` over every test
    source of ``cfg`` (the run's ``test_options``), and its metrics are computed as its epoch end
    logs them. → {"test/<metric>": value …} (the names the training prints), the
    ``ActionMetrics`` / ``PoseMetrics`` objects' details for the pictures, and "samples"."""
    module = build_module(cfg, net).eval()
    device = model_device(net)
    missing = MissingLog()
    for key in cfg.data.test:
        for i, batch in enumerate(missing.track(eval_loader(cfg, key, limit))):
            batch = module.on_after_batch_transfer(to_device(batch, device), 0)
            with autocast(cfg, device):
                module.test_step(batch, i)
    out: dict[str, Any] = {"protocol": "run"}
    if updated_anywhere([module.test_loss])[0]:
        out["test/loss"] = float(module.test_loss.compute())
    for metric in module._metrics("test"):
        out |= {f"test/{k}": float(v) for k, v in metric.compute().items()}
        out |= metric_details(metric)
    return out | {"samples": missing.as_dict()}


def autocast(cfg: DictConfig, device: torch.device) -> torch.autocast:
    """The mixed precision of ``trainer.precision`` ("16-mixed", "bf16-mixed"; else none), as
    Lightning's precision plugin runs the test step."""
    precision = str(resolve_training_defaults(cfg, verbose=False).trainer.precision)
    dtype = torch.bfloat16 if precision.startswith("bf16") else torch.float16
    return torch.autocast(device.type, dtype, enabled=precision.endswith("-mixed"))


def metric_details(metric: nn.Module) -> dict[str, Any]:
    """What the pictures need of a stage's metric object: per-joint PCKh / PCK and MPJPE per
    action (``PoseMetrics.details``), or the per-class accuracy and confusion matrix of the
    video predictions (``ActionMetrics``)."""
    if isinstance(metric, PoseMetrics):
        return {k: v for k, v in metric.details().items() if not isinstance(v, float)}
    if isinstance(metric, ActionMetrics) and metric.video.update_called:
        confusion = figures.video_confusion(metric.video, metric.num_actions)
        return {"confusion": confusion.tolist(), "per_class": figures.per_class(confusion)}
    return {}


# ---- the paper's protocols ----
POSE_PROTOCOLS = ("single-crop", "multi-crop", "crop-views")
ACTION_PROTOCOLS = ("single-clip", "multi-clip", "official")
PROTOCOLS = ("run", *POSE_PROTOCOLS, *ACTION_PROTOCOLS)
# reader options a named protocol sets itself (the run's test_options of these are not inherited)
CLIP_OPTIONS = ("clip_sampling", "flip_clips", "whole_offsets", "subsample", "clip_step")
OFFICIAL = dict(clip_sampling="multi", subsample=2, clip_length=16)  # clips every T/2 = 8


def protocol_names(protocol: Protocol) -> list[str]:
    """The protocols to run: ``eval.protocol`` (comma list) and those ``eval.crops`` /
    ``eval.clips`` name, in order, once each; none named: "run". An unknown name is a
    ``ConfigError``."""
    names = [n.strip() for n in protocol.protocol.split(",") if n.strip()]
    names += [f"{r}-crop" for r in protocol.runs("crops")]
    names += [f"{r}-clip" for r in protocol.runs("clips")]
    names = names or ["run"]
    if bad := [n for n in names if n not in PROTOCOLS]:
        raise ConfigError(f"eval.protocol: unknown {bad}; one or more of {', '.join(PROTOCOLS)}")
    return list(dict.fromkeys(names))


def protocol_loader(cfg: DictConfig, key: str, limit: int, **options: Any) -> DataLoader:
    """``eval_loader`` with the run's clip-protocol test options replaced by ``options``."""
    cfg = cfg.copy()
    OmegaConf.set_struct(cfg, False)
    source = cfg.data.sources[key]
    kept = OmegaConf.to_container(source.test_options)
    source.test_options = {k: v for k, v in kept.items() if k not in CLIP_OPTIONS}
    return eval_loader(cfg, key, limit, **options)


def evaluate_clips(cfg: DictConfig, net: nn.Module, key: str, name: str, protocol: Protocol):
    """An action protocol (single-clip | multi-clip | official) on test source ``key``."""
    flip, reduction = protocol.clip_flip, cfg.eval.video_reduction
    options: dict[str, Any] = {"clip_sampling": "middle" if name == "single-clip" else "multi"}
    if name == "official":
        options, flip, reduction = dict(OFFICIAL), True, "mean"
    poses_only = cfg.data.sources[key].options.get("mode") == "poses"
    if flip and poses_only:  # no images to mirror: the reader mirrors the poses
        options["flip_clips"], flip = True, False
    loader = protocol_loader(cfg, key, protocol.limit, **options)
    return evaluate_action(net, loader, reduction, flip, f"{key}/{name}")


def evaluate_views(
    net: nn.Module, loader: DataLoader, layout: str, key: str, shift: int
) -> dict[str, dict[str, Any]]:
    """ "crop-views": each of multi-crop's 10 views scored alone ("<key>/view(+8,+0)+flip" …),
    to see which views help the average and which hurt it."""
    out = {}
    for view in protocols.multi_crop_views(shift, flip=True):
        label = f"{key}/view({view.shift[0]:+d},{view.shift[1]:+d}){'+flip' if view.flip else ''}"
        out[label] = evaluate_pose(net, loader, layout, [view], label) | {"protocol": "crop-views"}
    return out


def evaluate(
    cfg: DictConfig, net: nn.Module, protocol: Protocol, run_net: nn.Module | None = None
) -> dict[str, dict[str, Any]]:
    """{"run": the training's test figures, "<source>/<protocol>": metrics …} for the protocols
    of ``protocol`` (``protocol_names``) on the test sources of ``cfg``; ``run_net`` (default
    ``net``): the network of the "run" protocol (the eager one: the training's)."""
    results: dict[str, dict[str, Any]] = {}
    names = protocol_names(protocol)
    if "run" in names:
        results["run"] = evaluate_run(cfg, net if run_net is None else run_net, protocol.limit)
    for key in cfg.data.test:
        dataset = cfg.data.sources[key].dataset
        if dataset in POSE_DATASETS and any(n in POSE_PROTOCOLS for n in names):
            loader = eval_loader(cfg, key, protocol.limit)
            shift = crop_shift(cfg, protocol.displacement)
            for name in (n for n in names if n in POSE_PROTOCOLS):
                if name == "crop-views":
                    results |= evaluate_views(net, loader, cfg.data.layout, key, shift)
                    continue
                multi = name == "multi-crop"
                views = protocols.multi_crop_views(shift if multi else 0, flip=multi)
                label = f"{key}/{name}"
                results[label] = evaluate_pose(net, loader, cfg.data.layout, views, label)
        elif dataset in ACTION_DATASETS:
            for name in (n for n in names if n in ACTION_PROTOCOLS):
                results[f"{key}/{name}"] = evaluate_clips(cfg, net, key, name, protocol)
    for name, res in results.items():
        res.setdefault("protocol", name.split("/")[-1])
    return results


def result_tables(results: Mapping[str, Mapping], layout: str) -> dict[str, Any]:
    """Paper-shaped DataFrames for whatever ``results`` hold, rows labelled by protocol; the "run"
    protocol's figures also as the training names them ("run" table)."""
    out = {}
    if "run" in results:
        run = {k: v for k, v in results["run"].items() if k.startswith("test/")}
        out["run"] = tables.metric_table(run)
    pckh = {
        k: v | {"per_joint": v["pckh_per_joint"]} for k, v in results.items() if "pckh@0.5" in v
    }
    if pckh:
        out["pckh"] = tables.mpii_table(pckh, get_layout(layout).joints)
    mpjpe = {k: v["mpjpe_per_action"] for k, v in results.items() if "mpjpe_per_action" in v}
    if mpjpe:
        out["mpjpe"] = tables.h36m_table(mpjpe)
    acc = {k: branch_accuracies(v) for k, v in results.items()}
    if acc := {k: v for k, v in acc.items() if v}:
        out["action"] = tables.accuracy_table(acc)
    return out


def branch_accuracies(result: Mapping[str, Any]) -> dict[str, float]:
    """Video accuracy per branch (Table 5 columns) of one result: a paper protocol's "pose" …,
    or the run's "test/video_acc_pose" …"""
    found = {b: result.get(b, result.get(f"test/video_acc_{b}")) for b in BRANCHES}
    return {b: float(v) for b, v in found.items() if v is not None}


TITLES = {
    "run": "The run's own test protocol (as experiments.train prints it)",
    "pckh": "MPII PCKh (%)",
    "mpjpe": "Human3.6M MPJPE (mm, protocol 1)",
    "action": "Action video accuracy (%), per branch",
}


def write_results(
    results: Mapping[str, Mapping],
    layout: str,
    out_dir: str | Path,
    action_names: Sequence[str] = (),
) -> str:
    """``results.json``, one CSV/Markdown per table and the pictures (``experiments.figures``,
    actions labelled with ``action_names``) in ``out_dir``; returns the Markdown."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    texts = [
        tables.write_table(df, out_dir, name, TITLES[name], 4 if name == "run" else 1)
        for name, df in result_tables(results, layout).items()
    ]
    written = figures.write_figures(results, out_dir, get_layout(layout).joints, action_names)
    return "\n".join(texts + [f"figure: {path}" for path in written])


def eval_config(name: str, overrides: Sequence[str]) -> DictConfig:
    """The config of ``name`` with ``overrides``, or — when ``eval.ckpt`` lies in a run folder —
    the run's saved config with ``overrides`` on top (its protocol is the run's)."""
    cfg = load_config(name, list(overrides))
    if not cfg.eval.ckpt:
        raise ConfigError("ckpt=PATH (eval.ckpt) is required")
    saved = config_path(cfg.eval.ckpt)
    if saved is None:
        return cfg
    print(f"config: {saved} (the run's), command-line overrides on top", flush=True)
    return load_config(str(saved), list(overrides))


def main(argv: list[str] | None = None) -> int:
    argv, code = arguments(argv, __doc__)
    if code is not None:
        return code
    try:
        cfg = eval_config(argv[0], expand_short_keys(argv[1:], EVALUATE_KEYS))
        protocol = protocol_of(cfg)
        names = protocol_names(protocol)
        net = load_model(cfg, cfg.eval.ckpt)  # for_inference unless eval.fast=false
        run_net = load_model(cfg, cfg.eval.ckpt, fast=False) if "run" in names else None
        results = evaluate(cfg, net, protocol, run_net)
        out = protocol.out or str(run_dir(cfg) / "eval")
        labels = figures.action_names(cfg)
        print(write_results(results, cfg.data.layout, out, labels))
        logs = {k: MissingLog.from_dict(v["samples"]) for k, v in results.items() if "samples" in v}
        for line in check_missing(logs, allow=True, flag=""):
            print(line)  # "mpii/single-crop: scored 21 of 23 samples; 2 unreadable: …"
        print(f"written to {out}")
        check_missing(logs, cfg.eval.allow_missing, "eval.allow_missing=true")
    except (ConfigError, CheckpointError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except MissingSamples as err:  # results written: over the readable samples, counted
        print(f"error: unreadable test samples: {err}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
