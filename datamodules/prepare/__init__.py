"""Preparation of the video datasets for training at scale (``python -m datamodules.prepare``).

``store`` (crop geometry, JPEG), ``runner`` (parallel, resumable, verified runs and the index),
``h36m`` / ``ntu`` (one job per video), ``clips`` (reading prepared NTU clips); LitData chunks of a
prepared folder: ``datamodules.streaming``.
"""


def main(argv: list[str] | None = None) -> int:
    """``python -m datamodules.prepare`` (imported lazily: the readers import this package)."""
    from datamodules.prepare.__main__ import main as run

    return run(argv)
