"""Where evaluation and prediction run: ``eval.device`` (evaluate) / ``device=`` (predict).

``auto`` (default): the first CUDA device when there is one, else the CPU; ``cuda`` without a
CUDA device is an error naming the choice. The network goes to the device before
``for_inference`` (which picks precision and engine by the network's device), batches follow
it, and outputs come back with ``.cpu()`` before any NumPy.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning_fabric.utilities.apply_func import move_data_to_device

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(choice: str = "auto") -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` (``cuda:1`` …) → the device inference runs on."""
    kind = choice.split(":")[0]
    if kind not in DEVICES:
        raise ValueError(f"device = {choice!r}: one of {DEVICES} (cuda:N for a given GPU)")
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device = {choice!r}: no CUDA device here (device=auto or cpu)")
    return torch.device(choice)


def to_device(batch: Any, device: torch.device) -> Any:
    """Every tensor of ``batch`` (dicts, lists …) on ``device``; other values as they are."""
    return move_data_to_device(batch, device)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for one without parameters)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))
