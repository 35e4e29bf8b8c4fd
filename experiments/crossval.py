"""Grouped k-fold cross-validation over a training split, for choosing recipes.

    python -m experiments.crossval <config> folds=5 [PENN_ROOT=<folder>] [dotlist overrides]
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
``PENN_ROOT=…`` / ``NTU_ROOT=…`` / ``H36M_ROOT=…`` are ``data.root=…``, as in the Makefile.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from experiments import train
from experiments.cli import arguments
from experiments.config import ConfigError, load_config
from experiments.logging import log_result_run

ROOT_ALIASES = ("PENN_ROOT=", "NTU_ROOT=", "H36M_ROOT=", "MPII_ROOT=")  # Makefile spellings


def parse(argv: list[str]) -> tuple[str, int, list[str]]:
    """(config, folds, overrides) of the command line; ``folds=K`` (default 5) is taken out."""
    config, folds, overrides = argv[0], 5, []
    for arg in argv[1:]:
        if arg.startswith("folds="):
            try:
                folds = int(arg.removeprefix("folds="))
            except ValueError as err:
                raise ConfigError(f"{arg}: folds must be an integer >= 2") from err
        elif arg.startswith(ROOT_ALIASES):
            overrides.append("data.root=" + arg.partition("=")[2])
        else:
            overrides.append(arg)
    if folds < 2:
        raise ConfigError(f"folds={folds}: cross-validation needs at least 2 folds")
    return config, folds, overrides


def fold_config(config: str, overrides: list[str], folds: int, fold: int) -> DictConfig:
    """The config of fold ``fold``: validation = that fold, no test, its own run folder."""
    base = load_config(config, overrides)
    group = base.logger.group or f"{base.name}-crossval"
    out = Path(base.out_dir) / f"{base.name}-crossval"
    return load_config(config, [*overrides, f"data.folds={folds}", f"data.fold={fold}",
                                "data.test=[]", f"out_dir={out}", f"name={base.name}-fold{fold}",
                                f"logger.group={group}"])  # fmt: skip


def summarise(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per validation metric present in every fold: mean and sample std over the folds."""
    keys = sorted(set.intersection(*(set(r) for r in runs)))
    out = {}
    for key in keys:
        values = np.array([r[key] for r in runs], np.float64)
        out[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1))}
    return out


def crossval(config: str, folds: int, overrides: list[str]) -> dict:
    """Train every fold (skipping those stored), then summarise; returns what is written."""
    results = []
    for fold in range(folds):
        cfg = fold_config(config, overrides, folds, fold)
        stored = Path(cfg.out_dir) / "folds" / f"{fold}.json"
        if stored.is_file():
            results.append(json.loads(stored.read_text()))
            print(f"fold {fold + 1}/{folds}: stored in {stored}, skipped", flush=True)
            continue
        start = time.perf_counter()
        metrics = train.run(cfg)
        val = {k: v for k, v in metrics.items() if k.startswith("val/") and not k.endswith("_best")}
        if not val:
            raise ConfigError(f"fold {fold}: no validation metrics (is data.val empty?)")
        entry = {"fold": fold, "wall_s": time.perf_counter() - start, "val": val}
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_text(json.dumps(entry, indent=1))
        results.append(entry)
        print(f"fold {fold + 1}/{folds}: " + " ".join(f"{k} {v:.4f}" for k, v in sorted(val.items()))
              + f" ({entry['wall_s']:.0f} s)", flush=True)  # fmt: skip
    summary = summarise([r["val"] for r in results])
    out = {"config": config, "overrides": overrides, "folds": results, "summary": summary,
           "wall_s": sum(r["wall_s"] for r in results)}  # fmt: skip
    folder = Path(cfg.out_dir)
    (folder / "crossval.json").write_text(json.dumps(out, indent=1))
    print(f"{folds}-fold cross-validation of {config} (mean ± std over folds, last epoch):")
    for key, stat in summary.items():
        print(f"  {key:<24} {stat['mean']:.4f} ± {stat['std']:.4f}")
    print(f"  wall time {out['wall_s'] / 60:.1f} min; written to {folder / 'crossval.json'}")
    flat = {f"{k}/{s}": v for k, stat in summary.items() for s, v in stat.items()}
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
