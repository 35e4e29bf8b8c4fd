"""Evaluate a checkpoint with the paper's test protocols and write paper-shaped tables.

    python -m experiments.evaluate <config> ckpt=PATH [protocol options] [config overrides]
    python -m experiments.evaluate mpii ckpt=weights_PE_MPII_cvpr18_19-09-2017.h5 data.root=…

ckpt: a Lightning checkpoint, a ``deephar.convert`` .pt or an official Keras .h5 (converted on the
fly into the network of the config). Protocol options: crops=single|multi|both (MPII, H36M),
displacement=8 (multi-crop shift, crop pixels), clips=single|multi|both (Penn, NTU),
clip_flip=false (each clip also mirrored), reduction=mean|prod (default ``eval.video_reduction``),
limit=0 (first N samples or videos per source), out=DIR (default ``<out_dir>/<name>/eval``).

Per test source of the config: MPII PCKh@0.5 / @0.2 / AUC per body part; H36M MPJPE (protocol 1)
per action; Penn / NTU accuracy of the middle clip (single-clip) and of all clips every T/2
(multi-clip), for the pose branch, the appearance branch and their aggregation.
Alphabet: B batch, T frames, J joints, D 2|3, A actions.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from datamodules.h36m import ACTIONS as H36M_ACTIONS
from datamodules.layouts import get_layout
from deephar.metrics import MPJPE, PCK, PCKh, VideoAccuracy, decode_pose_mm, decode_pose_px
from deephar.models.multitask import DeepHAR, build_model
from deephar.tasks.action import action_forward
from deephar.tasks.base import init_network, load_net_weights
from experiments import protocols, tables
from experiments.config import ConfigError, load_config, network_config
from experiments.data import build_dataset, pckh_exclude

POSE_DATASETS, ACTION_DATASETS = ("mpii", "h36m"), ("penn", "ntu")
BRANCHES = ("pose", "appearance", "aggregation")


@dataclass
class Protocol:
    """Test-time protocol options (``key=value`` on the command line)."""

    crops: str = "both"  # single | multi | both
    displacement: int = 8  # multi-crop shift in crop pixels
    clips: str = "both"  # single | multi | both
    clip_flip: bool = False  # official Penn multi-clip: each clip with and without flip
    reduction: str = ""  # mean | prod; "" = the config's eval.video_reduction
    limit: int = 0  # first N samples (pose) / videos' clips (action) per source; 0 = all
    out: str = ""  # output folder; "" = <out_dir>/<name>/eval

    def runs(self, kind: str) -> list[str]:
        choice = getattr(self, kind)
        if choice not in ("single", "multi", "both"):
            raise ConfigError(f"{kind}={choice!r}: single | multi | both")
        return ["single", "multi"] if choice == "both" else [choice]


def split_args(args: Sequence[str]) -> tuple[str, dict[str, str], list[str]]:
    """<config> ckpt=… [protocol key=value] [config overrides] → (name, protocol, overrides)."""
    if not args:
        raise ConfigError("usage: python -m experiments.evaluate <config> ckpt=PATH [options]")
    keys = {f.name for f in fields(Protocol)} | {"ckpt"}
    pairs = [a.split("=", 1) for a in args[1:]]
    if bad := [a for a, p in zip(args[1:], pairs) if len(p) != 2]:
        raise ConfigError(f"arguments must be key=value: {bad}")
    options = {k: v for k, v in pairs if k in keys}
    overrides = [f"{k}={v}" for k, v in pairs if k not in keys]
    return args[0], options, overrides


def parse_protocol(options: Mapping[str, str]) -> Protocol:
    types = {f.name: f.type for f in fields(Protocol)}
    values = {}
    for key, raw in options.items():
        if key == "ckpt":
            continue
        kind = types[key]
        values[key] = raw.lower() in ("1", "true", "yes") if kind == "bool" else (
            int(raw) if kind == "int" else raw
        )  # fmt: skip
    return Protocol(**values)


# ---- network ----
def load_model(cfg: DictConfig, ckpt: str | Path) -> DeepHAR:
    """The config's network filled from ``ckpt`` (every tensor: a partial load is an error)."""
    net = build_model(network_config(cfg))
    if str(ckpt).endswith(".h5"):
        init_network(net, keras_h5=ckpt)
    else:
        missing, _ = load_net_weights(net, ckpt)
        if missing:
            raise ValueError(
                f"{ckpt}: {len(missing)} tensors of the network missing ({missing[:3]}…)"
            )
    return net.eval()


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
    return DataLoader(dataset, batch_size=cfg.data.eval_batch_size,
                      num_workers=min(cfg.data.num_workers, 2))  # fmt: skip


# ---- pose protocols ----
@torch.no_grad()
def evaluate_pose(
    net: DeepHAR, loader, layout: str, views: Sequence[protocols.CropView], desc: str = ""
) -> dict[str, Any]:
    """PCKh (MPII, ``pck_ref`` > 0), PCK (other 2D data) and MPJPE per H36M action, with the
    predictions of ``views`` averaged (``protocols.multi_crop``)."""
    lay = get_layout(layout)
    exclude = pckh_exclude(layout)
    pckh, pck = PCKh(len(lay), exclude), PCK(len(lay), exclude)
    mpjpe = MPJPE(root=lay.index("pelvis"), num_groups=len(H36M_ACTIONS))
    predict = protocols.pose_predictor(net)
    for batch in tqdm(loader, desc=desc, leave=False):
        pose, _ = protocols.multi_crop(predict, batch["image"], lay.flip, views)  # (B, J, D)
        pred_px = decode_pose_px(pose, batch["crop"])
        is_mpii = torch.tensor([d == "mpii" for d in batch["dataset"]])
        scored = batch["pck_ref"] > 0
        for metric, rows in ((pckh, is_mpii & scored), (pck, ~is_mpii & scored)):
            if rows.any():
                metric.update(pred_px[rows], batch["pose_px"][rows],
                              batch["pose_px_valid"][rows], batch["pck_ref"][rows])  # fmt: skip
        is_3d = (batch["camera"] != 0).any(-1)
        if pose.shape[-1] == 3 and is_3d.any():
            b = is_3d
            pred_mm = decode_pose_mm(
                pose[b], batch["crop"][b], batch["depth"][b], batch["camera"][b]
            )
            is_h36m = torch.tensor([d == "h36m" for d in batch["dataset"]])
            group = torch.where(is_h36m, batch["action"], -1)[b]
            mpjpe.update(pred_mm, batch["pose_mm"][b], batch["pose_px_valid"][b], group)
    out: dict[str, Any] = {}
    for metric in (pckh, pck):
        if metric.update_called:
            out |= {k: float(v) for k, v in metric.compute().items()}
            out[f"{metric.prefix}_per_joint"] = metric.per_joint(0.5).tolist()
    if mpjpe.update_called:
        out |= {k: float(v) for k, v in mpjpe.compute().items()}
        out["mpjpe_per_action"] = mpjpe.per_group()[:, 0].tolist()
    return out


# ---- action protocols ----
def branch_logits(output) -> dict[str, torch.Tensor]:
    """The last prediction of each branch (Table 5 columns) and the aggregate."""
    out = {"pose": output.pose_branch[-1]}
    if output.appearance_branch:
        out["appearance"] = output.appearance_branch[-1]
    if output.aggregate is not None:
        out["aggregation"] = output.aggregate
    return out


@torch.no_grad()
def evaluate_action(
    net: DeepHAR, loader, reduction: str = "mean", flip: bool = False, desc: str = ""
) -> dict[str, float]:
    """Video accuracy of each branch over the loader's clips (one clip per video: single-clip;
    all clips: multi-clip), scores combined per ``video_id`` by ``reduction``; with ``flip``
    every clip is also seen mirrored. Also the clip accuracy of every block ``acc_pose1`` …"""
    video = {b: VideoAccuracy(reduction) for b in BRANCHES}
    blocks: dict[str, list[int]] = {}
    for batch in tqdm(loader, desc=desc, leave=False):
        labels, ids = batch["action"], batch.get("video_id", batch["sample_id"])
        views = protocols.clip_views(batch["image"], flip) if "image" in batch else [None]
        for i, images in enumerate(views):
            output = action_forward(net, batch, images)
            for name, logits in branch_logits(output).items():
                video[name].update(logits, labels, ids)
            if i == 0:
                named = [(f"pose{k + 1}", z) for k, z in enumerate(output.pose_branch)]
                named += [(f"app{k + 1}", z) for k, z in enumerate(output.appearance_branch)]
                for name, z in named:
                    hits = blocks.setdefault(name, [0, 0])
                    hits[0] += int((z.argmax(-1) == labels)[labels >= 0].sum())
                    hits[1] += int((labels >= 0).sum())
    out = {b: float(m.compute()) for b, m in video.items() if m.update_called}
    return out | {f"acc_{n}": h[0] / max(h[1], 1) for n, h in blocks.items()}


# ---- the whole evaluation ----
def evaluate(cfg: DictConfig, net: DeepHAR, protocol: Protocol) -> dict[str, dict[str, Any]]:
    """{"<source>/<single|multi>-<crop|clip>": metrics} for every test source of ``cfg``."""
    results: dict[str, dict[str, Any]] = {}
    reduction = protocol.reduction or cfg.eval.video_reduction
    for key in cfg.data.test:
        dataset = cfg.data.sources[key].dataset
        if dataset in POSE_DATASETS:
            loader = eval_loader(cfg, key, protocol.limit)
            for run in protocol.runs("crops"):
                views = protocols.multi_crop_views(protocol.displacement if run == "multi" else 0,
                                                   flip=run == "multi")  # fmt: skip
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
    titles = {"pckh": "MPII PCKh (%)", "mpjpe": "Human3.6M MPJPE (mm, protocol 1)",
              "action": "Action accuracy (%), per branch"}  # fmt: skip
    texts = [tables.write_table(df, out_dir, name, titles[name])
             for name, df in result_tables(results, layout).items()]  # fmt: skip
    return "\n".join(texts)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    try:
        name, options, overrides = split_args(argv)
        if "ckpt" not in options:
            raise ConfigError("ckpt=PATH is required")
        protocol = parse_protocol(options)
        cfg = load_config(name, overrides)
        net = load_model(cfg, options["ckpt"])
        results = evaluate(cfg, net, protocol)
        out = protocol.out or str(Path(cfg.out_dir) / cfg.name / "eval")
        print(write_results(results, cfg.data.layout, out))
        print(f"written to {out}")
    except (ConfigError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
