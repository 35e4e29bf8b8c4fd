"""Each task builds its metric holders in one place (``build_metrics``): its stages and the
``val/…`` names known before training (``val_metrics``) come from it; Lightning internals are
used in ``deephar.lightning_internals`` only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deephar.config import NetworkConfig
from deephar.models.multitask import build_model
from deephar.tasks import ActionModule, JointModule, Pose2D3DModule

ROOT = Path(__file__).resolve().parents[3]
NET = NetworkConfig(input_size=64, pose_blocks=1, num_actions=15, num_frames=8)
# a Trainer's private parts, written into or read from outside Lightning
INTERNAL = re.compile(
    r"progress_bar_metrics\[|\._trainer\b|\bfit_loop\b|_signal_connector"
    r"|_logger_connector|_checkpoint_connector"
)


@pytest.mark.parametrize("task", [Pose2D3DModule, ActionModule, JointModule])
def test_the_stages_and_the_monitorable_names_come_from_one_builder(task):
    options = {} if task is ActionModule else {"pckh_exclude": [6, 7]}
    module = task(build_model(NET), **options)
    val, test = module._metrics("val"), module._metrics("test")
    assert [type(m) for m in val] == [type(m) for m in test]
    assert all(a is not b for a, b in zip(val, test))  # each stage its own states
    names = ["val/loss"] + [f"val/{n}" for m in val for n in m.metric_names()]
    assert task.val_metrics(NET) == names


def test_lightning_internals_are_used_in_one_module():
    """``tasks/base.py`` wrote ``trainer.progress_bar_metrics`` and read ``self._trainer``."""
    found = []
    for folder in ("src/deephar", "experiments", "datamodules"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "lightning_internals.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if INTERNAL.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
