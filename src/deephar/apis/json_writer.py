"""The JSON written for one input: per-frame poses, per-clip boxes (and scores), the action.

Output names keep the input's suffix (``one.png`` → ``one.png.json``, ``one.jpg`` →
``one.jpg.json``), and a file that already holds another input's prediction is never overwritten
(``OutputTaken``): two inputs never share one output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deephar.apis.results import Prediction
from deephar.apis.sources import InputError


class OutputTaken(InputError):
    """The output file holds the prediction of another input."""


@dataclass(frozen=True)
class OutputPaths:
    """Where one input's results go: ``json`` and the overlay's ``overlay`` (suffix set by the
    renderer: .mp4 for a video, .png for an image)."""

    json: Path
    overlay: Path


def output_paths(source: str | Path, out_dir: str | Path) -> OutputPaths:
    """``<out>/<input name>.json`` and ``<out>/<input name>.overlay``, the input's suffix kept;
    ``OutputTaken`` when the JSON there was written for another input."""
    source, out_dir = Path(source), Path(out_dir)
    paths = OutputPaths(out_dir / f"{source.name}.json", out_dir / f"{source.name}.overlay")
    if paths.json.is_file():
        try:
            previous = json.loads(paths.json.read_text()).get("source", "")
        except (ValueError, AttributeError):
            previous = ""
        if previous and Path(previous).resolve() != source.resolve():
            raise OutputTaken(
                f"{paths.json}: already holds the prediction of {previous}, not {source} "
                "(another --out, or rename the input)"
            )
    return paths


def to_json(pred: Prediction) -> dict[str, Any]:
    """The prediction as JSON-ready values (pixels to 0.01, depth and visibility to 1e-4)."""
    out: dict[str, Any] = {
        "source": pred.source,
        "checkpoint": pred.checkpoint,
        "num_frames": pred.num_frames,
        "fps": pred.fps,
        "decoded_size": list(pred.size),
        "layout": pred.layout,
        "joints": list(pred.joints),
        "frames": [_frame_json(pred, i) for i in range(pred.num_frames)],
        "clips": _clips_json(pred),
    }
    return out | _action_json(pred)


def _frame_json(pred: Prediction, index: int) -> dict[str, Any]:
    frame = pred.frame(index)
    return {
        "index": index,
        "pose_px": np.round(frame.pose_px, 2).tolist(),
        "z": None if frame.z is None else np.round(frame.z, 4).tolist(),
        "visibility": np.round(frame.visibility, 4).tolist(),
    }


def _clips_json(pred: Prediction) -> list[dict[str, Any]]:
    scores = pred.clip_scores if pred.clip_scores is not None else [None] * len(pred.clips)
    return [
        {"frames": [int(c[0]), int(c[-1])], "box": np.round(b, 2).tolist()}
        | ({} if s is None else {"scores": np.round(s, 5).tolist()})
        for c, b, s in zip(pred.clips, pred.boxes, scores)
    ]


def _action_json(pred: Prediction) -> dict[str, Any]:
    """``action`` (index, name, score, scores, note), or why there is none."""
    if pred.action is not None:
        action = pred.action
        out = {"index": action.index, "name": action.name, "score": action.score}
        out["scores"] = np.round(action.scores, 5).tolist()
        return {"action": out | ({"note": action.note} if action.note else {})}
    if pred.has_action_head:
        return {
            "action": None,
            "no_action": "a still image is posed only: actions are predicted for videos",
        }
    return {}


def write_json(pred: Prediction, path: str | Path, **extra: Any) -> dict[str, Any]:
    """Write ``to_json(pred)`` with the ``extra`` keys to ``path`` (its folder created);
    returns what was written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = to_json(pred) | extra
    path.write_text(json.dumps(data))
    return data
