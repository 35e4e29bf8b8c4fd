"""experiments.evaluate's default protocol "run" is the training's own test stage: a tiny run's
end-of-training test metrics are what ``evaluate`` prints for its best.ckpt, and the run folder's
config.yaml is the config that counts (the command line's overrides on top)."""

from __future__ import annotations

import json

import pytest

from datamodules.synthetic import generate_world
from experiments import evaluate
from experiments.config import load_config
from experiments.run_folder import best_checkpoint
from experiments.train import run

TINY = [  # penn_poses: whole-video clips of T frames scored with their mirror, 3 pose members
    "model.num_frames=8",
    "data.batch_size=4",
    "data.eval_batch_size=4",
    "data.num_workers=0",
    "data.steps_per_epoch=3",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "logger.kind=none",
    "threads=1",
]


@pytest.fixture(scope="module")
def penn_run(tmp_path_factory):
    """A tiny penn_poses run on the synthetic world: (its config, its test metrics)."""
    world = generate_world(tmp_path_factory.mktemp("world"), "tiny", seed=0)["penn"]
    out = tmp_path_factory.mktemp("runs")
    cfg = load_config("penn_poses", [f"data.root={world}", f"out_dir={out}", *TINY])
    test_options = cfg.data.sources.penn.test_options
    assert test_options.clip_sampling == "whole" and test_options.flip_clips  # the protocol
    return cfg, run(cfg)


def test_evaluate_defaults_print_the_training_test_figures(penn_run, tmp_path, capsys):
    cfg, trained = penn_run
    ckpt = best_checkpoint(cfg)
    # another config named on the command line: the run folder's config.yaml counts
    assert evaluate.main(["penn", f"ckpt={ckpt}", f"out={tmp_path}"]) == 0
    printed = capsys.readouterr().out
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results) == ["run"] and results["run"]["protocol"] == "run"
    tested = {k: v for k, v in trained.items() if k.startswith("test/")}
    assert {"test/video_acc", "test/acc", "test/loss", "test/video_acc_member1"} <= set(tested)
    measured = {k: v for k, v in results["run"].items() if k.startswith("test/")}
    assert set(measured) == set(tested)
    for key, value in tested.items():
        assert measured[key] == pytest.approx(value, abs=1e-6), key
    assert f"test/video_acc | {tested['test/video_acc']:.4f}" in printed
    assert "config.yaml (the run's)" in printed


def test_named_protocols_are_labelled_and_leave_the_run_options(penn_run, tmp_path):
    """single-clip / multi-clip / official each under their own name; the run's whole-video
    mirrored clips are not inherited by them."""
    cfg, _ = penn_run
    args = ["penn", f"ckpt={best_checkpoint(cfg)}", f"out={tmp_path}"]
    assert evaluate.main([*args, "protocol=run,single-clip,official", "clips=multi"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results) == ["run", "penn/single-clip", "penn/official", "penn/multi-clip"]
    for label, res in results.items():
        assert res["protocol"] == label.split("/")[-1]
    videos = sum(map(sum, results["run"]["confusion"]))
    assert sum(map(sum, results["penn/single-clip"]["confusion"])) == videos
    table = (tmp_path / "action.md").read_text()
    assert all(f"| {label} |" in table for label in results)


def test_unknown_protocol_is_one_clear_error(penn_run, tmp_path, capsys):
    cfg, _ = penn_run
    args = ["penn", f"ckpt={best_checkpoint(cfg)}", "protocol=best", f"out={tmp_path}"]
    assert evaluate.main(args) == 2
    assert "eval.protocol: unknown ['best']" in capsys.readouterr().err
