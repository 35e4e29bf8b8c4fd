"""The probe of issue 28: a one-branch weight file (``deephar.convert … --model penn``) as
``init.ckpt`` of a ``model.pose_members: 3`` training. It used to start with members 2 and 3 at
random init, exit 0, nothing said; now refused before training, one line naming the file and the
members (exit 2)."""

from __future__ import annotations

import torch

from deephar.checkpoint import network_payload
from deephar.models.multitask import build_model
from experiments import train
from experiments.config import load_config, network_config
from tests.reliability.conftest import TINY


def test_train_refuses_a_one_branch_init_for_three_members(world, tmp_path, capsys):
    overrides = [f"data.root={world}", f"out_dir={tmp_path / 'runs'}", *TINY, "data.test=[]"]
    one = build_model(network_config(load_config("demo_action", overrides)))
    assert one.cfg.pose_members == 1
    torch.save(network_payload(one, model="penn"), tmp_path / "one.pt")
    argv = ["demo_action", *overrides, "model.pose_members=3", f"init.ckpt={tmp_path / 'one.pt'}"]
    code = train.main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert "one.pt" in lines[0] and "members 2, 3 missing" in lines[0], lines[0]
