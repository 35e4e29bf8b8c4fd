"""A training step of the project equals the official one, on a ``parity/train`` fixture.

    python -m experiments.parity_train DIR NAME [--out OUT.pt] [--config mpii_official]
                                       [--verbose] [key=value …]

Builds the network from ``DIR/NAME.json``, loads ``NAME.h5`` through the converter and runs the
project's OWN training code under the config (default ``mpii_official``; overrides as in
``experiments.train``): the task module of ``experiments.train.build_module`` in training mode,
its ``training_step`` (the loss of ``Pose2D3DModule``) on the batch the fixture's targets map to,
and the optimiser of its ``configure_optimizers`` (with the config's gradient clipping, as
Lightning applies it). Compared with the fixture (tolerances: ``TOLERANCES``, from its README):

- ``loss``: the K per-output losses and their sum at the initial weights (``loss_step1``);
- ``grad``: every trainable parameter's gradient at the initial weights (``_grad1.h5``);
- ``bn``: the BatchNorm moving statistics after that training forward (``_grad1.h5``);
- ``step2``: the initial weights after two optimiser steps fed ``_grad1`` then ``_grad2``
  (``_step2.h5``);
- informational (printed, not counted: the fixture states no tolerance for it): the second step
  of training, at the weights after one step on ``_grad1`` (the official step-1 weights), the
  losses (``loss_step2``), the gradients and moving statistics (``_grad2``).

Every comparison is printed with its tolerance; the exit status is 1 when one fails (2: the
fixture cannot be read). OUT.pt holds plain tensors (``torch.load(…, weights_only=True)``):
``loss`` (K + 1,), ``grad`` / ``bn`` / ``step2`` (name → tensor), and ``loss_step2``,
``grad_step2``, ``bn_step2`` for the second step.

Alphabet: B batch, J joints, K prediction blocks.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch import Tensor

from deephar.convert import keras_state_dict
from deephar.losses import pose_block_losses
from deephar.models.multitask import DeepHAR, build_model
from deephar.tasks.pose import Pose2D3DModule
from experiments.config import ConfigError, load_config, network_config
from experiments.train import build_module

# parity/train/README.md, "Tolerances, and why"
TOLERANCES = {
    "loss_rel": 3e-5,  # per output and total, |ours − ref| / |ref|
    "bn_abs": 1e-5,  # moving statistics, max |ours − ref|
    "grad_cos": 0.9995,  # per parameter tensor, cosine ≥
    "grad_rel": 0.03,  # per parameter tensor, ‖ours − ref‖ / ‖ref‖ ≤
    "step_rel": 1e-6,  # weights after the optimiser steps, max |ours − ref| / max |ref|
}
TINY = 1e-12  # a gradient tensor this small in both is zero in both (no direction to compare)


@dataclass
class Fixture:
    """One ``parity/train`` fixture: build arguments, inputs and the reference files."""

    folder: Path
    name: str
    meta: dict
    image: np.ndarray  # uint8 (B, H, W, 3)
    target: np.ndarray  # float32 (B, J, 3): x, y (−1e9 invalid), visibility
    loss_step1: np.ndarray  # (K + 1,)
    loss_step2: np.ndarray  # (K + 1,)

    def h5(self, suffix: str = "") -> Path:
        return self.folder / f"{self.name}{suffix}.h5"


def read_fixture(folder: Path, name: str) -> Fixture:
    """The fixture ``folder/name``; a missing file or key raises ``ConfigError`` naming it."""
    paths = {
        s: folder / f"{name}{s}"
        for s in (".json", ".npz", ".h5", "_grad1.h5", "_grad2.h5", "_step2.h5")
    }
    if missing := [str(p) for p in paths.values() if not p.is_file()]:
        raise ConfigError(f"fixture {folder / name}: missing {missing}")
    meta = json.loads(paths[".json"].read_text())
    for key in ("num_blocks", "num_joints", "dim"):
        if key not in meta:
            raise ConfigError(f"{paths['.json']}: no key {key!r}")
    with np.load(paths[".npz"]) as data:
        arrays = {}
        for key in ("image", "target", "loss_step1", "loss_step2"):
            if key not in data:
                raise ConfigError(f"{paths['.npz']}: no array {key!r} (has {sorted(data)})")
            arrays[key] = data[key]
    b, j = arrays["target"].shape[:2]
    if arrays["target"].shape != (b, meta["num_joints"], meta["dim"] + 1):
        raise ConfigError(
            f"{paths['.npz']}: target {arrays['target'].shape}, expected "
            f"(B, {meta['num_joints']}, {meta['dim'] + 1})"
        )
    return Fixture(folder, name, meta, **arrays)


def official_batch(fixture: Fixture) -> dict[str, Tensor]:
    """The project's batch (``datamodules.sample``) that the official targets map to.

    Official rule (``remove_outer_joints``): a coordinate is valid iff its target is > 0
    (invalid joints, outside the crop or unannotated, carry −1e9); the visibility target is the
    last column (0 for them). The official targets do not tell unannotated from outside, so
    ``pose_px_valid`` (annotated) is the valid joints: ``loss.visibility_joints=annotated`` then
    leaves the invalid joints out, ``all`` counts them as targets 0.
    """
    target = torch.from_numpy(fixture.target).float()  # (B, J, D + 1)
    coords, visible = target[..., :-1], target[..., -1]
    valid = coords > 0  # (B, J, D)
    pose = torch.zeros(target.shape[:-1] + (3,))
    pose_valid = torch.zeros(pose.shape, dtype=torch.bool)
    d = coords.shape[-1]
    pose[..., :d] = torch.where(valid, coords, torch.zeros(()))
    pose_valid[..., :d] = valid
    image = torch.from_numpy(fixture.image).float().permute(0, 3, 1, 2)  # (B, 3, H, W)
    image = (image / 255.0 - 0.5) * 2.0  # the official normalisation
    return {
        "image": image,
        "pose": pose,
        "pose_valid": pose_valid,
        "visible": visible,
        "pose_px_valid": valid.all(-1),
    }


def build_network(cfg: DictConfig, fixture: Fixture) -> DeepHAR:
    """The config's network with the fixture's build arguments, weights from ``NAME.h5``."""
    meta = fixture.meta
    overrides = {
        "pose_blocks": meta["num_blocks"],
        "num_joints": meta["num_joints"],
        "dim": meta["dim"],
        "num_actions": 0,
    }
    if meta["dim"] == 2:
        overrides["context_maps"] = meta.get("num_context_per_joint", 2)
    net_cfg = network_config(cfg).with_(**overrides)
    net = build_model(net_cfg)
    net.load_state_dict(keras_state_dict(net, fixture.h5()))
    return net


def reference(net: DeepHAR, path: Path) -> dict[str, Tensor]:
    """A fixture ``.h5`` in the weight layout, mapped onto ``net``'s state-dict names."""
    return keras_state_dict(net, path)


def bn_buffers(net: DeepHAR) -> dict[str, Tensor]:
    """name → moving statistic (``running_mean`` / ``running_var``) of every BatchNorm."""
    return {
        k: v.detach().clone()
        for k, v in net.state_dict().items()
        if k.endswith(("running_mean", "running_var"))
    }


def training_step(module: Pose2D3DModule, batch: Mapping[str, Tensor]):
    """The module's own ``training_step`` (train mode) → (per-output losses and their sum
    (K + 1,), gradients, moving statistics). The per-output losses come from the same forward
    (its output, caught by a hook) through ``pose_block_losses``, the function the step sums."""
    caught = []
    hook = module.net.pose.register_forward_hook(lambda m, i, out: caught.append(out))
    module.train()
    module.net.zero_grad(set_to_none=True)
    try:
        total = module.training_step(batch, 0)
    finally:
        hook.remove()
    total.backward()
    per_block = pose_block_losses(
        caught[0],
        batch,
        module.visibility_weight,
        module.pose_loss,
        module.visibility_joints,
        module.keras_bce,
    )[0]
    loss = torch.cat([per_block.detach(), total.detach()[None]])  # (K + 1,)
    grads = {
        n: p.grad.detach().clone()
        for n, p in module.net.named_parameters()
        if p.requires_grad and p.grad is not None
    }
    return loss, grads, bn_buffers(module.net)


def optimiser_steps(module: Pose2D3DModule, cfg: DictConfig, grads: list[Mapping[str, Tensor]]):
    """The optimiser of ``configure_optimizers`` fed ``grads`` (one mapping per step), with the
    config's gradient clipping (by norm, as Lightning's precision plugin applies it) and its
    per-step schedule (an epoch one does not move within these steps)."""
    configured = module.configure_optimizers()
    optimizer, schedule = configured["optimizer"], configured.get("lr_scheduler")
    params = dict(module.net.named_parameters())
    clip = float(cfg.trainer.gradient_clip_val or 0.0)
    for step in grads:
        optimizer.zero_grad(set_to_none=True)
        for name, p in params.items():
            if p.requires_grad:
                p.grad = step[name].to(p.dtype).clone()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in params.values() if p.grad is not None], clip)
        optimizer.step()
        if schedule is not None and schedule.get("interval") == "step":  # as Lightning steps it
            schedule["scheduler"].step()
    optimizer.zero_grad(set_to_none=True)


class Report:
    """Prints each comparison with its tolerance; ``failed`` counts the ones outside it."""

    def __init__(self, verbose: bool = False) -> None:
        self.failed, self.verbose, self.informational = 0, verbose, False

    def line(self, ok: bool, text: str, summary: bool = True) -> None:
        """One comparison; a per-tensor one (``summary`` False) is printed when it fails or
        with ``verbose``, and counted by its group's summary line."""
        self.failed += summary and not ok and not self.informational
        if summary or self.verbose or not ok:
            mark = "info" if self.informational else ("ok  " if ok else "FAIL")
            print(f"{mark} {'' if ok else '(outside) '}{text}", flush=True)

    def losses(self, label: str, ours: Tensor, ref: np.ndarray) -> None:
        ref_t = torch.as_tensor(ref, dtype=torch.float64)
        if ours.shape != ref_t.shape:
            self.line(False, f"{label}: {tuple(ours.shape)} values, reference {tuple(ref_t.shape)}")
            return
        tol = TOLERANCES["loss_rel"]
        names = [f"output {k + 1}" for k in range(len(ref) - 1)] + ["total"]
        for name, a, b in zip(names, ours.double(), ref_t):
            rel = float((a - b).abs() / b.abs().clamp(min=TINY))
            self.line(
                rel <= tol,
                f"{label} {name}: ours {float(a):.7f} ref {float(b):.7f} "
                f"rel {rel:.1e} <= {tol:.0e}",
            )

    def keys(self, label: str, ours: Mapping[str, Tensor], ref: Mapping[str, Tensor]) -> list[str]:
        if missing := sorted(set(ours) ^ set(ref)):
            self.line(False, f"{label}: tensors on one side only: {missing[:8]}")
        return sorted(set(ours) & set(ref))

    def bn(self, label: str, ours: Mapping[str, Tensor], ref: Mapping[str, Tensor]) -> None:
        tol, worst = TOLERANCES["bn_abs"], (0.0, "")
        for name in self.keys(label, ours, ref):
            err = float((ours[name].double() - ref[name].double()).abs().max())
            worst = max(worst, (err, name))
            self.line(err <= tol, f"{label} {name}: max abs {err:.1e} <= {tol:.0e}", False)
        self.line(
            worst[0] <= tol,
            f"{label}: {len(ref)} moving statistics, worst max abs "
            f"{worst[0]:.1e} ({worst[1]}) <= {tol:.0e}",
        )

    def grads(self, label: str, ours: Mapping[str, Tensor], ref: Mapping[str, Tensor]) -> None:
        cos_tol, rel_tol = TOLERANCES["grad_cos"], TOLERANCES["grad_rel"]
        worst_cos, worst_rel, bad = (2.0, ""), (0.0, ""), 0
        for name in self.keys(label, ours, ref):
            a, b = ours[name].double().flatten(), ref[name].double().flatten()
            na, nb = float(a.norm()), float(b.norm())
            if na <= TINY and nb <= TINY:
                continue
            cos = float(a @ b / max(na * nb, TINY))
            rel = float((a - b).norm() / max(nb, TINY))
            ok = cos >= cos_tol and rel <= rel_tol
            bad += not ok
            worst_cos, worst_rel = min(worst_cos, (cos, name)), max(worst_rel, (rel, name))
            self.line(
                ok,
                f"{label} {name}: cosine {cos:.6f} >= {cos_tol}, rel {rel:.1e} <= {rel_tol}",
                False,
            )
        self.line(
            bad == 0,
            f"{label}: {len(ref)} tensors, {bad} outside; worst cosine "
            f"{worst_cos[0]:.6f} ({worst_cos[1]}) >= {cos_tol}, worst rel "
            f"{worst_rel[0]:.1e} ({worst_rel[1]}) <= {rel_tol}",
        )

    def weights(self, label: str, ours: Mapping[str, Tensor], ref: Mapping[str, Tensor]) -> None:
        tol, worst, bad = TOLERANCES["step_rel"], (0.0, ""), 0
        for name in self.keys(label, ours, ref):
            a, b = ours[name].double(), ref[name].double()
            rel = float((a - b).abs().max() / b.abs().max().clamp(min=TINY))
            worst, bad = max(worst, (rel, name)), bad + (rel > tol)
            self.line(rel <= tol, f"{label} {name}: rel {rel:.1e} <= {tol:.0e}", False)
        self.line(
            bad == 0,
            f"{label}: {len(ref)} tensors, {bad} outside; worst rel "
            f"{worst[0]:.1e} ({worst[1]}) <= {tol:.0e}",
        )


def run(
    folder: Path,
    name: str,
    config: str = "mpii_official",
    overrides: tuple[str, ...] = (),
    out: Path | None = None,
    verbose: bool = False,
) -> int:
    """Compare, print, write ``out``; returns the number of failed comparisons."""
    fixture = read_fixture(folder, name)
    cfg = load_config(config, list(overrides))
    if cfg.task != "pose":
        raise ConfigError(
            f"config {config!r}: task {cfg.task!r}; the training parity is a pose one"
        )
    torch.manual_seed(cfg.seed)
    batch = official_batch(fixture)
    module = build_module(cfg, build_network(cfg, fixture))
    trainable = {n for n, p in module.net.named_parameters() if p.requires_grad}
    initial = {k: v.clone() for k, v in module.net.state_dict().items()}
    ref1, ref2 = (
        reference(module.net, fixture.h5("_grad1")),
        reference(module.net, fixture.h5("_grad2")),
    )
    ref_step2 = reference(module.net, fixture.h5("_step2"))
    only = lambda state, names: {k: state[k] for k in names if k in state}  # noqa: E731
    bn_names = [k for k in initial if k.endswith(("running_mean", "running_var"))]
    report = Report(verbose)
    print(
        f"{folder / name}: config {config}, loss {cfg.loss.pose} (visibility: "
        f"{cfg.loss.visibility_joints} joints), {cfg.optim.name} lr {cfg.optim.lr} rho "
        f"{cfg.optim.rho} eps {cfg.optim.eps}, keras_bce {cfg.loss.keras_bce}, schedule "
        f"{cfg.optim.schedule}, clip {cfg.trainer.gradient_clip_val}"
    )

    loss, grads, bn = training_step(module, batch)
    report.losses("step 1 loss", loss, fixture.loss_step1)
    report.grads("step 1 grad", grads, only(ref1, trainable))
    report.bn("step 1 bn", bn, only(ref1, bn_names))

    # Informational (printed, not counted): at the official step-1 weights several visibility
    # probabilities are within 1e-5 of 1, where Keras' float32 BCE on probabilities is
    # quantised (1 − p); a 1e-7 relative change of the logits moves output 2's loss by 1.5e-4.
    report.informational = True
    optimiser_steps(module, cfg, [only(ref1, trainable)])  # the official step-1 weights
    loss2, grads2, bn2 = training_step(module, batch)
    report.losses("step 2 loss", loss2, fixture.loss_step2)
    report.grads("step 2 grad", grads2, only(ref2, trainable))
    report.bn("step 2 bn", bn2, only(ref2, bn_names))

    report.informational = False
    module.net.load_state_dict(initial)
    optimiser_steps(module, cfg, [only(ref1, trainable), only(ref2, trainable)])
    step2 = {n: p.detach().clone() for n, p in module.net.named_parameters() if n in trainable}
    report.weights("two optimiser steps", step2, only(ref_step2, trainable))

    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "loss": loss,
                "grad": grads,
                "bn": bn,
                "step2": step2,
                "loss_step2": loss2,
                "grad_step2": grads2,
                "bn_step2": bn2,
            },
            out,
        )
        print(f"wrote {out}")
    print("parity: PASS" if report.failed == 0 else f"parity: FAIL ({report.failed} comparisons)")
    return report.failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.parity_train", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("folder", type=Path, help="fixture folder (../shared/parity/train)")
    parser.add_argument("name", help="fixture name (mpii_train_k2)")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")
    parser.add_argument("--out", type=Path, default=None, help="write the tensors here (.pt)")
    parser.add_argument("--config", default="mpii_official", help="experiment config")
    parser.add_argument("--verbose", action="store_true", help="print every tensor")
    args = parser.parse_args(argv)
    try:
        failed = run(
            args.folder, args.name, args.config, tuple(args.overrides), args.out, args.verbose
        )
    except (ConfigError, OSError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
