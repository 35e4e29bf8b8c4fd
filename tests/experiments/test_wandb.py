"""W&B as ablation users expect, read back from the offline run files: each row its own run,
all in one group named after the ablation, the row's config and test metrics in its summary, and
a summary run with Table 5 as a ``wandb.Table`` and Figure 8 as an image."""

from __future__ import annotations

import json

import pytest

from experiments import ablation
from tests.experiments.wandb_files import offline_runs


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from datamodules.synthetic import generate_world

    root = tmp_path_factory.mktemp("world")
    generate_world(root, "tiny", seed=0)
    return root


@pytest.mark.slow
def test_every_ablation_row_is_its_own_offline_run_in_one_group(world, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "ablation"
    args = ablation.parse_args(["--ft", "--multiclip", "--dataset", "synthetic", "--size", "tiny",
                                "--data", str(world), "--out", str(out),
                                "logger.kind=wandb", "logger.offline=true"])  # fmt: skip
    rows = ablation.run_ablation(args, log=lambda _: None)
    runs = {r["name"]: r for r in offline_runs(out)}
    names = [f"ablation-synthetic-{row}" for row in rows] + ["ablation-synthetic-summary"]
    assert sorted(runs) == sorted(names)  # one run per row (none reused), plus the summary
    assert {r["group"] for r in runs.values()} == {"ablation-synthetic"}
    for row, entry in rows.items():
        run = runs[f"ablation-synthetic-{row}"]
        if row != "multiclip":  # training rows: the merged config of the row
            assert (
                run["config"]["name"] == run["name"] and run["config"]["logger"]["kind"] == "wandb"
            )
        tested = {k: v for k, v in run["summary"].items() if k.startswith("test/")}
        assert tested, f"{row}: no test metrics in the summary"
        if row in ("estimated", "finetuned"):
            assert tested["test/acc_agg"] == pytest.approx(entry["aggregation"])
        if row == "multiclip":
            assert tested["test/aggregation"] == pytest.approx(entry["aggregation"])
    summary = runs["ablation-synthetic-summary"]["summary"]
    assert summary["table5/_type"] == "table-file" and summary["table5/nrows"] == 4
    assert summary["figure8/_type"] == "image-file"
    table = json.loads((out / "rows" / "estimated.json").read_text())
    assert summary["Estimated poses/Aggregation"] == pytest.approx(
        100 * table["aggregation"], abs=1e-4
    )
