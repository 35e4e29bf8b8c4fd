"""What training writes: checkpoints of tensors and plain containers only (loadable with
weights_only=True), written atomically beside their target (never through TMPDIR), and a write
killed half-way neither damages the previous checkpoint nor leaves a file behind."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

from experiments.config import load_config
from experiments.faults import AtomicCheckpointIO, remove_partial_writes
from experiments.train import build_trainer

PLAIN = (dict, list, tuple, str, int, float, bool, type(None), torch.Tensor)


def plain(value, where: str = "") -> list[str]:
    """Paths inside ``value`` holding anything but plain containers, numbers, strings, tensors."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in plain(v, f"{where}/{k}")]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in plain(v, f"{where}/{i}")]
    return [] if isinstance(value, PLAIN) else [f"{where}: {type(value).__name__}"]


def test_every_checkpoint_of_a_run_is_plain_and_loads_with_weights_only(trained):
    files = sorted(trained.glob("*.ckpt"))
    assert {f.name for f in files} == {"best.ckpt", "last.ckpt"}
    for path in files:
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert plain(state) == [], path
        assert isinstance(state["hyper_parameters"], dict)  # the settings: a plain container
        assert isinstance(state["network_config"], dict)


def test_the_trainer_writes_through_the_atomic_io(world, tmp_path):
    cfg = load_config(
        "demo_pose", [f"data.root={world}", f"out_dir={tmp_path}", "logger.kind=none"]
    )
    assert isinstance(build_trainer(cfg).strategy.checkpoint_io, AtomicCheckpointIO)


def test_a_write_interrupted_half_way_keeps_the_old_file_and_leaves_nothing(tmp_path,
                                                                           monkeypatch):  # fmt: skip
    folder, scratch = tmp_path / "run", tmp_path / "tmpdir"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    target, io = folder / "last.ckpt", AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, target)

    def dies_half_way(obj, file):
        file.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # Ctrl+C or a crash in the middle of torch.save

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, target)
    assert torch.equal(torch.load(target, weights_only=True)["state_dict"]["w"], torch.ones(3))
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt"]
    assert list(scratch.iterdir()) == []


def test_partial_files_of_a_killed_write_are_removed_at_the_next_start(tmp_path):
    (tmp_path / "last.ckpt").write_bytes(b"kept")
    stale = [tmp_path / ".last.ckpt.123.partial", tmp_path / ".best.ckpt.9.partial"]
    for path in stale:
        path.write_bytes(b"half")
    assert sorted(remove_partial_writes(tmp_path)) == sorted(stale)
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    assert remove_partial_writes(Path(tmp_path / "absent")) == []
