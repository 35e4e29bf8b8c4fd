"""build_optimizer: each name gives its torch optimiser with the settings' hyper-parameters."""

from __future__ import annotations

import pytest
import torch

from deephar.tasks.base import OptimSettings, build_optimizer


def _step(name: str, weight_decay: float) -> torch.Tensor:
    p = torch.nn.Parameter(torch.ones(3))
    opt = build_optimizer([p], OptimSettings(name=name, lr=0.1, weight_decay=weight_decay))
    p.grad = torch.zeros(3)
    opt.step()
    return p.detach()


def test_adamw_decays_the_weights_apart_from_the_gradient():
    # zero gradient: Adam's L2 term goes through the moment estimates (a full lr-sized step),
    # AdamW shrinks the weights by lr·wd only
    assert torch.allclose(_step("adamw", 0.5), torch.full((3,), 1 - 0.1 * 0.5))
    assert torch.allclose(_step("adam", 0.5), torch.full((3,), 0.9), atol=1e-6)


def test_unknown_optimiser_names_the_choices():
    with pytest.raises(ValueError, match="adamw"):
        build_optimizer([torch.nn.Parameter(torch.ones(1))], OptimSettings(name="adamz"))
