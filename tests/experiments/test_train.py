"""experiments.train: whole runs on the synthetic world and on the real Penn Action labels."""

from __future__ import annotations

import logging
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.plugins.layer_sync import TorchSyncBatchNorm

from datamodules.synthetic import generate_world
from deephar.models.multitask import build_model
from experiments.config import load_config, network_config
from experiments.data import build_datamodule
from experiments.logging import build_logger, wandb_offline
from experiments.run_folder import best_checkpoint, run_dir
from experiments.train import build_module, build_trainer, main, run
from tests.datamodules.test_splits import write_penn_labels

REPO = Path(__file__).resolve().parents[2]

TINY = [  # CPU-sized: 64² input, K = 1, T = 8, a few steps, CSV logs
    "model.input_size=64", "model.pose_blocks=1", "data.steps_per_epoch=2", "data.batch_size=4",
    "data.num_workers=0", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
    "logger.kind=csv", "data.limit_val=4",
]  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return generate_world(tmp_path_factory.mktemp("world"), "tiny", seed=0)["manifest"].parent


def test_pose_run_writes_checkpoints_and_returns_test_metrics(world, tmp_path):
    cfg = load_config("demo_pose", [f"data.root={world}", f"out_dir={tmp_path}", *TINY])
    metrics = run(cfg)
    assert {"test/pckh@0.5", "test/pckh_auc", "test/loss"} <= set(metrics)
    assert 0.0 <= metrics["test/pckh@0.5"] <= 1.0
    folder = run_dir(cfg)
    for name in ("config.yaml", "best.ckpt", "last.ckpt"):
        assert (folder / name).is_file(), name
    assert load_config(str(folder / "config.yaml")).data.root == str(world)


def test_resume_auto_continues_at_the_right_step(world, tmp_path, caplog):
    args = [f"data.root={world}", f"out_dir={tmp_path}", *TINY, "data.test=[]"]
    run(load_config("demo_pose", args))
    last = run_dir(load_config("demo_pose", args)) / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 2
    with caplog.at_level(logging.INFO):
        run(load_config("demo_pose", [*args, "resume=auto", "trainer.max_epochs=2"]))
    assert f"Restored all states from the checkpoint at {last}" in caplog.text
    state = torch.load(last, weights_only=True)
    epochs = state["loops"]["fit_loop"]["epoch_progress"]["total"]["processed"]
    assert (state["global_step"], epochs) == (4, 2)  # one more epoch of 2 steps, not a restart


@pytest.mark.slow
def test_demo_stages_pose_then_action_and_finetune(world, tmp_path):
    base = [f"data.root={world}", f"out_dir={tmp_path}", *TINY]
    pose_cfg = load_config("demo_pose", base)
    run(pose_cfg)
    cfg = load_config("demo", [*base, f"init.ckpt={best_checkpoint(pose_cfg)}"])
    metrics = run(cfg)
    assert {"test/acc", "test/video_acc", "test/acc_agg", "test/acc_pose1"} <= set(metrics)
    assert best_checkpoint(cfg).parent.name == "finetune" and best_checkpoint(cfg).is_file()
    ft = torch.load(run_dir(cfg) / "finetune" / "last.ckpt", weights_only=True)
    main_lr = cfg.optim.lr  # no plateau in one epoch: the final lr is the initial one
    assert ft["hyper_parameters"]["optim"]["lr"] == pytest.approx(main_lr / 10)
    assert ft["hyper_parameters"]["freeze_pose"] is False


def test_penn_annotated_poses_on_the_real_labels(samples_dir, tmp_path, capsys):
    """The acceptance run: `make train-penn EXP=penn_poses PENN_ROOT=../shared/samples/penn_action`
    on the real label files alone (no frames/, not even a labels/ subfolder)."""
    root = samples_dir / "penn_action"
    code = main(["penn_poses", f"data.root={root}", f"out_dir={tmp_path / 'runs'}",
                 "model.input_size=64",
                 "data.batch_size=4", "data.steps_per_epoch=3", "data.num_workers=0",
                 "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
                 "logger.kind=none"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "test/acc" in out and "test/video_acc" in out


def test_penn_poses_on_two_cpu_ranks_under_the_default_strategy(tmp_path):
    """``trainer.devices=2`` with ``strategy=auto``: Lightning launches DDP (gloo) itself; the
    appearance branch gets no gradient from provided poses, which DDP must be told of, or step 2
    fails with "Expected to have finished reduction"."""
    root = write_penn_labels(tmp_path / "penn", videos_per_action=2)
    args = ["penn_poses", f"data.root={root}", f"out_dir={tmp_path / 'runs'}", "data.batch_size=4",
            "data.eval_batch_size=4", "data.steps_per_epoch=2", "data.num_workers=0",
            "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "logger.kind=none",
            "trainer.strategy=auto", "trainer.devices=2", "trainer.accelerator=cpu",
            "data.allow_partial=true"]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test/video_acc" in done.stdout
    assert done.stdout.count("global batch 2 devices × 4 = 8; lr 0.001 × 1") == 1  # rank 0
    step = torch.load(tmp_path / "runs" / "penn_poses" / "last.ckpt", weights_only=True)
    assert step["global_step"] == 2


def test_sync_batchnorm_and_cudnn_benchmark_reach_the_trainer(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)
    args = [f"out_dir={tmp_path}", "logger.kind=none"]
    trainer = build_trainer(load_config("penn", [*args, "trainer.sync_batchnorm=true"]))
    assert isinstance(trainer._accelerator_connector._layer_sync, TorchSyncBatchNorm)
    assert torch.backends.cudnn.benchmark is True  # the default: fixed input sizes
    build_trainer(load_config("penn", [*args, "cudnn_benchmark=false"]))
    assert torch.backends.cudnn.benchmark is False
    build_trainer(load_config("penn", [*args, "trainer.deterministic=true"]))
    assert torch.backends.cudnn.benchmark is False  # deterministic kernels: no benchmark


@pytest.mark.parametrize("rank, writes", [("0", True), ("1", False)])
def test_only_global_rank_zero_writes_the_config_and_the_splits(tmp_path, monkeypatch, rank,
                                                                writes):  # fmt: skip
    """Every rank runs ``run``; on shared storage one writer (rank 0) for config.yaml and
    splits/*.txt, else the ranks race on them."""
    monkeypatch.setenv("RANK", rank)
    root = write_penn_labels(tmp_path / "penn", videos_per_action=2)
    run(load_config("penn_poses", [f"data.root={root}", f"out_dir={tmp_path / 'runs'}",
                                   "data.batch_size=4", "data.steps_per_epoch=1",
                                   "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
                                   "logger.kind=none", "data.test=[]",
                                   "data.allow_partial=true"]))  # fmt: skip
    folder = tmp_path / "runs" / "penn_poses"
    assert (folder / "config.yaml").is_file() is writes
    assert (folder / "splits" / "penn_val.txt").is_file() is writes


def test_missing_root_exits_with_the_key_named(capsys):
    assert main(["penn"]) == 2
    assert "data.root" in capsys.readouterr().err


def test_logger_factory(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert wandb_offline("auto") is True  # no credentials: offline, no network needed
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password abc123\n")
    (tmp_path / "netrc").chmod(0o600)
    assert wandb_offline("auto") is False
    assert wandb_offline(True) is True
    cfg = load_config("penn", ["logger.kind=tensorboard"])
    logger = build_logger(cfg, tmp_path)  # tensorboard absent here → CSV, never a failure
    assert type(logger).__name__ in ("TensorBoardLogger", "CSVLogger")
    assert build_logger(load_config("penn", ["logger.kind=none"]), tmp_path) is False


class _Constant(pl.LightningModule):
    """One weight; the monitored validation metric never improves after the first epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, _):
        return (self.w - batch).pow(2).mean()

    def validation_step(self, batch, _):
        self.log("val/acc", 0.5)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.ones(4, 1), batch_size=2)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(torch.ones(2, 1), batch_size=2)


def test_last_checkpoint_is_written_every_epoch_even_without_improvement(tmp_path):
    cfg = load_config("penn", [f"out_dir={tmp_path}", "optim.monitor=val/acc",
                               "optim.monitor_mode=max", "trainer.max_epochs=3",
                               "trainer.enable_progress_bar=false", "logger.kind=none"])  # fmt: skip
    trainer = build_trainer(cfg)
    trainer.fit(_Constant())
    folder = run_dir(cfg)
    best = torch.load(folder / "best.ckpt", weights_only=True)
    last = torch.load(folder / "last.ckpt", weights_only=True)
    assert best["global_step"] == 2  # the first epoch; ties are no improvement
    assert last["global_step"] == trainer.global_step == 6  # resume=auto continues from here


class HostSyncs(Callback):
    """Counts, per training batch, the calls that make the host wait for the device (``item``,
    ``cpu``, ``tolist``, ``bool``/``float``/``int`` of a tensor), each named by the first frame
    outside torch. Host tensors by design are not counted: the optimisers' step counters and
    the samples the loader builds (in the main process with ``num_workers=0``)."""

    METHODS = ("item", "cpu", "tolist", "__bool__", "__float__", "__int__")

    def __init__(self, monkeypatch) -> None:
        self.batch: int | None = None
        self.calls: dict[int, list[str]] = {}
        for name in self.METHODS:
            monkeypatch.setattr(torch.Tensor, name, self._wrap(getattr(torch.Tensor, name), name))

    def _wrap(self, method, name):
        def counted(tensor, *args, **kwargs):
            stack = traceback.extract_stack()[:-1]
            host = "/torch/optim/" in stack[-1].filename  # the caller (steps run in closures)
            host |= any("/torch/utils/data/" in f.filename for f in stack)
            if self.batch is not None and not host:
                where = [f for f in stack if "/torch/" not in f.filename][-1]
                self.calls[self.batch].append(f"{name} {where.filename}:{where.lineno}")
            return method(tensor, *args, **kwargs)

        return counted

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.batch = batch_idx
        self.calls.setdefault(batch_idx, [])

    def on_train_epoch_end(self, trainer, module):
        self.batch = None


@pytest.mark.parametrize("experiment", ["demo_pose", "penn_poses"])
def test_no_host_sync_between_log_intervals(world, tmp_path, monkeypatch, experiment):
    """7 training steps logged every 3rd (step 3, 6) under ``build_trainer``'s Trainer, progress
    bar on: the other steps (1, 2, 4, 5; 7 ends the epoch) wait for no device value."""
    root = write_penn_labels(tmp_path / "penn", 2) if experiment == "penn_poses" else world
    cfg = load_config(experiment, [f"data.root={root}", f"out_dir={tmp_path}", *TINY,
                                   "data.steps_per_epoch=7", "trainer.log_every_n_steps=3",
                                   "trainer.enable_progress_bar=true", "trainer.accelerator=cpu",
                                   "data.val=[]", "data.test=[]"])  # fmt: skip
    net = build_model(network_config(cfg))
    trainer, data = build_trainer(cfg), build_datamodule(cfg)
    counter = HostSyncs(monkeypatch)
    trainer.callbacks.append(counter)
    trainer.fit(build_module(cfg, net), datamodule=data)
    assert sorted(counter.calls) == list(range(7))
    between = {i: calls for i, calls in counter.calls.items() if i in (0, 1, 3, 4) and calls}
    assert not between, "\n".join(f"step {i + 1}: {c}" for i, c in between.items())
    assert "train/loss" in trainer.progress_bar_metrics  # shown, as read at step 6
