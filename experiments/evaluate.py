"""Evaluate a checkpoint with the paper's test protocols and write paper-shaped tables.

    python -m experiments.evaluate <config> ckpt=PATH [protocol options] [config overrides]
    python -m experiments.evaluate mpii ckpt=weights_PE_MPII_cvpr18_19-09-2017.h5 data.root=…

Every option is a key of the config's ``eval`` section, read with the config in one OmegaConf
dot-list as ``train`` reads it (``experiments/config.py``: ``ProtocolConfig``, ``EvalConfig``);
the short forms stand for them: ckpt=PATH (``eval.ckpt``: a Lightning checkpoint, a
``deephar.convert`` .pt or an official Keras .h5, converted on the fly into the network of the
config), crops=single|multi|both (MPII, H36M), displacement=8 (multi-crop shift, crop pixels),
clips=single|multi|both (Penn, NTU), clip_flip=false (each clip also mirrored),
reduction=mean|prod (``eval.video_reduction``), limit=0 (first N samples or videos per source),
out=DIR (default ``<out_dir>/<name>/eval``), fast=false (``eval.fast``: the eager fp32 network).

Per test source of the config: MPII PCKh@0.5 / @0.2 / AUC per body part; H36M MPJPE (protocol 1)
per action; Penn / NTU accuracy of the middle clip (single-clip) and of all clips every T/2
(multi-clip), for the pose branch, the appearance branch and their aggregation. The scores come
from the task modules' own metric objects (``PoseMetrics``, ``ActionMetrics``); multi-crop and
multi-clip are views in front of them (``experiments.protocols``).
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
from deephar.checkpoint import CheckpointError, load_network
from deephar.images import batch_to_float
from deephar.models.inference import for_inference
from deephar.tasks.action import BRANCHES, ActionMetrics, action_forward
from deephar.tasks.pose import PoseMetrics
from experiments import protocols, tables
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
from experiments.run_folder import run_dir

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
    return metrics.details() | {"samples": missing.as_dict()}


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
        | {k: v for k, v in out.items() if k.startswith("acc_")}
        | {"samples": missing.as_dict()}
    )


# ---- the whole evaluation ----
def evaluate(cfg: DictConfig, net: nn.Module, protocol: Protocol) -> dict[str, dict[str, Any]]:
    """{"<source>/<single|multi>-<crop|clip>": metrics} for every test source of ``cfg``."""
    results: dict[str, dict[str, Any]] = {}
    reduction = cfg.eval.video_reduction
    for key in cfg.data.test:
        dataset = cfg.data.sources[key].dataset
        if dataset in POSE_DATASETS:
            loader = eval_loader(cfg, key, protocol.limit)
            shift = crop_shift(cfg, protocol.displacement)
            for run in protocol.runs("crops"):
                views = protocols.multi_crop_views(
                    shift if run == "multi" else 0, flip=run == "multi"
                )
                name = f"{key}/{run}-crop"
                results[name] = evaluate_pose(net, loader, cfg.data.layout, views, name)
        elif dataset in ACTION_DATASETS:
            for run in protocol.runs("clips"):
                sampling = "middle" if run == "single" else "multi"
                loader = eval_loader(cfg, key, protocol.limit, clip_sampling=sampling)
                name = f"{key}/{run}-clip"
                results[name] = evaluate_action(net, loader, reduction, protocol.clip_flip, name)
    return results


def result_tables(results: Mapping[str, Mapping], layout: str) -> dict[str, Any]:
    """Paper-shaped DataFrames for whatever ``results`` hold."""
    out = {}
    pckh = {
        k: v | {"per_joint": v["pckh_per_joint"]} for k, v in results.items() if "pckh@0.5" in v
    }
    if pckh:
        out["pckh"] = tables.mpii_table(pckh, get_layout(layout).joints)
    mpjpe = {k: v["mpjpe_per_action"] for k, v in results.items() if "mpjpe_per_action" in v}
    if mpjpe:
        out["mpjpe"] = tables.h36m_table(mpjpe)
    acc = {k: {b: v[b] for b in BRANCHES if b in v} for k, v in results.items() if "pose" in v}
    if acc:
        out["action"] = tables.accuracy_table(acc)
    return out


def write_results(results: Mapping[str, Mapping], layout: str, out_dir: str | Path) -> str:
    """``results.json`` + one CSV/Markdown per table in ``out_dir``; returns the Markdown."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    titles = {
        "pckh": "MPII PCKh (%)",
        "mpjpe": "Human3.6M MPJPE (mm, protocol 1)",
        "action": "Action accuracy (%), per branch",
    }
    texts = [
        tables.write_table(df, out_dir, name, titles[name])
        for name, df in result_tables(results, layout).items()
    ]
    return "\n".join(texts)


def main(argv: list[str] | None = None) -> int:
    argv, code = arguments(argv, __doc__)
    if code is not None:
        return code
    try:
        cfg = load_config(argv[0], expand_short_keys(argv[1:], EVALUATE_KEYS))
        if not cfg.eval.ckpt:
            raise ConfigError("ckpt=PATH (eval.ckpt) is required")
        protocol = protocol_of(cfg)
        net = load_model(cfg, cfg.eval.ckpt)  # for_inference unless eval.fast=false
        results = evaluate(cfg, net, protocol)
        out = protocol.out or str(run_dir(cfg) / "eval")
        print(write_results(results, cfg.data.layout, out))
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
