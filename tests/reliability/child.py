"""``python -m tests.reliability.child <train args>``: ``experiments.train`` with a step beacon.

After every training step the global step is written to the file ``$BEACON`` (atomically) and
the process sleeps ``$STEP_SLEEP`` seconds, so that a test can signal or kill it at a chosen step;
after every validation batch (sanity check excluded) ``$BEACON.val`` gets the global step and the
process sleeps ``$VAL_SLEEP`` seconds; after every test batch, ``$BEACON.test`` and the same sleep.
The beacon only observes: the run is the real entry point, in a real process.
"""

from __future__ import annotations

import os
import sys
import time

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from experiments import train


class Beacon(Callback):
    """Writes the global step to ``$BEACON`` after each training step, then sleeps."""

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        self._write(trainer, "")
        time.sleep(float(os.environ.get("STEP_SLEEP", "0")))

    def on_validation_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if not trainer.sanity_checking:
            self._write(trainer, ".val")
            time.sleep(float(os.environ.get("VAL_SLEEP", "0")))

    def on_test_batch_end(self, trainer: pl.Trainer, *args) -> None:
        self._write(trainer, ".test")
        time.sleep(float(os.environ.get("VAL_SLEEP", "0")))

    @staticmethod
    def _write(trainer: pl.Trainer, suffix: str) -> None:
        path = os.environ.get("BEACON")
        if path and trainer.global_rank > 0:  # DDP: one beacon per rank
            path = f"{path}.rank{trainer.global_rank}"
        if path:
            with open(f"{path}{suffix}.tmp", "w") as file:
                file.write(str(trainer.global_step))
            os.replace(f"{path}{suffix}.tmp", f"{path}{suffix}")


def build_with_beacon(cfg, stage: str = "main", _build=train.build_trainer) -> pl.Trainer:
    trainer = _build(cfg, stage)
    trainer.callbacks.append(Beacon())
    return trainer


if __name__ == "__main__":
    train.build_trainer = build_with_beacon
    sys.exit(train.main(sys.argv[1:]))
