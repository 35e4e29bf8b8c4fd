"""Write ``golden/ensemble_m3_reference.npz``: a tiny action head with 3 pose members (``pose_members:
3``): its state-dict keys and shapes (the weights are a function of the key: ``reference_state``),
inputs and outputs, computed by the code of commit 8831d9c (the ensemble as ``pose_branch`` +
``pose_extra``, before it became one module). ``test_pose_ensemble.py`` checks that today's code
loads those weights (old keys) and gives the same logits and loss.

Reproduce from the repository root (the old code first on the path; bitwise equal at 2 threads):
``mkdir /tmp/old && git archive 8831d9c src | tar -x -C /tmp/old && PYTHONPATH=/tmp/old/src:.
python tests/deephar/make_ensemble_reference.py tests/deephar/golden/ensemble_m3_reference.npz``.
"""

from __future__ import annotations

import sys
import zlib

import numpy as np
import torch
from torch import Tensor

# dim, actions, appearance features, pose branch, action blocks, width, pose members
HEAD = (2, 5, 16, "v1", 2, 0.25, 3)


def reference_tensor(key: str, shape: tuple[int, ...]) -> Tensor:
    """The weight stored under ``key``: seeded by the key (no file of weights to keep)."""
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.long)
    values = torch.randn(shape, generator=torch.Generator().manual_seed(zlib.crc32(key.encode())))
    return 1 + 0.1 * values.abs() if key.endswith("running_var") else 0.2 * values


def reference_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, Tensor]:
    """State dict {key: ``reference_tensor(key, shape)``}."""
    return {k: reference_tensor(k, s) for k, s in shapes.items()}


def main(out: str) -> None:
    """Run on the old commit only (its ``ActionHead`` returned a 4-tuple); imports inside so
    that the test can import ``HEAD`` and ``reference_state`` today."""
    from deephar.losses import action_loss
    from deephar.models.action import ActionHead
    from deephar.outputs import ActionOutput

    head = ActionHead(*HEAD).eval()
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    head.load_state_dict(reference_state(shapes))
    torch.manual_seed(0)
    pose, prob, feats = torch.rand(2, 8, 16, 2), torch.rand(2, 8, 16), torch.rand(2, 8, 16, 16)
    labels = torch.tensor([3, -1])
    inputs = {"pose": pose, "prob": prob, "features": feats, "labels": labels}
    with torch.no_grad():
        p, v, m, members = head(pose, prob, feats)
        p_only, _, _, members_only = head(pose, prob)
    out_all = ActionOutput(p, v, m, pose_members=members)
    out_poses = ActionOutput(p_only, [], None, pose_members=members_only)
    arrays = {
        **{f"shape/{k}": np.array(v, dtype=np.int64) for k, v in shapes.items()},
        **{k: v.numpy() for k, v in inputs.items()},
        **{f"all_logits/{k}": z.numpy() for k, z in enumerate(out_all.all_logits)},
        **{f"pose_members/{k}": z.numpy() for k, z in enumerate(members)},
        **{f"poses_all_logits/{k}": z.numpy() for k, z in enumerate(out_poses.all_logits)},
        "loss": action_loss(out_all, labels, 0.1).numpy(),
        "poses_loss": action_loss(out_poses, labels).numpy(),
    }
    np.savez_compressed(out, **arrays)


if __name__ == "__main__":
    main(sys.argv[1])
