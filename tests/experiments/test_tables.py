"""Paper-shaped tables: values land in the right cells, CSV and Markdown round-trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datamodules.h36m import ACTIONS
from datamodules.layouts import PA16J
from experiments import tables


def test_mpii_table_groups_left_and_right():
    per_joint = np.zeros(len(PA16J))
    per_joint[PA16J.index("r_wrist")], per_joint[PA16J.index("l_wrist")] = 0.5, 1.0
    per_joint[PA16J.index("head")], per_joint[PA16J.index("neck")] = 1.0, 1.0
    res = {"per_joint": per_joint, "pckh@0.5": 0.8, "pckh@0.2": 0.4, "pckh_auc": 0.55}
    df = tables.mpii_table({"single-crop": res}, PA16J.joints)
    row = df.loc["single-crop"]
    assert row["Wri."] == pytest.approx(75.0) and row["Head"] == pytest.approx(100.0)
    assert row["Elb."] == 0.0 and row["Total"] == pytest.approx(80.0)
    assert row["AUC"] == pytest.approx(55.0)


def test_h36m_table_has_the_15_actions_and_their_mean(tmp_path):
    values = np.arange(15, dtype=float) + 40
    values[3] = np.nan
    df = tables.h36m_table({"single-crop": values})
    assert list(df.columns) == [*ACTIONS, "Average"]
    assert df.loc["single-crop", "Average"] == pytest.approx(np.nanmean(values))
    text = tables.write_table(df, tmp_path, "h36m", "MPJPE")
    assert "| single-crop | 40.0 | 41.0 | 42.0 | – |" in text
    back = pd.read_csv(tmp_path / "h36m.csv", index_col=0)
    assert back.loc["single-crop", "Walking"] == pytest.approx(52.0)
    with pytest.raises(ValueError):
        tables.h36m_table({"x": values[:3]})


def test_ablation_and_accuracy_tables(tmp_path):
    rows = {
        "Provided poses": {"pose": 0.5},
        "Estimated poses": {"pose": 0.6, "appearance": 0.7, "aggregation": 0.8},
    }
    df = tables.ablation_table(rows)
    assert list(df.index) == list(rows)
    assert np.isnan(df.loc["Provided poses", "Appearance"])
    assert df.loc["Estimated poses", "Aggregation"] == pytest.approx(80.0)
    acc = tables.accuracy_table({"penn": {"single-clip": 0.9, "multi-clip": 0.95}})
    assert acc.loc["penn", "multi-clip"] == pytest.approx(95.0)
    tables.write_table(acc, tmp_path, "acc")
    assert (tmp_path / "acc.md").read_text().startswith("| model | single-clip | multi-clip |")
    assert tables.paper_table5().loc["Est. poses + FT + MC", "Aggregation"] == 85.5
