"""3D point accuracy and camera-pose errors after a Sim(3) alignment (the DTU protocol, ATE / RPE)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from feat2gs.evaluate.accuracy import format_pose_eval, point_cloud_errors, pose_errors, trajectory_errors


def _similar(x: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    R = Rotation.from_rotvec(rng.normal(size=3)).as_matrix()
    return 2.5 * x @ R.T + rng.normal(size=3)


def test_point_errors_ignore_the_frame_and_measure_the_shape():
    gt = np.random.default_rng(0).uniform(-1, 1, size=(2000, 3))
    exact = point_cloud_errors(_similar(gt), gt)
    assert all(v < 1e-9 for v in exact.values()), exact  # a similar copy is a perfect reconstruction
    noisy = point_cloud_errors(_similar(gt + np.random.default_rng(1).normal(scale=0.01, size=gt.shape)), gt)
    # per-point distance of 3D Gaussian noise of std 0.01: mean 0.01 * sqrt(8/pi) ~ 0.016
    assert noisy["Distance"] == pytest.approx(0.01 * np.sqrt(8 / np.pi), rel=0.1)
    assert noisy["Accuracy"] <= noisy["Distance"] and noisy["Completion"] <= noisy["Distance"]  # NN is never farther


def _ring(n: int = 5) -> np.ndarray:
    """w2c [n, 4, 4] of cameras on a circle looking at the origin."""
    out = []
    for a in np.linspace(0, 1.2, n):
        c = np.array([4 * np.sin(a), 0.3 * a, -4 * np.cos(a)])
        z = -c / np.linalg.norm(c)
        x = np.cross([0, 1, 0], z)
        x /= np.linalg.norm(x)
        c2w = np.eye(4)
        c2w[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
        c2w[:3, 3] = c
        out.append(np.linalg.inv(c2w))
    return np.stack(out)


def test_pose_errors_of_a_similar_copy_are_zero_and_grow_with_rotation_noise():
    gt = _ring()
    s, R, t = 3.0, Rotation.from_rotvec([0.3, -0.2, 0.5]).as_matrix(), np.array([1.0, 2.0, -1.0])
    c2w = np.linalg.inv(gt)
    moved = c2w.copy()
    moved[:, :3, :3] = R @ c2w[:, :3, :3]
    moved[:, :3, 3] = s * c2w[:, :3, 3] @ R.T + t
    errors = pose_errors(np.linalg.inv(moved), gt, gt)
    assert errors["ATE"] < 1e-9 and errors["RPE_trans"] < 1e-9 and errors["RPE_rot"] < 1e-6
    assert errors["initial"]["ATE"] < 1e-12 and errors["n_views"] == 5
    tilted = c2w.copy()
    tilted[2, :3, :3] = tilted[2, :3, :3] @ Rotation.from_rotvec([0, 0, np.deg2rad(2.0)]).as_matrix()
    rpe = trajectory_errors(tilted, c2w)
    # camera 2 is rotated by 2 degrees: the pairs (1, 2) and (2, 3) each see 2 degrees, the other pairs none
    assert rpe["ATE"] < 1e-12 and rpe["RPE_rot"] == pytest.approx(2.0 * 2 / 4, rel=1e-6)
    with pytest.raises(ValueError, match="3 or more training cameras"):
        pose_errors(gt[:2], gt[:2], gt[:2])
    assert format_pose_eval(errors).startswith("ATE: ")


def test_test_views_are_mapped_with_the_training_alignment():
    gt = _ring(6)
    train, test = gt[:4], gt[4:]
    shifted = np.linalg.inv(test)
    shifted[:, :3, 3] += [0.5, 0, 0]  # test poses off by half a unit in the training frame
    errors = pose_errors(train, train, train, np.linalg.inv(shifted), test, test)
    assert errors["test"]["ATE"] == pytest.approx(0.5) and errors["test"]["initial"]["ATE"] < 1e-9


def test_collapsed_estimates_give_null_errors_with_a_note_never_nan():
    gt = _ring(5)
    collapsed = np.tile(np.eye(4), (5, 1, 1))  # every estimated camera at the origin (a degenerate alignment)
    errors = pose_errors(collapsed, gt, gt, collapsed[:2], gt[:2], gt[:2])
    assert errors["ATE"] is None and errors["RPE_rot"] is None and "coincide" in errors["note"]
    assert errors["test"]["ATE"] is None and errors["initial"]["ATE"] < 1e-9  # the initial cameras still align
    points = point_cloud_errors(np.zeros((50, 3)), np.random.default_rng(0).normal(size=(50, 3)))
    assert all(points[k] is None for k in ("Accuracy", "Completion", "Distance")) and "coincide" in points["note"]
