"""The run folder ``<out_dir>/<name>``: everything a run writes, and the one place that knows it.

Layout: ``config.yaml`` (the run's resolved config), ``best.ckpt``, ``last.ckpt``, ``logs/``,
``finetune/`` (the same files for the fine-tuning stage), ``.lock`` (the pid of the process writing
the run). ``run_config`` finds the saved config again from any checkpoint inside the folder;
``RunLock`` refuses a second writer while the first lives and takes over a dead one's lock;
``remove_partial_writes`` deletes the half-written checkpoints a killed run of this folder left;
``check_writable`` and ``check_free_space`` are the folder's start-up checks.
"""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import torch
from omegaconf import DictConfig, OmegaConf

from deephar.checkpoint import CONFIG_NAME
from deephar.models.multitask import build_model
from experiments.config import ConfigError, network_config
from experiments.distributed import is_rank_zero
from experiments.faults import PARTIAL

LOCK_NAME = ".lock"
CHECKPOINT_NAMES = ("best", "last")
CHECKPOINT_FILES = 3  # best.ckpt, last.ckpt and the .partial of the one being replaced


def run_dir(cfg: DictConfig) -> Path:
    """``<out_dir>/<name>``: config.yaml, best.ckpt, last.ckpt, logs (finetune/ inside)."""
    return Path(cfg.out_dir) / cfg.name


def finetunes(cfg: DictConfig) -> bool:
    """Whether the run has a fine-tuning stage after its first (action and joint tasks only)."""
    return cfg.task != "pose" and cfg.finetune.enabled


def stages(cfg: DictConfig) -> list[str]:
    """The stages the run trains: ["main"] or ["main", "finetune"]."""
    return ["main", "finetune"] if finetunes(cfg) else ["main"]


def stage_dir(cfg: DictConfig, stage: str) -> Path:
    """The folder of one stage's checkpoints and logs: the run folder, or its ``finetune/``."""
    return run_dir(cfg) / "finetune" if stage == "finetune" else run_dir(cfg)


def best_checkpoint(cfg: DictConfig) -> Path:
    """The checkpoint a run tests: the last stage's best.ckpt."""
    return stage_dir(cfg, stages(cfg)[-1]) / "best.ckpt"


def resume_path(cfg: DictConfig, stage: str) -> str | None:
    """``resume``: "" → None; "auto" → the stage's last.ckpt when present; else the given path."""
    if not cfg.resume:
        return None
    if cfg.resume == "auto":
        last = stage_dir(cfg, stage) / "last.ckpt"
        return str(last) if last.is_file() else None
    if stage == "finetune":
        return None
    if not Path(cfg.resume).is_file():
        raise ConfigError(f"resume = {cfg.resume!r}: no such checkpoint")
    return cfg.resume


# ---- the config saved with the run ----
def save_config(cfg: DictConfig) -> Path:
    """Write the resolved config as the run's ``config.yaml`` (rank 0 only); returns its path."""
    path = run_dir(cfg) / CONFIG_NAME
    if is_rank_zero():  # one writer on shared storage; the other ranks build the same config
        path.parent.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, path, resolve=True)
    return path


# ---- the lock held while the run writes ----
class RunLocked(ConfigError):
    """Another live process writes the run folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@dataclass
class LockHolder:
    """What a lock file says: the writer's pid and host."""

    pid: int
    host: str

    @classmethod
    def read(cls, path: Path) -> LockHolder | None:
        try:
            pid, _, host = path.read_text().strip().partition(" ")
            return cls(int(pid), host)
        except (OSError, ValueError):  # gone meanwhile, or written half-way
            return None


class RunLock:
    """``<run>/.lock`` (created with O_EXCL, the holder's ``pid host`` inside), held for the
    run's life by global rank 0 only (the other DDP ranks write nothing the lock protects).

    A live holder: ``RunLocked`` naming the folder and its pid. A dead one (same host, pid gone):
    its lock is taken over with a line saying so. Released (deleted) on exit."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.held = False

    def acquire(self) -> RunLock:
        if not is_rank_zero():
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a takeover races another: try again
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._refuse_or_take_over()
                continue
            with os.fdopen(fd, "w") as file:
                file.write(f"{os.getpid()} {socket.gethostname()}\n")
            self.held = True
            return self
        raise RunLocked(f"run folder {self.path.parent}: could not take its lock {self.path}")

    def _refuse_or_take_over(self) -> None:
        holder = LockHolder.read(self.path)
        if holder is None:
            return
        here = holder.host == socket.gethostname()
        if not here or _alive(holder.pid):
            where = "" if here else f" on {holder.host}"
            raise RunLocked(
                f"run folder {self.path.parent} is in use by pid {holder.pid}{where} "
                f"(lock {self.path}); wait for it to end, or choose another name= or out_dir="
            )
        print(
            f"run folder {self.path.parent}: taking over the stale lock of pid {holder.pid} "
            f"(no longer running)",
            flush=True,
        )
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        holder = LockHolder.read(self.path) if self.held else None
        if holder is not None and holder.pid == os.getpid():
            self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()


# ---- partial writes: this folder's own, left by a killed run ----
def remove_partial_writes(folder: str | Path) -> list[Path]:
    """Delete the ``.best.ckpt.<pid>.partial`` / ``.last.ckpt.<pid>.partial`` files of
    ``experiments.faults.AtomicCheckpointIO`` whose writer is gone (run under the lock: no live
    writer of this folder is another run); any other file is left alone. Returns those deleted."""
    folder = Path(folder)
    stale = []
    for name in CHECKPOINT_NAMES:
        for path in sorted(folder.glob(f".{name}.ckpt.*{PARTIAL}")) if folder.is_dir() else []:
            pid = path.name.removesuffix(PARTIAL).rsplit(".", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                path.unlink(missing_ok=True)
                stale.append(path)
    return stale


# ---- the folder's start-up checks ----
def check_writable(cfg: DictConfig) -> None:
    """The run folder can be created and written (a read-only or missing mount fails here)."""
    folder = run_dir(cfg)
    probe = folder / f".write-test.{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            f"out_dir = {cfg.out_dir!r}: cannot write the run folder {folder} "
            f"({err.strerror or err})"
        ) from None


def checkpoint_bytes(cfg: DictConfig) -> int:
    """About the size of one checkpoint (at least it): the network's tensors (built on the meta
    device: no memory, no time), up to two optimiser states of each parameter, and the file's
    ~1 kB per tensor and 64 kB of loops, callbacks and settings."""
    with torch.device("meta"):
        net = build_model(network_config(cfg))
    params, buffers = list(net.parameters()), list(net.buffers())
    data = sum(3 * p.numel() * p.element_size() for p in params)
    data += sum(b.numel() * b.element_size() for b in buffers)
    return data + 1024 * (3 * len(params) + len(buffers)) + 2**16


def check_free_space(cfg: DictConfig) -> None:
    """Room in the run folder for the checkpoints of every stage (``CHECKPOINT_FILES`` each, less
    those already there, which are replaced): a full disk is named before the first epoch."""
    files = sum(
        CHECKPOINT_FILES
        - sum((stage_dir(cfg, s) / f"{n}.ckpt").is_file() for n in CHECKPOINT_NAMES)
        for s in stages(cfg)
    )
    size = checkpoint_bytes(cfg)
    free = shutil.disk_usage(run_dir(cfg)).free
    if free < files * size:
        raise ConfigError(
            f"out_dir = {cfg.out_dir!r}: {free / 1e6:.1f} MB free in {run_dir(cfg)}, "
            f"the checkpoints need about {files * size / 1e6:.1f} MB ({files} files "
            f"of {size / 1e6:.1f} MB)"
        )
