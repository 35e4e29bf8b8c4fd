"""Poses and actions for one video or image: ``python -m experiments.predict <file> ckpt=...``.

A thin command over ``deephar.apis`` (the Python API: ``Predictor.from_weights(path)(video)``):
the paper's test-time protocol in a streaming window (memory bounded by the clip window, whatever
the video's length), then ``<name>.json`` (the input's suffix kept: ``one.png.json``) and an
overlay (``<name>.overlay.mp4`` via PyAV, ``.overlay.png`` for an image) into ``--out``.

Checkpoints: a Lightning checkpoint of the task modules, a converted official file (``.pt`` of
``python -m deephar.convert``, the demo's ``model.pt``) or an official Keras ``.h5``
(``keras_model=mpii|h36m|penn|ntu``), read by ``deephar.checkpoint``; ``fast=false`` runs the
eager fp32 network instead of ``for_inference``'s. Options are config keys (the ``eval`` and
``predict`` sections of ``experiments/config.py``): ckpt=, fast=, device= are ``eval.*``
as for ``experiments.evaluate``; keras_model=, decode_size=, threshold= are ``predict.*``. The
action is printed by name and drawn on the overlay.

Exit status: 0 done, 1 an unreadable checkpoint or input, 2 bad options or an input refused (too
small to hold a person, or its output already holds another input's prediction).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from deephar.apis import (
    InputError,
    Predictor,
    load_network,
    open_source,
    output_paths,
    render,
    write_json,
)
from deephar.checkpoint import CheckpointError
from experiments.config import PREDICT_KEYS, ConfigError, expand_short_keys, load_predict_config

__all__ = ["load_network", "main", "run"]


def run(
    source: str | Path,
    ckpt: str | Path,
    out_dir: str | Path,
    keras_model: str = "",
    decode_size: int = 480,
    threshold: float = 0.5,
    fast: bool = True,
    device: str = "auto",
) -> dict[str, Any]:
    """Predict on ``source`` (on ``device``: auto | cpu | cuda); returns the JSON dict (also
    written, with the overlay)."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"input not found: {source}")
    paths = output_paths(source, out_dir)
    frames = open_source(source, decode_size)  # refused before the network is loaded
    predictor = Predictor.from_weights(ckpt, keras_model, fast, device, decode_size, threshold)
    pred = predictor(frames)
    rendered = render(pred, frames, paths.overlay)
    return write_json(pred, paths.json, rendered=str(rendered)) | {"json": str(paths.json)}


def _summary(result: dict[str, Any], out: Path) -> str:
    """What the command prints: frames, outputs, the action by name (or why there is none)."""
    written = result.get("json", out)
    lines = [f"{result['num_frames']} frames → {written}; rendered {result['rendered']}"]
    action = result.get("action")
    if action:
        note = f"; {action['note']}" if "note" in action else ""
        score = f"score {action['score']:.3f}{note}"
        lines.append(f"action: {action['name']} (class {action['index']}, {score})")
    elif "no_action" in result:
        lines.append(f"no action: {result['no_action']}")
    return "\n".join(lines)


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
        "threshold=0.5 fast=true device=auto]: short for eval.ckpt, predict.keras_model, …",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/predict"))
    args = parser.parse_intermixed_args(argv)  # options and key=value in any order
    try:
        cfg = load_predict_config(expand_short_keys(args.options, PREDICT_KEYS))
    except ConfigError as err:
        parser.error(f"{err}; short forms: {sorted(PREDICT_KEYS)}")
    if not cfg.eval.ckpt:
        parser.error("ckpt=PATH is required")
    opts = cfg.predict
    try:
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
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (CheckpointError, OSError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(_summary(result, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
