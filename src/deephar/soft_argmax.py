"""Differentiable heat-map decoding: soft-argmax, joint visibility, context aggregation, 3D volumes.

Pure functions on logits, batched, no parameters (the official sSAM/cSAM/zSAM/Agg layers are
frozen constants). Coordinates follow the official grids: cell i of n maps to i / (n − 1), so
x, y, z ∈ [0, 1] (no half-pixel offset).

Shapes: B batch, J joints, N any number of maps, H×W map size, Nd depth bins, C context maps.
"""

from __future__ import annotations

import torch
from torch import Tensor

CONTEXT_ALPHA = 0.8  # official, frozen: weight of the joint's own estimate vs. its context


def _grid(n: int, like: Tensor) -> Tensor:
    """(n,) linspace(0, 1, n) on the device of ``like``, in its dtype but never below float32.

    Under bf16 autocast the logits are bf16 while the softmax is float32: a bf16 grid would put
    the coordinates on 1/256 steps (0.6 px at 256², 6 mm of 2 m depth) in training only.
    """
    dtype = torch.promote_types(like.dtype, torch.float32)
    return torch.linspace(0.0, 1.0, n, device=like.device, dtype=dtype)


def spatial_softmax(h: Tensor) -> Tensor:
    """(B, N, H, W) logits → probability maps, softmax over H·W per channel (max-subtracted).

    Float32 at least: bf16 probabilities would carry 3 significant digits into the expectations.
    """
    p = torch.softmax(h.flatten(-2), dim=-1, dtype=torch.promote_types(h.dtype, torch.float32))
    return p.view(h.shape)


def soft_argmax_2d(h: Tensor) -> Tensor:
    """(B, N, H, W) logits → (B, N, 2) expected (x, y) ∈ [0, 1] under the spatial softmax."""
    p = spatial_softmax(h)
    x = (p.sum(dim=-2) * _grid(h.shape[-1], h)).sum(dim=-1)  # marginal over rows, (B, N)
    y = (p.sum(dim=-1) * _grid(h.shape[-2], h)).sum(dim=-1)  # marginal over columns, (B, N)
    return torch.stack([x, y], dim=-1)


def soft_argmax_1d(hz: Tensor) -> Tensor:
    """(B, N, Nd) depth logits → (B, N) expected z ∈ [0, 1] under the softmax over Nd."""
    p = torch.softmax(hz, dim=-1, dtype=torch.promote_types(hz.dtype, torch.float32))
    return (p * _grid(hz.shape[-1], hz)).sum(dim=-1)


def visibility(h: Tensor) -> Tensor:
    """(B, N, H, W) logits → (B, N) joint probability sigmoid(max over the map)."""
    return torch.sigmoid(h.amax(dim=(-2, -1)))


def context_aggregation(ys: Tensor, yc: Tensor, pc: Tensor, alpha: float = CONTEXT_ALPHA) -> Tensor:
    """Official ``Agg``: y_j = α·ŷ_j + (1 − α)·Σ_c p_c·ŷ_c / Σ_c p_c.

    ys (B, J, 2) joint estimates; yc (B, J·C, 2) context estimates ordered j·C + c;
    pc (B, J·C) context probabilities. Returns (B, J, 2).
    """
    b, j = ys.shape[:2]
    yc = yc.reshape(b, j, -1, 2)  # (B, J, C, 2)
    pc = pc.reshape(b, j, -1, 1)  # (B, J, C, 1)
    return alpha * ys + (1.0 - alpha) * (pc * yc).sum(dim=2) / pc.sum(dim=2)


def decode_2d(h: Tensor, num_joints: int, alpha: float = CONTEXT_ALPHA) -> tuple[Tensor, ...]:
    """2D heat maps (B, (1 + C)·J, H, W) → pose (B, J, 2), visibility (B, J), joint logits
    (B, J, H, W). Channels 0…J−1 are the joint maps, the rest the context maps (j·C + c)."""
    hs, hc = h[:, :num_joints], h[:, num_joints:]
    pose = soft_argmax_2d(hs)
    if hc.shape[1] > 0:
        pose = context_aggregation(pose, soft_argmax_2d(hc), visibility(hc), alpha)
    return pose, visibility(hs), hs


def split_volumetric(h: Tensor, num_joints: int) -> tuple[Tensor, Tensor]:
    """3D heat maps (B, Nd·J, H, W), channel d·J + j → hxy (B, J, H, W) mean over depth,
    hz (B, J, Nd) spatial mean."""
    b, _, hh, ww = h.shape
    v = h.view(b, -1, num_joints, hh, ww)  # (B, Nd, J, H, W)
    return v.mean(dim=1), v.mean(dim=(-2, -1)).transpose(1, 2)


def volumetric_visibility_logits(hxy: Tensor, hz: Tensor) -> Tensor:
    """hxy (B, J, H, W), hz (B, J, Nd) (``split_volumetric``) → (B, J) max hxy + max hz, the
    logits of the 3D joint visibility."""
    return hxy.amax(dim=(-2, -1)) + hz.amax(dim=-1)


def visibility_logits(h: Tensor, num_joints: int, dim: int) -> Tensor:
    """A block's heat-map logits (B, N_h, H, W) → (B, J) logits whose sigmoid is the visibility
    ``decode_2d`` (max of the joint map) or ``decode_3d`` returns."""
    if dim == 2:
        return h[:, :num_joints].amax(dim=(-2, -1))
    return volumetric_visibility_logits(*split_volumetric(h, num_joints))


def decode_3d(h: Tensor, num_joints: int) -> tuple[Tensor, ...]:
    """3D heat maps (B, Nd·J, H, W) → pose (B, J, 3) = x, y, z, visibility (B, J) =
    sigmoid(max hxy + max hz), depth-averaged logits hxy (B, J, H, W)."""
    hxy, hz = split_volumetric(h, num_joints)
    pose = torch.cat([soft_argmax_2d(hxy), soft_argmax_1d(hz)[..., None]], dim=-1)
    return pose, torch.sigmoid(volumetric_visibility_logits(hxy, hz)), hxy
