"""The samplers of the mixed datamodule: integer counts, the official epoch length, seeded draws
that resume mid-epoch, and unpadded evaluation shards."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from datamodules.sampling import (
    EvalShard,
    MixedRatioSampler,
    SeededDataset,
    SeededSampler,
    default_steps,
    split_counts,
)


class Draw(Dataset):
    """n samples: (index, one draw of torch's RNG)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[int, float]:
        return i, torch.rand(()).item()


def test_split_counts_largest_remainder():
    # 45/45/10 of 24: quotas 10.8/10.8/2.4 → floors 10/10/2, the 2 leftovers go to the 0.8s
    assert split_counts({"a": 45, "b": 45, "c": 10}, 24) == {"a": 11, "b": 11, "c": 2}
    # 1/1/1 of 4: quotas 1.33 each, one leftover → the first source (ties keep source order)
    assert split_counts({"a": 1, "b": 1, "c": 1}, 4) == {"a": 2, "b": 1, "c": 1}
    # counts given directly are kept
    assert split_counts({"a": 5, "b": 3}, 8) == {"a": 5, "b": 3}
    assert split_counts({"a": 0.5, "b": 0.25, "c": 0.25}, 6) == {"a": 3, "b": 2, "c": 1}
    with pytest.raises(ValueError, match=r"\['b'\] get 0"):
        split_counts({"a": 99, "b": 1}, 4)


def test_default_steps_is_the_official_max_over_sources():
    # max(ceil(10 / 3), ceil(3 / 1)) = 4; on 2 ranks max(ceil(5 / 3), ceil(2 / 1)) = 2
    assert default_steps([10, 3], [3, 1]) == 4 and default_steps([10, 3], [3, 1], 2) == 2


def test_blocks_hold_the_counts_in_source_order():
    sampler = MixedRatioSampler([10, 3], [3, 1], steps=5)
    indices = list(sampler)
    assert len(indices) == len(sampler) == 20
    for block in range(5):
        part = indices[4 * block : 4 * block + 4]
        assert all(i < 10 for i in part[:3]) and 10 <= part[3] < 13


def test_seeded_sampler_resumes_after_the_batches_done_once():
    sampler = SeededSampler([10, 3], [3, 1], steps=5, seed=7)
    sampler.set_epoch(2)
    full = list(sampler)
    assert all(isinstance(seed, int) for _, seed in full) and len({s for _, s in full}) == 20
    sampler.resume_at(2, 3)
    assert list(sampler) == full[3 * 4 :]  # three blocks of Σ counts skipped
    assert list(sampler) == full  # the request is used once
    sampler.resume_at(1, 3)
    assert list(sampler) == full  # another epoch's position does not apply


def test_seeded_dataset_draws_from_the_seed_and_leaves_the_callers_rng():
    data = SeededDataset([Draw(4), Draw(2)])
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    assert data[(5, 11)] == data[(5, 11)] != data[(5, 12)]
    assert data[(5, 11)][0] == 1  # index 5 = the second source's sample 1
    assert torch.equal(torch.random.get_rng_state(), before)
    assert data[0][0] == 0  # a plain index still works (evaluation, tests)


def test_eval_shards_cover_every_sample_once_unpadded():
    shards = [list(EvalShard(7, rank, 3)) for rank in range(3)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]]
    assert [len(EvalShard(7, rank, 3)) for rank in range(3)] == [3, 2, 2]
