"""Training samples from LitData chunks, for many nodes: ``StreamingSource``.

``StreamingSource(input_dir, dataset, **reader options)`` reads a folder of
``datamodules.prepare.chunks.write_chunks`` — a local path or an object-store URL (``s3://…``;
cached under ``cache_dir``) — as the record source (``datamodules.storage.chunks``) of the
dataset's reader, so it returns the readers' samples (the same crops as the prepared folder). It
is map-style: inside ``MixedRatioDataModule`` the sampler deals each rank a disjoint shard of every
source and keeps every batch's counts exact, as for the other sources.
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from datamodules.h36m import Human36MDataset
from datamodules.ntu import NTUDataset
from datamodules.storage.chunks import H36MChunks, NTUChunks
from datamodules.transforms import AugmentRanges


class StreamingSource(Dataset):
    """Training samples from LitData chunks of ``write_chunks`` (local folder or object store).

    dataset "h36m": reader options layout, input_size, augment, aug; "ntu": also clip_length,
    subsample, clip_sampling (random or middle). ``len`` = items of the folder (all ranks: the
    sampler shards).
    """

    def __init__(
        self,
        input_dir: str | Path,
        dataset: str,
        cache_dir: str | Path | None = None,
        layout: str | None = None,
        input_size: int = 256,
        augment: bool = True,
        aug: AugmentRanges | dict | None = None,
        clip_length: int = 20,
        subsample: int | tuple[int, ...] | None = None,
        clip_sampling: str | None = None,
    ):
        self.input_dir, self.dataset = str(input_dir), dataset
        split = "train" if augment else "test"  # only the defaults follow it
        if dataset == "h36m":
            self.reader = Human36MDataset(
                None,
                split,
                layout or "pa17j",
                input_size,
                augment,
                aug=aug,
                source=H36MChunks(input_dir, cache_dir),
            )
        elif dataset == "ntu":
            self.reader = NTUDataset(
                None,
                split,
                layout=layout or "pa20j",
                clip_length=clip_length,
                clip_sampling=clip_sampling,
                subsample=subsample,
                input_size=input_size,
                augment=augment,
                aug=aug,
                source=NTUChunks(input_dir, cache_dir),
            )
        else:
            raise ValueError(f"StreamingSource: dataset must be 'h36m' or 'ntu', got {dataset!r}")

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, i: int) -> dict:
        return self.reader[int(i)]
