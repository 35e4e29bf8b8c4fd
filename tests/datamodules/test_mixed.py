"""MixedRatioDataModule: fixed per-source counts, epoch length, independent cycling, DDP sharding."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import Dataset, DistributedSampler

from datamodules import mixed
from datamodules.base import SampleReadError
from datamodules.missing import ReportingDataset
from datamodules.mixed import MixedCollate, MixedRatioDataModule, init_worker
from experiments.data_failures import LogDataFailures
from experiments.distributed import ReleaseProcessGroup


class Tiny(Dataset):
    """n samples named "<name>/<i>"; clips carry a leading T = 3."""

    def __init__(self, name: str, n: int, clip: bool = False):
        self.name, self.n, self.clip = name, n, clip

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        sample = {"dataset": self.name, "sample_id": f"{self.name}/{i}"}
        sample["pose"] = torch.full((3, 4, 3) if self.clip else (4, 3), float(i))
        if self.clip:
            sample["video_id"] = f"{self.name}/v{i // 2}"
        return sample


def _module(sizes, shares, batch_size, steps=None, **kwargs):
    train = {name: Tiny(name, n) for name, n in sizes.items()}
    return MixedRatioDataModule(train, shares, batch_size, steps_per_epoch=steps, **kwargs)


def _epoch_ids(loader, epoch=0):
    loader.sampler.set_epoch(epoch)
    return [batch["sample_id"] for batch in loader]


def test_every_batch_has_the_configured_counts():
    dm = _module({"a": 50, "b": 7, "c": 30}, {"a": 45, "b": 45, "c": 10}, 24, steps=9)
    loader = dm.train_dataloader()
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        batches = list(loader)
        assert len(batches) == 9
        for batch in batches:
            assert Counter(batch["dataset"]) == {"a": 11, "b": 11, "c": 2}
            # laid out in source order, the sample ids matching their source
            assert batch["dataset"] == ["a"] * 11 + ["b"] * 11 + ["c"] * 2
            assert all(s.startswith(d + "/") for s, d in zip(batch["sample_id"], batch["dataset"]))
            assert batch["pose"].shape == (24, 4, 3)


def test_epoch_length_configured_and_official_default():
    dm = _module({"a": 10, "b": 3}, {"a": 3, "b": 1}, 4, steps=5)
    assert len(dm.train_dataloader()) == 5
    # official: max(ceil(10 / 3), ceil(3 / 1)) = 4 steps (datamodules.sampling.default_steps)
    loader = _module({"a": 10, "b": 3}, {"a": 3, "b": 1}, 4).train_dataloader()
    assert len(loader) == 4 and len(list(loader)) == 4


def test_sources_cycle_independently_with_a_reshuffle_per_pass():
    dm = _module({"big": 100, "small": 5}, {"big": 2, "small": 2}, 4, steps=10)
    ids = [i for batch in _epoch_ids(dm.train_dataloader()) for i in batch]
    small = [i for i in ids if i.startswith("small/")]
    big = [i for i in ids if i.startswith("big/")]
    assert len(small) == 20
    passes = [small[k : k + 5] for k in range(0, 20, 5)]
    assert all(sorted(p) == [f"small/{i}" for i in range(5)] for p in passes)  # full passes
    assert len({tuple(p) for p in passes}) > 1  # re-shuffled between passes
    assert len(set(big)) == 20  # the big source is not exhausted: no repeats


def test_order_is_seeded_and_changes_with_the_epoch():
    loader = _module({"a": 40, "b": 40}, {"a": 1, "b": 1}, 4, steps=5, seed=3).train_dataloader()
    assert _epoch_ids(loader, 0) == _epoch_ids(loader, 0)
    assert _epoch_ids(loader, 0) != _epoch_ids(loader, 1)
    other = _module({"a": 40, "b": 40}, {"a": 1, "b": 1}, 4, steps=5, seed=4).train_dataloader()
    assert _epoch_ids(other, 0) != _epoch_ids(loader, 0)


def test_simulated_ddp_ranks_draw_disjoint_samples_with_the_same_counts():
    sizes, shares = {"a": 41, "b": 9}, {"a": 3, "b": 1}
    seen = []
    for rank in (0, 1):
        dm = _module(sizes, shares, 4, steps=12, rank=rank, world_size=2)
        loader = dm.train_dataloader()
        assert isinstance(loader.sampler, DistributedSampler)  # Lightning will not replace it
        loader.sampler.set_epoch(2)
        batches = list(loader)
        assert all(Counter(b["dataset"]) == {"a": 3, "b": 1} for b in batches)
        seen.append({i for b in batches for i in b["sample_id"]})
    assert not seen[0] & seen[1]
    # 12 steps × 1 "b" per rank > 9/2 samples: every "b" sample is drawn by one of the ranks
    assert {i for s in seen for i in s if i.startswith("b/")} == {f"b/{i}" for i in range(9)}


def test_groups_keep_images_and_clips_apart():
    train = {"mpii": Tiny("mpii", 10), "h36m": Tiny("h36m", 10), "penn": Tiny("penn", 6, clip=True)}
    groups = {"pose": ["mpii", "h36m"], "action": ["penn"]}
    dm = MixedRatioDataModule(train, {"mpii": 2, "h36m": 2, "penn": 1}, 5, 3, groups=groups)
    for batch in dm.train_dataloader():
        assert set(batch) == {"pose", "action"}
        assert batch["pose"]["pose"].shape == (4, 4, 3)
        assert batch["pose"]["dataset"] == ["mpii", "mpii", "h36m", "h36m"]
        assert (
            batch["action"]["pose"].shape == (1, 3, 4, 3) and len(batch["action"]["video_id"]) == 1
        )
    ungrouped = MixedRatioDataModule(train, {"mpii": 2, "h36m": 2, "penn": 1}, 5, 3)
    with pytest.raises(ValueError, match="different keys"):
        next(iter(ungrouped.train_dataloader()))
    with pytest.raises(ValueError, match="exactly once"):
        MixedCollate({"a": 1, "b": 1}, {"x": ["a"]})


def test_eval_loaders_per_dataset():
    dm = _module(
        {"a": 8}, {"a": 1}, 4, val={"a": Tiny("a", 5), "b": Tiny("b", 3)}, eval_batch_size=2
    )
    loaders = dm.val_dataloader()
    assert dm.val_names == ["a", "b"] and [len(d) for d in loaders] == [3, 2]
    assert dm.test_dataloader() == []


def test_simulated_ddp_evaluation_scores_every_sample_exactly_once():
    shards = []
    for rank in (0, 1, 2):
        dm = _module({"a": 8}, {"a": 1}, 4, val={"v": Tiny("v", 7)}, eval_batch_size=2,
                     rank=rank, world_size=3)  # fmt: skip
        (loader,) = dm.val_dataloader()
        assert isinstance(loader.sampler, DistributedSampler)  # Lightning will not replace it
        shards.append([i for b in loader for i in b["sample_id"]])
    assert [len(s) for s in shards] == [3, 2, 2]  # not padded to 3 each (DistributedSampler)
    assert sorted(i for s in shards for i in s) == sorted(f"v/{i}" for i in range(7))
    too_small = _module({"a": 8}, {"a": 1}, 4, test={"t": Tiny("t", 2)}, rank=0, world_size=3)
    with pytest.raises(ValueError, match=r"\{'t': 2\}.*3 ranks"):
        too_small.test_dataloader()


class Seeds(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> dict:
        return {"sample_id": str(i)}


def test_loader_workers_start_with_init_worker_and_persist():
    dm = MixedRatioDataModule({"a": Seeds()}, {"a": 1}, 2, steps_per_epoch=1, val={"a": Seeds()},
                              num_workers=1, pin_memory=True, persistent_workers=True)  # fmt: skip
    for loader in (dm.train_dataloader(), *dm.val_dataloader()):
        assert loader.worker_init_fn is init_worker and loader.persistent_workers
        assert loader.pin_memory and loader.num_workers == 1
    in_process = _module({"a": 4}, {"a": 1}, 2, num_workers=0, persistent_workers=True)
    loader = in_process.train_dataloader()
    assert loader.worker_init_fn is None and not loader.persistent_workers


def test_init_worker_runs_one_opencv_thread_then_lightnings_seeding(monkeypatch):
    """In a worker (here: this process, restored after): OpenCV's pool of one thread per core cut
    to one; Lightning's worker seeding only when ``seed_everything(workers=True)`` asked for it."""
    seeded = []
    monkeypatch.setattr(mixed, "pl_worker_init_function", seeded.append)
    before = cv2.getNumThreads()
    try:
        monkeypatch.delenv("PL_SEED_WORKERS", raising=False)
        init_worker(3)
        assert cv2.getNumThreads() == 1 and seeded == []
        monkeypatch.setenv("PL_SEED_WORKERS", "1")
        init_worker(3)
        assert seeded == [3]
    finally:
        cv2.setNumThreads(before)


def test_bad_configuration_is_reported():
    with pytest.raises(ValueError, match="differ"):
        _module({"a": 4}, {"b": 1}, 2)
    with pytest.raises(ValueError, match="cannot feed 2 ranks"):
        _module({"a": 4, "b": 1}, {"a": 1, "b": 1}, 2, rank=0, world_size=2).train_dataloader()


# ---- a real 2-process DDP run (gloo on CPU) through the Trainer ----
class Flaky(Tiny):
    """Tiny whose sample ``bad`` cannot be read."""

    def __init__(self, name: str, n: int, bad: int):
        super().__init__(name, n)
        self.bad = bad

    def __getitem__(self, i: int) -> dict:
        if i == self.bad:
            raise SampleReadError(f"{self.name}/{i}.jpg", "truncated")
        return super().__getitem__(i)


class RecordIds(pl.LightningModule):
    def __init__(self, out_dir: str):
        super().__init__()
        self.out_dir, self.ids, self.val_ids = out_dir, [], []
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def training_step(self, batch, batch_idx):
        self.ids.append(batch["sample_id"])
        return (batch["pose"].mean() * self.weight) ** 2

    def validation_step(self, batch, batch_idx):
        self.val_ids += batch.get("sample_id", [])

    def on_train_end(self):
        missing = {k: log.as_dict() for k, log in self.trainer.datamodule.missing.items()}
        path = f"{self.out_dir}/rank{self.global_rank}.json"
        with open(path, "w") as f:
            json.dump({"train": self.ids, "val": self.val_ids, "missing": missing}, f)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.slow
def test_ddp_spawn_ranks_see_disjoint_samples(tmp_path, monkeypatch):
    # the spawned workers unpickle this module's classes: make `tests.…` importable there
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    val = {"v": ReportingDataset(Flaky("v", 7, bad=3))}  # 4 + 3 batches on the two ranks, one bad
    dm = _module({"a": 40, "b": 10}, {"a": 3, "b": 1}, 4, steps=4, val=val, eval_batch_size=1)
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[ReleaseProcessGroup(), LogDataFailures()],  # as experiments.train
    )  # fmt: skip
    trainer.fit(RecordIds(str(tmp_path)), datamodule=dm)
    per_rank = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for record in per_rank:
        assert len(record["train"]) == 4
        assert all(Counter(i.split("/")[0] for i in b) == {"a": 3, "b": 1} for b in record["train"])
        # every rank reports the whole validation: 6 scored over both ranks, the bad one named
        assert record["missing"] == {
            "val/v": {"scored": 6, "total": 7, "unreadable": {"v/3.jpg": "truncated"}}
        }
    seen = [{i for b in record["train"] for i in b} for record in per_rank]
    assert not seen[0] & seen[1]
    # validation: each readable sample scored exactly once, none twice (no padding)
    scored = per_rank[0]["val"] + per_rank[1]["val"]
    assert sorted(scored) == sorted(f"v/{i}" for i in range(7) if i != 3)


def test_resumable_loader_needs_a_resumable_sampler():
    from datamodules.resume import ResumableLoader

    with pytest.raises(TypeError, match="resume_at"):
        ResumableLoader(range(4), batch_size=2, batches_done=lambda: 0)


FORK_AFTER_OPENCV = """
import sys, time
import cv2, numpy as np
sys.path[:0] = {paths!r}
from datamodules.mixed import MixedRatioDataModule
from tests.datamodules.test_mixed import Tiny

image = np.random.default_rng(0).integers(0, 255, (720, 1280), dtype=np.uint8)
for _ in range(20):  # the parent's OpenCV thread pool runs (as a main-process read does)
    cv2.warpAffine(image, np.array([[0.3, 0.1, 0], [0.1, 0.3, 0]]), (256, 256))
time.sleep(1.0)
for _ in range(3):
    dm = MixedRatioDataModule({{"a": Tiny("a", 8)}}, {{"a": 1}}, 4, 1, num_workers=2)
    dm.setup("fit")
    assert len(list(dm.train_dataloader())) == 1
print("workers done", cv2.getNumThreads())
"""


def test_workers_forked_after_the_parents_opencv_ran_do_not_hang(tmp_path):
    """init_worker's cv2.setNumThreads(1) in a worker forked from a parent whose pool had run
    could wait for ever (most runs, without fork_safe_opencv): the module cuts the parent's pool
    to one thread before its workers fork."""
    root = Path(__file__).resolve().parents[2]
    script = FORK_AFTER_OPENCV.format(paths=[str(root), str(root / "src")])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=root)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "workers done 1" in done.stdout
