"""Human3.6M camera calibration: ``cameras.h5`` (una-dinosauria) or ``camera-parameters.json``.

``Camera`` holds R (world → camera), T (camera centre), f, c, k (radial) and p (tangential); the
projection is the Human3.6M / 3d-pose-baseline model. ``cameras.h5`` stores R transposed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

CAMERA_FILES = ("cameras.h5", "camera-parameters.json")


@dataclass(frozen=True)
class Camera:
    """One calibrated camera: R (3, 3) world → camera rotation, T (3,) camera centre (mm, world),
    f (2,), c (2,) pixels, k (3,) radial and p (2,) tangential distortion."""

    R: np.ndarray
    T: np.ndarray
    f: np.ndarray
    c: np.ndarray
    k: np.ndarray
    p: np.ndarray

    @property
    def t(self) -> np.ndarray:
        """Translation of the extrinsics [R | t]: t = −R·T."""
        return -self.R @ self.T

    @property
    def intrinsics(self) -> np.ndarray:
        """(4,) fx, fy, cx, cy."""
        return np.r_[self.f, self.c].astype(np.float32)

    def world_to_camera(self, x: np.ndarray) -> np.ndarray:
        """(…, 3) world mm → camera frame mm: X_cam = R·(X − T)."""
        return (np.asarray(x, np.float64) - self.T) @ self.R.T

    def project(self, x_cam: np.ndarray) -> np.ndarray:
        """(…, 3) camera-frame mm → (…, 2) distorted pixels (the Human3.6M / una-dinosauria
        model: radial k1–k3 and tangential p as in ``cameras.py`` of 3d-pose-baseline)."""
        xy = x_cam[..., :2] / x_cam[..., 2:3]
        r2 = np.sum(xy**2, axis=-1, keepdims=True)
        radial = 1 + r2 * self.k[0] + r2**2 * self.k[1] + r2**3 * self.k[2]
        tan = self.p[0] * xy[..., 1:2] + self.p[1] * xy[..., 0:1]
        xy = xy * (radial + tan) + r2 * self.p[::-1]
        return xy * self.f + self.c


def load_cameras_h5(path: str | Path) -> dict[tuple[int, str], Camera]:
    """una-dinosauria ``cameras.h5``: subject{N}/camera{1..4}/ R (stored transposed), T, f, c, k,
    p, Name (the camera id as character codes)."""
    cams = {}
    try:
        with h5py.File(path, "r") as h5:
            for subject in (k for k in h5 if re.fullmatch(r"subject\d+", k)):
                for group in h5[subject].values():
                    name = "".join(chr(int(v)) for v in np.ravel(group["Name"][()]))
                    cams[(int(subject[7:]), name)] = Camera(
                        R=np.asarray(group["R"][()], np.float64).T,
                        **{k: np.ravel(group[k][()]).astype(np.float64) for k in "Tfckp"},
                    )
    except (OSError, KeyError) as err:
        raise ValueError(f"cannot read Human3.6M cameras {path}: {err!r}") from None
    return cams


def load_cameras_json(path: str | Path) -> dict[tuple[int, str], Camera]:
    """``camera-parameters.json``: intrinsics[cam] K (3, 3) + distortion [k1 k2 p1 p2 k3],
    extrinsics[S{N}][cam] R, t (t = −R·T)."""
    try:
        data = json.loads(Path(path).read_text())
        cams = {}
        for subject, per_cam in data["extrinsics"].items():
            for name, ext in per_cam.items():
                K = np.asarray(data["intrinsics"][name]["calibration_matrix"], np.float64)
                dist = np.asarray(data["intrinsics"][name]["distortion"], np.float64)
                R = np.asarray(ext["R"], np.float64)
                cams[(int(subject[1:]), name)] = Camera(
                    R=R,
                    T=-R.T @ np.ravel(ext["t"]),
                    f=K[[0, 1], [0, 1]],
                    c=K[:2, 2],
                    k=dist[[0, 1, 4]],
                    p=dist[2:4],
                )
    except (OSError, KeyError, ValueError, IndexError) as err:
        raise ValueError(f"cannot read Human3.6M cameras {path}: {err!r}") from None
    return cams


def load_cameras(root: str | Path, path: str | Path | None = None) -> dict[tuple[int, str], Camera]:
    """Cameras from ``path`` or the first of ``cameras.h5`` / ``camera-parameters.json`` in root."""
    candidates = [Path(path)] if path else [Path(root) / n for n in CAMERA_FILES]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise FileNotFoundError(
            f"Human3.6M camera file not found; tried {[str(p) for p in candidates]}"
        )
    return load_cameras_json(found) if found.suffix == ".json" else load_cameras_h5(found)
