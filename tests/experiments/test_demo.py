"""The demo pipeline at the tiny synthetic size: every stage runs and leaves its files, and the
exported network serves ``experiments.predict``."""

from __future__ import annotations

import json

import pytest

from experiments import demo, predict


@pytest.mark.slow
def test_demo_pipeline_tiny(tmp_path):
    result = demo.run_demo("tiny", tmp_path / "demo", tmp_path / "world")
    out = tmp_path / "demo"
    for name in ("results.md", "skeletons.png", "blocks.png", "model.pt", "table5.csv",
                 "pose/pckh.md", "pose/mpjpe.md", "rows/multiclip.json"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    assert set(result["ablation"]) == {"pose", "provided", "estimated", "finetuned", "multiclip"}
    assert "mpii/multi-crop" in result["pose"] and "h36m/single-crop" in result["pose"]
    text = (out / "results.md").read_text()
    assert "PCKh@0.5" in text and "+ fine tuning" in text and "Human3.6M" in text
    drawn = (out / "skeletons.png").read_bytes()  # --picture redraws it from the pose row alone
    (out / "skeletons.png").unlink()
    picture = ["--size", "tiny", "--out", str(out), "--data", str(tmp_path / "world"), "--picture"]
    assert demo.main(picture) == 0
    assert (out / "skeletons.png").read_bytes() == drawn

    video = next((tmp_path / "world" / "ntu" / "nturgb+d_rgb").glob("*.avi"))
    ckpt = out / "model.pt"
    assert predict.main([str(video), f"ckpt={ckpt}", "--out", str(tmp_path / "pred")]) == 0
    pred = json.loads((tmp_path / "pred" / f"{video.name}.json").read_text())
    assert pred["layout"] == "pa20j" and len(pred["action"]["scores"]) == 60


def test_stage_clock_eta_follows_the_pace_and_skips_cached_stages(monkeypatch, capsys):
    now = [0.0]
    monkeypatch.setattr(demo.time, "perf_counter", lambda: now[0])
    clock = demo.StageClock()
    clock.stage("world")  # before any stage finished: the quiet-machine estimate
    now[0] = 1.0  # the world existed: done at once, counts as skipped
    clock.log("[1/5] pose: running")
    now[0] += 2 * demo.STAGES["pose"] * demo.QUIET_MINUTES * 60  # pose at half the quiet pace
    clock.log("[2/5] provided: finished earlier, kept (rows/provided.json)")
    clock.log("[3/5] estimated: running")
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("==")]
    eta = [float(x.split("ETA ")[1].split()[0]) for x in lines]
    assert eta[0] == pytest.approx(demo.QUIET_MINUTES)
    left = 1 - demo.STAGES["world"] - demo.STAGES["pose"] - demo.STAGES["provided"]
    assert eta[-1] == pytest.approx(2 * demo.QUIET_MINUTES * left, abs=0.05)
    assert "stage 3/7 provided: kept from an earlier run" in lines[2]


def test_the_picture_of_a_run_without_a_pose_row_is_refused(tmp_path, capsys):
    assert demo.main(["--picture", "--out", str(tmp_path / "nothing")]) == 2
    assert "rows/pose.json: no trained pose row" in capsys.readouterr().err


def test_a_signal_ends_the_demo_with_one_line_and_its_exit_code(monkeypatch, capsys):
    """SIGTERM mid-row: the row saved its step; one line (no traceback) says how to continue."""
    import signal

    from experiments.faults import Interrupted

    def stopped(*_):
        raise Interrupted(signal.SIGTERM, "runs/demo/checkpoints/x/last.ckpt", 41)

    monkeypatch.setattr(demo, "run_demo", stopped)
    assert demo.main([]) == 143
    err = capsys.readouterr().err.strip().splitlines()
    saved = "step 41 saved to runs/demo/checkpoints/x/last.ckpt"
    assert err == [f"interrupted: stopped by SIGTERM: {saved}; rerun the demo to continue"]
