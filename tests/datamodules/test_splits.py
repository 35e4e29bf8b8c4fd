"""datamodules.splits: validation splits carved from the training data (Penn Action, NTU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from omegaconf import OmegaConf

from datamodules.ntu import NTUDataset
from datamodules.penn import ACTIONS, PennActionDataset
from datamodules.splits import carve, carved_part, held_out_keys, item_groups
from datamodules.synthetic.write_ntu import sample_name
from experiments.config import load_config
from experiments.data import build_dataset

FRAMES = 48


def write_penn_labels(folder: Path, videos_per_action: int) -> Path:
    """Tiny real-format Penn Action label files: alternately train / test, every action."""
    labels = folder / "labels"
    labels.mkdir(parents=True)
    rng = np.random.default_rng(0)
    index = 0
    for action in ACTIONS:
        for k in range(videos_per_action):
            index += 1
            x, y = rng.uniform(20, 100, (2, FRAMES, 13))
            scipy.io.savemat(labels / f"{index:04d}.mat", {
                "action": action, "x": x, "y": y, "visibility": np.ones((FRAMES, 13), np.uint8),
                "train": np.array([[1 if k % 2 == 0 else -1]]),
                "bbox": np.tile([10.0, 10.0, 110.0, 110.0], (FRAMES, 1)),
                "dimensions": np.array([[120, 160, FRAMES]]), "nframes": np.array([[FRAMES]]),
            })  # fmt: skip
    return folder


def write_ntu_names(folder: Path) -> Path:
    """Empty NTU skeleton files: the readers list names without parsing them."""
    skeletons = folder / "nturgb+d_skeletons"
    skeletons.mkdir(parents=True)
    for subject in (1, 2, 3, 4, 5, 8, 9):  # 1 2 4 5 8 9: X-Sub training; 3: test
        for action in (1, 2, 3):
            for camera in (1, 2, 3):
                (skeletons / f"{sample_name(1, camera, subject, 1, action)}.skeleton").touch()
    return folder


@pytest.fixture(scope="module")
def penn_root(tmp_path_factory) -> Path:
    return write_penn_labels(tmp_path_factory.mktemp("penn"), videos_per_action=8)


@pytest.fixture(scope="module")
def ntu_root(tmp_path_factory) -> Path:
    return write_ntu_names(tmp_path_factory.mktemp("ntu"))


def test_carve_is_deterministic_stratified_and_order_free():
    keys = [f"v{i:03d}" for i in range(100)]
    strata = [i % 5 for i in range(100)]
    held = carve(keys, strata, 0.2, seed=7)
    assert held == carve(keys[::-1], strata[::-1], 0.2, seed=7)  # input order does not matter
    assert held != carve(keys, strata, 0.2, seed=8)
    per_stratum = [sum(int(k[1:]) % 5 == s for k in held) for s in range(5)]
    assert per_stratum == [4] * 5  # 20 % of each action
    assert carve(keys, strata, 0.0, seed=7) == set()
    with pytest.raises(ValueError, match="fraction"):
        carve(keys, strata, 1.0, seed=0)


def test_carve_keeps_one_of_each_side_in_small_strata():
    held = carve(["a", "b", "c", "d"], ["x", "x", "y", "z"], 0.1, seed=0)
    assert len(held & {"a", "b"}) == 1  # two videos: one held out, one left to train on
    assert not held & {"c", "d"}  # a single video stays in training


def test_penn_parts_are_disjoint_and_come_from_the_training_split(penn_root):
    train = PennActionDataset(penn_root, "train", mode="poses")
    test = PennActionDataset(penn_root, "test", mode="poses")
    held = held_out_keys(train, 0.25, seed=0)
    assert len(held) == 15  # one of the four training videos of each action
    tr, va = carved_part(train, held, "train"), carved_part(train, held, "val")
    ids = {p: {train.videos[train.items[i][0]].video_id for i in s.indices}
           for p, s in (("train", tr), ("val", va))}  # fmt: skip
    test_ids = {v.video_id for v in test.videos}
    assert ids["train"] | ids["val"] == {v.video_id for v in train.videos}
    assert not ids["train"] & ids["val"]
    assert not (ids["train"] | ids["val"]) & test_ids


def test_penn_multi_clip_validation_keeps_whole_videos(penn_root):
    """Every clip of a held-out video is in validation, none in training."""
    multi = PennActionDataset(penn_root, "train", mode="poses", clip_sampling="multi", clip_step=4)
    held = held_out_keys(multi, 0.25, seed=0)
    assert held == held_out_keys(PennActionDataset(penn_root, "train", mode="poses"), 0.25, 0)
    val = carved_part(multi, held, "val")
    keys = item_groups(multi).item_keys(range(len(multi)))
    assert {keys[i] for i in val.indices} == held
    assert len(val) == sum(k in held for k in keys) > len(held)


@pytest.mark.parametrize("benchmark", ["xsub", "xview"])
def test_ntu_parts_are_disjoint_and_come_from_the_training_split(ntu_root, benchmark):
    train = NTUDataset(ntu_root, "train", benchmark=benchmark, mode="poses")
    test = NTUDataset(ntu_root, "test", benchmark=benchmark, mode="poses")
    held = held_out_keys(train, 0.2, seed=0)
    val = {train.names[i] for i in carved_part(train, held, "val").indices}
    rest = {train.names[i] for i in carved_part(train, held, "train").indices}
    assert val and rest and not val & rest and val | rest == set(train.names)
    assert not (val | rest) & set(test.names)
    if benchmark == "xsub":  # whole subjects held out
        assert {n[8:12] for n in val}.isdisjoint({n[8:12] for n in rest})
    else:  # a performance's other camera never trains
        assert {n[:4] + n[8:] for n in val}.isdisjoint({n[:4] + n[8:] for n in rest})


def test_experiment_validation_is_carved_from_training(penn_root):
    """experiments.data: Penn's val stage = the held-out training videos, never the test split."""
    cfg = load_config("penn_poses", [f"data.root={penn_root}", "data.val_fraction=0.25"])
    sets = {stage: build_dataset(cfg, "penn", stage) for stage in ("train", "val", "test")}
    ids = {s: {d[i]["video_id"] for i in range(len(d))} for s, d in sets.items()}
    assert ids["val"] and not ids["val"] & ids["train"]
    assert not (ids["val"] | ids["train"]) & ids["test"]
    off = OmegaConf.merge(cfg, {"data": {"val_fraction": 0.0}})
    with pytest.raises(ValueError, match="val_fraction"):
        build_dataset(off, "penn", "val")


def test_ntu_xsub_with_one_training_subject_holds_out_performances(tmp_path):
    skeletons = tmp_path / "nturgb+d_skeletons"
    skeletons.mkdir()
    for action in (1, 2):
        for replication in (1, 2):
            (skeletons / f"{sample_name(1, 1, 1, replication, action)}.skeleton").touch()
    train = NTUDataset(tmp_path, "train", benchmark="xsub", mode="poses")
    held = held_out_keys(train, 0.1, seed=0)
    assert len(held) == 2 and {k[-4:] for k in held} == {"A001", "A002"}  # one per action


def test_carve_falls_back_to_unstratified_when_every_stratum_is_single():
    held = carve(["a", "b", "c"], ["x", "y", "z"], 0.1, seed=0)
    assert len(held) == 1 and held == carve(["c", "b", "a"], ["z", "y", "x"], 0.1, seed=0)
    assert carve(["a"], ["x"], 0.1, seed=0) == set()  # one key: nothing to hold out


@pytest.fixture(scope="module")
def image_world(tmp_path_factory) -> Path:
    """Human3.6M S1 S5 S9 × 2 actions × 4 cameras × 4 frames; MPII 20 / 4 / 0 images."""
    from datamodules.synthetic.write_h36m import write_h36m
    from datamodules.synthetic.write_mpii import write_mpii

    root = tmp_path_factory.mktemp("images")
    write_h36m(root / "h36m", (1, 5, 9), 2, 4, seed=0)
    write_mpii(root / "mpii", 20, 4, 0, seed=0)
    return root


def test_h36m_holds_out_whole_recordings_of_the_training_subjects(image_world):
    """Human3.6M: validation = recordings (all four cameras) of S1/S5, never the test subject."""
    cfg = load_config("demo_pose", [f"data.root={image_world}", "data.val_fraction=0.25"])
    sets = {stage: build_dataset(cfg, "h36m", stage) for stage in ("train", "val", "test")}
    ids = {s: [d[i]["sample_id"] for i in range(len(d))] for s, d in sets.items()}
    recording = {s: {i.split("/")[1] + "/" + i.split("/")[2].rpartition(".")[0] for i in v}
                 for s, v in ids.items()}  # fmt: skip  # "S1/Directions 1"
    assert recording["val"] and not recording["val"] & recording["train"]
    assert {r.split("/")[0] for r in recording["train"] | recording["val"]} == {"S1", "S5"}
    assert {r.split("/")[0] for r in recording["test"]} == {"S9"}
    cameras = {i.split("/")[2].rpartition(".")[2] for i in ids["val"]}
    assert len(cameras) == 4  # a held-out recording takes its four cameras along


def test_mpii_holds_out_training_images_and_tests_on_the_validation_images(image_world):
    cfg = load_config("mpii", [f"data.root={image_world / 'mpii'}", "data.val_fraction=0.25",
                               "model.input_size=64"])  # fmt: skip
    sets = {stage: build_dataset(cfg, "mpii", stage) for stage in ("train", "val", "test")}
    images = {s: {d[i]["sample_id"].split("/")[1] for i in range(len(d))} for s, d in sets.items()}
    assert images["val"] and not images["val"] & images["train"]
    assert not (images["val"] | images["train"]) & images["test"]
    assert len(images["val"]) == 5 and len(images["train"]) == 15  # 25 % of the 20 images
