"""Rendering: stick figures (thick limbs, head with a nose, held object) over background clutter,
drawn far-to-near with cv2; JPEG and video encoding.

Images are RGB uint8 (H, W, 3). As in real footage, a limb is told apart from the torso it crosses
by its own clothing and its outline: the torso, each sleeve and each trouser leg have their own
colour (hues spread around the colour wheel, so no two parts look alike), every segment is drawn
with a dark rim, forearms are bare (skin) in short-sleeved clothes, and the nose marks where the
face looks (front vs back, hence left vs right).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import av
import cv2
import numpy as np

from datamodules.synthetic.camera import Camera
from datamodules.synthetic.motion import OBJECT_COLOURS
from datamodules.synthetic.skeleton import BONES, HEAD_RADIUS, joint_index

_SHIFT = 4  # cv2 sub-pixel bits
_BONE_IDX = np.array([[joint_index(a), joint_index(b)] for a, b, _ in BONES])
_BONE_WIDTH = np.array([w for *_, w in BONES])
OBJECT_SIZE = (0.2, 0.1)  # metres: along the forearm, across


PARTS = ("torso", "l_arm", "r_arm", "l_leg", "r_leg")


@dataclass(frozen=True)
class Style:
    """Colours (RGB) of one person: ``parts`` {PARTS: colour} (torso, sleeves, trouser legs), skin,
    the held object's colour or None; ``short_sleeves``: forearms drawn in skin colour."""

    parts: dict[str, np.ndarray]
    skin: np.ndarray
    object_colour: tuple[int, int, int] | None
    short_sleeves: bool = False


@dataclass(frozen=True)
class Clip:
    """One filmed performance: frames (T, H, W, 3) RGB, joints world (T, J, 3) m, camera frame
    (T, J, 3) m and pixels (T, J, 2) in body joint order."""

    frames: np.ndarray
    world: np.ndarray
    cam: np.ndarray
    uv: np.ndarray


def sample_style(rng: np.random.Generator, action: str) -> Style:
    """Random clothes, one colour per part, hues 72° apart in a random order (± 14°); the object
    colour comes from the action only (no random draw)."""
    hue = rng.uniform(0, 180) + 36 * rng.permutation(len(PARTS)) + rng.uniform(-7, 7, len(PARTS))
    sat, val = rng.uniform(90, 230, len(PARTS)), rng.uniform(90, 240, len(PARTS))
    hsv = np.stack([hue % 180, sat, val], -1).astype(np.uint8)[None]
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0].astype(float)
    skin = np.array([224, 172, 140]) * rng.uniform(0.55, 1.05)
    return Style(dict(zip(PARTS, rgb)), skin, OBJECT_COLOURS.get(action), rng.random() < 0.5)


def background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) clutter: smooth colour field, noise texture, random rectangles/circles/lines."""
    W, H = size
    grid = rng.uniform(30, 225, (rng.integers(2, 6), rng.integers(2, 6), 3)).astype(np.float32)
    img = cv2.resize(grid, (W, H), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, 12, (H // 4 + 1, W // 4 + 1, 1)).astype(np.float32)
    img += cv2.resize(noise, (W, H), interpolation=cv2.INTER_LINEAR)[..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(6, 16)):
        _clutter_shape(img, rng, W, H)
    return img


def _clutter_shape(img: np.ndarray, rng: np.random.Generator, W: int, H: int) -> None:
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    x, y = (int(v) for v in rng.integers(0, [W, H]))
    w, h = (int(v) for v in rng.integers(5, [W // 3, H // 3]))
    thick = -1 if rng.random() < 0.6 else int(rng.integers(1, 5))
    kind = rng.integers(0, 3)
    if kind == 0:
        cv2.rectangle(img, (x, y), (x + w, y + h), colour, thick)
    elif kind == 1:
        cv2.circle(img, (x, y), w // 2, colour, thick, cv2.LINE_AA)
    else:
        cv2.line(img, (x, y), (x + w, y + h), colour, max(thick, 2), cv2.LINE_AA)


def _pt(uv: np.ndarray) -> tuple[int, int]:
    return int(round(uv[0] * (1 << _SHIFT))), int(round(uv[1] * (1 << _SHIFT)))


def _bone_colours(style: Style) -> np.ndarray:
    """(B, 3) colour of each bone: skin for hands (and bare forearms), dark shoes, else the
    clothes of its part (the shoulder and hip bars belong to the torso)."""
    cols = []
    for a, b, _ in BONES:
        side = a[:2] if a[:2] == b[:2] and a[:2] in ("l_", "r_") else ""
        limb = "arm" if any(k in a for k in ("shoulder", "elbow", "wrist")) else "leg"
        col = style.parts[f"{side}{limb}"] if side else style.parts["torso"]
        if "hand" in b or (style.short_sleeves and a.endswith("elbow")):
            col = style.skin
        elif "toe" in b:
            col = col * 0.3
        cols.append(col)
    return np.clip(np.array(cols), 0, 255)


def _face_forward(cam: np.ndarray) -> np.ndarray:
    """(T, 3) unit facing direction in the camera frame (body x = left, y = up, z = left × up)."""
    left = cam[:, joint_index("l_shoulder")] - cam[:, joint_index("r_shoulder")]
    up = cam[:, joint_index("neck")] - cam[:, joint_index("thorax")]
    fwd = np.cross(left, up)
    return fwd / np.linalg.norm(fwd, axis=-1, keepdims=True)


def render_clip(bg: np.ndarray, cam: np.ndarray, camera: Camera, style: Style) -> np.ndarray:
    """Draw the figure (T, J, 3) camera-frame joints over ``bg`` → frames (T, H, W, 3) RGB."""
    uv = camera.project(cam)
    focal = float(camera.f[0])
    z = np.maximum(cam[..., 2], 1e-3)
    bone_z = z[:, _BONE_IDX].mean(-1)  # (T, B)
    bone_px = np.maximum(1, np.round(focal * _BONE_WIDTH / bone_z)).astype(int)
    head = joint_index("head_center")
    nose = camera.project(cam[:, head] + 0.9 * HEAD_RADIUS * _face_forward(cam))
    nose_front = _face_forward(cam)[:, 2] < 0
    hand = joint_index("r_hand")
    item_z = np.concatenate([bone_z, z[:, [head]], z[:, [hand]] - 0.02], 1)
    colours = [tuple(map(float, c)) for c in _bone_colours(style)]
    rims = [tuple(0.3 * v for v in c) for c in colours]  # a dark 1-pixel rim around each segment
    frames = np.repeat(bg[None], len(cam), axis=0)
    for t in range(len(cam)):
        img = frames[t]
        for i in np.argsort(-item_z[t], kind="stable"):
            if i < len(BONES):
                a, b = _BONE_IDX[i]
                ends, width = (_pt(uv[t, a]), _pt(uv[t, b])), int(bone_px[t, i])
                cv2.line(img, *ends, rims[i], width + 2, cv2.LINE_AA, _SHIFT)
                cv2.line(img, *ends, colours[i], width, cv2.LINE_AA, _SHIFT)
            elif i == len(BONES):
                _draw_head(
                    img,
                    uv[t, head],
                    focal * HEAD_RADIUS / z[t, head],
                    style,
                    nose[t],
                    nose_front[t],
                )
            elif style.object_colour is not None:
                _draw_object(img, uv[t], focal / z[t, hand], style.object_colour)
    return frames


def _draw_head(img, centre, radius, style, nose, nose_front) -> None:
    r = int(round(radius * (1 << _SHIFT)))
    cv2.circle(img, _pt(centre), r, tuple(map(float, style.skin)), -1, cv2.LINE_AA, _SHIFT)
    if nose_front:
        dark = tuple(float(v) for v in style.skin * 0.35)
        cv2.circle(img, _pt(nose), max(r // 4, 1 << _SHIFT), dark, -1, cv2.LINE_AA, _SHIFT)


def _draw_object(img, uv: np.ndarray, px_per_m: float, colour) -> None:
    """A box held in the right hand, its long side along the hand."""
    centre = uv[joint_index("r_hand")]
    axis = uv[joint_index("r_hand_tip")] - uv[joint_index("r_wrist")]
    angle = float(np.degrees(np.arctan2(axis[1], axis[0])))
    size = (OBJECT_SIZE[0] * px_per_m, OBJECT_SIZE[1] * px_per_m)
    box = cv2.boxPoints(((float(centre[0]), float(centre[1])), size, angle))
    corners = [np.round(box * (1 << _SHIFT)).astype(np.int32)]
    cv2.fillPoly(img, corners, colour, cv2.LINE_AA, _SHIFT)
    rim = tuple(0.3 * float(v) for v in colour)  # outlined like the limbs
    cv2.polylines(img, corners, True, rim, 1, cv2.LINE_AA, _SHIFT)


def film(world: np.ndarray, camera: Camera, action: str, rng: np.random.Generator, bg=None) -> Clip:
    """Film world joints (T, J, 3) metres with ``camera`` over random (or given) clutter."""
    bg = background(rng, camera.size) if bg is None else bg
    cam = camera.to_camera(world)
    frames = render_clip(bg, cam, camera, sample_style(rng, action))
    return Clip(frames, world, cam, camera.project(cam))


@cache
def video_codec() -> str:
    """libx264 when this PyAV build has it, else mpeg4."""
    try:
        av.codec.Codec("libx264", "w")
        return "libx264"
    except Exception:
        return "mpeg4"


def write_video(path: Path, frames: np.ndarray, fps: int) -> None:
    """Encode RGB frames (T, H, W, 3) to ``path`` (container from the suffix), deterministically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = video_codec()
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.thread_count = 1
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "18"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
