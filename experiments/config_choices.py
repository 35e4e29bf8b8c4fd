"""The config's choices as typed fields: each an Enum whose names are its values, so that
OmegaConf matches a YAML string to a member by name and refuses any other at merge, naming the
allowed ones. Each list is its owner's (the library, Lightning), not a copy."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from pytorch_lightning.accelerators import AcceleratorRegistry

from datamodules.layouts import LAYOUTS
from deephar.losses import POSE_LOSSES, VISIBILITY_JOINTS
from deephar.models.pose_ensemble import MEMBER_CHOICES
from deephar.tasks.schedule import LR_SCALING, SCHEDULES


def choice(name: str, values: Iterable[Any]) -> type[StrEnum]:
    """A config field's choices as an Enum whose names are its values: OmegaConf matches a YAML
    string to a member by name and refuses any other, naming the allowed ones, at merge."""
    return StrEnum(name, [(v, v) for v in dict.fromkeys(str(v) for v in values)])


# ---- the choices: each list is its owner's (the library, Lightning), not a copy ----
Task = choice("Task", ("pose", "action", "joint"))
Dataset = choice("Dataset", ("mpii", "h36m", "penn", "ntu"))
Stage = choice("Stage", ("pose", "action"))  # still images | clips or provided poses
Layout = choice("Layout", LAYOUTS)
PoseLoss, VisibilityJoints = choice("PoseLoss", POSE_LOSSES), choice("Vis", VISIBILITY_JOINTS)
OPTIMIZERS = ("rmsprop", "sgd", "adam", "adamw")  # deephar.tasks.base.build_optimizer
Optimizer, Schedule = choice("Optimizer", OPTIMIZERS), choice("Schedule", SCHEDULES)
LrScaling, MonitorMode = choice("LrScaling", LR_SCALING), choice("MonitorMode", ("min", "max"))
InitMembers = choice("InitMembers", MEMBER_CHOICES)  # deephar.checkpoint.init_network
Reduction = choice("Reduction", ("mean", "prod"))  # multi-clip: mean of softmax | product
LoggerKind = choice("LoggerKind", ("wandb", "csv", "tensorboard", "none"))
ACCELERATORS = ("auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators()))
Accelerator = choice("Accelerator", ACCELERATORS)  # Lightning's registry, "auto" and "gpu"
