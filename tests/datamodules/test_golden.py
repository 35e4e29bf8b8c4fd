"""The samples of every reader and storage back-end, bit for bit as saved from the code of the
readers' restructuring (issue 21): a change of behaviour in a reader, a record source or the
preparation shows here as the first key that differs.

On a small synthetic world (fixed seeds) each case draws training samples (augmentation on) and
evaluation samples, each under its own ``torch.manual_seed``, from MPII, Human3.6M, Penn Action and
NTU read from the raw files, from a prepared folder (Human3.6M, NTU, MPII) and from LitData chunks
(Human3.6M, NTU). ``golden/samples.npz`` holds the values; regenerate it (only when a change of the
samples is intended, saying so in the commit) with::

    PYTHONPATH=$PWD/src:$PWD .venv/bin/python tests/datamodules/test_golden.py --write
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.h36m import Human36MDataset
from datamodules.mpii import MPIIDataset
from datamodules.ntu import NTUDataset
from datamodules.penn import PennActionDataset
from datamodules.prepare import h36m as prep_h36m
from datamodules.prepare import mpii as prep_mpii
from datamodules.prepare import ntu as prep_ntu
from datamodules.prepare.runner import prepare
from datamodules.synthetic.write_h36m import write_h36m
from datamodules.synthetic.write_mpii import write_mpii
from datamodules.synthetic.write_ntu import MISSING_LIST, write_performance
from datamodules.synthetic.write_penn import write_penn
from datamodules.transforms import normalize_image

GOLDEN = Path(__file__).parent / "golden" / "samples.npz"
SIZE, T = 32, 4  # crop side and clip length: small images keep the file small
PHOTO_AUG = {"angle": 20.0, "scales": (0.9, 1.1), "photometric": {"brightness": 0.3}}


def make_world(root: Path) -> dict[str, Path]:
    """Raw downloads of the four datasets, the prepared folders and the LitData chunks."""
    write_mpii(root / "mpii", 4, 2, 0, seed=0)
    write_h36m(root / "h36m", (1, 9), 1, 12, seed=0)  # 4 cameras × 12 frames per subject
    write_penn(root / "penn", 2, (10, 14), seed=0)
    for subject in (1, 3):  # xsub: subject 1 trains, subject 3 tests; 3 cameras each
        write_performance(root / "ntu", subject, 1, "wave", 13, 0)
    (root / "ntu" / MISSING_LIST).write_text("")
    out = {k: root / k for k in ("mpii", "h36m", "penn", "ntu")}
    jobs = prep_h36m.jobs(root / "h36m", (1, 9))
    prepare("h36m", prep_h36m.run, jobs, root / "prep_h36m", prep_h36m.options(), 1, log=_quiet)
    jobs = prep_ntu.jobs(root / "ntu")
    opts = prep_ntu.options(clip_lengths=(T,))
    prepare("ntu", prep_ntu.run, jobs, root / "prep_ntu", opts, 1, log=_quiet)
    jobs = prep_mpii.jobs(root / "mpii")
    opts = prep_mpii.options(root / "mpii")
    prepare("mpii", prep_mpii.run, jobs, root / "prep_mpii", opts, 1, log=_quiet)
    out |= {"prep_h36m": root / "prep_h36m", "prep_ntu": root / "prep_ntu"}
    out |= {"prep_mpii": root / "prep_mpii"}
    try:
        from datamodules.prepare.chunks import write_chunks

        for name in ("h36m", "ntu"):
            write_chunks(out[f"prep_{name}"], root / f"chunks_{name}", name, chunk_bytes="256KB")
            out[f"chunks_{name}"] = root / f"chunks_{name}"
    except ImportError:  # litdata absent: the streaming cases are skipped
        pass
    return out


def _quiet(_: str) -> None:
    pass


def _streaming(w: dict[str, Path], name: str, split: str, **kw):
    from datamodules.streaming import StreamingSource

    if f"chunks_{name}" not in w:
        pytest.skip("litdata is not installed")
    cache = w[f"chunks_{name}"].parent / f"cache_{name}_{split}"
    return StreamingSource(w[f"chunks_{name}"] / split, name, cache_dir=cache, input_size=SIZE,
                           **kw)  # fmt: skip


NTU_KW = {"clip_length": T, "input_size": SIZE}
H36M_TRAIN = {"split": "train", "subjects": (1,), "input_size": SIZE}
H36M_TEST = {"split": "test", "subjects": (9,), "input_size": SIZE}

#: case name → (reader from the world's folders, indices drawn)
CASES: dict[str, tuple[Callable[[dict[str, Path]], torch.utils.data.Dataset], tuple[int, ...]]] = {
    "mpii/raw/train": (lambda w: MPIIDataset(w["mpii"], "train", input_size=SIZE), (0, 1, 2, 3)),
    "mpii/raw/train_photometric": (
        lambda w: MPIIDataset(w["mpii"], "train", input_size=SIZE, aug=PHOTO_AUG), (0, 3)),
    "mpii/raw/val": (lambda w: MPIIDataset(w["mpii"], "val", input_size=SIZE), (0, 1)),
    "h36m/raw/train": (lambda w: Human36MDataset(w["h36m"], **H36M_TRAIN), (0, 3, 7, 11)),
    "h36m/raw/test": (lambda w: Human36MDataset(w["h36m"], **H36M_TEST), (0, 3)),
    "h36m/prepared/train": (
        lambda w: Human36MDataset(None, prepared=w["prep_h36m"], **H36M_TRAIN), (0, 3, 7, 11)),
    "h36m/prepared/test": (
        lambda w: Human36MDataset(None, prepared=w["prep_h36m"], **H36M_TEST), (0, 3)),
    "h36m/streaming/train": (lambda w: _streaming(w, "h36m", "train"), (0, 3, 7, 11)),
    "h36m/streaming/test": (lambda w: _streaming(w, "h36m", "test", augment=False), (0, 3)),
    "penn/raw/train": (
        lambda w: PennActionDataset(w["penn"], "train", clip_length=T, input_size=SIZE), (0, 1, 5, 14)),
    "penn/raw/test": (
        lambda w: PennActionDataset(w["penn"], "test", clip_length=T, input_size=SIZE), (0, 7)),
    "penn/raw/test_multi_flip": (
        lambda w: PennActionDataset(w["penn"], "test", clip_length=T, input_size=SIZE,
                                    clip_sampling="multi", flip_clips=True), (0, -1)),
    "penn/raw/train_poses": (
        lambda w: PennActionDataset(w["penn"], "train", clip_length=T, mode="poses"), (0, 2)),
    "ntu/raw/train": (lambda w: NTUDataset(w["ntu"], "train", **NTU_KW), (0, 1, 2, 0)),
    "ntu/raw/test": (lambda w: NTUDataset(w["ntu"], "test", **NTU_KW), (0, 2)),
    "ntu/raw/test_multi": (
        lambda w: NTUDataset(w["ntu"], "test", clip_sampling="multi", **NTU_KW), (0, -1)),
    "ntu/raw/train_poses": (lambda w: NTUDataset(w["ntu"], "train", mode="poses", **NTU_KW), (0, 1)),
    "ntu/prepared/train": (
        lambda w: NTUDataset(None, "train", prepared=w["prep_ntu"], **NTU_KW), (0, 1, 2, 0)),
    "ntu/prepared/test": (lambda w: NTUDataset(None, "test", prepared=w["prep_ntu"], **NTU_KW), (0, 2)),
    "ntu/prepared/test_multi": (
        lambda w: NTUDataset(None, "test", prepared=w["prep_ntu"], clip_sampling="multi", **NTU_KW),
        (0, -1)),
    "ntu/prepared/train_poses": (
        lambda w: NTUDataset(None, "train", prepared=w["prep_ntu"], mode="poses", **NTU_KW), (0, 1)),
    "ntu/streaming/train": (lambda w: _streaming(w, "ntu", "train", clip_length=T), (0, 1, 2, 0)),
    "ntu/streaming/test": (
        lambda w: _streaming(w, "ntu", "test", clip_length=T, augment=False), (0, 2)),
    "mpii/prepared/train": (
        lambda w: MPIIDataset(None, "train", input_size=SIZE, prepared=w["prep_mpii"]), (0, 1, 2, 3)),
    "mpii/prepared/val": (
        lambda w: MPIIDataset(None, "val", input_size=SIZE, prepared=w["prep_mpii"]), (0, 1)),
}  # fmt: skip


def draw(case: str, world: dict[str, Path]) -> Iterator[tuple[str, dict]]:
    """(key prefix, sample) of every index of ``case``, each drawn under its own torch seed."""
    build, indices = CASES[case]
    dataset = build(world)
    for k, i in enumerate(indices):
        torch.manual_seed(1000 * list(CASES).index(case) + k)
        yield f"{case}/{k}", dataset[i % len(dataset)]


def _comparable(sample: dict) -> dict[str, np.ndarray]:
    """The sample as NumPy arrays (strings as str arrays); a uint8 ``image`` (normalised on the
    device) becomes the float32 [−1, 1] image through the project's conversion, with the sample's
    per-channel gamma ``chpower`` when it carries one (that entry is then consumed)."""
    out = {
        k: v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for k, v in sample.items()
    }
    if "image" in out and out["image"].dtype == np.uint8:
        image, chpower = out["image"], out.pop("chpower", None)
        channels_last = np.moveaxis(image, -3, -1) if image.shape[-3] == 3 else image
        out["image"] = normalize_image(channels_last, chpower)
    return out


def flatten(prefix: str, sample: dict) -> dict[str, np.ndarray]:
    return {f"{prefix}/{key}": value for key, value in _comparable(sample).items()}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    return make_world(tmp_path_factory.mktemp("golden"))


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as saved:
        return dict(saved)


@pytest.mark.parametrize("case", list(CASES))
def test_samples_equal_the_saved_ones(case, world, golden):
    for prefix, sample in draw(case, world):
        saved = {k.removeprefix(f"{prefix}/"): v for k, v in golden.items()
                 if k.startswith(f"{prefix}/")}  # fmt: skip
        got = _comparable(sample)
        assert sorted(got) == sorted(saved), prefix
        for key, value in got.items():
            assert value.dtype == saved[key].dtype or key == "image", (prefix, key)
            assert value.shape == saved[key].shape, (prefix, key)
            if key == "image" and sample[key].dtype == torch.uint8:
                np.testing.assert_allclose(value, saved[key], rtol=0, atol=1e-6, err_msg=prefix)
            else:
                assert np.array_equal(value, saved[key]), (prefix, key)


def write_golden(root: Path) -> None:
    world = make_world(root)
    arrays = {}
    for case in CASES:
        for prefix, sample in draw(case, world):
            arrays |= flatten(prefix, sample)
    GOLDEN.parent.mkdir(exist_ok=True)
    np.savez_compressed(GOLDEN, **arrays)
    print(f"{GOLDEN}: {len(arrays)} arrays, {GOLDEN.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__" and "--write" in sys.argv:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        write_golden(Path(tmp))
