"""The real-resolution data benchmark's GPU demand: measured through bench_train on a GPU (the call
binds to its signature), the FLOP estimate otherwise."""

from __future__ import annotations

import inspect

import pytest
import torch

from benchmarks import bench_data_real, bench_train


def test_gpu_demand_calls_bench_train_with_its_signature(monkeypatch):
    calls, real = [], inspect.signature(bench_train.measure)

    def fake(*args, **kwargs):
        calls.append(dict(real.bind(*args, **kwargs).arguments))  # TypeError if it cannot bind
        return 1.0, 1234.0

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "fake GPU")
    monkeypatch.setattr(bench_train, "measure", fake)
    rate, how = bench_data_real.gpu_demand()
    assert rate == 1234.0 and "measured" in how and "fake GPU" in how
    assert calls[0]["device"] == "cuda" and calls[0]["task"] == "pose"


@pytest.mark.slow
def test_gpu_demand_estimate_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rate, how = bench_data_real.gpu_demand()
    gflop = float(how.split("estimate: ")[1].split(" GFLOP")[0])
    expected = bench_data_real.H100_BF16_DENSE * bench_data_real.ASSUMED_MFU / (3 * gflop * 1e9)
    assert rate == pytest.approx(expected, rel=1e-2) and gflop > 1


class Ids(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict:
        return {"sample_id": f"x/{i}", "image": torch.zeros(3, 4, 4, dtype=torch.uint8)}


def test_loader_rate_counts_the_workers_cpu():
    """Samples per CPU-second of this process and its (reaped) workers: finite and positive."""
    rate = bench_data_real.loader_rate(Ids(), samples=12, workers=1, batch=4)
    assert 0 < rate < float("inf")


def test_interleaved_rounds_alternate_the_datasets():
    """Each round measures every dataset in turn (the load falls on all alike); means per name."""
    order, rates = [], {"raw": iter([1.0, 3.0]), "prepared": iter([4.0, 8.0])}

    def rate(name: str) -> float:
        order.append(name)
        return next(rates[name])

    rounds = bench_data_real.interleaved({"raw": "raw", "prepared": "prepared"}, 2, rate)
    assert order == ["raw", "prepared", "raw", "prepared"]
    assert rounds.mean("prepared") / rounds.mean("raw") == 3.0 and len(rounds.load) == 3
    assert rounds.listed("raw") == "1, 3"
