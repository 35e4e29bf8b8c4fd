"""Preparation of the video datasets for training at scale (``python -m datamodules.prepare``).

This package only writes; the readers never import it (``datamodules.storage`` reads what it
writes). ``store`` (the stored regions, JPEG), ``runner`` (parallel, resumable, verified runs and
the index), ``h36m`` / ``ntu`` (one job per video), ``chunks`` (LitData chunks of a prepared folder).
"""


def main(argv: list[str] | None = None) -> int:
    """``python -m datamodules.prepare`` (imported on call: ``-m`` runs ``__main__`` itself)."""
    from datamodules.prepare.__main__ import main as run

    return run(argv)
