"""What the three task modules share: optimiser settings, the best-so-far tracker, weight loading.

A task module receives the network (``deephar.models.multitask.build_model``) and owns only its
losses, metrics and optimiser, so the same ``DeepHAR`` object (and its one backbone) can pass from
pose pre-training to action training and fine-tuning.

Alphabet: B batch, T frames, J joints, D 2|3, A actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torchmetrics import MaxMetric, MeanMetric, MinMetric

from deephar.config import NetworkConfig
from deephar.models.multitask import DeepHAR
from deephar.tasks.schedule import build_scheduler


@dataclass
class OptimSettings:
    """Optimiser and learning-rate schedule (paper: pose RMSprop 1e-3; action SGD Nesterov
    momentum 0.98, 2e-4; both ×0.2 on plateau; ``schedule`` in ``deephar.tasks.schedule``).
    Also the ``optim`` section of the experiment config."""

    name: str = "rmsprop"  # rmsprop | sgd | adam | adamw (decoupled weight decay)
    lr: float = 1e-3
    rho: float = 0.99  # rmsprop: a ← rho·a + (1 − rho)·g² (torch alpha; official Keras: 0.9)
    eps: float = 1e-8  # rmsprop / adam: g / (√a + eps), outside the root (official Keras: 1e-7)
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine | plateau | milestones | constant (deephar.tasks.schedule)
    milestones: list[int] = field(default_factory=list)  # milestones: epochs where lr ×= gamma
    gamma: float = 0.2  # milestones: the factor (official MPII: ×0.2 at epochs 80 and 100)
    warmup: float = 0.0  # cosine: share of the steps with a linear warm-up
    min_lr_ratio: float = 1e-3  # the rate never goes below min_lr_ratio × lr
    plateau_factor: float = 0.2  # plateau: lr ×= factor when `monitor` stops improving
    plateau_patience: int = 2  # plateau: epochs without improvement before a reduction
    monitor: str = "val/loss"  # the metric of the schedule, the best checkpoint and `*_best`
    monitor_mode: str = "min"  # min | max
    early_stop_patience: int = 0  # stop after N validations without improvement (0: never)


def build_optimizer(params, settings: OptimSettings) -> torch.optim.Optimizer:
    """The optimiser named by ``settings.name`` over ``params``.

    ``rmsprop`` is Keras' RMSprop exactly when momentum = weight_decay = 0: torch's update
    a ← alpha·a + (1 − alpha)·g², p ← p − lr·g / (√a + eps) from a = 0 is Keras 2.1.4's with
    rho = alpha and its epsilon outside the root (tested against ``parity/train``).
    """
    if settings.name == "rmsprop":
        return torch.optim.RMSprop(
            params,
            settings.lr,
            alpha=settings.rho,
            eps=settings.eps,
            momentum=settings.momentum,
            weight_decay=settings.weight_decay,
        )
    if settings.name == "sgd":
        return torch.optim.SGD(
            params,
            settings.lr,
            momentum=settings.momentum,
            nesterov=settings.nesterov,
            weight_decay=settings.weight_decay,
        )
    if settings.name == "adam":
        return torch.optim.Adam(
            params, settings.lr, eps=settings.eps, weight_decay=settings.weight_decay
        )
    if settings.name == "adamw":
        return torch.optim.AdamW(
            params, settings.lr, eps=settings.eps, weight_decay=settings.weight_decay
        )
    raise ValueError(f"unknown optimiser {settings.name!r} (rmsprop | sgd | adam | adamw)")


def as_settings(optim: OptimSettings | Mapping[str, Any] | None) -> OptimSettings:
    if optim is None:
        return OptimSettings()
    return optim if isinstance(optim, OptimSettings) else OptimSettings(**dict(optim))


def is_clip_batch(batch: Mapping[str, Any]) -> bool:
    """A batch of clips (B, T, 3, H, W) or of provided poses (no ``image``), not still images."""
    return "image" not in batch or batch["image"].ndim == 5


class TaskModule(pl.LightningModule):
    """Base of the task modules: the network, the optimiser, the best-so-far validation metric.

    Subclasses implement ``_shared_step(batch, stage) -> loss``, ``_metrics(stage)`` (the metric
    holders of "val" / "test", each with ``compute() -> dict``, ``reset()``) and may override
    ``trainable_parameters``. Logged keys are ``{stage}/{name}``: ``train/loss``, ``val/acc`` …
    """

    def __init__(
        self,
        net: DeepHAR,
        optim: OptimSettings | Mapping[str, Any] | None = None,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.net = net
        self.optim = as_settings(optim)
        if self.optim.monitor_mode not in ("min", "max"):
            raise ValueError(
                f"optim.monitor_mode must be 'min' or 'max', got {self.optim.monitor_mode!r}"
            )
        self.channels_last, self.compiled = channels_last, compile
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        if compile:  # in place: the same modules (and state-dict keys), compiled forwards
            for part in (self.net.pose, self.net.action):
                if part is not None:
                    part.compile()
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_best = MaxMetric() if self.optim.monitor_mode == "max" else MinMetric()
        self.val_best.persistent(True)  # in checkpoints: a resumed run keeps its best so far
        self.plateau: ReduceLROnPlateau | None = None  # optim.schedule=plateau, stepped here
        self._plateau_state: dict[str, Any] | None = None  # restored from a checkpoint

    @property
    def backbone(self) -> nn.Module:
        """The shared stem (the very object of ``net.backbone``)."""
        return self.net.backbone

    def save_settings(self, **settings: Any) -> None:
        """``save_hyperparameters`` of the optimiser, memory format, compile and the subclass's
        ``settings`` (plain values only: checkpoints stay loadable with weights_only=True)."""
        common = {"optim": asdict(self.optim), "channels_last": self.channels_last,
                  "compile": self.compiled}  # fmt: skip
        self.save_hyperparameters(common | settings)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The network's config beside its weights (a plain dict), so that
        ``deephar.checkpoint.load_network`` rebuilds it without guessing."""
        checkpoint["network_config"] = asdict(self.net.cfg)
        if self.plateau is not None:
            checkpoint["plateau"] = self.plateau.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._plateau_state = checkpoint.get("plateau")

    def to_input(self, images: Tensor) -> Tensor:
        """Images (B, 3, H, W) or clips (B, T, 3, H, W) in the memory format of the network."""
        if self.channels_last and images.ndim == 4:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    # ---- steps ----
    def _shared_step(self, batch: Any, stage: str) -> Tensor:
        raise NotImplementedError

    def _metrics(self, stage: str) -> list[nn.Module]:
        raise NotImplementedError

    @staticmethod
    def scorers(cfg: NetworkConfig) -> list[nn.Module]:
        """Fresh metric holders of a stage, as the subclass builds them (each with
        ``metric_names()``)."""
        raise NotImplementedError

    @classmethod
    def val_metrics(cls, cfg: NetworkConfig) -> list[str]:
        """The ``val/…`` keys the task can log for a network of ``cfg``, known before any
        training: what ``optim.monitor`` may name (each logged when the validation data allows)."""
        return ["val/loss"] + [f"val/{n}" for m in cls.scorers(cfg) for n in m.metric_names()]

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch:  # empty: no sample of the batch could be read (reported by the datamodule)
            self._shared_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch:
            self._shared_step(batch, "test")

    def log_loss(self, stage: str, loss: Tensor, parts: Mapping[str, Tensor], batch_size: int):
        """train: per step and epoch mean; val/test: accumulated, logged at the epoch end."""
        if stage == "train":
            self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True,
                     batch_size=batch_size)  # fmt: skip
            for name, value in parts.items():
                self.log(f"train/{name}", value, batch_size=batch_size)
        else:
            getattr(self, f"{stage}_loss").update(loss.detach(), batch_size)

    # ---- epoch ends: compute, log, reset ----
    def on_train_start(self) -> None:
        """Validation metrics restart here, so the sanity check does not count (``val_best`` is
        never updated by it, and a resumed run keeps the restored one)."""
        self.val_loss.reset()
        for metric in self._metrics("val"):
            metric.reset()

    def _log_epoch(self, stage: str) -> dict[str, Tensor]:
        values: dict[str, Tensor] = {}
        loss = getattr(self, f"{stage}_loss")
        if loss.update_called:
            values["loss"] = loss.compute()
        for metric in self._metrics(stage):
            values.update(metric.compute())
            metric.reset()
        loss.reset()
        logged = {f"{stage}/{k}": v.float() for k, v in values.items()}
        self.log_dict(logged, sync_dist=False)
        return logged

    def on_validation_epoch_end(self) -> None:
        logged = self._log_epoch("val")
        key = self.optim.monitor
        if key in logged and not self.trainer.sanity_checking:
            self.val_best.update(logged[key])
            self.log(f"{key}_best", self.val_best.compute())
            if self.plateau is not None:
                self.plateau.step(float(logged[key]))

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    # ---- optimiser ----
    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.net.parameters() if p.requires_grad]

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.trainable_parameters(), self.optim)
        total = self.trainer.estimated_stepping_batches if self._trainer is not None else 1
        schedule = build_scheduler(optimizer, self.optim, total)
        if schedule is not None and isinstance(schedule["scheduler"], ReduceLROnPlateau):
            # Stepped by this module at validation end, so the checkpoint of that validation holds
            # the step (Lightning steps it after saving, and not in the epoch a run resumes in).
            self.plateau, schedule = schedule["scheduler"], None
            if self._plateau_state is not None:
                self.plateau.load_state_dict(self._plateau_state)
        if schedule is None:
            return {"optimizer": optimizer}
        return {"optimizer": optimizer, "lr_scheduler": schedule}


def attach_action_head(net: DeepHAR, module: str, freeze_pose: bool) -> None:
    """Check that ``net`` has an action head and (un)freeze its pose network for ``module``."""
    if net.action is None:
        raise ValueError(f"{module} needs a network with an action head (num_actions > 0)")
    net.freeze_pose(freeze_pose)


def set_bn_momentum(net: nn.Module, momentum: float) -> None:
    """Set every BatchNorm's PyTorch momentum (official: 0.01 = Keras 0.99). Short runs (demo,
    tests) need a faster one, or evaluation uses running statistics still near initialisation."""
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum
