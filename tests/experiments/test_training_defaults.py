"""experiments.training_defaults: `auto` precision and memory format resolved by the machine,
once per run, recorded in the run's config; explicit values kept."""

from __future__ import annotations

import re

import pytest
import yaml

from datamodules.synthetic import generate_world
from deephar.models import precision
from experiments import training_defaults
from experiments.config import ConfigError, load_config
from experiments.run_folder import run_dir
from experiments.train import main
from experiments.training_defaults import resolve_training_defaults

NATIVE_BF16, AVX2 = {"avx512f", "avx512_bf16"}, {"avx2", "fma"}


@pytest.fixture
def machine(monkeypatch):
    """A CPU with the given flags, without the tests' reference override; returns a setter."""
    monkeypatch.delenv("DEEPHAR_TRAINING", raising=False)
    monkeypatch.delenv("DEEPHAR_PRECISION", raising=False)
    monkeypatch.setattr(training_defaults, "_ANNOUNCED", set())

    def with_flags(flags: set[str]) -> None:
        monkeypatch.setattr(precision, "cpu_flags", lambda *a: flags)

    return with_flags


@pytest.mark.parametrize(("flags", "expected"), [(NATIVE_BF16, "bf16-mixed"), (AVX2, "32-true")])
def test_auto_is_the_cpus_choice(machine, flags, expected):
    machine(flags)
    cfg = load_config("demo_pose", ["trainer.accelerator=cpu"])
    assert (cfg.trainer.precision, cfg.channels_last) == ("auto", "auto")
    resolved = resolve_training_defaults(cfg, verbose=False)
    assert (resolved.trainer.precision, resolved.channels_last) == (expected, True)
    assert cfg.trainer.precision == "auto"  # the loaded config is not changed in place


def test_explicit_values_are_kept_and_printed_as_used(machine, capsys):
    machine(NATIVE_BF16)
    cfg = load_config("demo_pose", ["channels_last=false"])
    resolved = resolve_training_defaults(cfg)
    assert (resolved.trainer.precision, resolved.channels_last) == ("bf16-mixed", False)
    assert "deephar training: NCHW, bf16-mixed (CPU has native bf16" in capsys.readouterr().err
    cfg = load_config("demo_pose", ["trainer.precision=32-true", "channels_last=false"])
    assert resolve_training_defaults(cfg) is cfg


def test_reference_environment_gives_the_official_numerics(machine, monkeypatch):
    machine(NATIVE_BF16)
    monkeypatch.setenv("DEEPHAR_TRAINING", "reference")
    resolved = resolve_training_defaults(load_config("demo_pose"), verbose=False)
    assert (resolved.trainer.precision, resolved.channels_last) == ("32-true", False)


def test_channels_last_accepts_only_auto_true_false():
    with pytest.raises(ConfigError, match=re.escape("channels_last = 'nhwc': one of auto | true")):
        load_config("demo_pose", ["channels_last=nhwc"])


def test_a_run_records_and_prints_the_machines_choice_once(machine, tmp_path, capsys):
    machine(NATIVE_BF16)
    world = generate_world(tmp_path / "world", "tiny", seed=0)["manifest"].parent
    args = [
        f"data.root={world}", f"out_dir={tmp_path}", "model.input_size=64", "model.pose_blocks=1",
        "data.steps_per_epoch=1", "data.batch_size=2", "data.num_workers=0", "data.limit_val=2",
        "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "logger.kind=none",
        "trainer.accelerator=cpu", "data.test=[]",
    ]  # fmt: skip
    assert main(["demo_pose", *args]) == 0
    saved = yaml.safe_load((run_dir(load_config("demo_pose", args)) / "config.yaml").read_text())
    assert (saved["trainer"]["precision"], saved["channels_last"]) == ("bf16-mixed", True)
    err = capsys.readouterr().err
    assert err.count("deephar training: channels_last, bf16-mixed (CPU has native bf16") == 1
