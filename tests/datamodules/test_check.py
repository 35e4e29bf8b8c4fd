"""``python -m datamodules.check`` on a labels-only Penn Action folder (what the annotated-pose
experiment needs): the missing frames/ folder is stated, not counted as a problem."""

from __future__ import annotations

import shutil

from datamodules.check import check_penn, main
from datamodules.synthetic.write_penn import write_penn


def test_labels_only_penn_folder_is_not_a_frames_problem(tmp_path, capsys):
    full = tmp_path / "full"
    write_penn(full, 1, (8, 10), seed=0)
    labels_only = tmp_path / "labels_only"
    shutil.copytree(full / "labels", labels_only / "labels")
    problems = check_penn(labels_only)
    assert problems and all("official split" in p for p in problems)  # sizes of a tiny world
    assert "labels only" in capsys.readouterr().out
    shutil.rmtree(full / "frames" / sorted(p.name for p in (full / "frames").iterdir())[0])
    assert any("lack frames" in p for p in check_penn(full))  # a partial frames/ still is one
    assert main(["penn", str(labels_only)]) == 1  # the split sizes, nothing else


def test_a_training_only_folder_passes_with_splits_train(tmp_path, capsys):
    """``--splits train``: only the training split's size is checked (e.g. the 1,258 official
    training label files beside the project); sizes are still compared with the official one."""
    write_penn(tmp_path / "penn", 1, (8, 10), seed=0)
    assert check_penn(tmp_path / "penn", splits=("train",)) != []  # tiny: not 1,258 videos
    assert all("train" in p for p in check_penn(tmp_path / "penn", splits=("train",)))
    assert main(["penn", str(tmp_path / "penn"), "--splits", "train"]) == 1
