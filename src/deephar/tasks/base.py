"""What the three task modules share: optimiser settings, the best-so-far tracker, weight loading.

A task module receives the network (``deephar.models.multitask.build_model``) and owns only its
losses, metrics and optimiser, so the same ``DeepHAR`` object (and its one backbone) can pass from
pose pre-training to action training and fine-tuning.

Alphabet: B batch, T frames, J joints, D 2|3, A actions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torchmetrics import MaxMetric, MeanMetric, Metric, MinMetric

from deephar import lightning_internals
from deephar.config import NetworkConfig
from deephar.images import batch_to_float
from deephar.models.multitask import DeepHAR
from deephar.tasks.finite import LossWatch, check_checkpoint, read_due
from deephar.tasks.schedule import LR_SCALING, build_scheduler, lr_scale


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
    scale_lr: str = "none"  # none | linear | sqrt: lr × devices (or √) (tasks.schedule.lr_scale)


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


def updated_anywhere(metrics: Sequence[Metric]) -> list[bool]:
    """Per metric: whether any rank updated it (one all-reduce under ``torch.distributed``, else
    the metric's own ``update_called``). A metric's ``compute`` is a collective (its states are
    gathered): every rank must enter it or none, and a rank's own ``update_called`` differs
    where one rank saw no sample of a kind (an NCCL hang)."""
    flags = [m.update_called for m in metrics]
    if not metrics or not (dist.is_available() and dist.is_initialized()):
        return flags
    if dist.get_world_size() < 2:
        return flags
    seen = torch.tensor(flags, dtype=torch.int32, device=metrics[0].device)
    dist.all_reduce(seen, op=dist.ReduceOp.MAX)
    return [bool(v) for v in seen.tolist()]


def is_clip_batch(batch: Mapping[str, Any]) -> bool:
    """A batch of clips (B, T, 3, H, W) or of provided poses (no ``image``), not still images."""
    return "image" not in batch or batch["image"].ndim == 5


class TaskModule(pl.LightningModule):
    """Base of the task modules: the network, the optimiser, the best-so-far validation metric.

    Subclasses implement ``_shared_step(batch, stage) -> loss`` and ``build_metrics`` (the metric
    holders of a stage, attached by ``attach_metrics``) and may override
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
        if self.optim.scale_lr not in LR_SCALING:
            raise ValueError(f"optim.scale_lr = {self.optim.scale_lr!r}: one of {LR_SCALING}")
        self.channels_last, self.compiled = channels_last, compile
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_best = MaxMetric() if self.optim.monitor_mode == "max" else MinMetric()
        self.val_best.persistent(True)  # in checkpoints: a resumed run keeps its best so far
        self.plateau: ReduceLROnPlateau | None = None  # optim.schedule=plateau, stepped here
        self._plateau_state: dict[str, Any] | None = None  # restored from a checkpoint
        self._read_step = -1  # the last step whose values were read from the device
        self.finite = LossWatch()  # non-finite loss terms, flagged on the device

    @property
    def backbone(self) -> nn.Module:
        """The shared stem (the very object of ``net.backbone``)."""
        return self.net.backbone

    def save_settings(self, **settings: Any) -> None:
        """``save_hyperparameters`` of the optimiser, memory format, compile and the subclass's
        ``settings`` (plain values only: checkpoints stay loadable with weights_only=True)."""
        common = {
            "optim": asdict(self.optim),
            "channels_last": self.channels_last,
            "compile": self.compiled,
        }
        self.save_hyperparameters(common | settings)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The network's config beside its weights (a plain dict), so that
        ``deephar.checkpoint.load_network`` rebuilds it without guessing. A checkpoint after a
        non-finite loss, or with non-finite weights or optimiser state, is never written
        (``deephar.tasks.finite``: ``NonFiniteError`` instead)."""
        trainer = lightning_internals.attached_trainer(self)  # None: saved outside a fit
        if trainer is not None:
            self.finite.raise_if_flagged(trainer)
        check_checkpoint(checkpoint, trainer)
        checkpoint["network_config"] = asdict(self.net.cfg)
        if self.plateau is not None:
            checkpoint["plateau"] = self.plateau.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._plateau_state = checkpoint.get("plateau")

    def configure_model(self) -> None:
        """``compile``: the pose network and the action head compiled in place (same modules and
        state-dict keys) in Lightning's ``configure_model`` hook, where its compile guide puts
        ``torch.compile`` under distributed strategies: after the process group is set up and
        before the strategy wraps the module, i.e. PyTorch's "compile the inner module, then
        wrap it in DDP" (dynamo's DDP optimiser then splits the graphs at the gradient buckets,
        so the all-reduce overlaps the backward). Once per part: later stages (test,
        fine-tuning) reuse the compiled forwards; the batch dimension is dynamic
        (``models.multitask.batch_dynamic``), so a smaller last batch does not recompile."""
        if not self.compiled:
            return
        for part in (self.net.pose, self.net.action):
            if part is not None and part._compiled_call_impl is None:
                part.compile()

    def setup(self, stage: str) -> None:
        """Before the strategy wraps the module: the frozen pose network's buffers are left out
        of DDP's per-step buffer broadcast (``DeepHAR.frozen_buffers``; set at every fit, so a
        fine-tuning stage that unfroze them broadcasts them again)."""
        self._ddp_params_and_buffers_to_ignore = [f"net.{n}" for n in self.net.frozen_buffers()]

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """uint8 crops → float32 [−1, 1] on the device, after the (4× smaller) host → device copy
        (``deephar.images.batch_to_float``; float batches pass unchanged)."""
        return batch_to_float(batch)

    def to_input(self, images: Tensor) -> Tensor:
        """Images (B, 3, H, W) or clips (B, T, 3, H, W) in the memory format of the network."""
        if self.channels_last and images.ndim == 4:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    # ---- steps ----
    def _shared_step(self, batch: Any, stage: str) -> Tensor:
        raise NotImplementedError

    # ---- metrics ----
    @classmethod
    def build_metrics(cls, cfg: NetworkConfig, **options: Any) -> dict[str, nn.Module]:
        """THE metric holders of one stage for a network of ``cfg``, by name ({"pose": …}), each
        with ``compute() -> dict``, ``reset()``, ``metric_names()``; ``options``: the module's
        scoring options (``pckh_exclude``, ``video_reduction``). The one place a task builds
        them: its stages (``attach_metrics``) and ``val_metrics``."""
        raise NotImplementedError

    def attach_metrics(self, **options: Any) -> None:
        """``val_<name>`` and ``test_<name>`` for each metric holder of ``build_metrics``."""
        for stage in ("val", "test"):
            built = self.build_metrics(self.net.cfg, **options)
            for name, metric in built.items():
                setattr(self, f"{stage}_{name}", metric)
        self._metric_names = list(built)

    def _metrics(self, stage: str) -> list[nn.Module]:
        """The metric holders of "val" / "test"."""
        return [getattr(self, f"{stage}_{name}") for name in self._metric_names]

    @classmethod
    def val_metrics(cls, cfg: NetworkConfig) -> list[str]:
        """The ``val/…`` keys the task can log for a network of ``cfg``, known before any
        training: what ``optim.monitor`` may name (each logged when the validation data allows)."""
        names = [n for m in cls.build_metrics(cfg).values() for n in m.metric_names()]
        return ["val/loss"] + [f"val/{n}" for n in names]

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
        if stage == "train":  # not prog_bar: Lightning reads those from the device every step
            self.finite.observe({"loss": loss, **parts}, self.global_step + 1)
            self.log("train/loss", loss, on_step=True, on_epoch=True, batch_size=batch_size)
            for name, value in parts.items():
                self.log(f"train/{name}", value, batch_size=batch_size)
        else:
            getattr(self, f"{stage}_loss").update(loss.detach(), batch_size)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Once every ``log_every_n_steps`` steps (when the loggers read theirs) and at the
        epoch's last step (``deephar.tasks.finite.read_due``), not at every step: the non-finite
        flags are read (a non-finite loss stops training here, before the epoch's validation
        and checkpoints) and the progress bar's ``train/loss`` is the step's loss."""
        step = self.trainer.global_step
        if not read_due(self.trainer, batch_idx) or step == self._read_step:
            return
        self._read_step = step
        self.finite.raise_if_flagged(self.trainer)
        if outputs is not None:
            loss = float(outputs["loss"])
            lightning_internals.show_on_progress_bar(self.trainer, "train/loss", loss)

    def on_validation_start(self) -> None:
        """No validation (and no checkpoint after it) of a network after a non-finite loss."""
        if not self.trainer.sanity_checking:
            self.finite.raise_if_flagged(self.trainer)

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
        if updated_anywhere([loss])[0]:  # compute() gathers: every rank or none
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

    def scaled_settings(self) -> OptimSettings:
        """``optim`` with ``lr`` × ``lr_scale(optim.scale_lr, world size)`` (``data.batch_size``
        is per device; one process: the settings as given)."""
        trainer = lightning_internals.attached_trainer(self)
        world = trainer.world_size if trainer is not None else 1
        return replace(self.optim, lr=self.optim.lr * lr_scale(self.optim.scale_lr, world))

    def configure_optimizers(self) -> dict[str, Any]:
        settings = self.scaled_settings()
        optimizer = build_optimizer(self.trainable_parameters(), settings)
        trainer = lightning_internals.attached_trainer(self)
        total = trainer.estimated_stepping_batches if trainer is not None else 1
        schedule = build_scheduler(optimizer, settings, total)
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
