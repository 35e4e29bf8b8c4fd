"""Pinhole cameras with Human3.6M-style parameters (R, T, f, c, k, p).

World frame: z up, metres. Camera frame: x right, y down, z forward (X_cam = R·(X − T)). Projection
is the Human3.6M / una-dinosauria one: perspective divide, radial k1–k3 and tangential p, then f, c.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

H36M_CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")
_ZERO3 = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Camera:
    """R (3, 3) world→camera rotation; T (3,) centre in world units; f, c (2,) pixels;
    k (3,) radial and p (2,) tangential distortion; size (W, H) pixels."""

    R: np.ndarray
    T: np.ndarray
    f: np.ndarray
    c: np.ndarray
    size: tuple[int, int]
    k: np.ndarray = field(default_factory=lambda: np.zeros(3))
    p: np.ndarray = field(default_factory=lambda: np.zeros(2))
    name: str = ""

    def to_camera(self, X: np.ndarray) -> np.ndarray:
        """World points (..., 3) → camera frame (..., 3)."""
        return (X - self.T) @ self.R.T

    def project(self, X_cam: np.ndarray) -> np.ndarray:
        """Camera-frame points (..., 3) → pixels (..., 2), distortion included."""
        xy = X_cam[..., :2] / X_cam[..., 2:3]
        r2 = (xy**2).sum(-1, keepdims=True)
        radial = 1 + self.k[0] * r2 + self.k[1] * r2**2 + self.k[2] * r2**3
        tangential = self.p[0] * xy[..., 1:2] + self.p[1] * xy[..., 0:1]
        xy = xy * (radial + tangential) + r2 * np.array([self.p[1], self.p[0]])
        return self.f * xy + self.c

    def world_to_pixels(self, X: np.ndarray) -> np.ndarray:
        return self.project(self.to_camera(X))


def look_at_rotation(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(3, 3) rotation of a camera at ``eye`` looking at ``target``, image y pointing down."""
    z = np.asarray(target, float) - np.asarray(eye, float)
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


def look_at(
    eye, target, focal: float, size: tuple[int, int], k=_ZERO3, p=(0.0, 0.0), name: str = ""
) -> Camera:
    """A camera at ``eye`` (world) looking at ``target`` with square pixels and centred c."""
    return Camera(
        R=look_at_rotation(eye, target),
        T=np.asarray(eye, float),
        f=np.array([focal, focal]),
        c=np.array([size[0] / 2, size[1] / 2]),
        size=size,
        k=np.asarray(k, float),
        p=np.asarray(p, float),
        name=name,
    )


def h36m_rig(rng: np.random.Generator, size: tuple[int, int]) -> list[Camera]:
    """Four calibrated cameras at the room's corners (one subject's calibration), with the
    official camera ids as names; f, c, distortion near the real ones scaled to ``size``."""
    cams = []
    for i, name in enumerate(H36M_CAMERA_IDS):
        azimuth = np.deg2rad(45 + 90 * i + rng.uniform(-8, 8))
        dist, height = rng.uniform(4.5, 5.5), rng.uniform(1.4, 1.8)
        eye = np.array([dist * np.cos(azimuth), dist * np.sin(azimuth), height])
        target = np.array([0, 0, 1.0]) + rng.uniform(-0.2, 0.2, 3)
        R = look_at_rotation(eye, target)
        f = 1.145 * size[0] * rng.uniform(0.99, 1.01, 2)
        c = np.array(size, float) / 2 + rng.uniform(-0.01, 0.01, 2) * size[0]
        k = np.array([-0.2, 0.24, -0.003]) * rng.uniform(0.9, 1.1, 3)
        p = rng.uniform(-0.002, 0.002, 2)
        cams.append(Camera(R=R, T=eye, f=f, c=c, size=size, k=k, p=p, name=name))
    return cams


def framing_camera(
    rng: np.random.Generator, centre: np.ndarray, height_px: float, size: tuple[int, int]
) -> Camera:
    """A distortion-free camera looking at a person centred at ``centre`` (world, 1 m above the
    ground point) from a random direction in front, about ``height_px`` pixels tall."""
    focal = rng.uniform(0.8, 1.3) * size[0]
    dist = focal * 1.75 / height_px
    azimuth = rng.uniform(-np.pi, np.pi)
    elevation = rng.uniform(-0.1, 0.35)
    offset = dist * np.array(
        [
            np.cos(azimuth) * np.cos(elevation),
            np.sin(azimuth) * np.cos(elevation),
            np.sin(elevation),
        ]
    )
    aim = centre + rng.uniform(-0.25, 0.25, 3) * [1, 1, 0.5]
    return look_at(centre + offset, aim, focal, size)


def in_image(uv: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(...,) bool: pixel points (..., 2) inside a ``size`` = (W, H) image."""
    return ((uv >= 0) & (uv <= np.array(size) - 1)).all(-1)
