"""datamodules.splits: validation splits carved by source from the training data (Penn Action, NTU,
Human3.6M, MPII), and the grouped k-fold of experiments.crossval."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from omegaconf import OmegaConf

from datamodules.ntu import NTUDataset
from datamodules.penn import ACTIONS, PennActionDataset
from datamodules.splits import (
    carve,
    carved_part,
    fold_keys,
    held_out_keys,
    item_groups,
    penn_runs,
)
from datamodules.synthetic.write_ntu import sample_name
from experiments.config import load_config
from experiments.data import build_dataset

FRAMES = 48


def write_penn_labels(folder: Path, videos_per_action: int, train: str = "") -> Path:
    """Tiny real-format Penn Action label files, every action: alternately train / test, or by
    ``train`` ("1" train, "0" test per video of an action, e.g. "1101110")."""
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
                "train": np.array([[1 if (train[k] == "1" if train else k % 2 == 0) else -1]]),
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


def test_h36m_holds_out_a_whole_training_subject(image_world):
    """Human3.6M: validation = one whole training subject (S1 or S5, all its recordings and
    cameras), never the test subject S9."""
    cfg = load_config("demo_pose", [f"data.root={image_world}", "data.val_fraction=0.25"])
    sets = {stage: build_dataset(cfg, "h36m", stage) for stage in ("train", "val", "test")}
    ids = {s: [d[i]["sample_id"] for i in range(len(d))] for s, d in sets.items()}
    recording = {s: {i.split("/")[1] + "/" + i.split("/")[2].rpartition(".")[0] for i in v}
                 for s, v in ids.items()}  # fmt: skip  # "S1/Directions 1"
    assert recording["val"] and not recording["val"] & recording["train"]
    assert {r.split("/")[0] for r in recording["train"] | recording["val"]} == {"S1", "S5"}
    assert {r.split("/")[0] for r in recording["test"]} == {"S9"}
    subjects = {s: {r.split("/")[0] for r in recording[s]} for s in ("train", "val")}
    assert len(subjects["val"]) == 1 and not subjects["val"] & subjects["train"]
    assert len(recording["val"]) == 2  # both recordings of the held-out subject
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


def test_penn_runs_are_recovered_from_ids_with_gaps():
    """A run ends at a missing id (a test video) or a change of action."""
    ids = ["0001", "0002", "0003", "0005", "0006", "0009", "0010"]
    actions = [0, 0, 1, 1, 1, 2, 2]
    runs = penn_runs(ids[::-1], actions[::-1])[::-1]  # order-free
    assert runs == ["0001-0002", "0001-0002", "0003-0003", "0005-0006", "0005-0006",
                    "0009-0010", "0009-0010"]  # fmt: skip
    with pytest.raises(ValueError, match="numeric"):
        penn_runs(["a01"], [0])


def test_fold_keys_partition_whole_groups_deterministically():
    keys = [f"g{i // 3:02d}" for i in range(60)]  # 20 groups of 3 occurrences
    strata = [(i // 3) % 4 for i in range(60)]
    folds = [fold_keys(keys, strata, 5, f, seed=3) for f in range(5)]
    assert set().union(*folds) == set(keys) and sum(map(len, folds)) == 20  # each key once
    assert all(len(f) == 4 and len({int(k[1:]) % 4 for k in f}) == 4 for f in folds)  # stratified
    assert folds[2] == fold_keys(keys[::-1], strata[::-1], 5, 2, seed=3)
    assert folds != [fold_keys(keys, strata, 5, f, seed=4) for f in range(5)]
    with pytest.raises(ValueError, match="folds"):
        fold_keys(keys, strata, 1, 0, seed=0)
    with pytest.raises(ValueError, match="groups"):
        fold_keys(["a", "b"], None, 3, 0, seed=0)


def assert_no_shared_run(train: PennActionDataset, held: set[str]) -> None:
    """No held-out video is a consecutive id of the same action as a training video."""
    groups = item_groups(train)
    side = {train.videos[v].video_id: k in held for v, k in enumerate(groups.keys)}
    action = {v.video_id: v.action for v in train.videos}
    for vid, is_held in side.items():
        nxt = f"{int(vid) + 1:04d}"
        if nxt in side and action[nxt] == action[vid]:
            assert side[nxt] == is_held, f"{vid} and {nxt} (one run) are on both sides"


@pytest.fixture(scope="module")
def penn_runs_root(tmp_path_factory) -> Path:
    """Per action: runs of 2, 3 and 1 training videos between test videos."""
    return write_penn_labels(tmp_path_factory.mktemp("runs"), 9, train="110111010")


def test_penn_carve_and_folds_hold_out_whole_runs(penn_runs_root):
    train = PennActionDataset(penn_runs_root, "train", mode="poses")
    groups = item_groups(train)
    assert len(set(groups.keys)) == 3 * len(ACTIONS) and len(train.videos) == 6 * len(ACTIONS)
    held = held_out_keys(train, 0.34, seed=0)
    assert len(held) == len(ACTIONS)  # one run of three per action
    assert held == held_out_keys(train, 0.34, seed=0) != held_out_keys(train, 0.34, seed=1)
    assert_no_shared_run(train, held)
    folds = [held_out_keys(train, 0.0, 0, folds=3, fold=f) for f in range(3)]
    assert set().union(*folds) == set(groups.keys) and sum(map(len, folds)) == len(set(groups.keys))
    for held in folds:
        assert_no_shared_run(train, held)
    multi = PennActionDataset(penn_runs_root, "train", mode="poses", clip_sampling="multi")
    assert held_out_keys(multi, 0.0, 0, folds=3, fold=1) == folds[1]  # the evaluating reader


def test_experiment_folds_partition_the_training_videos(penn_runs_root):
    ids = []
    for fold in range(2):
        cfg = load_config("penn_poses", [f"data.root={penn_runs_root}", "data.folds=2",
                                         f"data.fold={fold}"])  # fmt: skip
        val, train = (build_dataset(cfg, "penn", s) for s in ("val", "train"))
        ids.append({val[i]["video_id"] for i in range(len(val))})
        assert not ids[-1] & {train[i]["video_id"] for i in range(len(train))}
    assert not ids[0] & ids[1] and len(ids[0] | ids[1]) == 6 * len(ACTIONS)


# the real training labels in a ``shared/`` beside the checkout or a folder above it
REAL_PENN = next((p / "shared/data/penn_action_train" for p in Path(__file__).resolve().parents[2].parents
                  if (p / "shared/data/penn_action_train/labels").is_dir()), Path("/nonexistent"))  # fmt: skip


@pytest.mark.skipif(not (REAL_PENN / "labels").is_dir(), reason="no real Penn Action labels")
def test_real_penn_folds_keep_every_run_whole():
    """On the real training labels: runs as the issue counted them, folds disjoint and whole."""
    train = PennActionDataset(REAL_PENN, "train", mode="poses")
    groups = item_groups(train)
    assert len(train.videos) == 1258 and 300 < len(set(groups.keys)) < 500
    folds = [held_out_keys(train, 0.0, 0, folds=5, fold=f) for f in range(5)]
    assert set().union(*folds) == set(groups.keys) and sum(map(len, folds)) == len(set(groups.keys))
    for held in [*folds, held_out_keys(train, 0.1, 0)]:
        assert_no_shared_run(train, held)
