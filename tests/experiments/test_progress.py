"""experiments.progress: one plain line per epoch, also when stdout is a file (a log)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from experiments.progress import EpochLine
from tests.datamodules.test_splits import write_penn_labels

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"^epoch (\d+)/2 step \d+ \| train/loss [\d.]+ \| val/acc [\d.]+ .*val/video_acc [\d.]+.* "
    r"\| lr [\d.e+-]+ \| \d+:\d\d:\d\d elapsed, ETA \d+:\d\d:\d\d$"
)


def test_epoch_lines_in_a_log_file_and_an_empty_test_split(tmp_path):
    """A Penn poses run on training labels only, stdout redirected to a file: one line per epoch
    (step, losses, validation metrics, lr, elapsed, ETA); the empty test split is named."""
    root = write_penn_labels(tmp_path / "penn", videos_per_action=4)
    for path in (root / "labels").glob("*.mat"):  # keep the training files only
        if int(path.stem) % 2 == 0:
            path.unlink()
    log = tmp_path / "train.log"
    args = ["penn_poses", f"data.root={root}", f"out_dir={tmp_path / 'runs'}",
            "data.batch_size=4", "data.steps_per_epoch=2", "data.num_workers=0",
            "data.val_fraction=0.5", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
            "logger.kind=none", "data.allow_partial=true"]  # fmt: skip
    with open(log, "w") as out:
        code = subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=REPO,
                              stdout=out, stderr=subprocess.STDOUT, timeout=600).returncode  # fmt: skip
    text = log.read_text()
    assert code == 0, text[-3000:]
    lines = [line for line in text.splitlines() if line.startswith("epoch ")]
    assert [LINE.match(line).group(1) for line in lines] == ["1", "2"], text[-3000:]
    named = "data.sources.penn: penn test: 0 videos"  # at start-up, before the first epoch
    assert named in text and text.index(named) < text.index("epoch 1"), text[-3000:]
    held = (tmp_path / "runs" / "penn_poses" / "splits" / "penn_val.txt").read_text().split()
    assert len(held) == 15  # one of the two training videos of each action


def test_eta_from_epochs_and_steps():
    class Fake:
        max_steps, max_epochs, global_step, current_epoch = -1, 10, 40, 3

    assert EpochLine._eta(Fake, 100.0, 4, 0) == "0:02:30"  # 25 s an epoch, 6 left
    Fake.max_steps = 100
    assert EpochLine._eta(Fake, 100.0, 4, 20) == "0:05:00"  # 20 steps in 100 s, 60 left
