"""The overlay of a prediction: an MP4 (H.264 via PyAV) of the input's frames with the skeleton
and the action's label, streamed chunk by chunk from the source (a second pass: no frame is kept),
or, for a still image, a PNG figure with the 3D view when the network gives depth.

Alphabet: F frames, J joints, H×W frame size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datamodules.layouts import get_layout, limbs
from deephar import viz
from deephar.apis.results import Prediction
from deephar.apis.sources import FrameSource


def action_label(pred: Prediction) -> str:
    """ "<name> <score>" of the video's action ("" without one)."""
    if pred.action is None:
        return ""
    return f"{pred.action.name} {pred.action.score:.2f}"


def render(pred: Prediction, source: FrameSource, base: str | Path) -> Path:
    """Write the overlay of ``pred`` on ``source``'s frames to ``base`` + ``.png`` (an image)
    or + ``.mp4`` (a video); returns the path written."""
    pairs = limbs(get_layout(pred.layout))
    if source.info.still:
        image = next(source.chunks())[0]
        return _render_still(pred, image, pairs, Path(f"{base}.png"))
    return _render_video(pred, source, pairs, Path(f"{base}.mp4"))


def _render_still(pred: Prediction, image: np.ndarray, pairs, path: Path) -> Path:
    pose_3d = None
    if pred.z is not None:
        pose_3d = np.concatenate([pred.pose_px[0] / max(image.shape[:2]), pred.z[0, :, None]], -1)
    return viz.save_figure(viz.pose_figure(image, pred.pose_px[0], pairs, pose_3d), path)


def _render_video(pred: Prediction, source: FrameSource, pairs, path: Path) -> Path:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = (s - s % 2 for s in source.info.size)  # H.264 wants even sizes
    label = action_label(pred)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=round(source.info.fps or 25))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "veryfast"}  # x264's default lookahead holds ~50 frames
        index = 0
        for chunk in source.chunks():
            for frame in chunk:
                image = viz.draw_skeleton(frame[:h, :w], pred.pose_px[index], pairs)
                image = viz.draw_label(image, label) if label else image
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
                index += 1
        container.mux(stream.encode())
    return path
