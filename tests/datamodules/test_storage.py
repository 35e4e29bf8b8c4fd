"""Record sources (``datamodules.storage``): every back-end of a dataset hands the sample builder the
same records — raw files, a prepared folder, LitData chunks — and only the frames differ (stored
crops with their matrix instead of the original frames)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from datamodules.h36m import H36M_AUG
from datamodules.ntu import NTU_AUG, TEST_SUBSAMPLE, TRAIN_SUBSAMPLE
from datamodules.prepare import h36m as prep_h36m
from datamodules.prepare import ntu as prep_ntu
from datamodules.prepare.runner import prepare
from datamodules.storage.h36m_files import RawH36M
from datamodules.storage.h36m_prepared import PreparedH36M
from datamodules.storage.ntu_files import RawNTU
from datamodules.storage.ntu_prepared import ClipNeeds, PreparedNTU
from datamodules.synthetic.write_h36m import write_h36m
from datamodules.synthetic.write_ntu import MISSING_LIST, write_performance

T = 4
NEEDS = ClipNeeds("pa20j", T, 2, (1, 2, 3), NTU_AUG, 256, 60,
                  frozenset({*TRAIN_SUBSAMPLE, TEST_SUBSAMPLE}))  # fmt: skip


def every(name: str) -> bool:
    return True


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Human3.6M S1 (4 cameras × 11 frames) and one NTU performance (3 cameras × 13 frames), raw
    and prepared."""
    root = tmp_path_factory.mktemp("storage")
    write_h36m(root / "h36m", (1,), 1, 11, seed=0)
    write_performance(root / "ntu", 1, 1, "wave", 13, 0)
    (root / "ntu" / MISSING_LIST).write_text("")
    quiet = lambda _: None  # noqa: E731
    jobs = prep_h36m.jobs(root / "h36m", (1,))
    prepare("h36m", prep_h36m.run, jobs, root / "prep_h36m", prep_h36m.options(), 1, log=quiet)
    opts = prep_ntu.options(clip_lengths=(T,))
    prepare("ntu", prep_ntu.run, prep_ntu.jobs(root / "ntu"), root / "prep_ntu", opts, 1, log=quiet)
    return root


def assert_same_h36m(a, b) -> None:
    (ra, fa), (rb, fb) = a, b
    assert (ra.recording.subject, ra.recording.stem, ra.recording.action, ra.frame) == (
        rb.recording.subject, rb.recording.stem, rb.recording.action, rb.frame)  # fmt: skip
    for key in ("uv", "xyz", "intrinsics"):
        np.testing.assert_array_equal(getattr(ra, key), getattr(rb, key), err_msg=key)
    np.testing.assert_allclose(ra.focal, rb.focal, rtol=1e-12)  # through videos.csv
    assert fa.images.dtype == fb.images.dtype == np.uint8 and fb.stored.shape == (2, 3)


def test_h36m_raw_and_prepared_frames_hold_the_same_records(world):
    raw = RawH36M(world / "h36m", (1,), None, 5)
    prep = PreparedH36M(world / "prep_h36m", (1,), None, 5, H36M_AUG, 256)
    assert len(raw) == len(prep) == 4 * 3  # frames 0, 5, 10 of 4 cameras
    assert [s.stem for s in raw.sequences] == [s.stem for s in prep.sequences]
    for i in range(len(raw)):
        record, frames = raw.read(i)
        assert frames.stored is None and frames.images.shape == (240, 320, 3)  # the original
        assert_same_h36m((record, frames), prep.read(i))
    with pytest.raises(ValueError, match="prepare again with wider ranges"):
        PreparedH36M(world / "prep_h36m", (1,), None, 5, NTU_AUG, 256)  # zooms out to 1.3


def test_h36m_chunks_hold_the_prepared_records(world):
    pytest.importorskip("litdata")
    from datamodules.prepare.chunks import write_chunks
    from datamodules.storage.chunks import H36MChunks

    write_chunks(world / "prep_h36m", world / "chunks", "h36m", splits=("train",))
    chunks = H36MChunks(world / "chunks" / "train", world / "cache")
    prep = PreparedH36M(world / "prep_h36m", (1,), None, 5, H36M_AUG, 256)
    assert len(chunks) == len(prep)
    for i in range(len(prep)):
        assert_same_h36m(prep.read(i), chunks.read(i))
        np.testing.assert_array_equal(prep.read(i)[1].images, chunks.read(i)[1].images)


def test_ntu_raw_and_prepared_videos_hold_the_same_poses(world):
    raw = RawNTU(world / "ntu", True, 60, every)
    prep = PreparedNTU(world / "prep_ntu", True, NEEDS, every)
    assert raw.names == prep.names and len(raw) == 3
    assert raw.frame_counts() == prep.frame_counts() == dict.fromkeys(raw.names, 13)
    idx = np.array([0, 2, 4, 6])
    for v in range(len(raw)):
        a, b = raw.read(v), prep.read(v)
        assert a.name == b.name and a.size == b.size == (320, 180)
        for key in ("xyz", "uv", "valid"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
        clip_a, clip_b = a.frames(idx), b.frames(idx)
        assert clip_a.stored is None and clip_a.images.shape == (T, 180, 320, 3)
        assert clip_b.stored.shape == (2, 3) and len(clip_b.images) == T
    clip = raw.read(0).take(idx + 1)
    assert clip.start == 1 and clip.xyz.shape == (T, 25, 3) and clip.valid.shape == (T, 25)


def test_ntu_sources_select_and_check(world):
    poses = RawNTU(world / "ntu", False, 60, lambda name: name.startswith("S001C001"))
    video = poses.read(0)
    assert len(poses.names) == 1 and poses.names[0].startswith("S001C001") and video.read is None
    assert video.frames(np.arange(T)) is None and video.size == (1920, 1080)  # colour pixels
    with pytest.raises(ValueError, match="prepare again"):  # a clip length not prepared
        PreparedNTU(world / "prep_ntu", True, replace(NEEDS, T=8), every)
