"""Validation splits carved from the training data of every dataset (Penn Action, NTU, Human3.6M,
MPII), by source: what is held out is what the test protocol holds out.

Penn Action, NTU RGB+D and Human3.6M (protocol 1: S1 S5 S6 S7 S8 / S9 S11) publish a training and
a test split only; MPII's public validation images are the test set here (its test annotations
are not public), so its selection split is carved too. Choosing checkpoints, early
stopping or learning-rate steps on the test split reports the best of many looks at it, so a
fixed, seeded share of the TRAINING data is held out instead and the test split is scored once.

What is held out is a *group* of items from one source, never single clips, so no source reaches
both sides (docs/datasets.md gives the reasons):

- Penn Action: runs of consecutive training ids of one action (``0001-0003``), stratified by
  action. Consecutive ids are often cut from the same footage and the official split assigns whole
  runs; the test ids are the gaps, so the runs are computable from the training videos alone. A
  carve of single videos left the siblings of each held-out video in training (~3 points
  optimistic).
- NTU cross-subject: whole subjects (``Pppp``), the protocol's own unit (the test subjects are
  unseen too); no stratification (every subject performs every action). With a single training
  subject (tiny synthetic worlds) it falls back to performances, as cross-view.
- NTU cross-view / cross-setup: performances ``SsssPpppRrrrAaaa`` (the same performance filmed by
  the other cameras goes with it), stratified by action.
- Human3.6M: whole training subjects (``S<n>``; the test subjects S9 / S11 are never read by a
  training reader), as the protocol tests on unseen subjects. With a single training subject it
  falls back to recordings ``S<n>/<Action file name>`` with their four cameras.
- MPII: images (all annotated people of an image go together), not stratified. The official .mat
  names an image's source video (``vididx``), but the readers do not parse it and the common JSON
  does not carry it: images of one video can fall on both sides.

``carve`` is a pure function of (keys, strata, fraction, seed) and ``fold_keys`` of (keys, strata,
folds, fold, seed): the same seed gives the same split on every machine, whatever the file order
or the training seed.
Alphabet: N items, G groups, K folds.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from torch.utils.data import Dataset, Subset

from datamodules.h36m import Human36MDataset
from datamodules.mpii import MPIIDataset
from datamodules.ntu import NTUDataset
from datamodules.penn import PennActionDataset

CARVED = (
    "penn",
    "ntu",
    "h36m",
    "mpii",
)  # datasets whose validation split is carved from their training split


def carve(
    keys: Sequence[str], strata: Sequence[Hashable] | None, fraction: float, seed: int
) -> set[str]:
    """The held-out keys: per stratum, round(fraction × n) of its distinct keys (at least one
    when fraction > 0 and the stratum has two or more), drawn by a generator seeded from ``seed``
    and the stratum's name; ``keys`` are sorted first, so the input order does not matter. When
    every stratum holds a single key (tiny synthetic worlds), max(1, round(fraction × n)) keys are
    drawn regardless of strata."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    by_stratum: dict[Hashable, set[str]] = defaultdict(set)
    for i, key in enumerate(keys):
        by_stratum[None if strata is None else strata[i]].add(key)
    held: set[str] = set()
    for stratum, members in by_stratum.items():
        ordered = sorted(members)
        count = int(round(fraction * len(ordered)))
        if fraction > 0 and len(ordered) > 1:
            count = min(max(count, 1), len(ordered) - 1)
        held |= {ordered[i] for i in _rng(seed, stratum).permutation(len(ordered))[:count]}
    everything = sorted(set(keys))
    if not held and fraction > 0 and len(everything) > 1:  # each stratum one key: unstratified
        count = max(1, int(round(fraction * len(everything))))
        held = {
            everything[i] for i in _rng(seed, "unstratified").permutation(len(everything))[:count]
        }
    return held


def _rng(seed: int, name: object) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def fold_keys(
    keys: Sequence[str],
    strata: Sequence[Hashable] | None,
    folds: int,
    fold: int,
    seed: int,
) -> set[str]:
    """The keys of fold ``fold`` of a grouped, stratified ``folds``-fold partition: per stratum
    (sorted by name), its distinct keys in a seeded order, largest first (size: the key's
    occurrences in ``keys``, e.g. a run's videos), each go to the fold with the fewest of that
    stratum (ties: the fewest overall, then the lowest index). Every key lands in exactly one fold; the
    folds of a stratum differ by at most one largest group."""
    if folds < 2 or not 0 <= fold < folds:
        raise ValueError(
            f"cross-validation needs folds >= 2 and 0 <= fold < folds, got "
            f"folds={folds}, fold={fold}"
        )
    size: dict[str, int] = defaultdict(int)
    by_stratum: dict[Hashable, set[str]] = defaultdict(set)
    for i, key in enumerate(keys):
        by_stratum[None if strata is None else strata[i]].add(key)
        size[key] += 1
    if len(size) < folds:
        raise ValueError(f"{folds} folds need at least {folds} groups, got {len(size)}")
    total = np.zeros(folds, np.int64)
    chosen: set[str] = set()
    for stratum in sorted(by_stratum, key=str):
        ordered = sorted(by_stratum[stratum])
        ordered = [ordered[i] for i in _rng(seed, stratum).permutation(len(ordered))]
        ordered.sort(key=lambda k: -size[k])  # stable: the seeded order among equal sizes
        here = np.zeros(folds, np.int64)
        for key in ordered:
            f = min(range(folds), key=lambda f: (here[f], total[f], f))
            here[f] += size[key]
            total[f] += size[key]
            if f == fold:
                chosen.add(key)
    return chosen


def penn_runs(video_ids: Sequence[str], actions: Sequence[int]) -> list[str]:
    """The run of every video (``"<first id>-<last id>"``): maximal runs of consecutive ids of
    one action among ``video_ids`` (numeric file stems, e.g. "0042"); an id missing from the list
    (a test video) or a change of action ends a run."""
    try:
        numbers = [int(v) for v in video_ids]
    except ValueError as err:
        raise ValueError(
            f"Penn Action runs need numeric video ids (labels/NNNN.mat): {err}"
        ) from err
    order = sorted(range(len(numbers)), key=lambda i: numbers[i])
    runs: list[list[int]] = []
    for i in order:
        prev = runs[-1][-1] if runs else None
        if prev is not None and numbers[i] == numbers[prev] + 1 and actions[i] == actions[prev]:
            runs[-1].append(i)
        else:
            runs.append([i])
    out = [""] * len(numbers)
    for run in runs:
        for i in run:
            out[i] = f"{video_ids[run[0]]}-{video_ids[run[-1]]}"
    return out


@dataclass(frozen=True)
class Groups:
    """The held-out units of a training reader: ``keys`` (G,) group keys (several groups may share
    one, e.g. a Human3.6M recording's four cameras), ``strata`` (G,) or None (not stratified),
    ``of_item`` (N,) the group of every item. Only groups that hold items are listed."""

    keys: list[str]
    strata: list[Hashable] | None
    of_item: np.ndarray

    def item_keys(self, items: Sequence[int] | np.ndarray) -> list[str]:
        """The group key of each item of ``items``."""
        return [self.keys[g] for g in self.of_item[np.asarray(items, np.int64)]]


def _groups(unit_of_item: Sequence[int] | np.ndarray, key, stratum=None) -> Groups:
    """Groups from the unit (video, recording, person…) of every item: ``key(unit)`` and
    ``stratum(unit)`` for the units that hold items."""
    units, of_item = np.unique(np.asarray(unit_of_item, np.int64), return_inverse=True)
    keys = [key(int(u)) for u in units]
    strata = None if stratum is None else [stratum(int(u)) for u in units]
    return Groups(keys, strata, of_item.astype(np.int64))


def item_groups(dataset: Dataset) -> Groups:
    """The groups of a training reader (see the module doc)."""
    if isinstance(dataset, PennActionDataset):
        videos = dataset.videos
        runs = penn_runs([v.video_id for v in videos], [v.action for v in videos])
        return _groups([v for v, _ in dataset.items], lambda v: runs[v], lambda v: videos[v].action)
    if isinstance(dataset, NTUDataset):
        rows = [v for v, _ in dataset.items] if dataset.items is not None else range(len(dataset))
        names = dataset.names
        subjects = {names[v][8:12] for v in rows}  # Pppp
        if dataset.benchmark == "xsub" and len(subjects) > 1:
            return _groups(rows, lambda v: names[v][8:12])
        # SsssPpppRrrrAaaa, stratified by Aaaa
        return _groups(rows, lambda v: names[v][:4] + names[v][8:], lambda v: names[v][-4:])
    if isinstance(dataset, Human36MDataset):
        sequences = dataset.sequences
        if len({sequences[s].subject for s in np.unique(dataset.item_seq)}) > 1:
            return _groups(dataset.item_seq, lambda s: f"S{sequences[s].subject}")
        recordings = [f"S{r.subject}/{r.stem.rpartition('.')[0]}" for r in sequences]
        return _groups(dataset.item_seq, lambda s: recordings[s])
    if isinstance(dataset, MPIIDataset):
        images = [str(name) for name in dataset.ann.image]
        return _groups(np.arange(len(images)), lambda i: images[i])
    raise TypeError(f"no carved validation split for {type(dataset).__name__}")


def held_out_keys(
    dataset: Dataset, fraction: float, seed: int, folds: int = 0, fold: int = 0
) -> set[str]:
    """The validation group keys of a training reader: ``carve`` over its ``item_groups``, or
    with ``folds`` >= 2 the groups of fold ``fold`` (``fold_keys``: folds balanced by units —
    videos, recordings — not clips, so a training and an evaluating reader agree)."""
    groups = item_groups(dataset)
    if folds:
        return fold_keys(groups.keys, groups.strata, folds, fold, seed)
    return carve(groups.keys, groups.strata, fraction, seed)


def carved_part(dataset: Dataset, held: set[str], part: str) -> Subset:
    """The items of ``dataset`` in the held-out groups (part "val") or the others ("train")."""
    if part not in ("train", "val"):
        raise ValueError(f"carved part must be 'train' or 'val', got {part!r}")
    groups = item_groups(dataset)
    in_held = np.array([k in held for k in groups.keys], bool)
    keep = np.flatnonzero(in_held[groups.of_item] == (part == "val"))
    return Subset(dataset, keep.tolist())
