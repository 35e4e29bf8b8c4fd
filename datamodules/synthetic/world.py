"""The synthetic world: the four datasets written under one root, with a manifest of counts.

``root/{mpii,h36m,penn,ntu}`` hold the real on-disk formats; ``root/manifest.json`` (written last)
marks a complete world of a given size and seed, so a second call returns at once.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from datamodules.synthetic.motion import ACTIONS
from datamodules.synthetic.write_h36m import H36M_ACTIONS, write_h36m
from datamodules.synthetic.write_mpii import write_mpii
from datamodules.synthetic.write_ntu import NTU_ACTIONS, write_ntu
from datamodules.synthetic.write_penn import PENN_ACTIONS, write_penn

VERSION = 4  # 2: per-part clothing, outlined segments, thicker arms; 3: white cup, black phone;
# 4: NTU clips in their own lighting (write_ntu.lab_look)
DATASETS = ("mpii", "h36m", "penn", "ntu")


@dataclass(frozen=True)
class WorldSize:
    """How much of each dataset to generate."""

    mpii: tuple[int, int, int]  # train, validation, test images
    h36m_subjects: tuple[int, ...]
    h36m_actions: int
    h36m_frames: int
    penn_videos_per_action: int
    penn_frames: tuple[int, int]
    ntu_subjects: tuple[int, ...]
    ntu_replications: tuple[int, ...]
    ntu_frames: tuple[int, int]


SIZES = {
    "tiny": WorldSize((8, 4, 2), (1, 5, 9), 2, 24, 2, (16, 20), (1, 3), (1,), (20, 24)),
    "demo": WorldSize(
        (2000, 300, 20), (1, 5, 9), 4, 200, 20, (40, 60), (1, 2, 3, 4, 5, 6, 8), (1, 2), (40, 60)
    ),
}


#: Frame sizes (W, H) per resolution: "small" (fast tests, the demo) or "real" (the real files':
#: Human3.6M 1000×1002 H.264, NTU RGB+D 1920×1080, MPII photos ~1280×720). Penn stays 320×240.
RESOLUTIONS = {
    "small": {"h36m": (320, 240), "ntu": (320, 180), "mpii": ((320, 240), (240, 320), (288, 288))},
    "real": {"h36m": (1000, 1002), "ntu": (1920, 1080), "mpii": ((1280, 720),)},
}


def _writers(
    size: WorldSize, seed: int, resolution: str = "small"
) -> dict[str, Callable[[Path], int]]:
    res = RESOLUTIONS[resolution]
    return {
        "mpii": lambda root: write_mpii(root, *size.mpii, seed, sizes=res["mpii"]),
        "h36m": lambda root: write_h36m(
            root, size.h36m_subjects, size.h36m_actions, size.h36m_frames, seed, res["h36m"]
        ),
        "penn": lambda root: write_penn(root, size.penn_videos_per_action, size.penn_frames, seed),
        "ntu": lambda root: write_ntu(
            root, size.ntu_subjects, size.ntu_replications, size.ntu_frames, seed, res["ntu"]
        ),
    }


def action_table() -> dict[str, dict]:
    """Synthetic action → its label in each format (MPII ``act_id`` is the 1-based index)."""
    return {
        a: {"mpii": i + 1, "penn": PENN_ACTIONS[a], "ntu": NTU_ACTIONS[a], "h36m": H36M_ACTIONS[a]}
        for i, a in enumerate(ACTIONS)
    }


def _read_manifest(root: Path) -> dict | None:
    try:
        return json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def _claim(root: Path) -> None:
    """Mark ``root`` as a synthetic world, refusing one that holds other (e.g. real) datasets."""
    if not (root / ".synthetic").exists():
        for name in DATASETS:
            if (root / name).exists() and any((root / name).iterdir()):
                raise FileExistsError(f"{root / name} exists and is not synthetic; not overwriting")
    root.mkdir(parents=True, exist_ok=True)
    (root / ".synthetic").touch()


def generate_world(
    root: str | Path,
    size: str = "tiny",
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    resolution: str = "small",
) -> dict[str, Path]:
    """Write the four datasets under ``root`` (skipped when already complete for size, seed and
    ``resolution``: a key of ``RESOLUTIONS``).

    Returns {"mpii", "h36m", "penn", "ntu", "manifest"} → paths.
    """
    if size not in SIZES or resolution not in RESOLUTIONS:
        raise KeyError(
            f"unknown world size {size!r} or resolution {resolution!r}; "
            f"known: {sorted(SIZES)}, {sorted(RESOLUTIONS)}"
        )
    root = Path(root)
    paths = {name: root / name for name in DATASETS} | {"manifest": root / "manifest.json"}
    old = _read_manifest(root)
    key = (old or {}).get("version"), (old or {}).get("size"), (old or {}).get("seed")
    if old and key == (VERSION, size, seed) and old.get("resolution", "small") == resolution:
        return paths
    _claim(root)
    (root / "manifest.json").unlink(missing_ok=True)
    counts = {}
    for name, write in _writers(SIZES[size], seed, resolution).items():
        start = time.perf_counter()
        shutil.rmtree(root / name, ignore_errors=True)
        counts[name] = write(root / name)
        if log:
            log(f"{name}: {counts[name]} written in {time.perf_counter() - start:.1f} s")
    manifest = {
        "version": VERSION,
        "size": size,
        "seed": seed,
        "resolution": resolution,
        "counts": counts,
        "world": asdict(SIZES[size]),
        "actions": action_table(),
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return paths
