"""Evaluation never substitutes a sample: an unreadable one is reported by name and not scored.

Training wraps its datasets in ``RobustDataset`` (a corrupt sample is replaced by another one and
counted). Validation and test wrap theirs in ``ReportingDataset``: a sample that fails to load is
returned as an ``Unreadable`` record (its name and the reason); ``collate_readable`` drops such
records from the batch and lists them under ``batch[UNREADABLE_KEY]``; ``MissingLog`` takes that
list off every batch and keeps what the report needs: how many samples were scored, which were
not, and why ("scored 21 of 23 samples; 2 unreadable: …"). Samples are counted one by one,
their files listed once: twelve clips of four zero-byte videos read "scored 0 of 12 samples; 12
unreadable (4 files: …)".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from torch.utils.data import Dataset, default_collate

from datamodules.base import LOAD_ERRORS

#: the batch entry listing the samples of that batch that could not be read: [(name, reason)]
UNREADABLE_KEY = "unreadable"


class Unreadable(NamedTuple):
    """A sample that could not be loaded: its name (the file when known) and the reason."""

    name: str
    reason: str


def sample_name(dataset: Dataset, index: int, err: BaseException) -> str:
    """The file an error names (``SampleReadError.path``, ``OSError.filename``), else the reader
    and the index."""
    for attr in ("path", "filename"):
        if value := getattr(err, attr, None):
            return str(value)
    return f"{type(dataset).__name__}[{index}]"


class ReportingDataset(Dataset):
    """Evaluation wrapper: a sample that fails to load becomes ``Unreadable``, never another one.

    Attributes not found here are looked up on the wrapped dataset.
    """

    def __init__(self, dataset: Dataset, errors: tuple[type[BaseException], ...] = LOAD_ERRORS):
        self.dataset = dataset
        self.errors = errors

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except self.errors as err:
            reason = getattr(err, "reason", None) or str(err).splitlines()[0]
            return Unreadable(sample_name(self.dataset, index, err), reason)

    def __getattr__(self, name: str) -> Any:
        # "dataset" not yet set (unpickling): no infinite recursion; dunders such as
        # ``__getitems__`` must not reach the wrapped dataset, or a Subset above would bypass us
        if name == "dataset" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


def collate_readable(samples: list[Any], collate_fn: Callable = default_collate) -> dict:
    """Collate the readable samples; ``UNREADABLE_KEY`` lists the others as (name, reason)."""
    good = [s for s in samples if not isinstance(s, Unreadable)]
    batch = collate_fn(good) if good else {}
    batch[UNREADABLE_KEY] = [tuple(s) for s in samples if isinstance(s, Unreadable)]
    return batch


def batch_size(batch: Mapping[str, Any]) -> int:
    """Samples in a collated batch (its ``sample_id`` list, else the first tensor's rows)."""
    if "sample_id" in batch:
        return len(batch["sample_id"])
    for key, value in batch.items():
        if key != UNREADABLE_KEY and hasattr(value, "shape"):
            return int(value.shape[0])
    return 0


class MissingLog:
    """One evaluation's samples: ``scored``, ``failed`` (unreadable samples) and ``unreadable``
    (their files, each once: name → reason; several samples may share one video)."""

    def __init__(self) -> None:
        self.unreadable: dict[str, str] = {}
        self.scored = 0
        self.failed = 0

    def take(self, batch: Any) -> Any | None:
        """Record and remove ``batch[UNREADABLE_KEY]``; the batch, or None when nothing is left
        to score. Batches without the key (other collates) pass unchanged."""
        if not isinstance(batch, dict) or UNREADABLE_KEY not in batch:
            return batch
        batch = dict(batch)
        for name, reason in batch.pop(UNREADABLE_KEY):
            self.unreadable[str(name)] = str(reason)
            self.failed += 1
        size = batch_size(batch)
        self.scored += size
        return batch if size else None

    def track(self, batches: Iterable[Any]) -> Iterator[Any]:
        """The batches of ``batches`` that hold samples to score, recording the unreadable ones."""
        for batch in batches:
            if (kept := self.take(batch)) is not None:
                yield kept

    @property
    def total(self) -> int:
        return self.scored + self.failed

    def summary(self, what: str = "samples", show: int = 5) -> str:
        """ "scored 21 of 23 samples; 2 unreadable: a.jpg (reason), …", or when samples share
        files "scored 0 of 12 samples; 12 unreadable (4 files: a.mp4 (reason), …)"."""
        text = f"scored {self.scored} of {self.total} {what}"
        if self.unreadable:
            listed = [f"{n} ({r})" for n, r in list(self.unreadable.items())[:show]]
            more = len(self.unreadable) - len(listed)
            files = ", ".join(listed) + (f", and {more} more" if more else "")
            if self.failed == len(self.unreadable):  # a file per sample
                text += f"; {self.failed} unreadable: {files}"
            else:
                text += f"; {self.failed} unreadable ({len(self.unreadable)} files: {files})"
        return text

    def as_dict(self) -> dict[str, Any]:
        """For results.json: {"scored", "total", "unreadable": {file: reason}} (total − scored
        samples were unreadable)."""
        return {"scored": self.scored, "total": self.total, "unreadable": dict(self.unreadable)}

    @classmethod
    def merge(cls, logs: Iterable[MissingLog]) -> MissingLog:
        """One log of several (e.g. the ranks' shares of one evaluation)."""
        merged = cls()
        for log in logs:
            merged.scored += log.scored
            merged.failed += log.failed
            merged.unreadable.update(log.unreadable)
        return merged

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> MissingLog:
        """The log of an ``as_dict`` (e.g. read back from results.json)."""
        log = cls()
        log.scored, log.unreadable = int(values["scored"]), dict(values["unreadable"])
        log.failed = int(values.get("total", log.scored + len(log.unreadable))) - log.scored
        return log


class MissingSamples(RuntimeError):
    """Evaluation samples could not be read and the run was not told to allow it."""


def check_missing(logs: Mapping[str, MissingLog], allow: bool, flag: str) -> list[str]:
    """One line per evaluation of ``logs`` that met unreadable samples; unless ``allow``, raise
    ``MissingSamples`` with them (``flag`` names the switch that allows them)."""
    lines = [f"{name}: {log.summary()}" for name, log in logs.items() if log.unreadable]
    if lines and not allow:
        raise MissingSamples("; ".join(lines) + f" ({flag} scores the readable ones, exit 0)")
    return lines
