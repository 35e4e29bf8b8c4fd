"""The pictures of an evaluation (``experiments.evaluate``), as PNG files (matplotlib figures
without pyplot: no backend, no window).

- Actions: per-class video accuracy (bars) and the confusion matrix (rows: true action, columns:
  predicted, counts of videos), both labelled with the action names; from the video predictions
  of ``ActionMetrics.video`` (``video_confusion``: the argmax of the clip scores combined per
  video, exactly as ``VideoAccuracy`` scores them).
- Poses: per-joint PCKh@0.5 / PCK@0.5 bars, MPJPE per Human3.6M action bars.
With a W&B run active (``wandb.run``), the pictures are also logged as images and the confusion
matrix as a ``wandb.Table``.
Alphabet: A actions, V videos, J joints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from omegaconf import DictConfig
from torch import Tensor
from torchmetrics.utilities import dim_zero_cat

from datamodules.h36m import ACTIONS as H36M_ACTIONS
from datamodules.penn import ACTIONS as PENN_ACTIONS
from deephar.metrics import VideoAccuracy


# ---- the data the pictures show ----
def video_confusion(metric: VideoAccuracy, num_actions: int) -> Tensor:
    """(A, A) int64 counts of videos: row = true action, column = predicted (argmax of the
    video's combined clip scores, as ``VideoAccuracy.compute``); unlabelled videos (−1) left out."""
    ids, scores, labels = (dim_zero_cat(s) for s in (metric.ids, metric.scores, metric.labels))
    videos, inverse = torch.unique(ids, return_inverse=True)
    total = scores.new_zeros(len(videos), scores.shape[-1]).index_add_(0, inverse, scores)
    label = labels.new_full((len(videos),), -1).scatter_reduce(0, inverse, labels, "amax")
    keep = label >= 0
    pairs = label[keep] * num_actions + total.argmax(-1)[keep]
    counts = torch.bincount(pairs.cpu(), minlength=num_actions * num_actions)
    return counts.view(num_actions, num_actions)


def per_class(confusion: Tensor | np.ndarray) -> list[float | None]:
    """Video accuracy of each true class (A,) from a confusion matrix; None for a class with
    no video."""
    counts = np.asarray(confusion, dtype=np.float64)
    totals = counts.sum(1)
    return [float(counts[a, a] / t) if t else None for a, t in enumerate(totals)]


def action_names(cfg: DictConfig) -> list[str]:
    """The names of the config's actions: Penn Action's 15, else NTU's class codes A001 …"""
    count = int(cfg.model.num_actions)
    datasets = {cfg.data.sources[k].dataset for k in cfg.data.test}
    if datasets == {"penn"} and count == len(PENN_ACTIONS):
        return list(PENN_ACTIONS)
    return [f"A{a + 1:03d}" for a in range(count)]


# ---- the pictures ----
def confusion_figure(confusion: np.ndarray, names: Sequence[str], title: str) -> Figure:
    """The confusion matrix (A, A) as an image, counts written in the cells that hold any."""
    counts = np.asarray(confusion)
    side = max(4.0, 0.45 * len(names) + 2.0)
    fig = Figure(figsize=(side, side))
    ax = fig.subplots()
    ax.imshow(counts, cmap="Blues")
    ticks = np.arange(len(names))
    ax.set_xticks(ticks, names, rotation=90, fontsize=7)
    ax.set_yticks(ticks, names, fontsize=7)
    ax.set_xlabel("predicted action")
    ax.set_ylabel("true action")
    ax.set_title(title, fontsize=9)
    if len(names) <= 30:
        for (i, j), n in np.ndenumerate(counts):
            if n:
                colour = "white" if n > counts.max() / 2 else "black"
                ax.text(j, i, str(n), ha="center", va="center", fontsize=6, color=colour)
    fig.tight_layout()
    return fig


def bar_figure(
    values: Sequence[float | None], names: Sequence[str], ylabel: str, title: str
) -> Figure:
    """One bar per name (None / NaN: no bar), values as given."""
    heights = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    fig = Figure(figsize=(max(5.0, 0.35 * len(names) + 2.0), 3.5))
    ax = fig.subplots()
    ax.bar(np.arange(len(names)), np.nan_to_num(heights), color="tab:blue")
    ax.set_xticks(np.arange(len(names)), names, rotation=90, fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def figures_of(
    label: str, result: Mapping[str, Any], joints: Sequence[str], actions: Sequence[str]
) -> dict[str, Figure]:
    """{file stem: figure} for one result of ``experiments.evaluate`` (labelled ``label``)."""
    out: dict[str, Figure] = {}
    if "confusion" in result:
        names = list(actions) or [str(a) for a in range(len(result["confusion"]))]
        acc = [None if v is None else 100.0 * v for v in result["per_class"]]
        out["per_class"] = bar_figure(acc, names, "video accuracy (%)", f"{label}: per class")
        out["confusion"] = confusion_figure(result["confusion"], names, f"{label}: videos")
    for key, metric in (("pckh_per_joint", "PCKh@0.5"), ("pck_per_joint", "PCK@0.5")):
        if key in result:
            values = [100.0 * v for v in result[key]]
            out[key] = bar_figure(values, joints, f"{metric} (%)", f"{label}: per joint")
    if "mpjpe_per_action" in result:
        values = result["mpjpe_per_action"]
        out["mpjpe_per_action"] = bar_figure(values, H36M_ACTIONS, "MPJPE (mm)", label)
    return out


def write_figures(
    results: Mapping[str, Mapping[str, Any]],
    out_dir: str | Path,
    joints: Sequence[str],
    actions: Sequence[str] = (),
) -> list[Path]:
    """``<out_dir>/figures/<result label with / as _>_<figure>.png`` for every result; logged to
    the active W&B run too. Returns the files written."""
    folder = Path(out_dir) / "figures"
    written = []
    for label, result in results.items():
        for stem, fig in figures_of(label, result, joints, actions).items():
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{label.replace('/', '_')}_{stem}.png"
            fig.savefig(path, dpi=100)
            written.append(path)
        log_wandb(label, result, actions)
    log_wandb_images(written)
    return written


def log_wandb(label: str, result: Mapping[str, Any], actions: Sequence[str]) -> None:
    """The confusion matrix as a ``wandb.Table`` (true, predicted, videos) when W&B is on."""
    wandb = _active_wandb()
    if wandb is None or "confusion" not in result:
        return
    counts = np.asarray(result["confusion"])
    names = list(actions) or [str(a) for a in range(len(counts))]
    rows = [[names[i], names[j], int(n)] for (i, j), n in np.ndenumerate(counts) if n]
    wandb.log({f"eval/{label}/confusion": wandb.Table(["true", "predicted", "videos"], rows)})


def log_wandb_images(paths: Sequence[Path]) -> None:
    wandb = _active_wandb()
    if wandb is not None and paths:
        wandb.log({f"eval/{p.stem}": wandb.Image(str(p)) for p in paths})


def _active_wandb():
    try:
        import wandb
    except ImportError:
        return None
    return wandb if wandb.run is not None else None
