"""experiments.crossval: grouped k-fold through the real training code, on the synthetic world."""

from __future__ import annotations

import json

import pytest

from datamodules.synthetic import generate_world
from experiments.config import ConfigError
from experiments.crossval import fold_config, main, parse

TINY = [  # CPU-sized: 64² input, K = 1, T = 8, a few steps, no logger
    "model.input_size=64", "model.pose_blocks=1", "model.num_frames=8", "data.steps_per_epoch=2",
    "data.batch_size=4", "data.num_workers=0", "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false", "logger.kind=csv",
]  # fmt: skip


@pytest.fixture(scope="module")
def penn_world(tmp_path_factory):
    return generate_world(tmp_path_factory.mktemp("world"), "tiny", seed=0)["penn"]


def test_parse_takes_folds_jobs_and_root_aliases():
    assert parse(["penn_poses", "folds=3", "PENN_ROOT=/x", "seed=1"]) == (
        "penn_poses", 3, ["data.root=/x", "seed=1"], 1, False)  # fmt: skip
    assert parse(["penn_poses", "jobs=2", "rescore=1"])[1:] == (5, [], 2, True)
    with pytest.raises(ConfigError, match="folds"):
        parse(["penn_poses", "folds=1"])
    with pytest.raises(ConfigError, match="jobs"):
        parse(["penn_poses", "jobs=0"])


def test_fold_configs_validate_on_their_fold_and_never_test(tmp_path):
    cfg = fold_config("penn_poses", [f"out_dir={tmp_path}"], 5, 3)
    assert (cfg.data.folds, cfg.data.fold, list(cfg.data.test)) == (5, 3, [])
    assert cfg.name == "penn_poses-fold3" and cfg.logger.group == "penn_poses-crossval"


def test_two_folds_train_and_summarise(penn_world, tmp_path, capsys):
    args = ["penn_poses", "folds=2", f"PENN_ROOT={penn_world}", f"out_dir={tmp_path}", *TINY]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "val/video_acc" in out and "±" in out
    folder = tmp_path / "penn_poses-crossval"
    result = json.loads((folder / "crossval.json").read_text())
    accs = [f["val"]["val/video_acc"] for f in result["folds"]]
    assert len(accs) == 2 and all(0.0 <= a <= 1.0 for a in accs)
    assert result["summary"]["val/video_acc"]["mean"] == pytest.approx(sum(accs) / 2)
    held = [set((folder / f"penn_poses-fold{k}/splits/penn_val.txt").read_text().split())
            for k in range(2)]  # fmt: skip
    assert held[0] and held[1] and not held[0] & held[1]  # the folds hold out different runs
    assert main(args) == 0  # a rerun takes the stored folds
    assert capsys.readouterr().out.count("skipped") == 2
    assert main([*args, "rescore=1"]) == 0  # the stored last.ckpt validated again: same figures
    again = json.loads((folder / "rescored.json").read_text())
    for old, new in zip(result["folds"], again["folds"]):
        assert new["val"]["val/video_acc"] == pytest.approx(old["val"]["val/video_acc"])
    assert main([*args, "folds=3", "rescore=1"]) == 2  # folds of another split are not reused
    assert main([*args, "folds=3"]) == 2


def test_folds_in_parallel_processes_equal_the_folds_in_turn(penn_world, tmp_path):
    """jobs=2: each fold in its own spawned process gives the figures of the sequential run."""
    common = ["penn_poses", "folds=2", f"PENN_ROOT={penn_world}", *TINY, "logger.kind=none"]
    assert main([*common, f"out_dir={tmp_path / 'seq'}"]) == 0
    assert main([*common, f"out_dir={tmp_path / 'par'}", "jobs=2"]) == 0
    seq, par = (json.loads((tmp_path / k / "penn_poses-crossval/crossval.json").read_text())
                for k in ("seq", "par"))  # fmt: skip
    assert [f["val"] for f in par["folds"]] == [f["val"] for f in seq["folds"]]
    assert par["jobs"] == 2 and par["summary"] == seq["summary"]
