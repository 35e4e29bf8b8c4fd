"""The preparation step on the synthetic world at real resolution (tiny): same samples as the raw
videos, resume after an interruption, verification, lazy start-up."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from datamodules.base import SampleReadError
from datamodules.h36m import Human36MDataset
from datamodules.mpii import MPII_AUG, MPIIDataset
from datamodules.ntu import NTUDataset
from datamodules.prepare import h36m as prep_h36m
from datamodules.prepare import mpii as prep_mpii
from datamodules.prepare import ntu as prep_ntu
from datamodules.prepare.__main__ import main as prepare_main
from datamodules.prepare.runner import MANIFEST, load_prepared, prepare, run_jobs, verify
from datamodules.storage.prepared import PreparedError
from datamodules.synthetic.world import RESOLUTIONS
from datamodules.synthetic.write_h36m import write_h36m
from datamodules.synthetic.write_mpii import write_mpii
from datamodules.synthetic.write_ntu import MISSING_LIST, write_performance
from deephar.images import batch_to_float

QUALITY = 90
RESAMPLING_DB = 3.0  # allowance for the stored crop's area resize (a second resampling) over JPEG


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Human3.6M S1, one action, 4 cameras × 11 frames at 1000×1002; NTU one performance × 3
    cameras × 13 frames at 1920×1080; MPII 10 photos at 1280×720."""
    root = tmp_path_factory.mktemp("real")
    write_h36m(root / "h36m", (1,), 1, 11, seed=0, size=RESOLUTIONS["real"]["h36m"])
    write_performance(root / "ntu", 1, 1, "wave", 13, 0, size=RESOLUTIONS["real"]["ntu"])
    (root / "ntu" / MISSING_LIST).write_text("")
    write_mpii(root / "mpii", 8, 2, 0, seed=0, sizes=RESOLUTIONS["real"]["mpii"])
    return root


@pytest.fixture(scope="module")
def prepared(world, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("prepared")
    assert prepare_main(["h36m", str(world / "h36m"), "--out", str(out / "h36m"),
                         "--workers", "1", "--subjects", "1", "--quality", str(QUALITY)]) == 0  # fmt: skip
    jobs = prep_ntu.jobs(world / "ntu")
    opts = prep_ntu.options(quality=QUALITY, clip_lengths=(4,))
    prepare("ntu", prep_ntu.run, jobs, out / "ntu", opts, workers=2)
    argv = ["mpii", str(world / "mpii"), "--out", str(out / "mpii"), "--quality", str(QUALITY)]
    assert prepare_main([*argv, "--workers", "2"]) == 0
    return {"h36m": out / "h36m", "ntu": out / "ntu", "mpii": out / "mpii"}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two images in [−1, 1]."""
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(4.0 / mse))


def jpeg_psnr(image: np.ndarray) -> float:
    """PSNR of a (…, 3, S, S) network input against its own JPEG at QUALITY: the tolerance."""
    frames = image.reshape(-1, *image.shape[-3:])
    u8 = np.clip((np.moveaxis(frames, 1, -1) / 2 + 0.5) * 255 + 0.5, 0, 255).astype(np.uint8)
    back = [cv2.imdecode(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])[1], 1)
            for f in u8]  # fmt: skip
    return psnr(frames, np.moveaxis(np.stack(back) / 255.0 * 2 - 1, -1, 1))


def assert_same_sample(raw, prep, indices) -> None:
    assert len(raw) == len(prep)
    for i in indices:
        torch.manual_seed(i)  # the same augmentation draw on both paths
        a = batch_to_float(raw[i])  # images compared as the network's input
        torch.manual_seed(i)
        b = batch_to_float(prep[i])
        assert a.keys() == b.keys()
        for key in a:
            if key == "image":
                img_a, img_b = a[key].numpy(), b[key].numpy()
                assert psnr(img_a, img_b) >= jpeg_psnr(img_a) - RESAMPLING_DB, (i, key)
            elif isinstance(a[key], str):
                assert a[key] == b[key]
            else:
                assert torch.equal(a[key], b[key]), (i, key)  # crops, targets: identical


def test_h36m_prepared_gives_the_same_samples(world, prepared):
    kw = {"split": "train", "subjects": (1,), "augment": True, "frame_step": 5}
    raw = Human36MDataset(world / "h36m", **kw)
    prep = Human36MDataset(None, prepared=prepared["h36m"], **kw)
    assert [s.stem for s in raw.sequences] == [s.stem for s in prep.sequences]
    assert_same_sample(raw, prep, range(0, len(raw), 2))
    meta = json.loads((prepared["h36m"] / MANIFEST).read_text())
    assert meta["frames"] == 4 * 3 and meta["options"]["quality"] == QUALITY  # 11 frames, step 5
    stored = load_prepared(prepared["h36m"], "h36m", ()).frames["stored"]
    assert np.all(stored < load_prepared(prepared["h36m"], "h36m", ()).frames["side"])  # downsized
    with pytest.raises(FileNotFoundError, match=r"subjects \[5, 6, 7, 8\] were not prepared"):
        Human36MDataset(None, prepared=prepared["h36m"], split="train")  # protocol: S1 S5–S8
    with pytest.raises(ValueError, match="frame-step"):
        Human36MDataset(None, prepared=prepared["h36m"], split="train", subjects=(1,), frame_step=3)


def test_ntu_prepared_gives_the_same_clips(world, prepared):
    for split, sampling in (("train", "random"), ("train", "multi")):
        kw = {"split": split, "clip_length": 4, "augment": True, "clip_sampling": sampling}
        raw = NTUDataset(world / "ntu", **kw)
        prep = NTUDataset(None, prepared=prepared["ntu"], **kw)
        assert raw.names == prep.names and len(raw.names) == 3
        assert_same_sample(
            raw, prep, range(len(raw)) if sampling == "random" else [0, len(raw) - 1]
        )
    with pytest.raises(ValueError, match="clip lengths"):
        NTUDataset(None, prepared=prepared["ntu"], split="train", clip_length=8)
    with pytest.raises(ValueError, match="prepare again"):  # zooms out beyond the stored margin
        NTUDataset(None, prepared=prepared["ntu"], split="train", clip_length=4,
                   aug={"scales": (0.7, 1.0, 1.6), "translate": 40.0})  # fmt: skip


def test_mpii_prepared_gives_the_same_samples(world, prepared):
    """Every person of both splits, training draws (each scale, angle, flip) and evaluation: the
    crops and targets identical, the image within the JPEG tolerance of the raw reader's."""
    for split, augment in (("train", True), ("train", False), ("val", False)):
        prep = MPIIDataset(None, split, prepared=prepared["mpii"], augment=augment)
        raw = MPIIDataset(world / "mpii", split, augment=augment)
        assert list(raw.ann.image) == list(prep.ann.image)
        assert_same_sample(raw, prep, range(len(raw)))
    meta = json.loads((prepared["mpii"] / MANIFEST).read_text())
    assert meta["frames"] == (8 + 2) * 3 and meta["options"]["scales"] == [0.7, 1.0, 1.3]
    frames = load_prepared(prepared["mpii"], "mpii", ()).frames
    assert frames["stored"].max() <= 1.42 * 256  # one scale's region: ~1.41 S a side at 40°


def test_mpii_prepared_refuses_what_it_does_not_hold(prepared):
    with pytest.raises(ValueError, match="prepare again"):  # a scale not stored
        MPIIDataset(None, prepared=prepared["mpii"], aug=replace(MPII_AUG, scales=(0.5, 1.0)))
    with pytest.raises(ValueError, match="prepare again"):  # rotated beyond the stored margin
        MPIIDataset(None, prepared=prepared["mpii"], aug=replace(MPII_AUG, angle=60.0))
    with pytest.raises(ValueError, match="prepare again"):  # a larger input than prepared for
        MPIIDataset(None, prepared=prepared["mpii"], input_size=320)
    with pytest.raises(FileNotFoundError, match=MANIFEST):
        MPIIDataset(None, prepared=prepared["h36m"].parent / "absent")


def test_mpii_prepare_resumes_and_verifies(world, tmp_path):
    """Jobs of 3 persons: a rerun runs none, a lost crop redoes its job only, and the folder is
    verified (a truncated crop fails the command with one line naming it)."""
    root, out = world / "mpii", tmp_path / "mpii"
    jobs, opts = prep_mpii.jobs(root, per_job=3), prep_mpii.options(root, quality=QUALITY)
    assert len(jobs) == 4  # 10 persons
    prepare("mpii", prep_mpii.run, jobs, out, opts)
    assert run_jobs(prep_mpii.run, jobs, out, opts) == 0
    (out / "frames" / jobs[2].key / "000020.jpg").unlink()  # person 6, scale 0.7
    assert run_jobs(prep_mpii.run, jobs, out, opts) == 1
    victim = out / "frames" / jobs[1].key / "000010.jpg"
    victim.write_bytes(victim.read_bytes()[:100])
    problems = verify(out, pd.read_csv(out / "index.csv"))
    assert len(problems) == 1 and str(victim) in problems[0]


def test_mpii_prepare_names_a_missing_photo(world, tmp_path, capsys):
    import shutil

    root = tmp_path / "mpii"
    shutil.copytree(world / "mpii", root)
    photo = sorted((root / "images").glob("*.jpg"))[1]
    photo.unlink()
    argv = ["mpii", str(root), "--out", str(tmp_path / "out"), "--workers", "1"]
    assert prepare_main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and str(photo) in err[-1]


@pytest.mark.parametrize("name", ["h36m", "mpii"])
def test_a_deleted_index_row_is_named(world, prepared, tmp_path, name):
    """Probe (issue 28): one row of index.csv deleted → one line naming the folder and the
    missing frame (was: a traceback hinting at --frame-step on a folder prepared at step 5)."""
    import shutil

    folder = tmp_path / name
    shutil.copytree(prepared[name], folder)
    index = pd.read_csv(folder / "index.csv")
    gone = index.iloc[4]
    index.drop(index=4).to_csv(folder / "index.csv", index=False)
    key = pd.read_csv(folder / "videos.csv", dtype={"key": str})["key"][gone["video"]]
    with pytest.raises(PreparedError) as err:
        if name == "h36m":
            Human36MDataset(None, prepared=folder, split="train", subjects=(1,), frame_step=5)
        else:
            MPIIDataset(None, prepared=folder)
    message = str(err.value)
    assert "\n" not in message and str(folder) in message and "frame-step" not in message
    assert f"missing: {key} frame {gone['frame']}" in message
    if name == "mpii":  # the hint holds: the same command rebuilds the index (nothing redone)
        argv = ["mpii", str(world / "mpii"), "--out", str(folder), "--quality", str(QUALITY)]
        assert prepare_main([*argv, "--workers", "1"]) == 0
        assert len(MPIIDataset(None, prepared=folder)) == 8


PHOTOMETRIC = {"brightness": 0.4, "contrast": 0.4}


@pytest.mark.parametrize("name", ["h36m", "ntu"])
def test_prepared_samples_keep_the_photometric_augmentation(world, prepared, name):
    """Stored crops go through the same crop_sample as raw frames: photometric jitter included."""
    from datamodules.h36m import H36M_AUG
    from datamodules.ntu import NTU_AUG

    if name == "h36m":
        kw = {"split": "train", "subjects": (1,), "augment": True, "frame_step": 5}
        make, ranges = Human36MDataset, H36M_AUG
    else:
        kw = {"split": "train", "clip_length": 4, "augment": True}
        make, ranges = NTUDataset, NTU_AUG
    jitter = {"aug": replace(ranges, photometric=PHOTOMETRIC)}
    raw, prep = (
        make(world / name, **kw, **jitter),
        make(None, prepared=prepared[name], **kw, **jitter),
    )
    assert_same_sample(raw, prep, [0])
    plain = make(None, prepared=prepared[name], **kw)
    torch.manual_seed(0)
    a = batch_to_float(prep[0])["image"]
    torch.manual_seed(0)
    assert (
        a - batch_to_float(plain[0])["image"]
    ).abs().mean() > 0.01  # the jitter reached the stored crops


def test_resume_after_an_interruption_and_verification(world, tmp_path):
    jobs = prep_h36m.jobs(world / "h36m", (1,))
    opts, out, calls = prep_h36m.options(quality=QUALITY), tmp_path / "h36m", []

    def interrupted(job, folder, options):
        if len(calls) == 2:  # killed in the middle of the third video: one frame written
            (folder / "000000.jpg").write_bytes(b"\xff\xd8partial")
            raise KeyboardInterrupt
        calls.append(job.key)
        return prep_h36m.run(job, folder, options)

    with pytest.raises(KeyboardInterrupt):
        prepare("h36m", interrupted, jobs, out, opts)
    with pytest.raises(FileNotFoundError, match=MANIFEST):  # an incomplete folder is refused
        Human36MDataset(None, prepared=out)
    redone = []

    def counting(job, folder, options):
        redone.append(job.key)
        return prep_h36m.run(job, folder, options)

    assert run_jobs(counting, jobs, out, opts) == len(jobs) - 2
    assert redone == [j.key for j in jobs[2:]]  # the finished ones skipped, the partial one redone
    meta = prepare("h36m", counting, jobs, out, opts)  # nothing left to run: merge + verify
    assert len(redone) == len(jobs) - 2 and meta["videos"] == len(jobs)
    index = load_prepared(out, "h36m", ())
    victim = index.file(3)
    victim.write_bytes(victim.read_bytes()[:100])  # truncated after the run
    import pandas as pd

    problems = verify(out, pd.read_csv(out / "index.csv"))
    assert len(problems) == 1 and str(victim) in problems[0]
    assert run_jobs(counting, jobs, out, opts) == 1  # its video no longer matches its marker
    assert run_jobs(counting, jobs, out, opts | {"quality": QUALITY - 10}) == len(
        jobs
    )  # other options


def test_start_up_is_lazy(world, monkeypatch):
    """No video is opened to build the datasets; per-item data are numpy arrays."""

    def no_video(*args, **kwargs):
        raise AssertionError("a video was opened at start-up")

    monkeypatch.setattr("datamodules.storage.h36m_files.VideoReader", no_video)
    ds = Human36MDataset(world / "h36m", split="train", subjects=(1,))
    assert len(ds) == 4 * 3 and isinstance(ds.item_frame, np.ndarray)
    assert ds.item_seq.dtype.kind == "i" and ds.item_frame.dtype.kind == "i"


def test_frame_past_the_video_is_a_bad_sample(world, tmp_path):
    """Poses longer than the video (lazy start-up counts poses): the sample fails naming it."""
    import shutil

    root = tmp_path / "h36m"
    shutil.copytree(world / "h36m", root)
    video = next((root / "S1" / "Videos").glob("*.mp4"))
    from datamodules.synthetic.render import write_video
    from datamodules.video import VideoReader

    write_video(video, VideoReader(video).read(range(6)), 50)  # 6 of its 11 frames
    ds = Human36MDataset(root, split="train", subjects=(1,), augment=False)
    late = [i for i in range(len(ds)) if ds.sequences[ds.item_seq[i]].stem == video.stem][-1]
    with pytest.raises(SampleReadError, match="past the video"):
        ds[late]
    exact = Human36MDataset(root, split="train", subjects=(1,), video_lengths=True)
    assert len(exact) == len(ds) - 1


def test_mpii_large_people_decode_reduced_within_jpeg_tolerance(world, monkeypatch):
    """A person whose crop window spans ≥ 2× the input is decoded at 1/2 (or less) by JPEG DCT
    scaling: same crop and targets, image within the JPEG tolerance of the full decode."""
    import datamodules.mpii as mpii
    import datamodules.storage.mpii_files as mpii_files
    from datamodules.base import read_image

    ds = mpii.MPIIDataset(world / "mpii", split="train", augment=True)
    reduced, fast = [], mpii_files.read_for_crop

    def spy(path, window, size):
        image, matrix = fast(path, window, size)
        reduced.append(matrix is not None)
        return image, matrix

    def full(path, window, size):
        return read_image(path), None

    for i in range(len(ds)):
        monkeypatch.setattr(mpii_files, "read_for_crop", spy)
        torch.manual_seed(i)
        a = batch_to_float(ds[i])
        monkeypatch.setattr(mpii_files, "read_for_crop", full)
        torch.manual_seed(i)
        b = batch_to_float(ds[i])
        assert (
            psnr(a["image"].numpy(), b["image"].numpy())
            >= jpeg_psnr(b["image"].numpy()) - RESAMPLING_DB
        )
        assert all(torch.equal(a[k], b[k]) for k in a if k != "image" and not isinstance(a[k], str))
    assert any(reduced) and not all(reduced)  # large and small people in the world


def test_resume_after_sigkill(tmp_path):
    """The command killed (SIGKILL) after its first finished video: a rerun redoes only the rest."""
    import signal
    import subprocess
    import sys
    import time

    root, out = tmp_path / "h36m", tmp_path / "prepared"
    write_h36m(root, (1, 5), 1, 40, seed=0)  # 8 videos of 40 frames at 320×240
    argv = ["h36m", str(root), "--out", str(out), "--workers", "1", "--frame-step", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "datamodules.prepare", *argv],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    first = out / "parts" / "0000000.json"
    deadline = time.monotonic() + 120
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (out / MANIFEST).exists()
    jobs = prep_h36m.jobs(root, frame_step=1)
    from datamodules.prepare.runner import is_done

    done = [n for n, job in enumerate(jobs) if is_done(out, n, job)]
    assert 1 <= len(done) < len(jobs)
    redone = []

    def counting(job, folder, options):
        redone.append(job.key)
        return prep_h36m.run(job, folder, options)

    opts = prep_h36m.options()  # the command's defaults
    prepare("h36m", counting, jobs, out, opts)  # resumes, merges, verifies
    assert len(redone) == len(jobs) - len(done)
    assert json.loads((out / MANIFEST).read_text())["frames"] == len(jobs) * 40
