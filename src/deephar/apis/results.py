"""Typed results of the predictor: per-frame poses and the video's action.

Alphabet: F frames, J joints, A actions, N clips, T clip frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Action:
    """The video's best action: class ``index``, its ``name`` and ``score`` (the clips' mean
    softmax), all the ``scores`` (A,); ``note`` says when a video shorter than the clip was
    stretched over it."""

    index: int
    name: str
    score: float
    scores: np.ndarray
    note: str = ""


@dataclass(frozen=True)
class FramePose:
    """One frame: ``pose_px`` (J, 2) image pixels of the decoded frame, ``z`` (J,) the network's
    depth (None for a 2D network), ``visibility`` (J,) in [0, 1]."""

    pose_px: np.ndarray
    z: np.ndarray | None
    visibility: np.ndarray


@dataclass(frozen=True)
class Prediction:
    """Poses and action of one input.

    ``pose_px`` (F, J, 2) pixels of the decoded frames (size (W, H)), ``z`` (F, J) or None,
    ``visibility`` (F, J); poses of frames two clips share are averaged. ``clips`` (N, T) frame
    indices, ``boxes`` (N, 3) person box per clip (cx, cy, side px), ``clip_scores`` (N, A) or
    None; ``action`` None for a still image or a network without an action head. ``joints``:
    the joint names of the ``layout``.
    """

    source: str
    checkpoint: str
    fps: float | None
    size: tuple[int, int]
    layout: str
    joints: tuple[str, ...]
    pose_px: np.ndarray
    z: np.ndarray | None
    visibility: np.ndarray
    clips: np.ndarray
    boxes: np.ndarray
    clip_scores: np.ndarray | None
    action: Action | None
    still: bool
    has_action_head: bool

    @property
    def num_frames(self) -> int:
        return len(self.pose_px)

    def frame(self, index: int) -> FramePose:
        """The pose of frame ``index``."""
        z = None if self.z is None else self.z[index]
        return FramePose(self.pose_px[index], z, self.visibility[index])
