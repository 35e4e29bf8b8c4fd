"""Grouped k-fold cross-validation over a training split, for choosing recipes.

    python -m experiments.crossval <config> folds=5 [jobs=2] [rescore=1] [PENN_ROOT=<folder>] [overrides]
    python -m experiments.crossval penn_poses folds=5 PENN_ROOT=../shared/data/penn_action_train

Fold k of K holds out the k-th share of the training split's source groups (``data.folds``,
``data.fold``: whole runs of Penn Action ids, NTU subjects / performances, Human3.6M subjects;
``datamodules.splits.fold_keys``, stratified by action where the carve is) and trains one real
run of ``experiments.train.run`` on the rest, validating on it; the test split is never read
(``data.test=[]``). A fold is scored by its LAST validation epoch (the selected checkpoint is
chosen on the very videos it is measured on). Printed and written to
``<out_dir>/<name>-crossval/crossval.json``: every fold's validation metrics and, per metric,
the mean ± sample std (ddof 1) over the folds, with each fold's wall time. Each fold is a W&B run
in the group ``<name>-crossval`` (``logger.group`` overrides it), the summary one more run there.
A finished fold is stored as ``folds/<k>.json`` and skipped when the command is rerun.
``jobs=N`` trains N folds at once, each in its own process (a small network on one thread a
fold: N cores do N folds in the time of one). ``rescore=1`` trains nothing: every fold's stored
``last.ckpt`` is validated again by today's metrics code (e.g. the per-member accuracies of an
ensemble, added after the folds were trained) and the summary rewritten to ``rescored.json``.
``PENN_ROOT=…`` / ``NTU_ROOT=…`` / ``H36M_ROOT=…`` are ``data.root=…``, as in the Makefile.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from deephar.models.multitask import build_model
from deephar.tasks.finite import NonFiniteError
from experiments import train
from experiments.cli import arguments
from experiments.config import ConfigError, load_config, network_config
from experiments.data import build_datamodule
from experiments.faults import EXIT_NONFINITE
from experiments.logging import log_result_run
from experiments.run_folder import run_dir

ROOT_ALIASES = ("PENN_ROOT=", "NTU_ROOT=", "H36M_ROOT=", "MPII_ROOT=")  # Makefile spellings


def parse(argv: list[str]) -> tuple[str, int, list[str], int, bool]:
    """(config, folds, overrides, jobs, rescore) of the command line; ``folds=K`` (default 5),
    ``jobs=N`` (default 1) and ``rescore=0|1`` are taken out."""
    config, counts, overrides = argv[0], {"folds": 5, "jobs": 1, "rescore": 0}, []
    for arg in argv[1:]:
        key, _, value = arg.partition("=")
        if key in counts:
            try:
                counts[key] = int(value)
            except ValueError as err:
                raise ConfigError(f"{arg}: {key} must be an integer") from err
        elif arg.startswith(ROOT_ALIASES):
            overrides.append("data.root=" + value)
        else:
            overrides.append(arg)
    if counts["folds"] < 2:
        raise ConfigError(f"folds={counts['folds']}: cross-validation needs at least 2 folds")
    if counts["jobs"] < 1:
        raise ConfigError(f"jobs={counts['jobs']}: at least 1 fold at a time")
    return config, counts["folds"], overrides, counts["jobs"], bool(counts["rescore"])


def fold_config(config: str, overrides: list[str], folds: int, fold: int) -> DictConfig:
    """The config of fold ``fold``: validation = that fold, no test, its own run folder."""
    base = load_config(config, overrides)
    group = base.logger.group or f"{base.name}-crossval"
    out = Path(base.out_dir) / f"{base.name}-crossval"
    return load_config(
        config,
        [
            *overrides,
            f"data.folds={folds}",
            f"data.fold={fold}",
            "data.test=[]",
            f"out_dir={out}",
            f"name={base.name}-fold{fold}",
            f"logger.group={group}",
        ],
    )


def summarise(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per validation metric present in every fold: mean and sample std over the folds."""
    keys = sorted(set.intersection(*(set(r) for r in runs)))
    out = {}
    for key in keys:
        values = np.array([r[key] for r in runs], np.float64)
        out[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1))}
    return out


def run_fold(config: str, overrides: list[str], folds: int, fold: int) -> dict:
    """Train fold ``fold`` (or read it back when stored): {"fold", "wall_s", "val"}."""
    cfg = fold_config(config, overrides, folds, fold)
    stored = Path(cfg.out_dir) / "folds" / f"{fold}.json"
    if stored.is_file():
        print(f"fold {fold + 1}/{folds}: stored in {stored}, skipped", flush=True)
        return stored_fold(stored, folds)
    start = time.perf_counter()
    metrics = train.run(cfg)
    val = {k: v for k, v in metrics.items() if k.startswith("val/") and not k.endswith("_best")}
    if not val:
        raise ConfigError(f"fold {fold}: no validation metrics (is data.val empty?)")
    entry = {"fold": fold, "folds": folds, "wall_s": time.perf_counter() - start, "val": val}
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_text(json.dumps(entry, indent=1))
    print(f"fold {fold + 1}/{folds}: {metrics_line(val)} ({entry['wall_s']:.0f} s)", flush=True)
    return entry


def metrics_line(val: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.4f}" for k, v in sorted(val.items()))


def stored_fold(path: Path, folds: int) -> dict:
    """A stored fold's entry; a ConfigError when it belongs to a split into another number of
    folds (its validation videos are not this fold's)."""
    entry = json.loads(path.read_text())
    if entry.get("folds", folds) != folds:
        raise ConfigError(
            f"{path}: a fold of folds={entry['folds']}, not of folds={folds}: "
            f"use another name= or out_dir="
        )
    return entry


def rescore_fold(config: str, overrides: list[str], folds: int, fold: int) -> dict:
    """Validate fold ``fold``'s stored ``last.ckpt`` again (no training): {"fold", "wall_s",
    "val"} with the training's wall time."""
    cfg = fold_config(config, overrides, folds, fold)
    stored, ckpt = Path(cfg.out_dir) / "folds" / f"{fold}.json", run_dir(cfg) / "last.ckpt"
    if not stored.is_file() or not ckpt.is_file():
        raise ConfigError(f"fold {fold}: nothing to rescore ({stored} / {ckpt} missing)")
    wall = stored_fold(stored, folds)["wall_s"]
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    module = train.build_module(cfg, build_model(network_config(cfg)))
    trainer = pl.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    trainer.validate(
        module,
        datamodule=build_datamodule(cfg),
        ckpt_path=str(ckpt),
        verbose=False,
        weights_only=True,
    )
    val = {
        k: float(v)
        for k, v in trainer.callback_metrics.items()
        if k.startswith("val/") and not k.endswith("_best")
    }
    print(f"fold {fold + 1}/{folds} rescored: {metrics_line(val)}", flush=True)
    return {"fold": fold, "folds": folds, "wall_s": wall, "val": val}


PARENT_POLL_S, GRACE_S = 1.0, 30.0  # how often a worker looks for its parent; SIGTERM → exit


def end_with_parent(parent: int) -> None:
    """A fold worker's initializer: a daemon thread that, once the process that started the
    worker is gone (a SIGKILLed parent leaves it to init: ``os.getppid`` changes), sends the
    worker SIGTERM (a fold in training saves ``last.ckpt`` and stops: ``SaveOnSignal``) and
    exits it ``GRACE_S`` later whatever it does."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        print(f"crossval worker {os.getpid()}: parent {parent} gone, stopping", file=sys.stderr)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(GRACE_S)
        os._exit(128 + signal.SIGTERM)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


def fold_pool(jobs: int) -> ProcessPoolExecutor:
    """``jobs`` spawned workers (a fresh interpreter each: no forked torch / OpenCV thread state)
    that end with this process (``end_with_parent``)."""
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        jobs, mp_context=context, initializer=end_with_parent, initargs=(os.getpid(),)
    )


def crossval(
    config: str, folds: int, overrides: list[str], jobs: int = 1, rescore: bool = False
) -> dict:
    """Train every fold (skipping those stored; ``jobs`` at a time) or, with ``rescore``,
    validate their stored checkpoints again; then summarise. Returns what is written."""
    start = time.perf_counter()
    args = [(config, overrides, folds, fold) for fold in range(folds)]
    if rescore:
        results = [rescore_fold(*a) for a in args]
    elif jobs == 1:
        results = [run_fold(*a) for a in args]
    else:
        with fold_pool(min(jobs, folds)) as pool:
            results = list(pool.map(run_fold, *zip(*args)))
    cfg = fold_config(config, overrides, folds, folds - 1)
    summary = summarise([r["val"] for r in results])
    out = {
        "config": config,
        "overrides": overrides,
        "folds": results,
        "summary": summary,
        "wall_s": sum(r["wall_s"] for r in results),
        "jobs": jobs,
        "elapsed_s": time.perf_counter() - start,
    }
    folder = Path(cfg.out_dir)
    (folder / ("rescored.json" if rescore else "crossval.json")).write_text(
        json.dumps(out, indent=1)
    )
    print(f"{folds}-fold cross-validation of {config} (mean ± std over folds, last epoch):")
    for key, stat in summary.items():
        print(f"  {key:<24} {stat['mean']:.4f} ± {stat['std']:.4f}")
    print(
        f"  wall time {out['wall_s'] / 60:.1f} min of folds, {out['elapsed_s'] / 60:.1f} min "
        f"elapsed ({jobs} at a time); written to {folder}"
    )
    flat = {f"{k}/{s}": v for k, stat in summary.items() for s, v in stat.items()}
    if not rescore:
        log_result_run(cfg, folder, f"{cfg.logger.group}-summary", flat)
    return out


def main(argv: list[str] | None = None) -> int:
    argv, code = arguments(argv, __doc__)
    if code is not None:
        return code
    try:
        crossval(*parse(argv))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NonFiniteError as err:  # a row / fold diverged: no checkpoint holds its state
        print(f"error: {err}", file=sys.stderr)
        return EXIT_NONFINITE
    return 0


if __name__ == "__main__":
    sys.exit(main())
