"""MPII preparation: per group of consecutive annotated persons, decode each photo once and store
every person's crop at each training scale.

MPII's augmentation draws its scale from a short list (``MPII_AUG``: 0.7, 1, 1.3) and evaluation
uses 1, so a person is stored once per scale s: the official crop (``person_crops``) scaled by s,
widened by the rotation / translation margin (``Margin.at(s)``, ``store_box``) and stored at the
resolution that crop needs (~1.41·S pixels a side at 40°). One region over all scales would be
1.83·w wide at the resolution of s = 0.7: 3.5× the pixels to decode for the same samples.

Frame number of person row p (its row in the annotation file, both splits) at scale k:
p·K + k, K the number of scales. Stored per person: the annotation arrays of ``MPIIAnnotations``
(image name, joints, valid, objpos, scale, head box, split, ids). Alphabet: n persons of a job,
K scales.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from datamodules.base import read_image
from datamodules.mpii import MPII_AUG
from datamodules.prepare.runner import Job, Part
from datamodules.prepare.store import Margin, cut, store_box, write_jpeg
from datamodules.storage.mpii_files import (
    MPIIAnnotations,
    find_annotation,
    load_annotations,
    person_crops,
)

PERSONS = 64  # persons per job (a job's marker and part): ~450 jobs for the release


def jobs(
    root: str | Path, annotation: str | Path | None = None, per_job: int = PERSONS
) -> list[Job]:
    """Jobs of ``per_job`` consecutive persons of the annotation file (both splits), each with
    its persons' annotation arrays; opens no image."""
    root = Path(root)
    ann = load_annotations(root, annotation)
    out = []
    for start in range(0, len(ann.image), per_job):
        rows = np.arange(start, min(start + per_job, len(ann.image)))
        persons = {k: v[rows] for k, v in vars(ann).items()}
        args = {"images": str(root / "images"), "rows": rows, "ann": persons}
        out.append(Job(f"{start // per_job:05d}", args))
    return out


def regions(ann: MPIIAnnotations, margin: Margin, scales: list[float]) -> dict[str, np.ndarray]:
    """The stored region of each person (n) at each scale (K), person-major (n·K rows): x0
    (n·K, 2), side, stored (n·K,) int32 (``store_box``)."""
    crops = person_crops(ann)
    boxes = [store_box(crops.center, crops.window, margin.at(s)) for s in scales]
    x0, side, stored = (np.stack([b[i] for b in boxes], axis=1) for i in range(3))
    return {"x0": x0.reshape(-1, 2), "side": side.reshape(-1), "stored": stored.reshape(-1)}


def run(job: Job, folder: Path, options: dict) -> Part:
    """Decode each photo of the job once and write its persons' crops at every scale."""
    margin, scales, rows = Margin(**options["margin"]), options["scales"], job.args["rows"]
    ann = MPIIAnnotations(**job.args["ann"])
    k = len(scales)
    region = regions(ann, margin, scales)
    frame = (rows[:, None] * k + np.arange(k)).reshape(-1)
    total, image, name = 0, None, None
    for j, f in enumerate(frame):
        if ann.image[j // k] != name:  # one photo's persons are consecutive: it is read once
            name = ann.image[j // k]
            image = read_image(Path(job.args["images"]) / str(name))
        crop = cut(image, tuple(region["x0"][j]), int(region["side"][j]), int(region["stored"][j]))
        total += write_jpeg(folder / f"{f:06d}.jpg", crop, options["quality"])
    return Part(
        video={"persons": len(rows), "first": int(rows[0])},
        frames={"frame": frame.astype(np.int32), **region},
        poses={name: np.asarray(v) for name, v in vars(ann).items()},
        bytes=total,
    )


def options(
    root: str | Path, annotation: str | Path | None = None, input_size: int = 256, quality: int = 90
) -> dict:
    """Job options: the margin of ``MPII_AUG`` at ``input_size`` (over all scales, the readers'
    check), the scales stored, the JPEG quality and the annotation file (a rerun with another
    file redoes every job)."""
    path = find_annotation(Path(root), annotation)
    return {
        "margin": asdict(Margin.of(MPII_AUG, input_size)),
        "scales": sorted({1.0, *map(float, MPII_AUG.scales)}),
        "quality": quality,
        "annotation": str(path.resolve()),
        "annotation_bytes": path.stat().st_size,
    }
