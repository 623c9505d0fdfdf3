"""Cameras, rotations and similarity transforms (numpy and torch)."""

from feat2gs.geometry.camera import Camera
from feat2gs.geometry.rotation import (
    normalize_quat,
    pose_vec_to_viewmat,
    quat_to_rotmat,
    rotmat_to_quat,
    viewmat_to_pose_vec,
)
from feat2gs.geometry.similarity import apply_similarity_to_c2w, umeyama

__all__ = [
    "Camera",
    "apply_similarity_to_c2w",
    "normalize_quat",
    "pose_vec_to_viewmat",
    "quat_to_rotmat",
    "rotmat_to_quat",
    "umeyama",
    "viewmat_to_pose_vec",
]
