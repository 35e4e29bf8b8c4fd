"""Defect 5: corrupt input files. A truncated JPEG is detected (OpenCV decodes it with a grey
half and no error); a zero-byte Human3.6M video, a garbage Penn Action .mat or a garbage NTU
skeleton exclude their samples (listed at start-up with the file and the reason), never the run;
every error names the file."""

from __future__ import annotations

import logging
import shutil

import cv2
import numpy as np
import pytest

from datamodules.base import RobustDataset, SampleReadError, read_image
from datamodules.h36m import Human36MDataset
from datamodules.missing import ReportingDataset, Unreadable
from datamodules.ntu import NTUDataset
from datamodules.penn import PennActionDataset
from experiments import train
from experiments.config import load_config
from experiments.data import build_dataset
from tests.reliability.conftest import TINY


@pytest.mark.parametrize("ext, params", [(".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
                                         (".png", [])])  # fmt: skip
def test_truncated_image_is_detected_and_complete_one_reads(tmp_path, ext, params):
    image = np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    data = cv2.imencode(ext, image, params)[1].tobytes()
    whole, cut = tmp_path / f"whole{ext}", tmp_path / f"cut{ext}"
    whole.write_bytes(data)
    cut.write_bytes(data[: len(data) * 2 // 3])
    assert read_image(whole).shape == (64, 80, 3)
    with pytest.raises(SampleReadError, match=f"cut{ext}.*truncated"):
        read_image(cut)
    cut.write_bytes(b"")
    with pytest.raises(SampleReadError, match=f"cut{ext}: empty file"):
        read_image(cut)


def test_zero_byte_h36m_video_excludes_its_samples_not_the_run(world, tmp_path, capsys, caplog):
    root = tmp_path / "world"
    for part in ("mpii", "h36m"):
        shutil.copytree(world / part, root / part)
    args = ["demo_pose", f"data.root={root}", f"out_dir={tmp_path / 'runs'}", *TINY,
            "data.steps_per_epoch=6"]  # fmt: skip
    val = build_dataset(load_config(args[0], args[1:]), "h36m", "val")
    held = {val[i]["sample_id"].split("/")[1] for i in range(len(val))}  # whole subjects
    video = next(v for v in sorted((root / "h36m").glob("S[15]/Videos/*.mp4"))
                 if v.parts[-3] not in held)  # fmt: skip  # a training subject's recording
    video.write_bytes(b"")
    data = Human36MDataset(root / "h36m", split="train", subjects=[1, 5], input_size=64)
    bad = [i for i in range(len(data)) if isinstance(ReportingDataset(data)[i], Unreadable)]
    assert bad and ReportingDataset(data)[bad[0]].name == str(video)  # named, not replaced
    assert video.stem not in RobustDataset(data)[bad[0]]["sample_id"]  # training: replaced
    # the run trains on (S1, S5) but for the held-out recordings it validates on, tests on S9
    with caplog.at_level(logging.WARNING):
        assert train.main(args) == 0, capsys.readouterr().err
    assert str(video) in caplog.text


def test_garbage_penn_mat_is_excluded_and_listed(world, tmp_path, caplog):
    root = tmp_path / "penn"
    shutil.copytree(world / "penn", root)
    clean = {
        s: len(PennActionDataset(root, split=s, input_size=64).videos) for s in ("train", "test")
    }
    label = sorted((root / "labels").glob("*.mat"))[0]
    label.write_bytes(b"MATLAB garbage" * 20)
    with caplog.at_level(logging.WARNING):
        sets = {s: PennActionDataset(root, split=s, input_size=64) for s in ("train", "test")}
    assert sum(len(d.videos) for d in sets.values()) == sum(clean.values()) - 1
    assert str(label) in sets["train"].excluded and str(label) in caplog.text


def test_garbage_ntu_skeleton_in_multi_clip_is_excluded_and_named(world, tmp_path, caplog):
    root = tmp_path / "ntu"
    shutil.copytree(world / "ntu", root)
    name = NTUDataset(root, split="test").names[0]
    path = root / "nturgb+d_skeletons" / f"{name}.skeleton"
    path.write_text("garbage\nnot a skeleton\n")
    with caplog.at_level(logging.WARNING):
        multi = NTUDataset(root, split="test", clip_sampling="multi", input_size=64)
    assert str(path) in multi.excluded and str(path) in caplog.text
    assert all(multi.names[v] != name for v, _ in multi.items)
    single = NTUDataset(root, split="test", input_size=64)  # lazy: the sample, named
    with pytest.raises(SampleReadError, match=name):
        single[single.names.index(name)]


def test_garbage_penn_mat_is_listed_once_for_the_three_readers_of_a_run(world, tmp_path, caplog):
    """A run builds the Penn reader three times (training, carved validation, test), each loading
    every label file: the bad file is listed once, not three times."""
    root = tmp_path / "penn"
    shutil.copytree(world / "penn", root)
    label = sorted((root / "labels").glob("*.mat"))[0]
    label.write_bytes(b"MATLAB garbage" * 20)
    cfg = load_config("demo", [f"data.root={tmp_path}", *TINY])
    with caplog.at_level(logging.WARNING):
        for stage in ("train", "val", "test"):
            build_dataset(cfg, "penn", stage)
    assert caplog.text.count(str(label)) == 1, caplog.text
