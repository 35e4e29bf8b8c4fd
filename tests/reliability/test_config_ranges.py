"""Defect 6 (and issue 22): numeric config values out of range, and names out of their set
(precision, optimiser, layout, devices …), fail at load, naming the key and what it may be, before any model
or dataset is built (no more ``__len__() should return >= 0`` after minutes of set-up)."""

from __future__ import annotations

import re
from typing import get_args

import pytest
import torch
from lightning_fabric.connector import _PRECISION_INPUT
from omegaconf import OmegaConf

from deephar.tasks.base import OptimSettings, build_optimizer
from experiments import train
from experiments.config import ConfigError, load_config
from experiments.config_choices import OPTIMIZERS
from experiments.config_ranges import PRECISIONS, RANGES

BAD = [
    "data.batch_size=0", "data.batch_size=-4", "data.steps_per_epoch=-3", "data.num_workers=-1",
    "data.eval_batch_size=0", "data.sources.mpii.share=0", "data.sources.h36m.share=-1",
    "data.limit_val=-2", "optim.lr=0", "optim.plateau_factor=1.5", "finetune.lr_divisor=0",
    "trainer.max_epochs=-5", "trainer.accumulate_grad_batches=0", "model.input_size=0",
    "bn_momentum=2", "data.val_fraction=1.5", "data.val_fraction=-0.1",
]  # fmt: skip
# names out of their set: the error lists what the key may be (issue 22)
UNKNOWN = {
    "trainer.precision=bogus": "bf16-mixed", "optim.name=adamz": "rmsprop | sgd | adam | adamw",
    "optim.schedule=linearx": "cosine", "data.layout=pa99j": "pa16j",
    "trainer.devices=abc": "auto, a count", "trainer.devices=0": "auto, a count",
    "trainer.devices=[-2]": "device indices", "trainer.accelerator=gpux": "cuda",
    "logger.kind=wandbx": "csv", "optim.monitor_mode=maximum": "min | max",
}  # fmt: skip


def refused_before_building(override, world, tmp_path, monkeypatch) -> int:
    """train.main's exit code for ``override``; building a model or a dataset fails the test."""

    def built(*args, **kwargs):
        raise AssertionError(f"{override}: a model or dataset was built before the check")

    monkeypatch.setattr(train, "build_model", built)
    monkeypatch.setattr(train, "build_datamodule", built)
    return train.main(["demo_pose", f"data.root={world}", f"out_dir={tmp_path}", override])


@pytest.mark.parametrize("override", BAD)
def test_bad_value_names_its_key_before_anything_is_built(override, world, tmp_path, capsys,
                                                          monkeypatch):  # fmt: skip
    assert refused_before_building(override, world, tmp_path, monkeypatch) == 2
    err = capsys.readouterr().err
    key = override.split("=")[0]
    assert f"error: {key} = " in err, err


@pytest.mark.parametrize("override", UNKNOWN)
def test_unknown_name_lists_the_allowed_ones_before_anything_is_built(override, world, tmp_path,
                                                                      capsys, monkeypatch):  # fmt: skip
    assert refused_before_building(override, world, tmp_path, monkeypatch) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    key = override.split("=")[0]
    assert len(lines) == 1 and lines[0].startswith(f"error: {key} = "), lines  # one line
    assert UNKNOWN[override] in lines[0], lines


@pytest.mark.parametrize("override", ["trainer.devices=2", "trainer.devices=-1",
                                      "trainer.devices=[0,1]", "trainer.devices='0,1'",
                                      "trainer.devices=auto", "trainer.precision=bf16-mixed",
                                      "trainer.precision=16", "data.val_fraction=0"])  # fmt: skip
def test_lightning_spellings_are_accepted(override):
    load_config("demo_pose", [override])


def test_the_choice_lists_match_what_builds():
    """The listed optimisers are those ``build_optimizer`` builds (its error lists them: a new one
    unlisted fails here), each builds; every listed precision is one Lightning accepts."""
    params = [torch.nn.Parameter(torch.zeros(1))]
    for name in OPTIMIZERS:
        build_optimizer(params, OptimSettings(name=name))
    with pytest.raises(ValueError) as err:
        build_optimizer(params, OptimSettings(name="adamz"))
    built = re.search(r"\(([a-z| ]+)\)", str(err.value)).group(1).split(" | ")
    assert sorted(built) == sorted(OPTIMIZERS)
    lightning = {str(v) for group in get_args(_PRECISION_INPUT) for v in get_args(group)}
    assert set(PRECISIONS) <= lightning


def test_every_range_key_exists_in_the_schema():
    cfg = load_config("demo_pose")
    for key in RANGES:
        assert OmegaConf.select(cfg, key) is not None, key  # a renamed key fails here


@pytest.mark.parametrize("override", ["trainer.max_epochs=-1", "data.steps_per_epoch=0",
                                      "data.num_workers=0", "bn_momentum=0"])  # fmt: skip
def test_boundary_values_are_accepted(override):
    load_config("demo_pose", [override])  # -1 = no limit, 0 = official epoch length / no workers


def test_eval_batch_size_zero_is_not_the_training_batch_size():
    with pytest.raises(ConfigError, match="data.eval_batch_size"):
        load_config("demo_pose", ["data.eval_batch_size=0"])
