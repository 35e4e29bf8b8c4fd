"""``Predictor``: poses and actions of a video, a frames folder, an image or an array.

    predictor = Predictor.from_weights("model.pt")
    result = predictor("video.mp4")
    print(result.action.name, result.frame(0).pose_px)

The paper's test-time protocol: the video is cut into sliding clips of T frames every T/2
(``datamodules.base.clip_indices(mode="multi")``); for each clip the person box comes from poses
predicted on its full first, middle and last frames (``person_box``); the clip is cropped there
and the network gives per-frame 2D (+3D) poses and, with an action head, action scores. Poses of
frames two clips share are averaged in image pixels; clip scores are averaged per video.

Memory is bounded by the clip window, whatever the video's length: frames are decoded chunk by
chunk (``sources``), kept while a clip still needs them (``FrameWindow``) and dropped after.
Alphabet: F frames, T clip frames, J joints, A actions, N clips, S crop side.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from datamodules.base import clip_indices
from datamodules.layouts import get_layout
from datamodules.transforms import crop_matrix, normalize_image, normalized_crop, to_pixels, warp
from deephar.apis.loading import LoadedNetwork, load_network
from deephar.apis.person_box import host_pose_predictor, person_box
from deephar.apis.results import Action, Prediction
from deephar.apis.sources import FrameSource, SourceInfo, open_source
from deephar.device import model_device


class FrameWindow:
    """The frames of a stream that clips still need: ``take(indices)`` decodes up to the last
    index asked, ``drop_before(index)`` forgets earlier frames. ``peak``: most frames held."""

    def __init__(self, chunks: Iterator[np.ndarray]):
        self._chunks = chunks
        self._frames: dict[int, np.ndarray] = {}
        self._end = 0  # frames decoded so far
        self.peak = 0

    def take(self, indices: np.ndarray) -> np.ndarray:
        """uint8 (len(indices), H, W, 3) frames at ``indices`` (none dropped yet)."""
        while self._end <= int(indices.max()):
            chunk = next(self._chunks)
            self._frames.update({self._end + i: frame for i, frame in enumerate(chunk)})
            self._end += len(chunk)
            self.peak = max(self.peak, len(self._frames))
        return np.stack([self._frames[int(i)] for i in indices])

    def drop_before(self, index: int) -> None:
        for i in [i for i in self._frames if i < index]:
            del self._frames[i]


@dataclass
class _Sums:
    """Running sums per frame of x, y, z, visibility (F, J, 4) and how many clips saw it (F,)."""

    values: np.ndarray
    counts: np.ndarray

    def add(self, clip: np.ndarray, xy: np.ndarray, z: np.ndarray, vis: np.ndarray) -> None:
        np.add.at(self.values, clip, np.concatenate([xy, z[..., None], vis[..., None]], -1))
        np.add.at(self.counts, clip, 1)

    def mean(self) -> np.ndarray:
        return self.values / np.maximum(self.counts, 1)[:, None, None]


@dataclass(frozen=True)
class _Box:
    """A clip's crop: ``crop`` the normalised crop (``normalized_crop``), ``row`` cx, cy, side."""

    crop: np.ndarray
    row: list[float]


@dataclass(frozen=True)
class _ClipOutput:
    """One clip's poses (T, J, D) crop-normalised, visibility (T, J), scores (A,) or None."""

    pose: torch.Tensor
    visibility: torch.Tensor
    scores: np.ndarray | None


class Predictor:
    """A network and the test-time protocol; call it on an input to get a ``Prediction``.

    ``decode_size``: frames are downscaled so that max(H, W) ≤ it (0: full size); ``threshold``:
    the visibility above which a joint counts for the person box.
    """

    def __init__(self, network: LoadedNetwork, decode_size: int = 480, threshold: float = 0.5):
        self.network = network
        self.decode_size = decode_size
        self.threshold = threshold
        self.last_window_peak = 0  # most frames held at once by the last call

    @classmethod
    def from_weights(
        cls,
        path: str | Path,
        keras_model: str = "",
        fast: bool = True,
        device: str = "auto",
        decode_size: int = 480,
        threshold: float = 0.5,
    ) -> Predictor:
        """From a Lightning checkpoint, a ``deephar.convert`` .pt or an official Keras .h5
        (``keras_model`` names its preset); ``fast=False``: the eager fp32 network; ``device``:
        auto | cpu | cuda."""
        network = load_network(path, keras_model=keras_model, fast=fast, device=device)
        return cls(network, decode_size, threshold)

    def open(self, source: str | Path | np.ndarray) -> FrameSource:
        """The frame source of ``source`` at this predictor's decode size."""
        return open_source(source, self.decode_size)

    def __call__(self, source: str | Path | np.ndarray | FrameSource) -> Prediction:
        """Poses (and action) of a video / frames folder / image path, or of uint8 frames
        (H, W, 3) (an image) or (F, H, W, 3) (a video)."""
        frames = source if isinstance(source, FrameSource) else self.open(source)
        return self.predict_source(frames)

    @torch.no_grad()
    def predict_source(self, source: FrameSource) -> Prediction:
        """Stream ``source`` through the clip protocol."""
        cfg, info = self.network.config, source.info
        has_action = cfg.num_actions > 0 and not info.still
        clips = self._clips(info, has_action)
        sums = _Sums(np.zeros((info.num_frames, cfg.num_joints, 4)), np.zeros(info.num_frames))
        window = FrameWindow(source.chunks())
        boxes, scores = [], []
        for k, clip in enumerate(clips):
            box, out = self._predict_clip(window.take(clip), has_action)
            xy = to_pixels(out.pose[..., :2], torch.from_numpy(box.crop).to(out.pose)).numpy()
            z = out.pose[..., 2].numpy() if out.pose.shape[-1] == 3 else np.zeros(xy.shape[:-1])
            sums.add(clip, xy, z, out.visibility.numpy())
            boxes.append(box.row)
            if out.scores is not None:
                scores.append(out.scores)
            window.drop_before(int(clips[k + 1].min()) if k + 1 < len(clips) else info.num_frames)
        self.last_window_peak = window.peak
        return self._result(info, sums.mean(), clips, np.asarray(boxes), scores)

    def _clips(self, info: SourceInfo, has_action: bool) -> np.ndarray:
        """(N, T) frame indices: clips every T/2 frames with an action head, else each frame."""
        if has_action:
            return clip_indices(info.num_frames, self.network.config.num_frames, "multi")
        return np.arange(info.num_frames)[:, None]

    def _predict_clip(self, frames: np.ndarray, has_action: bool) -> tuple[_Box, _ClipOutput]:
        """The network on one clip of uint8 frames (T, H, W, 3), cropped at its person box."""
        model, size = self.network.model.eval(), self.network.config.input_size
        predict = host_pose_predictor(model)
        found = person_box(predict, frames, size, self.threshold)
        matrix = crop_matrix(found.centre, found.side, size)
        images = torch.from_numpy(normalize_image(warp(frames, matrix, size)))
        box = _Box(normalized_crop(matrix, size), [*found.centre, found.side])
        if not has_action:
            pose, vis = predict(images)
            return box, _ClipOutput(pose, vis, None)
        out = model.forward_clip(images[None].to(model_device(model)))
        pose, vis = out.poses.pose[-1][0].cpu(), out.poses.visibility[-1][0].cpu()
        return box, _ClipOutput(pose, vis, out.final.softmax(-1)[0].cpu().numpy())

    def _result(
        self,
        info: SourceInfo,
        mean: np.ndarray,
        clips: np.ndarray,
        boxes: np.ndarray,
        scores: list[np.ndarray],
    ) -> Prediction:
        net = self.network
        layout = get_layout(net.layout)
        return Prediction(
            source=info.name,
            checkpoint=net.source,
            fps=info.fps,
            size=info.size,
            layout=layout.name,
            joints=tuple(layout.joints),
            pose_px=mean[..., :2],
            z=mean[..., 2] if net.config.dim == 3 else None,
            visibility=mean[..., 3],
            clips=clips,
            boxes=boxes,
            clip_scores=np.asarray(scores) if scores else None,
            action=self._action(np.mean(scores, axis=0), info) if scores else None,
            still=info.still,
            has_action_head=net.config.num_actions > 0,
        )

    def _action(self, scores: np.ndarray, info: SourceInfo) -> Action:
        best, length = int(np.argmax(scores)), self.network.config.num_frames
        note = ""
        if info.num_frames < length:
            note = f"from {info.num_frames} frame(s) stretched over the {length}-frame clip"
        name = self.network.action_names[best]
        return Action(best, name, float(scores[best]), scores, note)
