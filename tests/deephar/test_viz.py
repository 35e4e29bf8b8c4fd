"""Pictures: overlays draw where the joints are, figures render and save."""

from __future__ import annotations

import numpy as np
import pytest

from deephar import viz

LIMBS = [(0, 1), (1, 2)]
POSE = np.array([[10.0, 10.0], [30.0, 10.0], [30.0, 40.0]])


def test_draw_skeleton_marks_limbs_and_skips_invalid():
    image = np.zeros((50, 60, 3), np.uint8)
    out = viz.draw_skeleton(image, POSE, LIMBS)
    assert image.sum() == 0  # input untouched
    assert out[10, 20].any() and out[25, 30].any()  # on both limbs
    assert not out[40, 10].any()  # far from every limb
    hidden = viz.draw_skeleton(image, POSE, LIMBS, valid=np.array([True, True, False]))
    assert hidden[10, 20].any() and not hidden[25, 30].any()
    with pytest.raises(ValueError):
        viz.draw_skeleton(image.astype(np.float32), POSE, LIMBS)


def test_figures_render(tmp_path):
    image = np.full((50, 60, 3), 90, np.uint8)
    pose3d = np.array([[0.0, 0.0, 3.0], [0.2, 0.0, 3.1], [0.2, 0.4, 3.0]])
    fig = viz.pose_figure(image, POSE, LIMBS, pose3d, title="t")
    path = viz.save_figure(fig, tmp_path / "sub" / "pose.png")
    assert path.stat().st_size > 1000
    rgb = viz.figure_to_array(fig)
    assert rgb.ndim == 3 and rgb.shape[-1] == 3 and rgb.dtype == np.uint8
    grid = viz.pose_grid([(image, POSE, pose3d, "a"), (image, POSE, None, "b")], LIMBS)
    viz.save_figure(grid, tmp_path / "grid.png")
    assert len(grid.axes) == 3


def test_block_accuracy_plot(tmp_path):
    fig = viz.plot_block_accuracy({"separate": [0.5, 0.6, 0.7], "fine-tuned": [0.6, 0.8]})
    ax = fig.axes[0]
    lines = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
    np.testing.assert_allclose(lines["separate"], [50, 60, 70])
    assert list(ax.get_lines()[1].get_xdata()) == [1, 2]
    viz.save_figure(fig, tmp_path / "blocks.png")
    assert (tmp_path / "blocks.png").exists()


def test_overlays_name_prediction_and_ground_truth_in_distinct_colours():
    """skeletons.png (issue 27): the ground truth under the prediction in another colour, and a
    legend that says which is which."""
    image = np.zeros((50, 60, 3), np.uint8)
    gt = POSE + [0.0, 8.0]  # the ground truth 8 px lower
    out = viz.draw_poses(image, POSE, LIMBS, gt)
    assert tuple(out[10, 20]) == viz.GREEN and tuple(out[18, 20]) == viz.MAGENTA
    assert viz.GREEN != viz.MAGENTA and viz.ORANGE != viz.WHITE
    grid = viz.pose_grid([(image, POSE, None, "a", gt), (image, POSE, None, "b")], LIMBS)
    labels = [t.get_text() for legend in grid.legends for t in legend.get_texts()]
    assert labels == ["prediction", "ground truth"]
    alone = viz.pose_figure(image, POSE, LIMBS)
    assert [t.get_text() for t in alone.axes[0].get_legend().get_texts()] == ["prediction"]
