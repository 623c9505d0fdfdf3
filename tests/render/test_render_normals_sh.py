"""depth_to_normals on planes, and the SH basis."""

from __future__ import annotations

import math

import torch

from feat2gs.geometry.rotation import quat_to_rotmat
from feat2gs.render import depth_to_normals
from feat2gs.render.sh import eval_sh, sh_basis


def test_fronto_parallel_plane_faces_the_camera(make_pinhole):
    depth = torch.full((6, 8, 1), 3.0, dtype=torch.float64)
    normals = depth_to_normals(depth, torch.eye(4, dtype=torch.float64), make_pinhole(8, 6, 10.0))
    assert normals.shape == (6, 8, 3)
    torch.testing.assert_close(normals[1:-1, 1:-1], torch.tensor([0.0, 0.0, -1.0]).double().expand(4, 6, 3))
    border = torch.ones(6, 8, dtype=torch.bool)
    border[1:-1, 1:-1] = False
    assert torch.equal(normals[border], torch.zeros_like(normals[border]))


def test_tilted_plane_seen_by_a_rotated_camera(make_pinhole):
    width, height = 10, 8
    K = make_pinhole(width, height, 9.0)
    R = quat_to_rotmat(torch.tensor([0.95, 0.1, -0.2, 0.05], dtype=torch.float64))
    center = torch.tensor([0.3, -0.2, -1.0], dtype=torch.float64)
    viewmat = torch.eye(4, dtype=torch.float64)
    viewmat[:3, :3], viewmat[:3, 3] = R, -R @ center
    # World plane n . X = d in front of the camera; camera depth of each pixel by ray-plane intersection.
    n = torch.nn.functional.normalize(torch.tensor([0.3, -0.4, -1.0], dtype=torch.float64), dim=0)
    d = float(n @ torch.tensor([0.0, 0.0, 4.0], dtype=torch.float64))
    v, u = torch.meshgrid(torch.arange(height).double() + 0.5, torch.arange(width).double() + 0.5, indexing="ij")
    rays_cam = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], dim=-1)
    rays_world = rays_cam @ R  # R^T applied to each ray
    depth = ((d - n @ center) / (rays_world @ n))[..., None]
    assert (depth > 0).all()

    normals = depth_to_normals(depth, viewmat, K)
    facing = n if float(n @ center) > d else -n  # the side of the plane the camera is on
    torch.testing.assert_close(normals[1:-1, 1:-1], facing.expand(height - 2, width - 2, 3))


def test_sh_basis_is_orthonormal_on_the_sphere():
    g = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(200_000, 3, generator=g, dtype=torch.float64), dim=-1)
    Y = sh_basis(3, dirs)  # [S, 16]
    gram = 4 * math.pi * (Y.T @ Y) / dirs.shape[0]
    torch.testing.assert_close(gram, torch.eye(16, dtype=torch.float64), rtol=0, atol=0.03)


def test_eval_sh_ignores_direction_length_and_extra_bands():
    g = torch.Generator().manual_seed(1)
    coeffs = torch.randn(4, 16, 3, generator=g, dtype=torch.float64)
    dirs = torch.randn(4, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(eval_sh(2, coeffs, dirs), eval_sh(2, coeffs[:, :9], 5.0 * dirs))
