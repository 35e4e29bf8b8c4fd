"""`make bench` train_vs_keras: our training-step variants beside the Keras replica's, as ratios;
without `.venv-keras` the Keras column says why it was not run (the bench still runs)."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from benchmarks import bench_train
from benchmarks.run import BenchContext
from deephar.config import MPII_2D

TINY = MPII_2D.with_(input_size=32, pose_blocks=1, width=0.125)


class FakeKeras:
    """Stands in for the Keras server: a fixed ms/image per training step."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []

    def time(self, batch: int, train: bool = False) -> float:
        self.calls.append((batch, train))
        return 1000.0


def tiny_variants(monkeypatch) -> None:
    monkeypatch.setattr(bench_train, "MPII_2D", TINY)
    eager = {k: v for k, v in bench_train.VS_KERAS.items() if "compile" not in v}
    monkeypatch.setattr(bench_train, "VS_KERAS", eager)


def test_rounds_interleave_keras_training_steps_and_every_variant(monkeypatch):
    tiny_variants(monkeypatch)
    variants = bench_train.build_vs_keras(bench_train.VS_KERAS)
    keras = FakeKeras()
    keras_ms = bench_train.interleaved(variants, keras, rounds=2)
    assert keras.calls == [(bench_train.KERAS_BATCH, True)] * 3  # warm-up + one per round
    assert keras_ms == [1000.0, 1000.0]
    assert all(len(v.ms) == 2 and v.setup_s > 0 for v in variants)
    rows = bench_train.vs_keras_rows(variants, keras_ms)
    assert [r[0] for r in rows] == list(bench_train.VS_KERAS)
    for row, v in zip(rows, variants):  # ratio = our median ÷ Keras' median
        assert float(row[4]) == pytest.approx(statistics.median(v.ms) / 1000, abs=0.006)


def test_without_keras_env_the_bench_runs_and_says_why(monkeypatch, tmp_path):
    tiny_variants(monkeypatch)
    monkeypatch.setattr(bench_train, "KERAS_PY", Path(tmp_path / "missing" / "python"))
    ctx = BenchContext(quick=True, threads=1, out_dir=tmp_path, command="test")
    report = bench_train.train_vs_keras(ctx)
    assert "make bench-keras-env" in report.markdown
    assert "| eager NCHW fp32 |" in report.markdown and "not run" in report.markdown
