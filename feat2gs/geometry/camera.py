"""Pinhole camera record shared by data loading, rendering, evaluation and video."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: OpenCV world-to-camera ``w2c`` [4, 4], pixel intrinsics ``K`` [3, 3], image size."""

    name: str
    K: np.ndarray
    w2c: np.ndarray
    width: int
    height: int

    @property
    def c2w(self) -> np.ndarray:
        return np.linalg.inv(self.w2c)

    @property
    def center(self) -> np.ndarray:
        return self.c2w[:3, 3]

    def resized(self, width: int, height: int) -> "Camera":
        """Same camera imaging at another resolution (intrinsics scaled per axis)."""
        sx, sy = width / self.width, height / self.height
        K = np.array(self.K, dtype=np.float64, copy=True)
        K[0, :] *= sx
        K[1, :] *= sy
        return replace(self, K=K, width=int(width), height=int(height))

    def with_pose(self, w2c: np.ndarray) -> "Camera":
        return replace(self, w2c=np.asarray(w2c, dtype=np.float64))


def look_at_w2c(position: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """OpenCV w2c for a camera at ``position`` looking at ``target``; ``up`` is the world up direction."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, position
    return np.linalg.inv(c2w)


def perturb_w2c(w2c: np.ndarray, rot_deg: float, trans: float, rng: np.random.Generator) -> np.ndarray:
    """Rotate the camera by ``rot_deg`` about a random axis and move its centre by ``trans`` in a random direction
    (both directions drawn from ``rng``)."""
    from scipy.spatial.transform import Rotation

    c2w = np.linalg.inv(w2c)
    axis = rng.normal(size=3)
    direction = rng.normal(size=3)
    c2w[:3, :3] = c2w[:3, :3] @ Rotation.from_rotvec(np.deg2rad(rot_deg) * axis / np.linalg.norm(axis)).as_matrix()
    c2w[:3, 3] = c2w[:3, 3] + trans * direction / np.linalg.norm(direction)
    return np.linalg.inv(c2w)
