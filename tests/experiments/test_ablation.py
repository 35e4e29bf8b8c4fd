"""The Table 5 ablation at the tiny synthetic size: every row, the table and the plot, and a rerun
after a failure trains only the rows that had not finished."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from experiments import ablation, train


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from datamodules.synthetic import generate_world

    root = tmp_path_factory.mktemp("world")
    generate_world(root, "tiny", seed=0)
    return root


def args_for(world, out, *extra):
    return ablation.parse_args(["--ft", "--multiclip", "--dataset", "synthetic", "--size", "tiny",
                                "--data", str(world), "--out", str(out), *extra])  # fmt: skip


def test_flags_become_overrides(world, tmp_path):
    args = args_for(world, tmp_path, "seed=3")
    assert ablation.planned_rows(args) == [
        "pose",
        "provided",
        "estimated",
        "finetuned",
        "multiclip",
    ]
    config, overrides = ablation.row_overrides("finetuned", args, "p.ckpt", "e.ckpt")
    assert config == "demo_action" and "init.ckpt=e.ckpt" in overrides
    assert {"finetune.enabled=true", "finetune.only=true"} <= set(overrides)
    assert overrides[-1] == "seed=3" and "logger.group=ablation-synthetic" in overrides
    assert ablation.row_overrides("provided", args)[0] == "demo_kinect"
    assert "init.keras_h5=w.h5" in ablation.row_overrides("estimated", args, "w.h5")[1]
    no_ft = ablation.parse_args(["--dataset", "penn", "--pose-ckpt", "x.pt"])
    assert ablation.planned_rows(no_ft) == ["provided", "estimated"]
    with pytest.raises(ValueError, match="pose-ckpt"):
        ablation.run_ablation(ablation.parse_args(["--dataset", "ntu"]))


@pytest.mark.slow
def test_ablation_runs_every_row_and_resumes(world, tmp_path, monkeypatch):
    trained: list[str] = []
    fail = {"finetuned"}
    real_run = train.run

    def counting_run(cfg, *a, **k):
        row = cfg.name.rsplit("-", 1)[-1]
        trained.append(row)
        if row in fail:
            fail.discard(row)
            raise RuntimeError("interrupted")
        return real_run(cfg, *a, **k)

    monkeypatch.setattr(train, "run", counting_run)
    with pytest.raises(RuntimeError, match="interrupted"):
        ablation.run_ablation(args_for(world, tmp_path), log=lambda s: None)
    assert trained == ["pose", "provided", "estimated", "finetuned"]
    assert not (tmp_path / "rows" / "finetuned.json").exists()

    trained.clear()
    rows = ablation.run_ablation(args_for(world, tmp_path), log=lambda s: None)
    assert trained == ["finetuned"]  # the finished rows are not trained again
    assert list(rows) == ["pose", "provided", "estimated", "finetuned", "multiclip"]
    table = pd.read_csv(tmp_path / "table5.csv", index_col=0)
    assert list(table.index) == [ablation.TITLES[r] for r in ablation.ROWS[1:]]
    assert table["Pose"].notna().all() and pd.isna(
        table.loc[ablation.TITLES["provided"], "Appearance"]
    )
    assert table.loc[ablation.TITLES["multiclip"]].notna().all()
    assert (tmp_path / "table5.md").exists() and (tmp_path / "blocks.png").stat().st_size > 0
    estimated = json.loads((tmp_path / "rows" / "estimated.json").read_text())
    assert set(estimated["blocks"]) == {
        "pose1",
        "pose2",
        "pose3",
        "pose4",
        "app1",
        "app2",
        "app3",
        "app4",
    }


def test_the_finetuned_row_is_the_finetune_stage_of_train(world, tmp_path):
    """One meaning of fine-tuning: the row is ``train.run``'s finetune stage alone, at
    ``optim.lr`` ÷ ``finetune.lr_divisor`` with the pose network trainable."""
    from deephar.models.multitask import build_model
    from experiments.config import load_config, network_config

    cfg = load_config(*ablation.row_overrides("finetuned", args_for(world, tmp_path), "", "e.ckpt"))
    assert train.finetunes(cfg) and cfg.finetune.only and cfg.init.ckpt == "e.ckpt"
    lr = train.finetune_lr(cfg)
    assert lr == pytest.approx(cfg.optim.lr / cfg.finetune.lr_divisor) and lr < cfg.optim.lr
    module = train.build_module(cfg, build_model(network_config(cfg)), "finetune", lr)
    assert module.optim.lr == lr and not module.net.pose_frozen
    assert all(p.requires_grad for p in module.net.pose.parameters())
