"""Datasets and the datamodule of an experiment config.

Each source of ``data.sources`` names a reader (plain dict dispatch below); its training split is
augmented (``data.augment``), its validation / test splits never are. Training datasets are wrapped
in ``RobustDataset`` (corrupt samples are replaced and counted), validation / test ones in
``ReportingDataset`` (never replaced: reported by name, not scored). Input size and clip length
come from the network config: ``model.input_size``, ``model.num_frames``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_info
from torch.utils.data import Dataset, Subset

from datamodules.base import RobustDataset
from datamodules.h36m import Human36MDataset
from datamodules.layouts import PCKH_EXCLUDED, get_layout
from datamodules.missing import ReportingDataset
from datamodules.mixed import MixedRatioDataModule
from datamodules.mpii import MPIIDataset
from datamodules.ntu import NTUDataset
from datamodules.penn import PennActionDataset
from datamodules.splits import CARVED, carved_part, held_out_keys, item_groups
from datamodules.storage.prepared import PreparedError
from experiments.config import ConfigError, training_sources

# dataset → (reader, reader split of each run stage, reads clips). Checkpoints and schedules are
# chosen on a validation split carved from each training split (datamodules.splits,
# data.val_fraction); the test split is scored once. MPII's public validation images are its test
# split (the official code's PCKh set: the MPII test annotations are not public).
READERS: dict[str, tuple[type[Dataset], dict[str, str], bool]] = {
    "mpii": (MPIIDataset, {"train": "train", "val": "train", "test": "val"}, False),
    "h36m": (Human36MDataset, {"train": "train", "val": "train", "test": "test"}, False),
    "penn": (PennActionDataset, {"train": "train", "val": "train", "test": "test"}, True),
    "ntu": (NTUDataset, {"train": "train", "val": "train", "test": "test"}, True),
}


def pckh_exclude(layout: str) -> list[int]:
    """Indices of the joints left out of PCKh (pelvis, thorax) in ``layout``."""
    lay = get_layout(layout)
    return [lay.index(j) for j in PCKH_EXCLUDED if j in lay.joints]


def build_dataset(cfg: DictConfig, key: str, stage: str) -> Dataset:
    """The ``stage`` ("train" | "val" | "test") dataset of source ``key``, robust (validation maybe limited)."""
    source = cfg.data.sources[key]
    reader, splits, clips = READERS[source.dataset]
    kwargs: dict[str, Any] = dict(
        split=splits[stage],
        layout=cfg.data.layout,
        input_size=cfg.model.input_size,
        augment=cfg.data.augment and stage == "train",
    )
    if clips:
        kwargs["clip_length"] = cfg.model.num_frames
    carved = source.dataset in CARVED and stage != "test" and cfg.data.val_fraction > 0
    if source.dataset in CARVED and stage == "val" and not carved:
        raise ValueError(
            f"data.val names {key} ({source.dataset}: no validation split of its own) but "
            f"data.val_fraction = {cfg.data.val_fraction}: hold out a share (e.g. 0.1) or "
            f"drop it from data.val (never validate on the test split)"
        )
    if carved and stage == "val" and clips:
        kwargs["clip_sampling"] = "middle"  # a training-split reader evaluating: the test default
    for options in (source.options, source[f"{stage}_options"]):
        kwargs |= OmegaConf.to_container(options, resolve=True)
    if source.prepared:
        kwargs["prepared"] = source.prepared
    if stage == "train" and source.streaming:
        return RobustDataset(streaming_source(key, source, kwargs, carved))
    try:
        dataset = reader(source.root, **kwargs)
    except TypeError as err:
        raise TypeError(f"data.sources.{key} ({reader.__name__}): {err}") from err
    except PreparedError as err:  # a damaged prepared folder: one line, exit 2
        raise ConfigError(f"data.sources.{key}.prepared: {err}") from None
    if carved:
        held = held_out_keys(
            dataset, cfg.data.val_fraction, cfg.data.split_seed, cfg.data.folds, cfg.data.fold
        )
        dataset = carved_part(dataset, held, stage)
        if stage == "val" and not held:
            warnings.warn(
                f"data.sources.{key}: the carved validation split is empty (too few "
                f"training videos / subjects to hold any out): nothing validates",
                stacklevel=2,
            )
    # training replaces a corrupt sample; validation / test never do (datamodules.missing)
    dataset = RobustDataset(dataset) if stage == "train" else ReportingDataset(dataset)
    if stage == "val" and 0 < cfg.data.limit_val < len(dataset):
        keep = np.linspace(0, len(dataset) - 1, cfg.data.limit_val).round().astype(int)
        dataset = Subset(dataset, np.unique(keep).tolist())
    return dataset


def streaming_source(key: str, source: DictConfig, kwargs: dict, carved: bool) -> Dataset:
    """The training source read from LitData chunks (``data.sources.<key>.streaming``)."""
    from datamodules.streaming import StreamingSource

    if carved:
        raise ValueError(
            f"data.sources.{key}.streaming holds the whole training split, from which "
            "data.val_fraction carves validation: set data.val_fraction=0"
        )
    options = {k: v for k, v in kwargs.items() if k not in ("split", "prepared")}
    try:
        return StreamingSource(source.streaming, source.dataset, **options)
    except TypeError as err:
        raise TypeError(f"data.sources.{key}.streaming (StreamingSource): {err}") from err


def groups(cfg: DictConfig) -> dict[str, list[str]] | None:
    """Joint task: {"pose": [sources], "action": [sources]}; single-kind tasks: None."""
    if cfg.task != "joint":
        return None
    names = training_sources(cfg)
    return {g: [k for k in names if cfg.data.sources[k].stage == g] for g in ("pose", "action")}


def available_cores() -> int:
    """Cores this process may use: its CPU affinity (a SLURM / container binding), else all."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cores or 1


def local_devices(accelerator: str, devices: Any) -> int:
    """Training processes on this node for ``trainer.accelerator`` / ``trainer.devices``
    (an int, a list of ids, "0,1", or "auto" / -1: every visible GPU, one process on a CPU)."""
    if isinstance(devices, (list, tuple, ListConfig)):
        return max(1, len(devices))
    text = str(devices).strip()
    if "," in text:
        return len([d for d in text.split(",") if d.strip()])
    if text in ("auto", "-1"):
        gpus = torch.cuda.device_count() if accelerator != "cpu" else 0
        return max(1, gpus)
    return max(1, int(text))


def worker_count(wanted: int | str, devices: int = 1) -> int:
    """DataLoader workers of one training process. ``wanted`` = "auto": the process's share of
    the node's cores — ``SLURM_CPUS_PER_TASK`` when SLURM binds cores to each task, else the
    cores / ``devices`` — less one core for the process itself (the step, pinning, the copy),
    at least 1. A number is capped by the cores (more only oversubscribe them; PyTorch warns)."""
    cores = available_cores()
    if wanted != "auto":
        return max(0, min(int(wanted), cores))
    per_task = os.environ.get("SLURM_CPUS_PER_TASK", "")
    share = int(per_task) if per_task.isdigit() else cores // max(1, devices)
    return max(1, min(share, cores) - 1)


def loader_settings(cfg: DictConfig) -> dict[str, Any]:
    """Workers (``data.num_workers``, "auto" resolved), ``pin_memory`` (on CUDA: the host → device
    copy of page-locked batches runs asynchronously) and persistent workers of the training
    loaders; "auto" says once what it chose."""
    accelerator = str(cfg.trainer.accelerator)
    devices = local_devices(accelerator, cfg.trainer.devices)
    workers = worker_count(cfg.data.num_workers, devices)
    cuda = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if cfg.data.num_workers == "auto":
        say_once(
            f"data.num_workers=auto: {workers} loader workers per device ({available_cores()} "
            f"cores, {devices} device(s) on this node, one core left to each training "
            f"process); pin_memory={cuda}"
        )
    return {"num_workers": workers, "pin_memory": cuda, "persistent_workers": True}


_SAID: set[str] = set()


def say_once(message: str) -> None:
    """Print ``message`` on rank 0, once per process (every stage builds its datamodule)."""
    if message not in _SAID:
        _SAID.add(message)
        rank_zero_info(message)


def build_datamodule(cfg: DictConfig) -> MixedRatioDataModule:
    """The MixedRatioDataModule of the config (validate the config first)."""
    names = training_sources(cfg)
    return MixedRatioDataModule(
        train={k: build_dataset(cfg, k, "train") for k in names},
        shares={k: cfg.data.sources[k].share for k in names},
        batch_size=cfg.data.batch_size,
        steps_per_epoch=cfg.data.steps_per_epoch or None,
        val={k: build_dataset(cfg, k, "val") for k in cfg.data.val},
        test={k: build_dataset(cfg, k, "test") for k in cfg.data.test},
        groups=groups(cfg),
        seed=cfg.seed,
        eval_batch_size=cfg.data.eval_batch_size,
        **loader_settings(cfg),
    )


def failures(datamodule: MixedRatioDataModule) -> dict[str, int]:
    """Corrupt samples replaced so far, per "<stage>/<source>" (``RobustDataset.num_failures``)."""
    counts = {}
    for stage in ("train", "val", "test"):
        for key, dataset in getattr(datamodule, f"{stage}_sets").items():
            while isinstance(dataset, Subset):
                dataset = dataset.dataset
            counts[f"{stage}/{key}"] = getattr(dataset, "num_failures", 0)
    return counts


def write_carved_splits(datamodule: MixedRatioDataModule, folder: Path) -> list[Path]:
    """``<folder>/splits/<source>_val.txt``: the held-out groups (videos, subjects …) of every
    carved validation set, one per line, so a run's validation split can be checked later."""
    written = []
    for key, dataset in datamodule.val_sets.items():
        while isinstance(dataset, (Subset, RobustDataset, ReportingDataset)):
            if isinstance(dataset, Subset) and isinstance(dataset.dataset, READERS_CARVED):
                held = sorted(set(item_groups(dataset.dataset).item_keys(dataset.indices)))
                path = folder / "splits" / f"{key}_val.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("\n".join(held) + "\n")
                written.append(path)
                break
            dataset = dataset.dataset
    return written


READERS_CARVED = tuple(READERS[name][0] for name in CARVED)
