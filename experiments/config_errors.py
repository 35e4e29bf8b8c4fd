"""The config loader's errors: ``ConfigError`` and the one-line forms of YAML's and OmegaConf's."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A config that cannot run: unknown key, wrong type, missing data root."""


def read_yaml(path: Path) -> DictConfig:
    """``OmegaConf.load`` of one YAML file; a syntax error, a duplicated key or a tab is a
    one-line ConfigError naming the file, line and column."""
    try:
        return OmegaConf.load(path)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = err.problem or err.context or "not valid YAML"
        if "\t" in what or "cannot start any token" in what:
            what += " (a tab? YAML indents with spaces)"
        raise ConfigError(f"{where}: {what}") from None


def merge_error(origin: str, err: OmegaConfBaseException) -> ConfigError:
    """One line for OmegaConf's error: the key = the value: what it may be (a choice's allowed
    values), else OmegaConf's message with the key."""
    text = str(getattr(err, "msg", None) or err)
    first, key = text.splitlines()[0], getattr(err, "full_key", None)
    if key and (m := re.match(r"Invalid value '(.*)', expected one of \[(.*)\]", first)):
        return ConfigError(f"{key} = {m[1]!r}: one of {m[2].replace(', ', ' | ')}")
    return ConfigError(f"config {origin!r}: {first}" + (f" (full_key: {key})" if key else ""))
