"""experiments.device: where evaluate and predict run (auto: CUDA when there is one)."""

from __future__ import annotations

import pytest
import torch

from experiments.device import resolve_device, to_device


def test_auto_takes_cuda_when_there_is_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="one of"):
        resolve_device("tpu")


def test_batches_move_with_their_non_tensor_entries():
    batch = {"image": torch.zeros(2, 3), "dataset": ["mpii", "h36m"], "pose": [torch.ones(1)]}
    moved = to_device(batch, torch.device("meta"))
    assert moved["image"].is_meta and moved["pose"][0].is_meta
    assert moved["dataset"] == ["mpii", "h36m"]
