"""Logger factory: Weights & Biases by default, offline unless the user is logged in.

``logger.kind``: wandb | csv | tensorboard | none. W&B with ``logger.offline=auto`` runs offline
when no API key is found in ``WANDB_API_KEY`` or the netrc file (no network is touched to decide),
so a run never fails for lack of a network; upload later with ``wandb sync <run dir>/wandb``.
``tensorboard`` falls back to CSV when neither tensorboard nor tensorboardX is installed; W&B
falls back to CSV when wandb cannot be imported.
"""

from __future__ import annotations

import importlib.util
import logging
import netrc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger

log = logging.getLogger(__name__)
WANDB_HOST = "https://api.wandb.ai"


def wandb_logged_in() -> bool:
    """Whether W&B credentials are present (env ``WANDB_API_KEY`` or netrc), without network."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", WANDB_HOST)).hostname or "api.wandb.ai"
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


def wandb_offline(offline: bool | str) -> bool:
    """``logger.offline`` as the config types it: true / false, or "auto" (offline unless logged
    in, or WANDB_MODE says offline). Strings other than "auto" are the config loader's error."""
    if isinstance(offline, bool):
        return offline
    if offline != "auto":
        raise ValueError(f"logger.offline = {offline!r}: true | false | auto")
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "dryrun", "disabled"):
        return True
    return not wandb_logged_in()


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def build_logger(cfg: DictConfig, run_dir: Path, suffix: str = "") -> Logger | bool:
    """The logger of ``cfg.logger`` writing under ``run_dir`` (False for ``kind=none``).

    suffix: appended to the run name (e.g. "-finetune" for the second stage).
    """
    kind, name = cfg.logger.kind, f"{cfg.name}{suffix}"
    if kind == "none":
        return False
    if kind == "wandb" and _has("wandb"):
        from pytorch_lightning.loggers import WandbLogger

        offline = wandb_offline(cfg.logger.offline)
        if offline:
            log.info("W&B offline (no credentials found); later: wandb sync %s/wandb", run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)  # W&B warns "git root … does not exist"
        logger = WandbLogger(
            name=name,
            project=cfg.logger.project,
            group=cfg.logger.group or None,
            save_dir=str(run_dir),
            offline=offline,
            config=OmegaConf.to_container(cfg, resolve=True),
        )
        # Lightning always passes ``anonymous`` (None), which W&B ≥ 0.19 warns is deprecated.
        getattr(logger, "_wandb_init", {}).pop("anonymous", None)
        return logger
    if kind == "tensorboard" and (_has("tensorboard") or _has("tensorboardX")):
        return TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version=name)
    if kind not in ("wandb", "csv", "tensorboard"):
        raise ValueError(f"logger.kind = {kind!r}: wandb | csv | tensorboard | none")
    if kind != "csv":
        log.warning("logger.kind=%s is not installed; logging to CSV in %s", kind, run_dir)
    return CSVLogger(save_dir=str(run_dir), name="csv", version=name)


# ---- runs outside a Trainer, and ending runs (one W&B run per stage / ablation row) ----
def finish_logger(logger: Logger | bool | None, summary: Mapping[str, float] | None = None) -> None:
    """End ``logger``'s W&B run with ``summary`` in its run summary, so that the next stage or
    ablation row starts a run of its own (W&B otherwise reuses the run in progress)."""
    if type(logger).__name__ != "WandbLogger" or getattr(logger, "_experiment", None) is None:
        return
    run = logger.experiment
    if summary:
        run.summary.update({k: float(v) for k, v in summary.items()})
    run.finish()


def wandb_run(cfg: DictConfig, run_dir: Path, name: str, config: Mapping[str, Any] | None = None):
    """A W&B run of ``cfg.logger`` (group, project, offline rule) for work done outside a
    Trainer (evaluation rows, summaries); None unless ``logger.kind`` is wandb. Finish it."""
    if cfg.logger.kind != "wandb" or not _has("wandb"):
        return None
    import wandb

    run_dir.mkdir(parents=True, exist_ok=True)
    offline = wandb_offline(cfg.logger.offline)
    return wandb.init(
        project=cfg.logger.project,
        group=cfg.logger.group or None,
        name=name,
        dir=str(run_dir),
        mode="offline" if offline else "online",
        config=dict(config) if config is not None else OmegaConf.to_container(cfg, resolve=True),
    )


def log_result_run(
    cfg: DictConfig,
    run_dir: Path,
    name: str,
    summary: Mapping[str, float],
    tables: Mapping[str, Any] | None = None,
    images: Mapping[str, Path] | None = None,
    config: Mapping[str, Any] | None = None,
) -> None:
    """One finished W&B run holding ``summary`` (numbers), ``tables`` (pandas DataFrames →
    ``wandb.Table``) and ``images`` (PNG files); nothing unless ``logger.kind`` is wandb."""
    run = wandb_run(cfg, run_dir, name, config)
    if run is None:
        return
    import wandb

    payload: dict[str, Any] = {
        k: wandb.Table(dataframe=df.reset_index()) for k, df in (tables or {}).items()
    }
    payload |= {k: wandb.Image(str(p)) for k, p in (images or {}).items() if Path(p).is_file()}
    if payload:
        run.log(payload)
    run.summary.update({k: float(v) for k, v in summary.items()})
    run.finish()


def silence_known_warnings() -> None:
    """Warnings a run always shows that say nothing about it: the frozen pose network is in eval
    mode on purpose (its BNs keep their statistics), the run folder holds ``config.yaml`` and the
    logs beside the checkpoints by design, and Lightning's own use of torch's deprecated
    ``LeafSpec`` (fixed upstream, not in our code); under DDP, Lightning's advice to sync logged
    epoch values: the torchmetrics metrics gather their states over the ranks when computed, and
    the data counters are summed (``LogDataFailures``); the task modules' own
    ``on_after_batch_transfer`` (uint8 crops → float on the device) beside the datamodule."""
    import warnings

    for message in (
        r"Found \d+ module\(s\) in eval mode",
        r"Checkpoint directory .* exists and is not empty",
        r".*isinstance\(treespec, LeafSpec\)",
        r"It is recommended to use `self\.log\(.*sync_dist=True\)`",
        r"You have overridden `on_after_batch_transfer` in `LightningModule` but",
    ):
        warnings.filterwarnings("ignore", message=message)
