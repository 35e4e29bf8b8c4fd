"""LightningModules of the three training tasks; the network is built outside and passed in.

- ``Pose2D3DModule(net, optim, visibility_weight, pckh_exclude, …)``: pose pre-training.
- ``ActionModule(net, optim, freeze_pose=True, video_reduction, …)``: action recognition.
- ``JointModule(net, optim, freeze_pose, pose_weight, action_weight, …)``: both at once.
"""

from deephar.checkpoint import init_network, load_weights
from deephar.tasks.action import ActionMetrics, ActionModule, action_forward, block_names
from deephar.tasks.base import (
    OptimSettings,
    TaskModule,
    set_bn_momentum,
)
from deephar.tasks.joint import JointModule
from deephar.tasks.pose import Pose2D3DModule, PoseMetrics

__all__ = [
    "ActionMetrics",
    "ActionModule",
    "JointModule",
    "OptimSettings",
    "Pose2D3DModule",
    "PoseMetrics",
    "TaskModule",
    "action_forward",
    "block_names",
    "init_network",
    "load_weights",
    "set_bn_momentum",
]
