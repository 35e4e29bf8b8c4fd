"""Official Keras weights (.h5, dluvizon/deephar) → our PyTorch state dicts.

Public API:
- ``keras_state_dict(module, h5_path, cfg=None, members="refuse") -> dict[str, Tensor]``:
  converted state dict (``members`` "copy": the one official pose branch into every member of a
  ``pose_members`` > 1 network; "refuse": ``MissingMembers`` names them).
- ``load_keras_weights(module, h5_path, cfg=None, members="refuse") -> dict[str, Tensor]``: the
  same, loaded.
- ``build_network(model_name, blocks=None, pose_members=1) -> (nn.Module, NetworkConfig)``.
- ``convert_file(h5_path, out_path, model_name, blocks=None, pose_members=1) -> Path``: writes
  ``{"model", "config", "state_dict", "source"}`` with ``torch.save``.
- ``main(argv)``: ``python -m deephar.convert weights.h5 out.pt --model mpii|h36m|penn|ntu
  [--blocks K] [--pose-members M]`` (M: the one official pose branch copied into each member).

Extension point for the action models: ``deephar.convert.action.merge_plan(model, cfg, kfile)
-> ConversionPlan``; it combines ``pose.merge_pose_plan(cfg, prefix)`` for the pose part with
``GroupPlan``s of its own (see ``mapping.py``). The driver ``mapping.convert_plans`` enforces that
every key is filled exactly once, every shape matches and every Keras group is used.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch
from torch import Tensor, nn

from deephar.config import PRESETS, NetworkConfig
from deephar.convert.keras_h5 import KerasWeightFile
from deephar.convert.mapping import ConversionPlan, convert_plans
from deephar.convert.pose import merge_pose_plan, pose_plan
from deephar.models.pose import PoseNet
from deephar.models.pose_ensemble import ENSEMBLE_PREFIX, UNTRACKED, complete_members

POSE_MODELS = ("mpii", "h36m")
ACTION_MODELS = ("penn", "ntu")


def is_merge_file(kfile: KerasWeightFile) -> bool:
    """Whether the file holds an official action (merge) model: its pose network is split into
    time-distributed groups."""
    return "td_Stem" in kfile.layer_names


def build_plan(module: nn.Module, cfg: NetworkConfig, kfile: KerasWeightFile) -> ConversionPlan:
    """The plan filling ``module`` from ``kfile``.

    - ``PoseNet`` from a pose-model file: every group; from a merge file: its pose network only.
    - ``DeepHAR`` (``models.multitask``; keys ``pose.*``, ``action.*``) from a merge file: pose
      part here, action part from ``convert.action.action_plans``; from a pose-model file: only
      when it has no action head.
    """
    merge = is_merge_file(kfile)
    if isinstance(module, PoseNet):
        plan = merge_pose_plan(cfg, "") if merge else pose_plan(cfg)
        plan.ignore_unused = merge
        return plan
    head = getattr(module, "action", None)
    if not merge:
        if head is not None:
            raise ValueError(f"{kfile.path}: a pose-model file, but the model has an action head")
        return pose_plan(cfg, prefix="pose.")
    from deephar.convert import action  # the action models' part (lazy)

    plan = merge_pose_plan(cfg, "pose.")
    if head is None:
        plan.ignore_unused = True
    else:
        plan.groups += action.action_plans(kfile, head, prefix="action")
    return plan


def keras_state_dict(
    module: nn.Module,
    h5_path: str | Path,
    cfg: NetworkConfig | None = None,
    members: str = "refuse",
) -> dict[str, Tensor]:
    """Convert ``h5_path`` for ``module`` (whose ``cfg`` is used when none is given).

    An official file holds one pose branch: a network with a pose ensemble of M > 1 members
    (``cfg.pose_members``) gets it in every member with ``members`` "copy", else
    ``MissingMembers`` names the members the file lacks.
    """
    cfg = cfg if cfg is not None else module.cfg
    if cfg.width != 1.0:
        raise ValueError(
            f"{h5_path}: the official Keras weights fit the official network only (width 1.0); "
            f"this network has width {cfg.width}"
        )
    target = module
    if cfg.pose_members > 1 and getattr(module, "action", None) is not None:
        from deephar.models.multitask import build_model  # lazy: the action models

        target = build_model(cfg.with_(pose_members=1))  # the official network: one branch
    with KerasWeightFile(h5_path) as kfile:
        state = convert_plans(kfile, build_plan(target, cfg, kfile), target)
    if target is module:
        return state
    own = module.state_dict()
    state = complete_members(state, own, ENSEMBLE_PREFIX, cfg.pose_members, members)
    counters = {k: v.clone() for k, v in own.items() if k.endswith(UNTRACKED)}
    return {**counters, **state}


def load_keras_weights(
    module: nn.Module,
    h5_path: str | Path,
    cfg: NetworkConfig | None = None,
    members: str = "refuse",
) -> dict[str, Tensor]:
    """Convert and load (strict) into ``module``; returns the state dict."""
    state = keras_state_dict(module, h5_path, cfg, members)
    module.load_state_dict(state)
    return state


def build_network(
    model_name: str, blocks: int | None = None, pose_members: int = 1
) -> tuple[nn.Module, NetworkConfig]:
    """The network of a published configuration (``PRESETS``), optionally with K = ``blocks``
    and an ensemble of ``pose_members`` pose branches (action models)."""
    if model_name not in PRESETS:
        raise ValueError(f"unknown model {model_name!r}; choose from {sorted(PRESETS)}")
    cfg = PRESETS[model_name]
    if blocks is not None:
        cfg = cfg.with_(pose_blocks=blocks)
    if model_name in POSE_MODELS:
        if pose_members != 1:
            raise ValueError(f"--pose-members is for the action models {ACTION_MODELS}")
        return PoseNet(cfg), cfg
    cfg = cfg.with_(pose_members=pose_members)
    from deephar.models.multitask import build_model  # lazy: the action models

    return build_model(cfg), cfg


def convert_file(
    h5_path: str | Path,
    out_path: str | Path,
    model_name: str,
    blocks: int | None = None,
    pose_members: int = 1,
) -> Path:
    """Convert an official weight file into a ``torch.save`` checkpoint at ``out_path``; with
    ``pose_members`` M > 1, the file's one pose branch copied into each of the M members."""
    module, cfg = build_network(model_name, blocks, pose_members)
    state = keras_state_dict(module, h5_path, cfg, members="copy" if pose_members > 1 else "refuse")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": model_name,
        "config": dataclasses.asdict(cfg),
        "state_dict": state,
        "source": str(h5_path),
    }
    torch.save(payload, out_path)
    return out_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deephar.convert", description="Convert official deephar Keras weights."
    )
    parser.add_argument("weights", type=Path, help="Keras .h5 weight file")
    parser.add_argument("out", type=Path, help="output .pt file")
    parser.add_argument("--model", required=True, choices=sorted(PRESETS))
    parser.add_argument("--blocks", type=int, default=None, help="pose blocks K (default: preset)")
    parser.add_argument(
        "--pose-members",
        type=int,
        default=1,
        help="M: a model.pose_members=M network, the official pose branch in every member",
    )
    args = parser.parse_args(argv)
    try:
        out = convert_file(args.weights, args.out, args.model, args.blocks, args.pose_members)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0
