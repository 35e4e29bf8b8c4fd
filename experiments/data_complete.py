"""Data completeness at start-up: a dataset folder with part of a split is refused before training.

Today Penn Action (the one reader whose split sizes are fixed and cheap to count: one label file
per video): a training split (validation is carved from it) smaller or larger than expected is a
``ConfigError`` carrying ``datamodules.check``'s line, unless ``data.allow_partial=true``; an empty
test split is named before training (the run is then not tested), a partial one refused.
Expected sizes: the official ones, or for a synthetic world (``manifest.json`` beside the dataset
folder) the counts its writer made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from datamodules.check import check_penn
from datamodules.penn import SPLIT_SIZES
from experiments.config import ConfigError, training_sources


@dataclass
class Completeness:
    """What the check found: lines that refuse the run, lines that only name a fact."""

    problems: list[str]
    notices: list[str]


def penn_sizes(root: str | Path) -> dict[str, int]:
    """The split sizes a Penn folder should have: official, or its synthetic world's (the world
    writes ``penn_videos_per_action`` videos of each action, alternately train / test)."""
    manifest = Path(root).parent / "manifest.json"
    if not manifest.is_file():
        return dict(SPLIT_SIZES)
    world = json.loads(manifest.read_text())
    total, per_action = world["counts"]["penn"], world["world"]["penn_videos_per_action"]
    train = (per_action + 1) // 2 * (total // per_action)
    return {"train": train, "test": total - train}


def penn_completeness(key: str, root: str, train: bool, test: bool) -> Completeness:
    """The Penn source ``key``'s training and / or test split counted against ``penn_sizes``."""
    labels = Path(root) / "labels"
    if not labels.is_dir():
        return Completeness([], [])  # the reader names a missing folder itself
    splits = tuple(s for s, read in (("train", train), ("test", test)) if read)
    found = Completeness([], [])
    for line in check_penn(root, frames=False, splits=splits, sizes=penn_sizes(root)):
        if line.startswith("penn test: 0 videos"):
            found.notices.append(
                f"data.sources.{key}: {line}: the test split is empty, the run is not "
                f"tested (its validation metrics are its result)"
            )
        else:
            found.problems.append(line)
    return found


def completeness(cfg: DictConfig) -> Completeness:
    """Every Penn source the run reads (not a ``prepared`` folder), checked."""
    fitted = set(training_sources(cfg)) | set(cfg.data.val)
    found = Completeness([], [])
    for key, source in sorted(cfg.data.sources.items()):
        if source.dataset != "penn" or source.prepared or not source.root:
            continue
        part = penn_completeness(key, source.root, key in fitted, key in cfg.data.test)
        found.problems += part.problems
        found.notices += part.notices
    return found


def check_data_complete(cfg: DictConfig) -> None:
    """Refuse a partial split (``ConfigError`` with the check's line) unless
    ``data.allow_partial``; print the notices (an empty test split)."""
    found = completeness(cfg)
    for line in found.notices:
        print(line, flush=True)
    if found.problems and not cfg.data.allow_partial:
        raise ConfigError(
            f"{'; '.join(found.problems)}: a partial dataset folder; complete it, "
            f"or train on what is there: data.allow_partial=true"
        )
    for line in found.problems:
        print(f"warning: {line} (data.allow_partial=true)", flush=True)
