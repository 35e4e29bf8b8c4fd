"""The one way to read network weights: Lightning ``.ckpt``, converted ``.pt``, official Keras ``.h5``.

- ``load_checkpoint(path) -> dict``: ``torch.load(weights_only=True)`` only (tensors and plain
  containers; a pickled Python object is refused, never executed). A missing, empty, truncated,
  foreign or unsafe file raises ``CheckpointError`` naming the file and the problem.
- ``load_weights(net, path, strict=True)``: fill a ``DeepHAR`` from any of the three kinds. Strict:
  every tensor of the network, nothing left over (evaluation, prediction). Not strict (training
  init): the matching part, e.g. a pose checkpoint into a network with an action head; tensors of
  another shape (another joint count) stay as initialised, named in a warning.
- ``load_network(path, cfg=None) -> DeepHAR``: build the network the file describes (converted
  files and Lightning checkpoints store their ``NetworkConfig``) and fill it strictly.

A file fills all the members of the pose ensemble (``model.pose_members``) or none: one that
holds fewer (an official one-branch file into a 3-member network) is refused naming the members
it lacks, unless ``members="copy"`` (``init.members``) starts each as a copy of member 1.

Key layouts understood: task modules (``net.pose.*``, ``net.action.*``), ``DeepHAR``
(``pose.*``, ``action.*``) and a bare ``PoseNet`` (``stem.*``, ``blocks.*``; the converter's
pose files); an ensemble's members 2…M under the former ``action.pose_extra.*`` keys.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import pickle
import pickletools
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from deephar.config import NetworkConfig
from deephar.models.multitask import DeepHAR, build_model
from deephar.models.pose_ensemble import (
    ENSEMBLE_PREFIX,
    MissingMembers,
    complete_members,
    rename_former_keys,
)

log = logging.getLogger(__name__)
CONFIG_KEYS = ("config", "network_config")  # converted files, Lightning checkpoints


class CheckpointError(ValueError):
    """A weight file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = str(path), problem


#: pickle opcodes that import or call: what ``weights_only`` exists to refuse
CODE_OPCODES = frozenset({"GLOBAL", "STACK_GLOBAL", "REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX"})
#: imports of every tensor checkpoint (not worth naming when a file is refused)
TENSOR_MODULES = ("torch", "collections", "_codecs")


def _pickle_stream(path: Path) -> bytes:
    """The pickle bytes of a checkpoint: the ``*/data.pkl`` member of a zip ``torch.save``,
    else the whole file (the legacy format: pickles one after the other)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            member = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
            return archive.read(member) if member else b""
    return path.read_bytes()


def pickled_objects(path: str | Path) -> list[str] | None:
    """The importable names (``builtins.print``) a pickle in ``path`` would import, tensor
    machinery left out, when it holds opcodes that import or call (``CODE_OPCODES``); None when it
    holds none (or is not pickle data). Read with ``pickletools.genops``: nothing is executed."""
    try:
        stream = io.BytesIO(_pickle_stream(Path(path)))
    except (OSError, zipfile.BadZipFile, KeyError):
        return None
    found, names, strings, memo, top = False, [], [], {}, None
    try:
        while stream.tell() < len(stream.getbuffer()):  # legacy files: several pickles
            for op, arg, _ in pickletools.genops(stream):
                if op.name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
                    memo[len(memo) if arg is None else arg] = top  # the top stays
                    continue
                pushed = isinstance(arg, str) and op.name.endswith(("UNICODE", "STRING"))
                top = arg if pushed else memo.get(arg) if op.name.endswith("GET") else None
                if isinstance(top, str):
                    strings.append(top)  # STACK_GLOBAL imports the last two
                if op.name in CODE_OPCODES:
                    found = True
                if op.name in ("GLOBAL", "INST"):
                    names.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    names.append(".".join(strings[-2:]))
    except (ValueError, EOFError, pickle.UnpicklingError):  # the rest is not pickle data
        pass
    if not found:
        return None
    foreign = [n for n in dict.fromkeys(names) if not n.startswith(TENSOR_MODULES)]
    return foreign


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The dict stored in ``path`` (it must hold a ``state_dict``), read with weights_only."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "empty file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's wording changes between versions: scan the bytes
        objects = pickled_objects(path)
        if objects is not None:  # a pickled object: never executed
            named = f" ({', '.join(objects[:3])})" if objects else ""
            raise CheckpointError(
                path, f"refused: it holds Python objects{named}, which could run code"
            ) from None
        raise CheckpointError(path, "not a PyTorch checkpoint (unreadable pickle data)") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        first = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise CheckpointError(path, f"truncated or not a PyTorch checkpoint ({first})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("state_dict"), Mapping):
        raise CheckpointError(path, "not a checkpoint: no state_dict inside")
    return payload


def network_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """State-dict keys of a ``DeepHAR`` from any understood layout (see the module docstring)."""
    if any(k.startswith("net.") for k in state):
        state = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    if not any(k.startswith(("pose.", "action.")) for k in state):
        state = {f"pose.{k}": v for k, v in state.items()}
    return rename_former_keys(state, "action.")  # an ensemble's members 2…M in ``pose_extra``


def stored_config(payload: Mapping[str, Any], path: str | Path = "") -> NetworkConfig | None:
    """The ``NetworkConfig`` a file carries (``config`` / ``network_config``), or None."""
    for key in CONFIG_KEYS:
        if isinstance(payload.get(key), Mapping):
            known = {f.name for f in dataclasses.fields(NetworkConfig)}
            values = {k: v for k, v in payload[key].items() if k in known}
            try:
                return NetworkConfig(**values)
            except TypeError as err:
                raise CheckpointError(path, f"unreadable network config ({err})") from None
    return None


def _all_members(
    net: DeepHAR, state: Mapping[str, Tensor], path: Path, members: str
) -> dict[str, Tensor]:
    """``state`` filling every member of the network's pose ensemble or none (``members``: "copy"
    fills those the file lacks with member 1), else a ``CheckpointError`` naming them."""
    if net.action is None:
        return dict(state)
    try:
        return complete_members(
            state, net.state_dict(), ENSEMBLE_PREFIX, net.cfg.pose_members, members
        )
    except MissingMembers as err:
        raise CheckpointError(path, str(err)) from None


def _fill(
    net: DeepHAR, state: Mapping[str, Tensor], path: Path, strict: bool, members: str = "refuse"
) -> tuple[list[str], list[str]]:
    state = _all_members(net, state, path, members)
    own = net.state_dict()
    wrong = [
        f"{k} {tuple(v.shape)} (network: {tuple(own[k].shape)})"
        for k, v in state.items()
        if k in own and own[k].shape != v.shape
    ]
    if wrong and strict:
        raise CheckpointError(path, f"{len(wrong)} tensors of another shape, e.g. {wrong[:2]}")
    if wrong:  # e.g. another joint count: those layers start as initialised, said loudly
        log.warning(
            "%s: %d tensors of another shape left as initialised: %s",
            path,
            len(wrong),
            "; ".join(wrong[:4]),
        )
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing, unused = sorted(set(own) - set(usable)), sorted(set(state) - set(usable))
    if not usable:
        raise CheckpointError(path, f"no tensor matches this network (file keys e.g. {unused[:3]})")
    if strict and (missing or unused):
        raise CheckpointError(
            path,
            f"{len(missing)} network tensors missing (e.g. {missing[:3]}), "
            f"{len(unused)} file tensors unused (e.g. {unused[:3]})",
        )
    net.load_state_dict(usable, strict=False)
    log.info(
        "%s: %d tensors loaded, %d left as initialised, %d unused",
        path,
        len(usable),
        len(missing),
        len(unused),
    )
    return missing, unused


def _load_keras(
    net: DeepHAR, path: Path, strict: bool, members: str = "refuse"
) -> tuple[list[str], list[str]]:
    """Official weights: a merge (action) file fills the whole network, a pose file ``net.pose``."""
    from deephar.convert import KerasWeightFile, is_merge_file, load_keras_weights

    try:
        with KerasWeightFile(path) as kfile:
            merge = is_merge_file(kfile)
        if strict and net.action is not None and not merge:
            raise CheckpointError(path, "a Keras pose-model file cannot fill an action network")
        target = net if merge or net.action is None else net.pose
        load_keras_weights(target, path, net.cfg, members)
    except MissingMembers as err:
        raise CheckpointError(path, str(err)) from None
    except (OSError, KeyError) as err:
        raise CheckpointError(path, f"not a readable Keras weight file ({err})") from None
    except CheckpointError:
        raise
    except ValueError as err:
        raise CheckpointError(path, str(err)) from None
    return [], []


def load_weights(
    net: DeepHAR, path: str | Path, strict: bool = True, members: str = "refuse"
) -> tuple[list[str], list[str]]:
    """Fill ``net`` from ``path`` (.ckpt / .pt / .h5); returns (missing keys, unused keys).

    ``strict``: any missing, unused or differently shaped tensor is an error. Otherwise nothing
    matching is one; differently shaped tensors are skipped with a warning. Either way a file
    fills every member of the pose ensemble (``model.pose_members``) or none: one holding fewer
    members is refused naming them, unless ``members`` is "copy" (each member it lacks starts
    as a copy of its member 1; ``pose_ensemble.MEMBER_CHOICES``).
    """
    path = Path(path)
    if path.suffix == ".h5":
        if not path.is_file():
            raise CheckpointError(path, "no such file")
        return _load_keras(net, path, strict, members)
    payload = load_checkpoint(path)
    return _fill(net, network_state(payload["state_dict"]), path, strict, members)


def load_network(path: str | Path, cfg: NetworkConfig | None = None) -> DeepHAR:
    """The network stored in ``path``, every tensor filled, in eval mode.

    cfg: the expected network (required for a Keras .h5, which stores none). When the file stores
    a config too, the two must agree.
    """
    path = Path(path)
    payload = None if path.suffix == ".h5" else load_checkpoint(path)
    stored = None if payload is None else stored_config(payload, path)
    if stored is not None and cfg is not None and stored != cfg:
        diff = {
            f.name: (getattr(stored, f.name), getattr(cfg, f.name))
            for f in dataclasses.fields(NetworkConfig)
            if getattr(stored, f.name) != getattr(cfg, f.name)
        }
        raise CheckpointError(path, f"holds another network than configured (file, config): {diff}")
    cfg = stored or cfg
    if cfg is None:
        raise CheckpointError(path, "no network configuration stored; give the experiment config")
    net = build_model(cfg)
    if payload is None:
        load_weights(net, path, strict=True)
    else:  # the payload read above: one torch.load per file
        _fill(net, network_state(payload["state_dict"]), path, True)
    return net.eval()


def network_payload(net: DeepHAR, source: str = "", model: str = "") -> dict[str, Any]:
    """What ``deephar.convert`` and the demo write: plain containers and tensors only (loadable
    with weights_only=True), the network config included."""
    return {
        "model": model,
        "config": dataclasses.asdict(net.cfg),
        "state_dict": net.state_dict(),
        "source": str(source),
    }


def init_network(
    net: DeepHAR, ckpt: str | Path = "", keras_h5: str | Path = "", members: str = "refuse"
) -> None:
    """Training init (``init.ckpt`` / ``init.keras_h5``): the matching part of each file, not
    strict (a pose checkpoint leaves a new action head as initialised); Keras first. A file
    holding fewer pose-ensemble members than ``net`` is refused unless ``members`` is "copy"
    (``init.members``; see ``load_weights``)."""
    for path in (keras_h5, ckpt):
        if path:
            load_weights(net, path, strict=False, members=members)


# ---- the config a run saved beside its checkpoints ----
CONFIG_NAME = "config.yaml"  # experiments.train writes it in <out_dir>/<name>/


def config_path(ckpt: str | Path) -> Path | None:
    """The ``config.yaml`` of the run a checkpoint belongs to: in its folder, or the one above
    (a ``finetune/`` checkpoint); None for a file outside a run folder."""
    folder = Path(ckpt).parent
    return next(
        (p for p in (folder / CONFIG_NAME, folder.parent / CONFIG_NAME) if p.is_file()), None
    )


def run_config(ckpt: str | Path) -> DictConfig | None:
    """The saved config of the run a checkpoint belongs to (``config_path``), or None."""
    path = config_path(ckpt)
    return OmegaConf.load(path) if path is not None else None
