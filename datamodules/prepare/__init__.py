"""Preparation of the video datasets for training at scale (``python -m datamodules.prepare``).

``store`` (crop geometry, JPEG), ``runner`` (parallel, resumable, verified runs and the index),
``h36m`` / ``ntu`` (one job per video), ``chunks`` (LitData chunks of a prepared folder).
"""
