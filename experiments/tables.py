"""Result tables shaped like the paper's, written as CSV and Markdown.

- ``mpii_table``: PCKh@0.5 per body part (Head, Sho., Elb., Wri., Hip, Knee, Ank.), Total, @0.2, AUC.
- ``h36m_table``: MPJPE (mm, protocol 1) for the 15 actions of Table 1 and their average.
- ``accuracy_table``: Penn Action / NTU accuracy, e.g. single-clip vs multi-clip columns.
- ``metric_table``: the "run" protocol's figures, named and shown as the training prints them.
- ``ablation_table``: Table 5 — rows of pose sources and protocols, columns pose / appearance /
  aggregation accuracy.
Accuracies and PCK are given as fractions and shown in percent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from datamodules.h36m import ACTIONS as H36M_ACTIONS

# MPII body parts: the usual per-part mean of the left and right joints ("Head" = head top + neck).
MPII_PARTS = {
    "Head": ("head", "neck"),
    "Sho.": ("r_shoulder", "l_shoulder"),
    "Elb.": ("r_elbow", "l_elbow"),
    "Wri.": ("r_wrist", "l_wrist"),
    "Hip": ("r_hip", "l_hip"),
    "Knee": ("r_knee", "l_knee"),
    "Ank.": ("r_ankle", "l_ankle"),
}
ABLATION_COLUMNS = ("pose", "appearance", "aggregation")
# Table 5 of the paper (NTU X-Sub accuracy, %), for side-by-side reading.
PAPER_TABLE5 = {
    "Kinect poses": (63.3, 76.4, 78.2),
    "Estimated poses": (64.5, 80.1, 81.1),
    "Est. poses + FT": (71.7, 83.2, 84.4),
    "Est. poses + FT + MC": (74.3, 84.6, 85.5),
}


def to_markdown(df: pd.DataFrame, digits: int = 1) -> str:
    """A GitHub Markdown table of ``df`` (index as the first column), numbers with ``digits``."""

    def fmt(v) -> str:
        if isinstance(v, (float, np.floating)):
            return "–" if np.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    head = [df.index.name or ""] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for idx, row in df.iterrows():
        lines.append("| " + " | ".join([str(idx)] + [fmt(v) for v in row]) + " |")
    return "\n".join(lines) + "\n"


def write_table(
    df: pd.DataFrame, out_dir: str | Path, name: str, title: str = "", digits: int = 1
) -> str:
    """Write ``out_dir/name.csv`` and ``out_dir/name.md`` (numbers with ``digits``); return the
    Markdown text."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_dir / f"{name}.csv", float_format="%.4f")
    text = (f"### {title}\n\n" if title else "") + to_markdown(df, digits)
    (out_dir / f"{name}.md").write_text(text)
    return text


def mpii_table(results: Mapping[str, Mapping], joint_names: Sequence[str]) -> pd.DataFrame:
    """Rows = protocols (e.g. "single-crop", "multi-crop"); each result holds ``per_joint`` (J,)
    PCKh@0.5 fractions in the order of ``joint_names`` and ``pckh@0.5``, ``pckh@0.2``,
    ``pckh_auc``. Values in percent."""
    names = list(joint_names)
    rows = {}
    for protocol, res in results.items():
        per_joint = np.asarray(res["per_joint"], dtype=np.float64)
        row = {
            part: np.nanmean([per_joint[names.index(j)] for j in joints if j in names])
            for part, joints in MPII_PARTS.items()
        }
        row |= {"Total": res["pckh@0.5"], "PCKh@0.2": res["pckh@0.2"], "AUC": res["pckh_auc"]}
        rows[protocol] = {k: 100.0 * float(v) for k, v in row.items()}
    return _frame(rows, "protocol")


def h36m_table(results: Mapping[str, Sequence[float]]) -> pd.DataFrame:
    """Rows = protocols; each result (15,) MPJPE in mm per Table-1 action (NaN where absent).
    "Average" = mean over the actions present."""
    rows = {}
    for protocol, per_action in results.items():
        values = np.asarray(per_action, dtype=np.float64)
        if values.shape != (len(H36M_ACTIONS),):
            raise ValueError(f"h36m_table: {protocol} has {values.shape}, want (15,) actions")
        rows[protocol] = dict(zip(H36M_ACTIONS, values)) | {"Average": np.nanmean(values)}
    return _frame(rows, "protocol")


def accuracy_table(results: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """Rows (e.g. dataset or model) × columns (e.g. "single-clip", "multi-clip"), in percent."""
    rows = {r: {c: 100.0 * float(v) for c, v in cols.items()} for r, cols in results.items()}
    return _frame(rows, "model")


def metric_table(metrics: Mapping[str, float]) -> pd.DataFrame:
    """One row per metric ("test/acc", "test/mpjpe" …) with its value as computed (fractions,
    mm, loss), sorted by name: what ``experiments.train`` prints at the end of a run."""
    rows = {k: {"value": float(v)} for k, v in sorted(metrics.items())}
    return _frame(rows, "metric")


def ablation_table(rows: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """Table 5: rows in the given order × pose / appearance / aggregation accuracy (percent);
    a missing column (e.g. no appearance branch on provided poses) is NaN."""
    data = {
        name: {c.capitalize(): 100.0 * float(res.get(c, np.nan)) for c in ABLATION_COLUMNS}
        for name, res in rows.items()
    }
    return _frame(data, "experiment")


def paper_table5() -> pd.DataFrame:
    cols = [c.capitalize() for c in ABLATION_COLUMNS]
    return _frame({k: dict(zip(cols, v)) for k, v in PAPER_TABLE5.items()}, "paper (NTU X-Sub)")


def _frame(rows: Mapping[str, Mapping[str, float]], index_name: str) -> pd.DataFrame:
    df = pd.DataFrame.from_dict(dict(rows), orient="index")
    df.index.name = index_name
    return df


def metrics_table(metrics: Mapping[str, float], title: str = "") -> str:
    """A run's metrics as a Markdown table, one row a metric (MPJPE in mm: 2 decimals; else 4)."""
    keys = sorted(metrics)
    shown = [f"{metrics[k]:.2f}" if "mpjpe" in k else f"{metrics[k]:.4f}" for k in keys]
    df = pd.DataFrame({"value": shown}, index=pd.Index(keys, name="metric"))
    return (f"{title}\n" if title else "") + to_markdown(df)
