"""MPII Human Pose: the official .mat or the common JSON → single-person crops (2D samples).

Layout on disk (``root``): ``images/*.jpg`` plus one annotation file, found in this order unless
``annotation`` names it: ``mpii_annotations.json``, ``annot/mpii_annotations.json``,
``mpii_human_pose_v1_u12_1.mat``, ``annot/…``, ``mpii_human_pose_v1_u12_2/…``.

Split: the standard train/validation split of Tompson et al. (2,958 validation persons). The JSON
carries it as ``isValidation``; for the official .mat it comes from the validation list
``detections.mat`` (``RELEASE_img_index`` / ``RELEASE_person_index``, 1-based), looked up beside the
.mat or in ``root``/``root/annot``; train = every other annotated person of the ``img_train`` images.

Coordinates in both files are 1-based MATLAB pixels; they become 0-based here. ``pck_ref`` =
0.6 × head-box diagonal; the JSON has no head box, so boxes are joined by (image index, person
index) from a .mat found as above (``detections.mat`` covers the validation persons, the official
.mat every person); where none is known ``pck_ref`` is 0 (PCKh skips such samples).

With ``prepared=`` (a folder of ``python -m datamodules.prepare mpii``) the persons and their
stored crops are read from it (``storage.mpii_prepared.PreparedMPII``); the raw root is not read.

Structure: ``MPIISamples.make_sample`` builds a person's sample; ``storage.mpii_files`` parses the
annotations and reads the images (``MPIIFiles``). Alphabet: N persons, J joints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from torch.utils.data import Dataset

from datamodules.base import no_3d, sample_rng, to_tensors
from datamodules.layouts import MPII, Layout, convert, get_layout
from datamodules.storage.mpii_files import (  # noqa: F401  (re-exported: the reader's public names)
    JSON_NAMES,
    MAT_NAMES,
    VAL_LIST_NAMES,
    MPIIAnnotations,
    MPIIFiles,
    PersonCrops,
    as_list,
    find,
    find_annotation,
    head_boxes,
    load_annotations,
    load_json,
    load_mat,
    load_release,
    number,
    pair_keys,
    parse_annolist,
    parse_rect,
    person_crops,
    val_pairs,
)
from datamodules.storage.mpii_prepared import PreparedMPII
from datamodules.storage.records import Frames
from datamodules.transforms import AugmentParams, AugmentRanges, augment_ranges, crop_sample

MPII_AUG = AugmentRanges(angle=40.0, scales=(0.7, 1.0, 1.3), flip=True, chpower=(0.9, 1.1))


@dataclass(frozen=True)
class MPIIPerson:
    """One person: image name, joints (J, 2) px and valid (J,) in the reader's layout, crop centre
    (2,) and window (px), PCKh reference, 1-based person index in its image."""

    image: str
    joints: np.ndarray
    valid: np.ndarray
    center: np.ndarray
    window: float
    pck_ref: np.float32
    person_index: int


@dataclass(frozen=True)
class MPIISamples:
    """The MPII sample builder: the crop of a person and its 2D targets in ``layout``."""

    layout: Layout
    input_size: int

    def make_sample(self, record: MPIIPerson, frames: Frames, params: AugmentParams) -> dict:
        """The sample dict (``datamodules.sample``) of a person; frames.images (H, W, 3) uint8 the
        photo, or a reduced decode of it with ``frames.stored``."""
        out = crop_sample(
            frames.images,
            record.joints,
            record.valid,
            record.center,
            record.window,
            self.input_size,
            self.layout.flip,
            params,
            frames.stored,
        )
        out.update(no_3d(len(self.layout)))
        out.update(
            pck_ref=record.pck_ref,
            action=np.int64(-1),
            dataset="mpii",
            sample_id=f"mpii/{record.image}/{record.person_index}",
        )
        return out


class MPIIDataset(Dataset):
    """Single-person MPII crops as sample dicts (see ``datamodules.sample``), 2D only.

    Crop (official): s = 1.25·scale, centre = objpos + (0, 12·s) (y down), square window 200·s
    (× the augmentation scale), resized to ``input_size``. ``augment`` defaults to split == "train".

    ``reduced_decode`` (config: ``data.sources.<key>.options.reduced_decode``): a person whose
    window spans f ≥ 2 crop sides is decoded at 1/f (JPEG DCT scaling, f ∈ {2, 4, 8}) and warped
    from there; ``crop``, the targets and every coordinate stay in original pixels (bit-identical
    to the full decode), only the image differs. On by default for training and evaluation alike:
    the DCT-domain downscale is an anti-aliased downsample (each f×f block's low frequencies),
    whereas the bilinear warp of a full image by a factor > 2 skips pixels and aliases; it is
    also the cheaper read (docs/performance.md, "The loader"). False: every image decoded at full size.

    ``prepared`` (config: ``data.sources.<key>.prepared``): a folder of ``python -m
    datamodules.prepare mpii`` read instead of ``root`` (``root`` may be None): the same persons
    and samples from stored person crops (``reduced_decode`` does not apply).
    """

    def __init__(
        self,
        root: str | Path | None,
        split: Literal["train", "val"] = "train",
        layout: str = "pa16j",
        input_size: int = 256,
        augment: bool | None = None,
        annotation: str | Path | None = None,
        aug: AugmentRanges | dict | None = None,
        reduced_decode: bool = True,
        prepared: str | Path | None = None,
    ):
        if split not in ("train", "val"):
            raise ValueError(f"MPIIDataset: split must be 'train' or 'val', got {split!r}")
        self.aug = augment_ranges(aug, MPII_AUG)
        if prepared:
            self.source = PreparedMPII(prepared, split == "val", self.aug, input_size)
        elif root is None:
            raise ValueError("MPIIDataset: give the MPII root or a prepared folder")
        else:
            self.source = MPIIFiles(root, split == "val", annotation, reduced_decode)
        self.layout, self.input_size = get_layout(layout), input_size
        self.augment = split == "train" if augment is None else augment
        self.build = MPIISamples(self.layout, input_size)
        crops = person_crops(self.ann)
        self.center, self.window = crops.center, crops.window
        self.joints, self.valid = convert(self.ann.joints, self.ann.valid, MPII, self.layout)
        self.pck_ref = self.ann.head_size()

    @property
    def ann(self) -> MPIIAnnotations:
        """The persons of the split."""
        return self.source.ann

    def __len__(self) -> int:
        return len(self.source)

    def record(self, i: int) -> MPIIPerson:
        """Person ``i`` in the reader's layout, with its official crop."""
        return MPIIPerson(
            str(self.ann.image[i]),
            self.joints[i],
            self.valid[i],
            self.center[i],
            self.window[i],
            self.pck_ref[i],
            self.ann.person_index[i],
        )

    def __getitem__(self, i: int) -> dict:
        params = self.aug.sample(sample_rng()) if self.augment else AugmentParams()
        # a large person is decoded at 1/2, 1/4 or 1/8 (JPEG DCT scaling), keeping the crop's detail
        frames = self.source.frames(i, self.window[i] * params.scale, self.input_size)
        return to_tensors(self.build.make_sample(self.record(i), frames, params))
