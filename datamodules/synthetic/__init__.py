"""The synthetic world: stick-figure people doing a handful of actions, filmed by pinhole cameras
over clutter and written in the four real dataset formats (MPII, Human3.6M, Penn Action, NTU)."""

from datamodules.synthetic.camera import Camera, h36m_rig, look_at
from datamodules.synthetic.motion import ACTIONS, OBJECT_COLOURS, perform, place
from datamodules.synthetic.render import Clip, film
from datamodules.synthetic.skeleton import BODY, JOINTS, to_layout
from datamodules.synthetic.world import SIZES, WorldSize, action_table, generate_world

__all__ = [
    "ACTIONS",
    "BODY",
    "JOINTS",
    "OBJECT_COLOURS",
    "SIZES",
    "Camera",
    "Clip",
    "WorldSize",
    "action_table",
    "film",
    "generate_world",
    "h36m_rig",
    "look_at",
    "perform",
    "place",
    "to_layout",
]
