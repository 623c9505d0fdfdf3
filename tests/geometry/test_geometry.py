import numpy as np
import torch

from feat2gs.geometry import apply_similarity_to_c2w, pose_vec_to_viewmat, quat_to_rotmat, rotmat_to_quat, umeyama
from feat2gs.geometry.camera import Camera, look_at_w2c


def _random_rotation(rng):
    q = rng.normal(size=4)
    return quat_to_rotmat(torch.as_tensor(q)).numpy()


def test_quaternion_round_trip_and_orthonormality():
    rng = np.random.default_rng(0)
    for _ in range(20):
        R = _random_rotation(rng)
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(R), 1)
        q = rotmat_to_quat(R)
        assert q[0] >= 0
        assert np.allclose(quat_to_rotmat(torch.as_tensor(q)).numpy(), R, atol=1e-10)


def test_pose_vec_gives_rigid_viewmat():
    pose = torch.tensor([0.9, 0.1, -0.2, 0.3, 1.0, 2.0, 3.0], dtype=torch.float64)
    V = pose_vec_to_viewmat(pose)
    assert torch.allclose(V[3], torch.tensor([0, 0, 0, 1.0], dtype=torch.float64))
    assert torch.allclose(V[:3, 3], pose[4:])


def test_umeyama_recovers_similarity_and_camera_centres_move_as_points():
    rng = np.random.default_rng(1)
    R, s, t = _random_rotation(rng), 2.5, np.array([0.3, -1.0, 4.0])
    src = rng.normal(size=(50, 3))
    s_hat, R_hat, t_hat = umeyama(src, s * src @ R.T + t)
    assert np.isclose(s_hat, s) and np.allclose(R_hat, R) and np.allclose(t_hat, t)
    w2c = look_at_w2c(np.array([1.0, 0.5, -2]), np.zeros(3), np.array([0, -1.0, 0]))
    c2w = np.linalg.inv(w2c)
    mapped = apply_similarity_to_c2w(c2w, s, R, t)
    assert np.allclose(mapped[:3, 3], s * R @ c2w[:3, 3] + t)
    assert np.allclose(mapped[:3, :3] @ mapped[:3, :3].T, np.eye(3))


def test_camera_resize_scales_intrinsics_per_axis():
    cam = Camera("a.png", np.array([[100.0, 0, 64], [0, 90, 48], [0, 0, 1]]), np.eye(4), 128, 96)
    small = cam.resized(64, 24)
    assert np.allclose(small.K, [[50, 0, 32], [0, 22.5, 12], [0, 0, 1]])


def test_look_at_points_the_optical_axis_at_the_target():
    target = np.array([0.2, 0.1, 3.0])
    w2c = look_at_w2c(np.array([1.0, -0.5, 0.0]), target, np.array([0, -1.0, 0]))
    p = w2c[:3, :3] @ target + w2c[:3, 3]
    assert np.allclose(p[:2], 0, atol=1e-12) and p[2] > 0
