"""Checkpoint discovery: any of the project's weight files → a ready network with its joint layout
and action names.

Files: a Lightning checkpoint of the task modules (its stored config, else the ``config.yaml`` that
``experiments.train`` saved beside or above it), a converted official file (``.pt`` of
``python -m deephar.convert``, the demo's ``model.pt``: config and action names inside) or an
official Keras ``.h5`` (``keras_model=mpii|h36m|penn|ntu``); all read by ``deephar.checkpoint``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf
from torch import nn

from datamodules.penn import ACTIONS as PENN_ACTIONS
from deephar.checkpoint import CheckpointError, load_checkpoint, run_config, stored_config
from deephar.checkpoint import load_network as load_checkpoint_network
from deephar.config import PRESETS, NetworkConfig
from deephar.device import resolve_device
from deephar.models.inference import for_inference

DEFAULT_LAYOUT = {16: "pa16j", 17: "pa17j", 20: "pa20j"}


@dataclass
class LoadedNetwork:
    """The inference network, its configuration, joint layout name, source file and the names
    of its A action classes (None without an action head)."""

    model: nn.Module
    config: NetworkConfig
    layout: str
    source: str
    action_names: tuple[str, ...] | None = None


def action_names(
    num_actions: int, dataset: str, stored: Sequence[str] | None = None
) -> tuple[str, ...] | None:
    """Names of the network's classes: stored in the file (the demo's ``model.pt``), Penn
    Action's names, NTU's class codes (A001 …); None without an action head."""
    if not num_actions:
        return None
    if stored is not None and len(stored) == num_actions:
        return tuple(str(n) for n in stored)
    if dataset == "penn" and num_actions == len(PENN_ACTIONS):
        return PENN_ACTIONS
    if dataset == "ntu":
        return tuple(f"A{i + 1:03d}" for i in range(num_actions))
    return tuple(f"action {i}" for i in range(num_actions))


@dataclass(frozen=True)
class _Described:
    config: NetworkConfig
    layout: str
    dataset: str
    stored_names: Sequence[str] | None


def _describe(path: Path, keras_model: str) -> _Described:
    """What the file says of its network: config, layout, dataset, stored action names."""
    if path.suffix == ".h5":
        if keras_model not in PRESETS:
            raise ValueError(f"{path}: an official .h5 needs keras_model= one of {sorted(PRESETS)}")
        return _Described(PRESETS[keras_model], "", keras_model, None)
    payload = load_checkpoint(path)
    cfg, dataset, layout = stored_config(payload, path), payload.get("model", ""), ""
    run = run_config(path)
    if run is not None:
        layout = run.data.layout
        actions = (s.dataset for s in run.data.sources.values() if s.stage == "action")
        dataset = next(actions, dataset)
        cfg = cfg or NetworkConfig(**OmegaConf.to_container(run.model, resolve=True))
    if cfg is None:
        raise CheckpointError(
            path, "no network configuration (none stored, no config.yaml beside it)"
        )
    return _Described(cfg, layout, dataset, payload.get("action_names"))


def load_network(
    path: str | Path, keras_model: str = "", fast: bool = True, device: str = "auto"
) -> LoadedNetwork:
    """A ready network on ``device`` (``deephar.checkpoint.load_network``, then
    ``for_inference`` unless ``fast`` is off). Every tensor of the network must be filled."""
    path = Path(path)
    about = _describe(path, keras_model)
    cfg = about.config
    net = load_checkpoint_network(path, cfg).to(resolve_device(device))
    layout = about.layout or DEFAULT_LAYOUT.get(cfg.num_joints, "")
    if not layout:
        raise ValueError(f"{path}: no joint layout known for {cfg.num_joints} joints")
    names = action_names(cfg.num_actions, about.dataset, about.stored_names)
    return LoadedNetwork(for_inference(net, fast=fast), cfg, layout, str(path), names)
