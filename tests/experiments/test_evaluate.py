"""experiments.evaluate on the tiny synthetic world: protocols run, tables are written, and a
predictor that returns the ground truth scores perfectly through the whole decoding chain."""

from __future__ import annotations

import json

import pytest
import torch

from deephar.models.multitask import build_model
from deephar.outputs import PoseOutput
from experiments import evaluate
from experiments.config import EVALUATE_KEYS, expand_short_keys, load_config, network_config

SMALL = ["model.input_size=64", "model.pose_blocks=1", "data.num_workers=0"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from datamodules.synthetic import generate_world

    return generate_world(tmp_path_factory.mktemp("world"), "tiny", seed=0)


def h36m_overrides(world) -> list[str]:
    return SMALL + [f"data.root={world['h36m']}", f"data.mpii_root={world['mpii']}",
                    "data.sources.h36m.test_options.subjects=[9]", "data.test=[h36m,mpii]"]  # fmt: skip


def random_checkpoint(path, name, overrides):
    torch.manual_seed(0)
    net = build_model(network_config(load_config(name, overrides)))
    torch.save({"state_dict": net.state_dict()}, path)
    return path


def test_options_are_the_eval_section_of_the_config():
    """Short forms and full keys mean one thing: the config's ``eval.*`` (OmegaConf-typed)."""
    short = ["ckpt=a.pt", "clips=multi", "clip_flip=true", "reduction=prod", "data.root=/x"]
    full = ["eval.ckpt=a.pt", "eval.clips=multi", "eval.clip_flip=true",
            "eval.video_reduction=prod", "data.root=/x"]  # fmt: skip
    assert expand_short_keys(short, EVALUATE_KEYS) == full
    cfg = load_config("penn", expand_short_keys(short, EVALUATE_KEYS))
    assert cfg == load_config("penn", full) and cfg.data.root == "/x"
    protocol = evaluate.protocol_of(cfg)
    assert protocol.clip_flip is True and protocol.runs("clips") == ["multi"]
    assert protocol.runs("crops") == [] and cfg.eval.video_reduction == "prod"
    assert evaluate.protocol_names(protocol) == ["multi-clip"]
    assert evaluate.protocol_names(evaluate.Protocol()) == ["run"]  # the default
    assert evaluate.protocol_of(load_config("penn")) == evaluate.Protocol()  # one set of defaults
    with pytest.raises(ValueError, match="key=value"):
        expand_short_keys(["oops"], EVALUATE_KEYS)
    with pytest.raises(ValueError, match="limit"):
        load_config("penn", expand_short_keys(["limit=many"], EVALUATE_KEYS))


@pytest.mark.parametrize("option", ["eval.fast=false", "fast=false"])
def test_eval_fast_false_runs_the_eager_network(tmp_path, monkeypatch, option):
    """``eval.fast=false`` reaches the network evaluated: the eager one, BatchNorm unfolded."""
    ckpt = random_checkpoint(tmp_path / "pose.pt", "mpii", SMALL)
    evaluated = {}

    def spy(cfg, net, protocol, run_net=None):
        evaluated[option] = net
        return {}

    monkeypatch.setattr(evaluate, "evaluate", spy)
    assert evaluate.main(["mpii", f"ckpt={ckpt}", option, f"out={tmp_path}", *SMALL]) == 0
    modules = list(evaluated[option].modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in modules)  # for_inference folds them
    assert all(not m.training for m in modules)


def test_pose_and_action_evaluation_write_tables(world, tmp_path):
    overrides = h36m_overrides(world)
    ckpt = random_checkpoint(tmp_path / "pose.pt", "h36m", overrides)
    argv = [
        "h36m",
        f"ckpt={ckpt}",
        "crops=both",
        "displacement=2",
        f"out={tmp_path / 'pose'}",
        *overrides,
    ]
    assert evaluate.main(argv) == 0
    results = json.loads((tmp_path / "pose" / "results.json").read_text())
    assert set(results) == {"h36m/single-crop", "h36m/multi-crop", "mpii/single-crop",
                            "mpii/multi-crop"}  # fmt: skip
    assert len(results["h36m/single-crop"]["mpjpe_per_action"]) == 15
    for name in ("pckh", "mpjpe"):
        assert (tmp_path / "pose" / f"{name}.csv").exists()
        assert (tmp_path / "pose" / f"{name}.md").exists()

    ntu = SMALL + [f"data.root={world['ntu']}", "model.num_frames=8"]
    ckpt = random_checkpoint(tmp_path / "ntu.pt", "ntu", ntu)
    argv = [
        "ntu",
        f"ckpt={ckpt}",
        "limit=4",
        "clips=both",
        "protocol=official",
        "clip_flip=true",
        f"out={tmp_path / 'ntu'}",
        *ntu,
    ]
    assert evaluate.main(argv) == 0
    results = json.loads((tmp_path / "ntu" / "results.json").read_text())
    single = results["ntu/single-clip"]
    assert set(evaluate.BRANCHES) <= set(single) and "acc_app1" in single
    assert "ntu/multi-clip" in results and (tmp_path / "ntu" / "action.md").exists()
    assert "ntu/official" in results  # 16-frame clips at step 2 into a network of T = 8


def test_ground_truth_predictor_scores_perfectly(world):
    """A network stub answering each batch's own targets: MPJPE ≈ 0 after decoding to mm and
    PCKh = 1 on the joints inside the crop, through multi-crop's un-flipping too."""
    cfg = load_config("h36m", h36m_overrides(world))
    loader = evaluate.eval_loader(cfg, "h36m")

    class Oracle(torch.nn.Module):
        target = None

        def forward_pose(self, images):
            pose = self.target.clone()
            return PoseOutput(pose=[pose], visibility=[torch.ones(pose.shape[:-1])], heatmaps=[])

    oracle = Oracle()
    batches = list(loader)

    class OneBatch:
        def __iter__(self):
            for batch in batches:
                oracle.target = batch["pose"]
                yield batch

    views = [evaluate.protocols.CropView()]
    res = evaluate.evaluate_pose(oracle, OneBatch(), cfg.data.layout, views)
    assert res["mpjpe"] < 5.0
    random = evaluate.evaluate_pose(
        build_model(network_config(cfg)).eval(), OneBatch(), cfg.data.layout, views
    )
    assert random["mpjpe"] > 10 * res["mpjpe"]


def test_demo_and_evaluate_give_the_same_figures(world, tmp_path):
    """One scorer, one set of protocol defaults: the demo's pose evaluation of a checkpoint equals
    ``python -m experiments.evaluate`` on it (same multi-crop shift, same metric objects)."""
    from deephar.checkpoint import network_payload
    from experiments import ablation, demo

    args = demo.demo_args("tiny", tmp_path / "demo", world["mpii"].parent)
    config, overrides = ablation.row_overrides("pose", args)
    cfg = load_config(config, overrides)
    torch.manual_seed(0)
    ckpt = tmp_path / "pose.pt"
    torch.save(network_payload(build_model(network_config(cfg))), ckpt)
    shown, _, _ = demo.pose_results(args, str(ckpt))
    out = tmp_path / "eval"
    args = [config, f"ckpt={ckpt}", "crops=both", "limit=4", f"out={out}", *overrides]
    assert evaluate.main(args) == 0
    measured = json.loads((out / "results.json").read_text())
    assert {k for k in measured} - {"run"} <= set(shown) and "mpii/multi-crop" in measured
    for key, values in measured.items():
        for name in ("pckh@0.5", "pck@0.5", "mpjpe"):
            if name in values:
                assert shown[key][name] == pytest.approx(values[name], abs=1e-6), (key, name)


def test_the_network_is_loaded_onto_eval_device(tmp_path, monkeypatch):
    """``eval.device``: auto (CUDA when there is one, here the CPU) | cpu | cuda."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ckpt = random_checkpoint(tmp_path / "net.pt", "mpii", SMALL)
    net = evaluate.load_model(load_config("mpii", SMALL), ckpt, fast=False)
    assert next(net.parameters()).device == torch.device("cpu")
    with pytest.raises(ValueError, match="eval.device|no CUDA device"):
        evaluate.load_model(load_config("mpii", [*SMALL, "eval.device=cuda"]), ckpt)


def test_crop_views_score_each_view_of_multi_crop_alone(world, tmp_path):
    """``protocol=crop-views``: the 10 views of multi-crop one at a time, labelled by shift and
    mirror; the plain view is single-crop."""
    overrides = h36m_overrides(world) + ["data.test=[h36m]"]
    ckpt = random_checkpoint(tmp_path / "pose.pt", "h36m", overrides)
    argv = ["h36m", f"ckpt={ckpt}", "protocol=single-crop,crop-views", "displacement=2"]
    assert evaluate.main([*argv, "limit=4", f"out={tmp_path}", *overrides]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    views = {k for k, v in results.items() if v["protocol"] == "crop-views"}
    assert len(views) == 10 and "h36m/view(+2,+0)+flip" in views
    plain, single = results["h36m/view(+0,+0)"], results["h36m/single-crop"]
    assert plain["mpjpe"] == pytest.approx(single["mpjpe"], rel=1e-6)
    shifts = {(0, 0), (2, 0), (-2, 0), (0, 2), (0, -2)}
    assert views == {f"h36m/view({x:+d},{y:+d}){f}" for x, y in shifts for f in ("", "+flip")}
