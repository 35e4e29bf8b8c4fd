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
from pathlib import Path
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
    """``logger.offline``: true / false, or auto (offline unless logged in or WANDB_MODE=online)."""
    if isinstance(offline, bool):
        return offline
    if str(offline).lower() != "auto":
        return str(offline).lower() in ("1", "true", "yes")
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
        return WandbLogger(
            name=name,
            project=cfg.logger.project,
            group=cfg.logger.group or None,
            save_dir=str(run_dir),
            offline=offline,
            config=OmegaConf.to_container(cfg, resolve=True),
        )
    if kind == "tensorboard" and (_has("tensorboard") or _has("tensorboardX")):
        return TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version=name)
    if kind not in ("wandb", "csv", "tensorboard"):
        raise ValueError(f"logger.kind = {kind!r}: wandb | csv | tensorboard | none")
    if kind != "csv":
        log.warning("logger.kind=%s is not installed; logging to CSV in %s", kind, run_dir)
    return CSVLogger(save_dir=str(run_dir), name="csv", version=name)
