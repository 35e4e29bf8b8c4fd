"""`make gpu-check` rehearsed on the CPU (``--dry``): every section of the GPU table runs, with the
same code as on a GPU, tiny."""

from __future__ import annotations

import pytest
import torch

from benchmarks import gpu_check


def test_dry_run_fills_every_section(tmp_path):
    out = tmp_path / "gpu_check.md"
    rows = gpu_check.main(["--dry", "--out", str(out), "--world", str(tmp_path / "world")])
    sections = [r[0] for r in rows]
    for section in ("environment", "bf16", "syncs", "throughput", "fed"):
        assert section in sections, section
    assert all(r[3] == "ok" for r in rows if r[0] == "bf16"), rows
    steps = [r[1] for r in rows if r[0] == "throughput"]
    assert [s.rsplit(", ", 1)[1] for s in steps] == list(gpu_check.bench_train.GPU_VARIANTS)
    assert "warm-up" in rows[sections.index("throughput") + 3][2]  # compile time apart
    assert [r[1].split(", ")[-1] for r in rows if r[0] == "fed"] == ["0 workers", "1 workers"]
    text = out.read_text()
    assert text.count("\n| ") == len(rows) + 1 and "|Δ|" not in text  # header + rows, no stray |


def test_cpu_sync_recorder_names_the_line_and_restores_tensor():
    recorder = gpu_check.SyncRecorder("cpu")
    recorder.start()
    try:
        value = torch.ones(()).item()  # a host sync on a CUDA tensor
    finally:
        recorder.stop()
    assert value == 1.0
    assert [k.rsplit(":", 1)[0] for k in recorder.found] == [__file__]
    assert "item" not in vars(torch.Tensor) and torch.ones(()).item() == 1.0
    assert len(recorder.found) == 1  # nothing recorded after stop


def test_without_a_gpu_only_the_rehearsal_runs(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        gpu_check.main([])


def test_micro_checks_catch_decoding_that_follows_autocast(monkeypatch):
    """The former decoding (its matmul under autocast: bf16 on 390–990 px) fails the pixel,
    PCKh and MPJPE rows; the rows that do not decode stay ok."""
    import contextlib

    from deephar import metrics

    def in_autocast(pose, crop):
        inverse = torch.linalg.inv(crop[..., :2].float())
        return (pose[..., :2] - crop[..., None, :, 2]) @ inverse.transpose(-1, -2)

    monkeypatch.setattr(metrics, "_no_autocast", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(metrics, "decode_pose_px", in_autocast)
    verdicts = {r[1].split(" ")[0]: r[3] for r in gpu_check.micro_checks(gpu_check.DRY)}
    assert verdicts["decode"] == verdicts["PCKh@0.5"] == verdicts["MPJPE"] == "FAIL"
    assert verdicts["soft-argmax"] == verdicts["uint8"] == "ok"
