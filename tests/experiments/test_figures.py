"""experiments.figures: the confusion matrix counts the video predictions VideoAccuracy scores,
the pictures are written, labelled with the action names and the joints."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from datamodules.layouts import get_layout
from datamodules.penn import ACTIONS as PENN_ACTIONS
from deephar.metrics import VideoAccuracy
from experiments import figures
from experiments.config import load_config


def clips_of_videos(seed: int = 0, videos: int = 12, clips: int = 3, actions: int = 5):
    """Random clip logits (N, A), labels (N,), video ids (N,) of ``videos`` with ``clips`` each."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(actions, (videos,), generator=gen).repeat_interleave(clips)
    ids = [f"v{v}" for v in range(videos) for _ in range(clips)]
    logits = torch.randn(videos * clips, actions, generator=gen)
    return logits, labels, ids


def test_confusion_counts_the_video_predictions():
    logits, labels, ids = clips_of_videos()
    metric = VideoAccuracy("mean")
    metric.update(logits[:20], labels[:20], ids[:20])  # two updates: a video split across them
    metric.update(logits[20:], labels[20:], ids[20:])
    confusion = figures.video_confusion(metric, 5)
    expected = torch.zeros(5, 5, dtype=torch.long)
    for v in range(12):  # by hand: mean softmax of the video's 3 clips, argmax
        scores = logits[3 * v : 3 * v + 3].softmax(-1).mean(0)
        expected[labels[3 * v], scores.argmax()] += 1
    assert torch.equal(confusion, expected)
    assert confusion.trace() / confusion.sum() == metric.compute()
    per_class = figures.per_class(confusion)
    rows = expected.sum(1)
    for a in range(5):
        want = None if rows[a] == 0 else int(expected[a, a]) / int(rows[a])
        assert per_class[a] == want


def test_unlabelled_videos_are_left_out():
    metric = VideoAccuracy("prod")
    metric.update(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, -1]), ["a", "b"])
    assert figures.video_confusion(metric, 2).tolist() == [[1, 0], [0, 0]]


def tick_labels(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_xticklabels()]


def test_pictures_are_written_with_action_names_and_joints(tmp_path):
    joints = get_layout("pa16j").joints
    confusion = [[2, 1, 0], [0, 3, 0], [0, 0, 0]]
    results = {
        "penn/multi-clip": {"confusion": confusion, "per_class": figures.per_class(confusion)},
        "mpii/single-crop": {"pckh_per_joint": [0.5] * len(joints), "pckh@0.5": 0.5},
    }
    names = ["bowl", "squat", "situp"]
    made = figures.figures_of("penn/multi-clip", results["penn/multi-clip"], joints, names)
    assert set(made) == {"per_class", "confusion"}
    assert tick_labels(made["confusion"]) == names and tick_labels(made["per_class"]) == names
    pose = figures.figures_of("mpii/single-crop", results["mpii/single-crop"], joints, names)
    assert tick_labels(pose["pckh_per_joint"]) == list(joints)
    written = figures.write_figures(results, tmp_path, joints, names)
    stems = {p.name for p in written}
    assert stems == {
        "penn_multi-clip_per_class.png",
        "penn_multi-clip_confusion.png",
        "mpii_single-crop_pckh_per_joint.png",
    }
    for path in written:
        assert path.parent == tmp_path / "figures" and path.read_bytes()[:4] == b"\x89PNG"


def test_action_names_of_a_config():
    penn = load_config("penn")
    assert figures.action_names(penn) == list(PENN_ACTIONS)
    ntu = load_config("ntu")
    assert figures.action_names(ntu)[:2] == ["A001", "A002"]
    assert len(figures.action_names(OmegaConf.merge(ntu, {"model": {"num_actions": 8}}))) == 8
