"""Bounded memory of ``experiments.predict`` (issue 27): max RSS on a video 8× longer stays within
1.3× of the short one's, each predicted in its own subprocess by ``benchmarks.bench_predict_memory``.

Full-size decoding (``decode_size=0``) of 1280×720 frames: 2.7 MB a frame. Measured with the
benchmark's network on 0.5 s vs 4 s (``benchmarks/results/predict_memory.md``): the code before
the streaming window 647 → 1345 MB (2.08×: this test fails on it), the streaming window 638 →
698 MB (1.09×).
"""

from __future__ import annotations

import pytest

from benchmarks.bench_predict_memory import measure, tiny_checkpoint, write_video


@pytest.mark.slow
def test_max_rss_does_not_grow_with_the_video_length(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "tiny.pt", input_size=32, num_frames=8, width=0.125)
    rows = []
    for seconds in (0.5, 4.0):
        video = write_video(tmp_path / f"{seconds}s.avi", seconds, 30, (1280, 720))
        rows.append(measure(video, ckpt, tmp_path / "out", ("decode_size=0",)))
    short, long = rows
    assert (short.frames, long.frames) == (15, 120)
    assert long.max_rss_mb <= 1.3 * short.max_rss_mb, (short, long)
    assert (tmp_path / "out" / "4.0s.avi.overlay.mp4").stat().st_size > 0
