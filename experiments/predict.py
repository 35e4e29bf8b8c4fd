"""Poses and actions for one video or image: ``python -m experiments.predict <file> ckpt=...``.

Pipeline (the paper's test-time protocol): frames are decoded (downscaled to ``decode_size``); the
video is cut into sliding clips of T frames every T/2; for each clip the person box comes from
poses predicted on its full first, middle and last frames (``protocols.person_box``); the clip is
cropped there and the network gives per-frame 2D (+3D) poses and, with an action head, action
scores. Poses of frames covered by two clips are averaged in image pixels; clip scores are
averaged per video. Writes ``<stem>.json`` and a rendered overlay (``.mp4`` via PyAV, ``.png`` for
an image) into ``--out``.

Checkpoints: a Lightning checkpoint of the task modules, a converted official file (``.pt`` of
``python -m deephar.convert``, the demo's ``model.pt``) or an official Keras ``.h5``
(``keras_model=mpii|h36m|penn|ntu``), read by ``deephar.checkpoint``; ``fast=false`` runs the
eager fp32 network instead of ``for_inference``'s. Options are config keys (the ``eval`` and
``predict`` sections of ``experiments/config.py``): ckpt=, fast= are ``eval.ckpt``, ``eval.fast``
as for ``experiments.evaluate``; keras_model=, decode_size=, threshold= are ``predict.*``. The
action is printed by name and drawn on the overlay.
Alphabet: F frames, T clip frames, J joints, D 2|3, A actions, N clips.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from datamodules.base import read_image
from datamodules.layouts import get_layout, limbs
from datamodules.penn import ACTIONS as PENN_ACTIONS
from datamodules.transforms import crop_matrix, normalize_image, normalized_crop, to_pixels, warp
from datamodules.video import VideoReader
from deephar import viz
from deephar.checkpoint import CheckpointError, load_checkpoint, stored_config
from deephar.checkpoint import load_network as load_checkpoint_network
from deephar.config import PRESETS, NetworkConfig
from deephar.models.inference import for_inference
from experiments import protocols
from experiments.config import (
    PREDICT_KEYS,
    ConfigError,
    expand_short_keys,
    load_predict_config,
    network_config,
)
from experiments.device import model_device, resolve_device
from experiments.run_folder import run_config

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# ---- checkpoints ----
DEFAULT_LAYOUT = {16: "pa16j", 17: "pa17j", 20: "pa20j"}


@dataclass
class LoadedNetwork:
    model: nn.Module
    config: NetworkConfig
    layout: str
    source: str
    action_names: tuple[str, ...] | None = None


def action_names(num_actions: int, dataset: str, stored=None) -> tuple[str, ...] | None:
    """Names of the network's classes: stored in the file (the demo's ``model.pt``), Penn
    Action's names, NTU's class codes (A001 …); None without an action head."""
    if not num_actions:
        return None
    if stored is not None and len(stored) == num_actions:
        return tuple(str(n) for n in stored)
    if dataset == "penn" and num_actions == len(PENN_ACTIONS):
        return PENN_ACTIONS
    if dataset == "ntu":
        return tuple(f"A{i + 1:03d}" for i in range(num_actions))
    return tuple(f"action {i}" for i in range(num_actions))


def load_network(
    path: str | Path, keras_model: str = "", fast: bool = True, device: str = "auto"
) -> LoadedNetwork:
    """A ready network on ``device`` (``experiments.device.resolve_device``: auto = CUDA when
    there is one; ``deephar.checkpoint.load_network``, then ``for_inference`` unless
    ``fast`` is off) from a Lightning checkpoint (its stored config, else its run's
    ``config.yaml``), a ``deephar.convert`` / demo ``.pt`` (config inside) or a Keras .h5 (the
    preset ``keras_model``). Every tensor of the network must be filled."""
    path = Path(path)
    cfg, layout, dataset, stored = None, "", keras_model, None
    if path.suffix == ".h5":
        if keras_model not in PRESETS:
            raise ValueError(f"{path}: an official .h5 needs keras_model= one of {sorted(PRESETS)}")
        cfg = PRESETS[keras_model]
    else:
        payload = load_checkpoint(path)
        cfg, dataset, stored = (
            stored_config(payload, path),
            payload.get("model", ""),
            payload.get("action_names"),
        )
        run = run_config(path)
        if run is not None:
            layout = run.data.layout
            dataset = next(
                (s.dataset for s in run.data.sources.values() if s.stage == "action"), dataset
            )
            cfg = cfg or network_config(run)
        if cfg is None:
            raise CheckpointError(
                path, "no network configuration (none stored, no config.yaml beside it)"
            )
    net = load_checkpoint_network(path, cfg).to(resolve_device(device))
    layout = layout or DEFAULT_LAYOUT.get(cfg.num_joints, "")
    if not layout:
        raise ValueError(f"{path}: no joint layout known for {cfg.num_joints} joints")
    names = action_names(cfg.num_actions, dataset, stored)
    return LoadedNetwork(for_inference(net, fast=fast), cfg, layout, str(path), names)


# ---- decoding ----
def read_frames(path: Path, decode_size: int) -> tuple[np.ndarray, float | None]:
    """uint8 (F, H, W, 3) frames with max(H, W) ≤ ``decode_size`` (0: full size), and the fps."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _downscale(read_image(path)[None], decode_size), None
    video = VideoReader(path)
    chunks = [
        _downscale(video.read(np.arange(s, min(s + 32, len(video)))), decode_size)
        for s in range(0, len(video), 32)
    ]  # decoded in chunks so that full-size frames never all sit in memory
    return np.concatenate(chunks), video.fps


def _downscale(frames: np.ndarray, decode_size: int) -> np.ndarray:
    h, w = frames.shape[1:3]
    scale = decode_size / max(h, w) if decode_size else 1.0
    if scale >= 1.0:
        return frames
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


# ---- inference ----
@dataclass
class Prediction:
    """pose_px (F, J, 2), z (F, J) or None, visibility (F, J), clips (N, T) frame indices,
    boxes (N, 3) cx cy side, clip_scores (N, A) or None, scores (A,) or None."""

    pose_px: np.ndarray
    z: np.ndarray | None
    visibility: np.ndarray
    clips: np.ndarray
    boxes: np.ndarray
    clip_scores: np.ndarray | None
    scores: np.ndarray | None


def host_predictor(model: nn.Module) -> protocols.PosePredictor:
    """``protocols.pose_predictor`` of ``model`` taking and giving host tensors: images go to
    the model's device, pose and visibility come back with ``.cpu()`` (NumPy reads them)."""
    predict, device = protocols.pose_predictor(model), model_device(model)

    def on_host(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pose, visibility = predict(images.to(device))
        return pose.cpu(), visibility.cpu()

    return on_host


@torch.no_grad()
def predict_frames(
    net: LoadedNetwork, frames: np.ndarray, threshold: float = 0.5, still: bool = False
) -> Prediction:
    """Run the protocol on uint8 frames (F, H, W, 3). ``still``: an image, posed only; a video
    of any length gets its action, one shorter than the clip from its frames stretched over it
    (a 1-frame video: that frame repeated)."""
    model, cfg = net.model.eval(), net.config
    size, length = cfg.input_size, cfg.num_frames
    has_action = cfg.num_actions > 0 and not still
    clips = (
        protocols.multi_clip_indices(len(frames), length)
        if has_action
        else np.arange(len(frames))[:, None]
    )
    device = model_device(model)
    predictor = host_predictor(model)
    sums = np.zeros((len(frames), cfg.num_joints, 4))  # x, y, z, visibility
    counts = np.zeros(len(frames))
    boxes, clip_scores = [], []
    for clip in clips:
        centre, window = protocols.person_box(predictor, frames[clip], size, threshold)
        matrix = crop_matrix(centre, window, size)
        images = torch.from_numpy(normalize_image(warp(frames[clip], matrix, size)))
        if has_action:
            out = model.forward_clip(images[None].to(device))
            clip_scores.append(out.final.softmax(-1)[0].cpu().numpy())
            pose, vis = out.poses.pose[-1][0].cpu(), out.poses.visibility[-1][0].cpu()
        else:
            pose, vis = predictor(images)
        crop = torch.from_numpy(normalized_crop(matrix, size)).to(pose)
        xy = to_pixels(pose[..., :2], crop).numpy()
        z = pose[..., 2].numpy() if pose.shape[-1] == 3 else np.zeros(pose.shape[:-1])
        np.add.at(sums, clip, np.concatenate([xy, z[..., None], vis.numpy()[..., None]], -1))
        np.add.at(counts, clip, 1)
        boxes.append([*centre, window])
    mean = sums / np.maximum(counts, 1)[:, None, None]
    scores = np.mean(clip_scores, axis=0) if clip_scores else None
    return Prediction(
        pose_px=mean[..., :2],
        z=mean[..., 2] if cfg.dim == 3 else None,
        visibility=mean[..., 3],
        clips=clips,
        boxes=np.asarray(boxes),
        clip_scores=np.asarray(clip_scores) if clip_scores else None,
        scores=scores,
    )


# ---- outputs ----
def to_json(pred: Prediction, net: LoadedNetwork, source: Path, frames: np.ndarray, fps) -> dict:
    """The JSON written beside the overlay: per-frame poses, per-clip boxes (and scores), action."""
    layout = get_layout(net.layout)
    z = pred.z if pred.z is not None else [None] * len(pred.pose_px)
    scores = pred.clip_scores if pred.clip_scores is not None else [None] * len(pred.clips)
    out = {
        "source": str(source),
        "checkpoint": net.source,
        "num_frames": len(pred.pose_px),
        "fps": fps,
        "decoded_size": [int(frames.shape[2]), int(frames.shape[1])],
        "layout": layout.name,
        "joints": list(layout.joints),
    }
    out["frames"] = [
        {
            "index": i,
            "pose_px": np.round(xy, 2).tolist(),
            "z": None if zi is None else np.round(zi, 4).tolist(),
            "visibility": np.round(vis, 4).tolist(),
        }
        for i, (xy, zi, vis) in enumerate(zip(pred.pose_px, z, pred.visibility))
    ]
    out["clips"] = [
        {"frames": [int(c[0]), int(c[-1])], "box": np.round(b, 2).tolist()}
        | ({} if sc is None else {"scores": np.round(sc, 5).tolist()})
        for c, b, sc in zip(pred.clips, pred.boxes, scores)
    ]
    if pred.scores is not None:
        best = int(np.argmax(pred.scores))
        out["action"] = {
            "index": best,
            "name": net.action_names[best],
            "score": float(pred.scores[best]),
            "scores": np.round(pred.scores, 5).tolist(),
        }
        if len(pred.pose_px) < net.config.num_frames:
            out["action"]["note"] = (
                f"from {len(pred.pose_px)} frame(s) stretched over the "
                f"{net.config.num_frames}-frame clip"
            )
    elif net.config.num_actions > 0:
        out["action"] = None
        out["no_action"] = "a still image is posed only: actions are predicted for videos"
    return out


def render(pred: Prediction, frames: np.ndarray, net: LoadedNetwork, path: Path, fps) -> Path:
    """Overlay video (MP4, H.264 via PyAV) or, for one frame, a PNG figure (with a 3D view)."""
    pairs = limbs(get_layout(net.layout))
    if len(frames) == 1:
        pose_3d = None
        if pred.z is not None:
            pose_3d = np.concatenate(
                [pred.pose_px[0] / max(frames.shape[1:3]), pred.z[0, :, None]], -1
            )
        fig = viz.pose_figure(frames[0], pred.pose_px[0], pairs, pose_3d)
        return viz.save_figure(fig, path.with_suffix(".png"))
    import av

    path = path.with_suffix(".mp4")
    h, w = (s - s % 2 for s in frames.shape[1:3])  # H.264 wants even sizes
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=round(fps or 25))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        label = action_label(pred, net)
        for i, frame in enumerate(frames):
            image = viz.draw_skeleton(frame[:h, :w], pred.pose_px[i], pairs)
            image = viz.draw_label(image, label) if label else image
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def action_label(pred: Prediction, net: LoadedNetwork) -> str:
    """ "<name> <score>" of the video's best action ("" without action scores)."""
    if pred.scores is None:
        return ""
    best = int(np.argmax(pred.scores))
    return f"{net.action_names[best]} {pred.scores[best]:.2f}"


def run(
    source: str | Path,
    ckpt: str | Path,
    out_dir: str | Path,
    keras_model: str = "",
    decode_size: int = 480,
    threshold: float = 0.5,
    fast: bool = True,
    device: str = "auto",
) -> dict:
    """Predict on ``source`` (on ``device``: auto | cpu | cuda); returns the JSON dict (also
    written with the overlay)."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"input not found: {source}")
    net = load_network(ckpt, keras_model=keras_model, fast=fast, device=device)
    frames, fps = read_frames(source, decode_size)
    pred = predict_frames(net, frames, threshold, still=source.suffix.lower() in IMAGE_SUFFIXES)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = to_json(pred, net, source, frames, fps)
    result["rendered"] = str(render(pred, frames, net, out_dir / source.stem, fps))
    (out_dir / f"{source.stem}.json").write_text(json.dumps(result))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.predict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", type=Path, help="video file, frames folder or image")
    parser.add_argument(
        "options",
        nargs="*",
        help="ckpt=PATH [keras_model=NAME decode_size=480 "
        "threshold=0.5 fast=true]: short for eval.ckpt, predict.keras_model, …",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/predict"))
    args = parser.parse_intermixed_args(argv)  # options and key=value in any order
    try:
        cfg = load_predict_config(expand_short_keys(args.options, PREDICT_KEYS))
    except ConfigError as err:
        parser.error(f"{err}; short forms: {sorted(PREDICT_KEYS)}")
    if not cfg.eval.ckpt:
        parser.error("ckpt=PATH is required")
    try:
        opts = cfg.predict
        result = run(
            args.source,
            cfg.eval.ckpt,
            args.out,
            opts.keras_model,
            opts.decode_size,
            opts.threshold,
            cfg.eval.fast,
            cfg.eval.device,
        )
    except (CheckpointError, OSError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    action = result.get("action")
    print(f"{result['num_frames']} frames → {args.out}; rendered {result['rendered']}")
    if action:
        note = f"; {action['note']}" if "note" in action else ""
        print(
            f"action: {action['name']} (class {action['index']}, score {action['score']:.3f}{note})"
        )
    elif "no_action" in result:
        print(f"no action: {result['no_action']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
