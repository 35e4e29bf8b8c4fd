"""Experiment configs: composition, overrides, validation errors that name the problem."""

from __future__ import annotations

import pytest

from experiments.config import ConfigError, known, load_config, network_config
from experiments.config_checks import validate

MAKEFILE_ROOTS = {  # what the Makefile's train-* targets pass
    "mpii": ["data.root={d}"],
    "h36m": ["data.root={d}", "data.mpii_root={d}"],
    "penn": ["data.root={d}"],
    "ntu": ["data.root={d}"],
}


@pytest.mark.parametrize("name", known())
def test_every_shipped_config_loads_and_validates(name, tmp_path):
    for dataset in ("mpii", "h36m", "penn", "ntu"):  # the synthetic world's folders
        (tmp_path / dataset).mkdir()
    cfg = load_config(name, ["data.root=" + str(tmp_path), "data.mpii_root=" + str(tmp_path)])
    validate(cfg)
    assert cfg.name and network_config(cfg).input_size == cfg.model.input_size


@pytest.mark.parametrize("name", sorted(MAKEFILE_ROOTS))
def test_makefile_keys_fill_every_root(name, tmp_path):
    cfg = load_config(name, [o.format(d=tmp_path) for o in MAKEFILE_ROOTS[name]])
    validate(cfg)
    assert all(s.root.startswith(str(tmp_path)) for s in cfg.data.sources.values())


def test_dotlist_overrides_win(tmp_path):
    cfg = load_config("penn", [f"data.root={tmp_path}", "trainer.devices=4", "optim.lr=0.5",
                               "data.sources.penn.options.mode=poses"])  # fmt: skip
    assert cfg.trainer.devices == 4 and cfg.optim.lr == 0.5
    assert cfg.data.sources.penn.root == str(tmp_path)  # ${data.root} resolved after overrides
    assert cfg.data.sources.penn.options.mode == "poses"


def test_base_chain_composes():
    penn, poses = load_config("penn"), load_config("penn_poses")
    assert poses.data.sources.penn.options.mode == "poses"
    assert poses.model.num_frames == 32 and poses.optim.momentum == penn.optim.momentum
    assert poses.model.pose_members == 3 and penn.model.pose_members == 1
    changed = ("num_frames", "pose_members")
    assert {k: v for k, v in poses.model.items() if k not in changed} == {
        k: v for k, v in penn.model.items() if k not in changed
    }  # the paper's branch, three times, over the whole video (docs/penn_action.md)
    assert (poses.optim.name, poses.optim.monitor) == ("adam", "val/video_acc")  # penn_action.md
    assert poses.name == "penn_poses" and penn.data.sources.penn.options == {}


@pytest.mark.parametrize(
    ("override", "key"),
    [("optim.lrate=1", "optim.lrate"), ("data.sources.penn.rooot=x", "data.sources.penn.rooot"),
     ("modle.dim=3", "modle")],
)  # fmt: skip
def test_unknown_key_is_named(override, key):
    with pytest.raises(ConfigError, match=f"full_key: {key}"):
        load_config("penn", [override])


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match="batch_size"):
        load_config("penn", ["data.batch_size=many"])


def test_missing_data_root_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.sources\.penn\.root.*data\.root"):
        validate(load_config("penn"))
    absent = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match="nowhere"):
        validate(load_config("penn", [f"data.root={absent}"]))
    with pytest.raises(ConfigError, match="mpii"):
        validate(load_config("h36m", [f"data.root={tmp_path}"]))  # data.mpii_root forgotten


def test_unknown_experiment_lists_the_known_ones():
    with pytest.raises(ConfigError, match="penn_poses"):
        load_config("pen")


def test_task_and_sources_must_agree(tmp_path):
    with pytest.raises(ConfigError, match="task 'pose'"):
        validate(load_config("penn", [f"data.root={tmp_path}", "task=pose"]))
    with pytest.raises(ConfigError, match="data.test"):
        validate(load_config("penn", [f"data.root={tmp_path}", "data.test=[mpii]"]))
