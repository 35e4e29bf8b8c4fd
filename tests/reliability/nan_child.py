"""``python -m tests.reliability.nan_child <train args>``: ``experiments.train`` whose pose loss
turns NaN at one training step.

``$NAN_STEP`` (1-based, counted in training calls of the loss) and ``$NAN_RANK`` (the DDP rank
whose loss turns NaN: Lightning's ``LOCAL_RANK``, 0 in the launching process): from that call on,
that rank's visibility term (and so the total) is NaN. The run is the real entry point, in a real
process; only the loss is replaced.
"""

from __future__ import annotations

import os
import sys

import torch

from deephar.tasks import pose
from experiments import train

CALLS = [0]


def nan_pose_loss(*args, _loss=pose.pose_loss, **kwargs):
    total, parts = _loss(*args, **kwargs)
    if not torch.is_grad_enabled():  # validation: unchanged
        return total, parts
    CALLS[0] += 1
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    if CALLS[0] >= int(os.environ["NAN_STEP"]) and rank == int(os.environ.get("NAN_RANK", "0")):
        nan = torch.full_like(total, float("nan"))
        return total + nan, parts | {"visibility": parts["visibility"] + nan}
    return total, parts


if __name__ == "__main__":
    pose.pose_loss = nan_pose_loss
    sys.exit(train.main(sys.argv[1:]))
