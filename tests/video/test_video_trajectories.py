"""Trajectories on a synthetic forward-facing rig: rigid output, frame counts and the protocol geometry."""

from __future__ import annotations

import numpy as np
import pytest

from feat2gs.errors import ConfigError
from feat2gs.geometry.camera import look_at_w2c
from feat2gs.video import (
    TRAJECTORIES,
    average_pose,
    camera_centers,
    camera_radii,
    default_n_frames,
    invert_rigid,
    lookat_point,
    make_trajectory,
)

TARGET = np.array([0.5, -0.3, 6.0])
WORLD_UP = np.array([0.0, -1.0, 0.0])  # OpenCV: y points down
K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
LOOKING_AT_TARGET = ("arc", "ellipse", "lemniscate", "spiral")


def make_rig(n: int = 5, radius: float = 4.0, spread_deg: float = 20.0) -> np.ndarray:
    """w2c [n, 4, 4]: cameras on a horizontal arc around TARGET (alternating small heights), all looking at it."""
    angles = np.deg2rad(np.linspace(-spread_deg, spread_deg, n))
    heights = 0.05 * (-1.0) ** np.arange(n)
    positions = TARGET + np.stack([radius * np.sin(angles), heights, -radius * np.cos(angles)], axis=-1)
    return np.stack([look_at_w2c(p, TARGET, WORLD_UP) for p in positions])


def assert_rigid(w2c: np.ndarray) -> None:
    R = w2c[:, :3, :3]
    assert w2c.dtype == np.float64 and np.isfinite(w2c).all()
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)
    np.testing.assert_allclose(w2c[:, 3], np.broadcast_to([0.0, 0.0, 0.0, 1.0], (len(w2c), 4)), atol=0)


def project(w2c: np.ndarray, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates [F, 2] and depths [F] of a world point in each camera."""
    cam = w2c[:, :3, :3] @ point + w2c[:, :3, 3]
    return (cam @ K.T)[:, :2] / cam[:, 2:], cam[:, 2]


@pytest.mark.parametrize("name", TRAJECTORIES)
def test_rigid_and_default_frame_count(name: str) -> None:
    w2c = make_trajectory(name, make_rig(5), K)
    assert w2c.shape == (default_n_frames(5), 4, 4) == (240, 4, 4)
    assert_rigid(w2c)


@pytest.mark.parametrize("name", TRAJECTORIES)
def test_explicit_frame_count_and_two_cameras(name: str) -> None:
    w2c = make_trajectory(name, make_rig(2), K, n_frames=17)
    assert w2c.shape == (17, 4, 4)
    assert_rigid(w2c)


@pytest.mark.parametrize("name", LOOKING_AT_TARGET)
def test_cameras_look_at_lookat(name: str) -> None:
    uv, depth = project(make_trajectory(name, make_rig(5), K, n_frames=40), TARGET)
    np.testing.assert_allclose(uv, np.broadcast_to(K[:2, 2], uv.shape), atol=1e-6)
    assert (depth > 0).all()


def test_lookat_recovers_known_intersection() -> None:
    rng = np.random.default_rng(0)
    point = np.array([1.0, -2.0, 3.0])
    origins = point + rng.normal(size=(6, 3)) * 5.0
    c2w = invert_rigid(np.stack([look_at_w2c(o, point, WORLD_UP) for o in origins]))
    np.testing.assert_allclose(lookat_point(c2w), point, atol=1e-9)
    np.testing.assert_allclose(lookat_point(invert_rigid(make_rig(5))), TARGET, atol=1e-9)


def test_average_pose() -> None:
    c2w = invert_rigid(make_rig(5))
    avg = average_pose(c2w)
    assert_rigid(avg[None])
    np.testing.assert_allclose(avg[:3, 3], c2w[:, :3, 3].mean(0), atol=1e-12)
    # the (nearly) symmetric rig looks along +z on average, with camera y (down) along world +y
    np.testing.assert_allclose(avg[:3, 2], [0.0, 0.0, 1.0], atol=1e-2)
    np.testing.assert_allclose(avg[:3, 1], [0.0, 1.0, 0.0], atol=1e-2)
    single = c2w[2]
    np.testing.assert_allclose(average_pose(np.stack([single, single])), single, atol=1e-12)


def test_invert_rigid_matches_inverse() -> None:
    w2c = make_rig(3)
    np.testing.assert_allclose(invert_rigid(w2c), np.linalg.inv(w2c), atol=1e-12)


def test_arc_orbits_lookat_not_origin() -> None:
    rig = make_rig(5)
    avg = average_pose(invert_rigid(rig))
    centers = camera_centers(make_trajectory("arc", rig, K, n_frames=40))
    radius = np.linalg.norm(avg[:3, 3] - TARGET)
    np.testing.assert_allclose(np.linalg.norm(centers - TARGET, axis=-1), radius, rtol=1e-9)
    # rotation about `up` (= -avg y) keeps the height along it; frame 0 is the average centre
    up = -avg[:3, 1]
    np.testing.assert_allclose((centers - TARGET) @ up, (avg[:3, 3] - TARGET) @ up, atol=1e-9)
    np.testing.assert_allclose(centers[0], avg[:3, 3], atol=1e-9)
    # frame F/4 is the extreme swing of degree/2 = 90 degrees around lookat
    a, b = centers[10] - TARGET, avg[:3, 3] - TARGET
    assert np.degrees(np.arccos(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))) == pytest.approx(90.0, abs=1e-6)


def test_lemniscate_starts_at_average_centre_and_stays_in_its_image_plane() -> None:
    rig = make_rig(5)
    avg = average_pose(invert_rigid(rig))
    centers = camera_centers(make_trajectory("lemniscate", rig, K, n_frames=40))
    np.testing.assert_allclose(centers[0], avg[:3, 3], atol=1e-9)
    np.testing.assert_allclose((centers - avg[:3, 3]) @ avg[:3, 2], 0.0, atol=1e-9)
    a = np.linalg.norm(avg[:3, 3] - TARGET) * np.tan(np.deg2rad(22.5))
    assert np.abs((centers - avg[:3, 3]) @ avg[:3, 0]).max() == pytest.approx(a, rel=1e-6)


def test_spiral_first_frame_offset_by_x_radius() -> None:
    rig = make_rig(5)
    c2w = invert_rigid(rig)
    avg = average_pose(c2w)
    rads = camera_radii(c2w, avg)
    centers = camera_centers(make_trajectory("spiral", rig, K, n_frames=40))
    np.testing.assert_allclose(centers[0], avg[:3, 3] + rads[0] * avg[:3, 0], atol=1e-9)


def test_ellipse_lies_in_principal_plane() -> None:
    rig = make_rig(5)
    train = camera_centers(rig)
    centers = camera_centers(make_trajectory("ellipse", rig, K, n_frames=40))
    offsets = train - train.mean(0)
    normal = np.linalg.eigh(offsets.T @ offsets)[1][:, 0]  # least-variance axis
    np.testing.assert_allclose((centers - train.mean(0)) @ normal, 0.0, atol=1e-9)
    assert len(np.unique(np.round(centers, 9), axis=0)) == 40  # no duplicated end point


def test_interpolated_passes_through_training_cameras() -> None:
    rig = make_rig(5)
    w2c = make_trajectory("interpolated", rig, K)
    per_pair = int(300 / 5)
    for j in range(4):
        np.testing.assert_allclose(w2c[j * per_pair], rig[j], atol=1e-9)
    # between cameras the path stays close to the rig (no wild spline overshoot)
    dist = np.linalg.norm(camera_centers(w2c) - TARGET, axis=-1)
    assert np.abs(dist - 4.0).max() < 0.05


def test_wander_keeps_average_orientation() -> None:
    rig = make_rig(5)
    avg = average_pose(invert_rigid(rig))
    w2c = make_trajectory("wander", rig, K, n_frames=40, max_disp=48.0)
    np.testing.assert_allclose(w2c[:, :3, :3], np.broadcast_to(avg[:3, :3].T, (40, 3, 3)), atol=1e-12)
    m = 48.0 / K[0, 0]
    local = (camera_centers(w2c) - avg[:3, 3]) @ avg[:3, :3]  # offsets in the average camera frame
    np.testing.assert_allclose(local[0], [0.0, 0.0, -m / 2], atol=1e-12)
    np.testing.assert_allclose(local[10], [-m, 0.0, 0.0], atol=1e-12)


def test_unknown_name_raises_config_error_listing_valid_names() -> None:
    with pytest.raises(ConfigError, match="valid: arc, ellipse, interpolated, lemniscate, spiral, wander"):
        make_trajectory("zigzag", make_rig(3), K)


def test_invalid_inputs_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        make_trajectory("arc", make_rig(1), K)
    with pytest.raises(ConfigError, match="no option"):
        make_trajectory("arc", make_rig(3), K, zrate=0.5)
    with pytest.raises(ConfigError, match="n_frames"):
        make_trajectory("spiral", make_rig(3), K, n_frames=0)


def test_spiral_reference_radii_rotate_the_centres_instead_of_expressing_them_in_the_average_frame():
    rig = make_rig(5)
    c2w = invert_rigid(rig)
    avg = average_pose(c2w)
    ours = camera_radii(c2w, avg)
    expected_ours = 1.25 * np.ptp((np.linalg.inv(avg) @ c2w)[:, :3, 3], axis=0)  # avg_w2c · c2w
    expected_reference = 1.25 * np.ptp((avg @ c2w)[:, :3, 3], axis=0)  # avg_c2w · c2w, as run_video.py
    np.testing.assert_allclose(ours, expected_ours, atol=1e-12)
    np.testing.assert_allclose(camera_radii(c2w, avg, reference=True), expected_reference, atol=1e-12)
    assert not np.allclose(expected_ours, expected_reference)  # the rig's average rotation is not symmetric
    K = np.array([[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]])
    a = make_trajectory("spiral", rig, K, n_frames=8)
    b = make_trajectory("spiral", rig, K, n_frames=8, reference_radii=True)
    assert not np.allclose(a, b)
