"""Pictures of predictions: skeleton overlays, 3D skeleton views, accuracy per prediction block.

Alphabet: J joints, K prediction blocks, H×W image. Limbs are given as (J_a, J_b) index pairs of the
pose's layout (the experiments derive them from joint names), so this module knows no dataset.
Figures are built on ``matplotlib.figure.Figure`` (Agg canvas, no pyplot state, no display needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
from matplotlib.figure import Figure

Limbs = Sequence[tuple[int, int]]
GREEN, ORANGE = (40, 200, 80), (255, 140, 0)  # the prediction: limbs, joints
MAGENTA, WHITE = (220, 40, 220), (255, 255, 255)  # the ground truth: limbs, joints
PREDICTION, GROUND_TRUTH = "prediction", "ground truth"


def _valid(valid: np.ndarray | None, num_joints: int) -> np.ndarray:
    return np.ones(num_joints, bool) if valid is None else np.asarray(valid, bool)


def draw_skeleton(
    image: np.ndarray,
    pose_px: np.ndarray,
    limbs: Limbs,
    valid: np.ndarray | None = None,
    color: tuple[int, int, int] = GREEN,
    thickness: int = 2,
    joint_color: tuple[int, int, int] = ORANGE,
) -> np.ndarray:
    """A copy of ``image`` uint8 (H, W, 3) RGB with the skeleton pose_px (J, 2) drawn in pixels
    (limbs in ``color``, joints in ``joint_color``).

    Limbs with an invalid end (``valid`` (J,) False, or a non-finite joint) are skipped.
    """
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"draw_skeleton expects uint8 (H, W, 3), got {image.dtype} {image.shape}")
    pose_px = np.asarray(pose_px, dtype=np.float64)
    ok = _valid(valid, len(pose_px)) & np.isfinite(pose_px).all(-1)
    out = np.ascontiguousarray(image.copy())
    pts = np.round(pose_px).astype(np.int64)
    for a, b in limbs:
        if ok[a] and ok[b]:
            cv2.line(
                out, tuple(map(int, pts[a])), tuple(map(int, pts[b])), color, thickness, cv2.LINE_AA
            )
    for p in pts[ok]:
        cv2.circle(out, tuple(map(int, p)), thickness + 1, joint_color, -1, cv2.LINE_AA)
    return out


def draw_poses(image: np.ndarray, pose_px: np.ndarray, limbs: Limbs, gt_px=None) -> np.ndarray:
    """``image`` with the ground truth gt_px (J, 2) (magenta, white joints; NaN joints skipped)
    under the prediction pose_px (J, 2) (green, orange joints)."""
    if gt_px is not None:
        image = draw_skeleton(image, gt_px, limbs, color=MAGENTA, joint_color=WHITE)
    return draw_skeleton(image, pose_px, limbs)


def legend_handles(ground_truth: bool) -> list:
    """Legend entries of the overlays: the prediction, and the ground truth when drawn."""
    from matplotlib.lines import Line2D

    def entry(limb, joint, label):
        rgb = [tuple(c / 255 for c in limb), tuple(c / 255 for c in joint)]
        return Line2D([], [], color=rgb[0], marker="o", markerfacecolor=rgb[1], label=label)

    handles = [entry(GREEN, ORANGE, PREDICTION)]
    return handles + ([entry(MAGENTA, WHITE, GROUND_TRUTH)] if ground_truth else [])


def draw_label(image: np.ndarray, text: str, color: tuple[int, int, int] = GREEN) -> np.ndarray:
    """A copy of ``image`` uint8 (H, W, 3) with ``text`` on a dark band at the top left."""
    out = np.ascontiguousarray(image.copy())
    scale = max(0.4, out.shape[0] / 600)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(out, (0, 0), (w + 8, h + base + 8), (0, 0, 0), -1)
    cv2.putText(out, text, (4, h + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)
    return out


def plot_skeleton_3d(
    ax, pose: np.ndarray, limbs: Limbs, valid: np.ndarray | None = None, color: str = "tab:green"
) -> None:
    """Draw pose (J, 3) on a 3D ``ax``; camera frame (x right, y down, z forward) is shown with
    the vertical axis up: plotted as (x, z, −y). Axes are equal-scaled around the skeleton."""
    pose = np.asarray(pose, dtype=np.float64)
    ok = _valid(valid, len(pose)) & np.isfinite(pose).all(-1)
    xyz = np.stack([pose[:, 0], pose[:, 2], -pose[:, 1]], axis=-1)  # (J, 3)
    for a, b in limbs:
        if ok[a] and ok[b]:
            ax.plot(*xyz[[a, b]].T, color=color, linewidth=2)
    ax.scatter(*xyz[ok].T, color="tab:orange", s=8)
    if ok.any():
        centre = (xyz[ok].max(0) + xyz[ok].min(0)) / 2
        half = max(float(np.ptp(xyz[ok], axis=0).max()) / 2, 1e-6)
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_zlim(centre[2] - half, centre[2] + half)
    ax.set_xlabel("x")
    ax.set_ylabel("z (depth)")
    ax.set_zlabel("−y (up)")


def pose_figure(
    image: np.ndarray,
    pose_px: np.ndarray,
    limbs: Limbs,
    pose_3d: np.ndarray | None = None,
    valid: np.ndarray | None = None,
    title: str = "",
    gt_px: np.ndarray | None = None,
) -> Figure:
    """One panel with the 2D overlay (image uint8 (H, W, 3), pose_px (J, 2), the ground truth
    gt_px (J, 2) under it when given, and a legend), and a 3D view of pose_3d (J, 3) beside it
    when given."""
    panels = 1 if pose_3d is None else 2
    fig = Figure(figsize=(4.5 * panels, 4.5))
    ax = fig.add_subplot(1, panels, 1)
    pose_px = np.where(_valid(valid, len(pose_px))[:, None], pose_px, np.nan)
    ax.imshow(draw_poses(image, pose_px, limbs, gt_px))
    ax.set_axis_off()
    ax.set_title(title or "2D pose")
    ax.legend(handles=legend_handles(gt_px is not None), loc="lower right", fontsize=7)
    if pose_3d is not None:
        ax3 = fig.add_subplot(1, 2, 2, projection="3d")
        plot_skeleton_3d(ax3, pose_3d, limbs, valid)
        ax3.set_title("3D pose")
    fig.tight_layout()
    return fig


def pose_grid(panels: Sequence[tuple], limbs: Limbs, columns: int = 4) -> Figure:
    """Several (image, pose_px, pose_3d or None, title[, gt_px]) tuples: a row of overlays (the
    prediction over the ground truth gt_px (J, 2) when given), a row of 3D views below for the
    panels that have one, and a legend naming the colours."""
    n = len(panels)
    cols = min(columns, n)
    has_3d = any(p[2] is not None for p in panels)
    has_gt = any(len(p) > 4 and p[4] is not None for p in panels)
    rows = (2 if has_3d else 1) * -(-n // cols)
    fig = Figure(figsize=(3.2 * cols, 3.2 * rows + 0.4))
    for i, (image, pose_px, pose_3d, title, *gt) in enumerate(panels):
        r, c = divmod(i, cols)
        row = 2 * r if has_3d else r
        ax = fig.add_subplot(rows, cols, row * cols + c + 1)
        ax.imshow(draw_poses(image, pose_px, limbs, gt[0] if gt else None))
        ax.set_axis_off()
        ax.set_title(title, fontsize=8)
        if pose_3d is not None:
            ax3 = fig.add_subplot(rows, cols, (row + 1) * cols + c + 1, projection="3d")
            plot_skeleton_3d(ax3, pose_3d, limbs)
    fig.legend(handles=legend_handles(has_gt), loc="upper center", ncol=2, fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / (3.2 * rows + 0.4)))
    return fig


def plot_block_accuracy(curves: Mapping[str, Sequence[float]], title: str = "") -> Figure:
    """Figure 8 of the paper: accuracy (fraction) per prediction block k = 1..K, one line per
    curve (e.g. "pose, separate", "pose, fine-tuned"). Curves may differ in length."""
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.add_subplot(1, 1, 1)
    for name, values in curves.items():
        values = 100.0 * np.asarray(values, dtype=np.float64)
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", label=name)
    ax.set_xlabel("prediction block")
    ax.set_ylabel("accuracy (%)")
    longest = max((len(v) for v in curves.values()), default=1)
    ax.set_xticks(np.arange(1, longest + 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "Accuracy per prediction block")
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write ``fig`` (PNG, PDF… by suffix), creating the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def figure_to_array(fig: Figure, dpi: int = 100) -> np.ndarray:
    """Render ``fig`` to uint8 (H, W, 3) RGB (e.g. for a video frame or a logger image)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    fig.set_dpi(dpi)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
