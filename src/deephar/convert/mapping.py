"""The converter's core: Keras layers (in group order) ↔ our modules, with loud checks.

A ``GroupPlan`` says which top-level Keras group (one of several accepted names) fills which of
our modules: an ordered list of ``LayerSpec`` (our key prefix, Keras layer kind, optional explicit
Keras name used only as a check). ``convert_plans`` walks the plans and returns our state dict; it
fails naming the Keras layer and our key on any kind/name/shape mismatch, and on any of our keys
left unfilled or any Keras group with weights left unused (unless declared a constant).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from deephar.convert.keras_h5 import KerasLayer, KerasWeightFile, is_auto_name, name_matches


@dataclass(frozen=True)
class LayerSpec:
    """One Keras layer: ``prefix`` of our module, ``kind`` ('conv' | 'sepconv' | 'bn' | 'dense' |
    'conv1d'), ``name`` the explicit Keras layer name (None for auto-named layers)."""

    prefix: str
    kind: str
    name: str | None = None


def conv(prefix: str, name: str | None = None) -> LayerSpec:
    return LayerSpec(prefix, "conv", name)


def sepconv(prefix: str, name: str | None = None) -> LayerSpec:
    return LayerSpec(prefix, "sepconv", name)


def bn(prefix: str, name: str | None = None) -> LayerSpec:
    return LayerSpec(prefix, "bn", name)


@dataclass
class GroupPlan:
    """Keras top-level group (first of ``groups`` present in the file) → ordered layer specs."""

    groups: tuple[str, ...]
    specs: list[LayerSpec]
    hint: str = ""  # appended to count-mismatch errors (e.g. "check --blocks")


@dataclass
class ConstantCheck:
    """A frozen Keras group that must hold known constants (not loaded): ``check(layers)``
    raises ValueError when the file disagrees with what our code computes."""

    groups: tuple[str, ...]
    check: Callable[[list[KerasLayer]], None]
    required: bool = False


@dataclass
class ConversionPlan:
    """Groups to load, constants to check; ``ignore_unused`` allows a partial conversion (e.g. the
    pose network out of an action-model file), otherwise every group with weights must be used."""

    groups: list[GroupPlan] = field(default_factory=list)
    constants: list[ConstantCheck] = field(default_factory=list)
    ignore_unused: bool = False


# Keras layout → PyTorch layout, per (layer kind, weight kind): (our suffix, transform).
def _conv_kernel(k: np.ndarray) -> np.ndarray:
    return k.transpose(3, 2, 0, 1)  # (kh, kw, in, out) → (out, in, kh, kw)


TENSOR_RULES: dict[str, dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]]] = {
    "conv": {"kernel": ("weight", _conv_kernel)},
    "sepconv": {
        "depthwise_kernel": (
            "depthwise.weight",
            lambda k: k.transpose(2, 3, 0, 1),
        ),  # (kh,kw,in,1) → (in,1,kh,kw)
        "pointwise_kernel": ("pointwise.weight", _conv_kernel),
    },
    "bn": {
        "beta": ("bias", lambda a: a),
        "moving_mean": ("running_mean", lambda a: a),
        "moving_variance": ("running_var", lambda a: a),
    },
    "dense": {"kernel": ("weight", lambda k: k.T)},  # (in, out) → (out, in)
    "conv1d": {"kernel": ("weight", lambda k: k.transpose(2, 1, 0))},  # (k,in,out) → (out,in,k)
}


def layer_tensors(layer: KerasLayer, spec: LayerSpec, where: str) -> dict[str, np.ndarray]:
    """Our (key → array) pairs for one Keras layer, after kind and name checks."""
    if layer.kind != spec.kind:
        raise ValueError(
            f"{where}: Keras layer {layer.describe()} is a {layer.kind!r}, "
            f"our {spec.prefix!r} expects a {spec.kind!r}"
        )
    if (
        spec.name is not None
        and not is_auto_name(layer.name)
        and not name_matches(layer.name, spec.name)
    ):
        raise ValueError(
            f"{where}: Keras layer {layer.name!r} found where {spec.name!r} (our {spec.prefix!r}) was expected"
        )
    weights = dict(layer.weights)
    if spec.kind == "bn" and "gamma" in weights:
        gamma = weights.pop("gamma")
        if not np.allclose(gamma, 1.0):
            raise ValueError(f"{where}: {layer.name} has a BN scale γ ≠ 1; our BN has none")
    rules = TENSOR_RULES[spec.kind]
    if set(weights) != set(rules):
        raise ValueError(
            f"{where}: Keras layer {layer.describe()} has weights {sorted(weights)}, expected {sorted(rules)}"
        )
    return {f"{spec.prefix}.{rules[k][0]}": rules[k][1](v) for k, v in weights.items()}


def _pick_group(kfile: KerasWeightFile, names: Iterable[str]) -> str | None:
    return next((n for n in names if n in kfile.layer_names), None)


def convert_plans(
    kfile: KerasWeightFile, plan: ConversionPlan, module: nn.Module
) -> dict[str, Tensor]:
    """Fill ``module``'s state dict from ``kfile`` following ``plan``; strict both ways."""
    ours = {k: v for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
    out: dict[str, Tensor] = {}
    used: set[str] = set()
    for gp in plan.groups:
        group = _pick_group(kfile, gp.groups)
        if group is None:
            raise ValueError(
                f"{kfile.path}: no Keras group named any of {list(gp.groups)}. {gp.hint}".rstrip()
            )
        used.add(group)
        layers = kfile.layers(group)
        if len(layers) != len(gp.specs):
            raise ValueError(
                f"{kfile.path}: group {group!r} has {len(layers)} layers with weights, "
                f"our model expects {len(gp.specs)}. {gp.hint}".rstrip()
            )
        for layer, spec in zip(layers, gp.specs):
            where = f"{kfile.path}:{group}"
            for key, value in layer_tensors(layer, spec, where).items():
                if key not in ours:
                    raise ValueError(
                        f"{where}: Keras layer {layer.name!r} maps to {key!r}, not a key of our model"
                    )
                if key in out:
                    raise ValueError(
                        f"{where}: our key {key!r} filled twice (Keras layer {layer.name!r})"
                    )
                if tuple(value.shape) != tuple(ours[key].shape):
                    raise ValueError(
                        f"{where}: Keras layer {layer.name!r} → our {key!r}: "
                        f"expected shape {tuple(ours[key].shape)}, found {tuple(value.shape)}"
                    )
                out[key] = torch.from_numpy(np.ascontiguousarray(value)).to(ours[key].dtype)
    for const in plan.constants:
        group = _pick_group(kfile, const.groups)
        if group is None:
            if const.required:
                raise ValueError(
                    f"{kfile.path}: no constant group named any of {list(const.groups)}"
                )
            continue
        used.add(group)
        const.check(kfile.layers(group))
    missing = sorted(set(ours) - set(out))
    if missing:
        raise ValueError(
            f"{kfile.path}: {len(missing)} keys of our model not in the file: {missing[:8]}"
        )
    unused = [g for g in kfile.groups_with_weights() if g not in used]
    if unused and not plan.ignore_unused:
        raise ValueError(f"{kfile.path}: Keras groups with weights not converted: {unused}")
    counters = {
        k: v.clone() for k, v in module.state_dict().items() if k.endswith("num_batches_tracked")
    }
    return {**out, **counters}
