"""The pose-based branch as an ensemble of M members (``model.pose_members``; M = 1: the paper).

The M members are copies of the paper's pose branch (``PoseActionBranch``), trained side by side
on the same batches, each by its own loss. The ensemble's prediction of block k is the mean of the
members' logits; the aggregation reads the mean of their action maps.

State-dict keys (one key map, here): member 1 keeps the official keys of the one branch
(``temporal.*``, ``branch_a.*``, …: converted official weights fill it), members 2…M are
``members.1.*`` … ``members.{M-1}.*``. Attribute paths are uniform (``members[0]`` … ``members[M-1]``):
only the state dict drops member 1's ``members.0.``. Checkpoints of the former layout (members
2…M in the action head's ``pose_extra.{0…M-2}``) load through ``rename_former_keys``.

Legend: B batch, T frames, J joints, D 2|3, A actions, M members.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from deephar.models.action import PoseActionBranch, global_max_min_pool

ENSEMBLE_PREFIX = "action.pose_branch."  # the ensemble's keys in a ``DeepHAR`` state dict
FIRST = "members.0."  # member 1's attribute path, left out of the state-dict keys
FORMER_EXTRA = re.compile(r"pose_extra\.(\d+)\.")  # members 2…M before the ensemble was a module


@dataclass
class PoseEnsembleOutput:
    """What the ensemble predicts, per action block k.

    - ``maps[k]``: (B, A, T/4, J/4) the members' mean action maps (what the aggregation reads).
    - ``logits[k]``: (B, A) the members' mean logits (the ensemble's prediction).
    - ``member_logits[k]``: (M, B, A) each member's own logits (what the loss trains).
    """

    maps: list[Tensor]
    logits: list[Tensor]
    member_logits: list[Tensor]


class PoseEnsemble(nn.Module):
    """M pose branches (``PoseActionBranch``) with the branch's arguments; forward → their means."""

    def __init__(
        self,
        dim: int,
        num_actions: int,
        version: str = "v1",
        num_blocks: int = 4,
        width: float = 1.0,
        members: int = 1,
    ) -> None:
        super().__init__()
        if members < 1:
            raise ValueError(f"pose_members must be >= 1, got {members}")
        self.members = nn.ModuleList(
            PoseActionBranch(dim, num_actions, version, num_blocks, width) for _ in range(members)
        )
        self.register_state_dict_post_hook(_official_first_member)
        self.register_load_state_dict_pre_hook(_first_member_from_official)

    def __len__(self) -> int:
        return len(self.members)

    def forward(self, pose: Tensor, prob: Tensor) -> PoseEnsembleOutput:
        """pose (B, T, J, D), prob (B, T, J) → the members' means and own logits per block."""
        runs = [member(pose, prob) for member in self.members]  # [member][block] (B, A, h, w)
        blocks = list(zip(*runs))  # [block][member]
        maps = [torch.stack(block).mean(0) for block in blocks]
        member_logits = [torch.stack([global_max_min_pool(m) for m in block]) for block in blocks]
        return PoseEnsembleOutput(maps, [z.mean(0) for z in member_logits], member_logits)


def _official_first_member(
    module: nn.Module, state: dict[str, Any], prefix: str, local_metadata: Any
) -> None:
    """State-dict post-hook: ``{prefix}members.0.X`` → ``{prefix}X`` (order kept)."""
    first = prefix + FIRST
    renamed = {
        (prefix + k[len(first) :] if k.startswith(first) else k): v for k, v in state.items()
    }
    state.clear()
    state.update(renamed)


def _first_member_from_official(
    module: nn.Module, state: dict[str, Any], prefix: str, *args: Any
) -> None:
    """Load pre-hook, the post-hook's inverse: ``{prefix}X`` → ``{prefix}members.0.X`` for every
    key under ``prefix`` outside ``members.``."""
    for key in [k for k in state if k.startswith(prefix)]:
        local = key[len(prefix) :]
        if not local.startswith("members."):
            state[prefix + FIRST + local] = state.pop(key)


def rename_former_keys(state: Mapping[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
    """Keys of the former layout → today's: ``{prefix}pose_extra.i.X`` (member i + 2 of the
    action head under ``prefix``) → ``{prefix}pose_branch.members.{i+1}.X``; others unchanged."""
    out = {}
    for key, value in state.items():
        match = FORMER_EXTRA.match(key, len(prefix)) if key.startswith(prefix) else None
        if match:
            member = int(match.group(1)) + 1
            key = f"{prefix}pose_branch.members.{member}.{key[match.end() :]}"
        out[key] = value
    return out


UNTRACKED = "num_batches_tracked"  # BN counters: converted files carry none
MEMBER_CHOICES = ("refuse", "copy")  # a weight file holding fewer members than the network


class MissingMembers(ValueError):
    """A weight file fills some members of an ensemble, not all; the message names them."""


def member_names(own: Iterable[str], prefix: str, members: int) -> list[list[str]]:
    """The state-dict keys of each member of the ensemble at ``prefix`` (``action.pose_branch.``)
    in a network whose keys are ``own``: [member 1's (official), members.1.*, …], aligned."""
    first = [k for k in own if k.startswith(prefix) and not k[len(prefix) :].startswith("members.")]
    local = [k[len(prefix) :] for k in first]
    return [first] + [[f"{prefix}members.{i}.{k}" for k in local] for i in range(1, members)]


def complete_members(
    state: Mapping[str, Tensor], own: Iterable[str], prefix: str, members: int, fill: str
) -> dict[str, Tensor]:
    """``state`` filling every member of the ensemble at ``prefix`` (``member_names``): unchanged
    when it fills all M members or none; with ``fill`` "copy", each member it lacks entirely a
    copy of its member 1; else (``fill`` "refuse", member 1 incomplete, a member partly there)
    ``MissingMembers`` naming the members it lacks."""
    if fill not in MEMBER_CHOICES:
        raise ValueError(f"members fill must be one of {MEMBER_CHOICES}, got {fill!r}")
    names = member_names(own, prefix, members)
    size = sum(not k.endswith(UNTRACKED) for k in names[0])  # tensors a file holds per member
    missing = [[k for k in keys if k not in state and not k.endswith(UNTRACKED)] for keys in names]
    if all(len(m) == size for m in missing) or not any(missing):
        return dict(state)  # the file fills no member, or all of them
    lacking = [i for i, m in enumerate(missing) if m]
    copyable = not missing[0] and all(len(missing[i]) == size for i in lacking)
    if fill != "copy" or not copyable:
        raise MissingMembers(_missing_line(missing, lacking, copyable))
    out = dict(state)
    for i in lacking:
        out.update({new: state[old] for old, new in zip(names[0], names[i]) if old in state})
    return out


def _missing_line(missing: list[list[str]], lacking: list[int], copyable: bool) -> str:
    """One line: how many members a file fills, which it lacks, their first keys."""
    hint = "; init.members=copy starts each as a copy of member 1" if copyable else ""
    return (
        f"fills {len(missing) - len(lacking)} of the {len(missing)} pose-ensemble members "
        f"(model.pose_members): members {', '.join(str(i + 1) for i in lacking)} missing, e.g. "
        f"{', '.join(missing[i][0] for i in lacking[:2])} ({sum(map(len, missing))} tensors){hint}"
    )
