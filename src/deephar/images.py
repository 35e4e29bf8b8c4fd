"""The network's input encoding: uint8 crops → float32 in [−1, 1], on whatever device they are on.

    x = ((pix / 255) ** gamma_c − 0.5) · 2        gamma_c: the sample's ``chpower`` (official
                                                   training draws 0.9–1.1 per channel; else 1)

Data workers ship uint8 crops (3, H, W) and the sample's ``chpower`` (3,): a quarter of the bytes
of float32 through the workers' shared memory, pinned memory and the host → device copy; the task
modules convert after the transfer (``TaskModule.on_after_batch_transfer``), evaluation and the
tools right after loading (``batch_to_float``). This is the one place the formula lives.

Alphabet: B batch, T frames, H×W crop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor


def image_to_float(image: Tensor, chpower: Tensor | None = None) -> Tensor:
    """uint8 (…, 3, H, W) → float32 (…, 3, H, W) in [−1, 1], on ``image``'s device.

    chpower: per-channel gamma (…', 3) whose leading dims are a prefix of the image's — (3,) for
    one crop, (B, 3) for a batch of crops (B, 3, H, W) or of clips (B, T, 3, H, W); None: 1.
    """
    if image.dtype != torch.uint8:
        raise TypeError(f"image_to_float takes uint8 crops, got {image.dtype}")
    if image.ndim < 3 or image.shape[-3] != 3:
        raise ValueError(f"image_to_float takes (…, 3, H, W) crops, got {tuple(image.shape)}")
    x = image.to(torch.float32).div_(255.0)
    if chpower is not None:
        lead = chpower.shape[:-1]
        if chpower.shape[-1:] != (3,) or image.shape[: len(lead)] != lead:
            raise ValueError(
                f"chpower {tuple(chpower.shape)} does not match images {tuple(image.shape)}: "
                f"expected (…, 3) over a prefix of their leading dims"
            )
        ones = (1,) * (image.ndim - len(lead) - 3)  # the frames of a clip share the draw
        gamma = chpower.to(device=x.device, dtype=torch.float32).reshape(*lead, *ones, 3, 1, 1)
        x.pow_(gamma)
    return x.sub_(0.5).mul_(2.0)


def batch_to_float(batch: Any) -> Any:
    """A batch with its uint8 ``image`` converted by :func:`image_to_float` (through its
    ``chpower`` when present); groups of batches (``{"pose": batch, "action": batch}``) are
    converted each; float images, poses-only and empty batches pass unchanged."""
    if not isinstance(batch, Mapping):
        return batch
    image = batch.get("image")
    if isinstance(image, Tensor) and image.dtype == torch.uint8:
        return {**batch, "image": image_to_float(image, batch.get("chpower"))}
    if "image" not in batch and any(isinstance(v, Mapping) for v in batch.values()):
        return {k: batch_to_float(v) for k, v in batch.items()}
    return batch
