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
import torch

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


def test_one_bad_recording_is_replaced_by_other_files_not_its_own_frames(world, tmp_path, caplog):
    """The 4 camera videos of one Human3.6M recording zero-byte: its 20 consecutive training
    samples (16 in a row stopped the run) are replaced by samples of other videos, each bad
    video logged once."""
    root = tmp_path / "h36m"
    shutil.copytree(world / "h36m", root)
    videos = sorted((root / "S1" / "Videos").glob("Directions 1.*.mp4"))
    assert len(videos) == 4
    for video in videos:
        video.write_bytes(b"")
    data = RobustDataset(Human36MDataset(root, split="train", subjects=[1, 5], input_size=64))
    with caplog.at_level(logging.WARNING):
        ids = [data[i]["sample_id"] for i in range(len(data))]
    assert not [i for i in ids if "S1/Directions 1." in i]  # every bad sample replaced
    assert data.num_failures >= 20 and len(set(ids)) > len(ids) // 2
    for video in videos:
        assert sum(str(video) in r.getMessage() for r in caplog.records) == 1, video


class Videos(torch.utils.data.Dataset):
    """``files`` videos of 10 frames; the videos in ``bad`` fail as a zero-byte file would."""

    def __init__(self, files: int, bad: set[int]):
        self.files, self.bad = files, bad

    def __len__(self) -> int:
        return 10 * self.files

    def __getitem__(self, i: int) -> int:
        if i // 10 in self.bad:
            raise SampleReadError(f"/data/video_{i // 10}.mp4", "empty file")
        return i


def test_the_broken_data_stop_counts_a_share_of_the_loads():
    order = np.random.default_rng(0).permutation(300).tolist()  # a training sampler's order
    few = RobustDataset(Videos(30, {3, 4, 5}), min_loads=64)  # 10 % of the data: trained on
    assert all(few[i] // 10 not in {3, 4, 5} for i in order)
    many = RobustDataset(Videos(30, set(range(0, 30, 2))), min_loads=64)  # half: broken
    with pytest.raises(RuntimeError, match=r"of \d+ loads failed \(more than 25%"):
        for i in order:
            many[i]
    assert 64 <= many.num_loads < 100  # stopped as soon as the share was known
