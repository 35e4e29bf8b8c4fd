"""``logger.offline`` typed by the config (a bool, or "auto"), never parsed from a string by hand."""

from __future__ import annotations

import re

import pytest

from experiments.config import ConfigError, load_config
from experiments.logging import wandb_offline


@pytest.mark.parametrize(("value", "typed"), [("true", True), ("false", False), ("auto", "auto")])
def test_the_config_types_logger_offline(value, typed):
    assert load_config("penn", [f"logger.offline={value}"]).logger.offline == typed
    assert type(load_config("penn", [f"logger.offline={value}"]).logger.offline) is type(typed)


@pytest.mark.parametrize("value", ["1", "sometimes", "[true]"])
def test_a_logger_offline_neither_bool_nor_auto_fails_at_load(value):
    with pytest.raises(ConfigError, match="offline"):
        load_config("penn", [f"logger.offline={value}"])


def test_wandb_offline_takes_the_typed_values_only(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_offline(False) is False and wandb_offline(True) is True
    assert wandb_offline("auto") is True  # WANDB_MODE=offline decides auto
    with pytest.raises(ValueError, match=re.escape("true | false | auto")):
        wandb_offline("true")  # a string reaching here is a bug upstream, not a bool to guess


def test_a_wandb_stage_logger_prints_no_library_warning(tmp_path, monkeypatch, capfd):
    """The run folder does not exist yet and Lightning passes ``anonymous``: W&B warned of both
    ("git root … does not exist", "The anonymous setting has no effect") on every demo stage."""
    pytest.importorskip("wandb")
    from experiments.logging import build_logger, finish_logger

    monkeypatch.chdir(tmp_path)
    cfg = load_config("penn", ["logger.kind=wandb", "logger.offline=true"])
    logger = build_logger(cfg, tmp_path / "runs" / "stage")
    logger.experiment.log({"x": 1.0})
    finish_logger(logger, {"x": 1.0})
    printed = "".join(capfd.readouterr())
    assert "offline" in printed  # W&B did print (its banner), so the capture works
    assert "WARNING" not in printed, printed
