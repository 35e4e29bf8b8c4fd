"""Defect 6: numeric config values out of range fail at load, naming the key, before any model
or dataset is built (no more ``__len__() should return >= 0`` after minutes of set-up)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from experiments import train
from experiments.config import RANGES, ConfigError, load_config

BAD = [
    "data.batch_size=0", "data.batch_size=-4", "data.steps_per_epoch=-3", "data.num_workers=-1",
    "data.eval_batch_size=0", "data.sources.mpii.share=0", "data.sources.h36m.share=-1",
    "data.limit_val=-2", "optim.lr=0", "optim.plateau_factor=1.5", "finetune.lr_divisor=0",
    "trainer.max_epochs=-5", "trainer.accumulate_grad_batches=0", "model.input_size=0",
    "bn_momentum=2",
]  # fmt: skip


@pytest.mark.parametrize("override", BAD)
def test_bad_value_names_its_key_before_anything_is_built(override, world, tmp_path, capsys,
                                                          monkeypatch):  # fmt: skip
    def built(*args, **kwargs):
        raise AssertionError(f"{override}: a model or dataset was built before the check")

    monkeypatch.setattr(train, "build_model", built)
    monkeypatch.setattr(train, "build_datamodule", built)
    args = ["demo_pose", f"data.root={world}", f"out_dir={tmp_path}", override]
    assert train.main(args) == 2
    err = capsys.readouterr().err
    key = override.split("=")[0]
    assert f"error: {key} = " in err, err


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
