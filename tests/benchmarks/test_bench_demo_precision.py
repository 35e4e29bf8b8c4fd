"""benchmarks.bench_demo_precision: the demo's pose stage per precision, trained side by side and
scored as `make demo` scores it (tiny world)."""

from __future__ import annotations

from benchmarks.bench_demo_precision import main


def test_every_variant_is_trained_and_scored(tmp_path):
    out = tmp_path / "out"
    variants = ["fp32:32-true:false", "bf16:bf16-mixed:true"]
    args = ["--size", "tiny", "--out", str(out), "--data", str(tmp_path / "world")]
    assert main([*args, "--variants", *variants]) == 0
    rows = [line for line in (out / "demo_precision.md").read_text().splitlines() if "|" in line]
    assert [r.split("|")[1].strip() for r in rows[2:]] == ["fp32", "bf16"]
    for row in rows[2:]:
        pck, pckh, _, mpjpe, *_ = (float(v) for v in row.split("|")[2:-1])
        assert 0 <= pck <= 100 and 0 <= pckh <= 100 and mpjpe > 0
    assert (out / "checkpoints" / "precision-bf16" / "config.yaml").read_text().count("bf16-mixed")
