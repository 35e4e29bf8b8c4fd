"""The pose ensemble (``model.pose_members``) as one module: the former numbers, the official keys,
and weight files that fill all members or are refused naming the ones they lack."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deephar.checkpoint import CheckpointError, init_network, load_network, network_payload
from deephar.config import PENN_MERGE
from deephar.convert import convert_file, keras_state_dict, main
from deephar.losses import action_loss
from deephar.models.action_head import ActionHead
from deephar.models.multitask import build_model
from deephar.models.pose_ensemble import MissingMembers, complete_members
from tests.deephar.make_ensemble_reference import HEAD, reference_state

GOLDEN = "tests/deephar/golden/ensemble_m3_reference.npz"
TINY = PENN_MERGE.with_(pose_blocks=1, num_frames=4, width=0.25)


def _golden(name: str, ref: np.lib.npyio.NpzFile) -> list[torch.Tensor]:
    keys = sorted((k for k in ref.files if k.startswith(f"{name}/")), key=lambda k: int(k[-1]))
    return [torch.from_numpy(ref[k]) for k in keys]


def assert_former(ours: torch.Tensor, former: torch.Tensor) -> None:
    """Equal up to float32 rounding of another thread count (bitwise equal at the generator's 2
    threads): 2e-6 of the largest magnitude (the logits reach ~150)."""
    scale = max(1.0, former.abs().max().item())
    torch.testing.assert_close(ours, former, rtol=0, atol=2e-6 * scale)


def test_a_three_member_head_computes_what_the_former_code_did():
    """Weights stored under the former keys (members 2…3 in ``pose_extra``) load strictly, and the
    logits (members' own and means), aggregate and losses equal those the code before the
    ensemble became a module computed (``make_ensemble_reference.py``, commit 8831d9c)."""
    ref = np.load(GOLDEN)
    shapes = {k.removeprefix("shape/"): tuple(ref[k]) for k in ref.files if k.startswith("shape/")}
    assert any(k.startswith("pose_extra.1.") for k in shapes)  # the former layout
    head = ActionHead(*HEAD).eval()
    head.load_state_dict(reference_state(shapes))  # strict
    x = {k: torch.from_numpy(ref[k]) for k in ("pose", "prob", "features", "labels")}
    with torch.no_grad():
        out = head(x["pose"], x["prob"], x["features"])
        poses_only = head(x["pose"], x["prob"])
    for ours, former in zip(out.all_logits, _golden("all_logits", ref), strict=True):
        assert_former(ours, former)
    for ours, former in zip(out.pose_members, _golden("pose_members", ref), strict=True):
        assert_former(ours, former)
    for ours, former in zip(poses_only.all_logits, _golden("poses_all_logits", ref), strict=True):
        assert_former(ours, former)
    assert_former(action_loss(out, x["labels"], 0.1), torch.from_numpy(ref["loss"]))
    assert_former(action_loss(poses_only, x["labels"]), torch.from_numpy(ref["poses_loss"]))


def test_member_one_keeps_the_official_keys():
    """M = 1: exactly the one branch's keys; M = 3: those, plus ``members.1/2.*`` of the same
    tensors; a state dict round-trips strictly."""
    one, three = ActionHead(2, 5, 16, "v1", pose_members=1), ActionHead(2, 5, 16, "v1", 2, 1, 3)
    official = set(one.state_dict())
    assert "pose_branch.temporal.0.conv.weight" in official
    assert not any(".members." in k for k in official)
    extra = set(three.state_dict()) - official
    assert {k.split(".")[2] for k in extra} == {"1", "2"}
    assert all(k.startswith("pose_branch.members.") for k in extra)
    torch.testing.assert_close(
        three.state_dict()["pose_branch.temporal.0.conv.weight"],
        three.pose_branch.members[0].temporal[0].conv.weight,
    )
    ActionHead(2, 5, 16, "v1", 2, 1, 3).load_state_dict(three.state_dict())  # strict
    with pytest.raises(ValueError, match="pose_members"):
        ActionHead(2, 5, 16, "v1", pose_members=0)


def test_complete_members_copies_or_names_the_missing_ones():
    own = ActionHead(2, 5, 16, "v1", 2, 1, 3).state_dict()
    one = {k: v for k, v in own.items() if ".members." not in k}
    with pytest.raises(MissingMembers, match=r"fills 1 of the 3 .*members 2, 3 missing"):
        complete_members(one, own, "pose_branch.", 3, "refuse")
    filled = complete_members(one, own, "pose_branch.", 3, "copy")
    assert set(filled) == set(own)
    assert (
        filled["pose_branch.members.2.branch_a.conv.weight"]
        is one["pose_branch.branch_a.conv.weight"]
    )
    part = {k: v for k, v in own.items() if not k.startswith("pose_branch.members.2.temporal")}
    with pytest.raises(MissingMembers, match="members 3 missing") as err:  # half a member: never
        complete_members(part, own, "pose_branch.", 3, "copy")
    assert "init.members=copy" not in str(err.value)
    assert complete_members(own, own, "pose_branch.", 3, "refuse") == own
    nothing = {k: v for k, v in own.items() if not k.startswith("pose_branch.")}
    assert complete_members(nothing, own, "pose_branch.", 3, "refuse") == nothing


def test_a_one_branch_file_as_init_of_a_three_member_network(tmp_path):
    """The probe: a one-branch file (what ``deephar.convert --model penn`` writes) as ``init.ckpt``
    of a ``pose_members: 3`` network is refused naming members 2 and 3 (it left 2/3 of the pose
    branch at random init without a word); with ``members="copy"`` every member is the file's
    branch; an M = 3 file fills an M = 3 network strictly."""
    torch.manual_seed(0)
    single = build_model(TINY)
    torch.save(network_payload(single, model="penn"), tmp_path / "one.pt")
    net = build_model(TINY.with_(pose_members=3))
    with pytest.raises(CheckpointError, match=r"one.pt: .*members 2, 3 missing.*members\.1\."):
        init_network(net, ckpt=tmp_path / "one.pt")
    init_network(net, ckpt=tmp_path / "one.pt", members="copy")
    branch = single.action.pose_branch.members[0].state_dict()
    for member in net.action.pose_branch.members:
        for key, value in member.state_dict().items():
            assert torch.equal(value, branch[key]), key
    torch.save(network_payload(net), tmp_path / "three.pt")
    assert load_network(tmp_path / "three.pt").cfg.pose_members == 3


def test_official_merge_file_into_a_three_member_network(tmp_path, parity_dir):
    """The official Keras file and its conversion (``--model penn``) into a 3-member network:
    refused naming the members (``init.keras_h5``, ``init.ckpt``) unless copied, or converted
    with ``--pose-members 3``."""
    h5 = parity_dir / "penn_merge_k2_t8.h5"
    converted = convert_file(h5, tmp_path / "penn.pt", "penn", blocks=2)
    cfg = PENN_MERGE.with_(pose_blocks=2, pose_members=3)
    net = build_model(cfg)
    for init in ({"ckpt": converted}, {"keras_h5": h5}):
        with pytest.raises(CheckpointError, match="members 2, 3 missing"):
            init_network(net, **init)
    init_network(net, ckpt=converted, members="copy")
    official = keras_state_dict(build_model(cfg.with_(pose_members=1)), h5)
    copied = keras_state_dict(net, h5, members="copy")
    key = "action.pose_branch.blocks.blocks.0.features.conv.weight"
    for member in ("", "members.1.", "members.2."):
        name = key.replace("pose_branch.", f"pose_branch.{member}")
        assert torch.equal(net.state_dict()[name], official[key])
        assert torch.equal(copied[name], official[key])
    three = tmp_path / "penn3.pt"
    argv = [str(h5), str(three), "--model", "penn", "--blocks", "2", "--pose-members", "3"]
    assert main(argv) == 0
    loaded = load_network(three)  # strict: every tensor of the 3 members
    assert loaded.cfg.pose_members == 3
    for member in ("", "members.1.", "members.2."):
        name = key.replace("pose_branch.", f"pose_branch.{member}")
        assert torch.equal(loaded.state_dict()[name], official[key])


def test_a_checkpoint_of_the_former_layout_loads(tmp_path):
    """Checkpoints written before the ensemble was one module (members 2…M under
    ``action.pose_extra.{0…M-2}``, Lightning's ``net.`` prefix) load strictly, member by member,
    through ``load_network`` and through ``load_state_dict`` (a Lightning resume)."""
    torch.manual_seed(0)
    net = build_model(TINY.with_(pose_members=3))
    former = {}
    for key, value in net.state_dict().items():
        for i in (1, 2):
            key = key.replace(f"action.pose_branch.members.{i}.", f"action.pose_extra.{i - 1}.")
        former[f"net.{key}"] = value
    assert any(k.startswith("net.action.pose_extra.1.") for k in former)
    payload = {"state_dict": former, "network_config": network_payload(net)["config"]}
    torch.save(payload, tmp_path / "former.ckpt")
    loaded = load_network(tmp_path / "former.ckpt")
    resumed = build_model(TINY.with_(pose_members=3))  # Lightning's resume: load_state_dict
    resumed.load_state_dict({k.removeprefix("net."): v for k, v in former.items()})  # strict
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
        assert torch.equal(resumed.state_dict()[key], value), key
