"""Autograd gradients of the torch backend against central finite differences (float64).

The scenes are tiny (5 Gaussians, 12 x 10 pixels) and well inside the image, with opacities < 0.8 so that
no pixel nears the 0.999 cap or the transmittance cut-off; with the fixed seeds no bounding square, 1/255
test or depth order changes within the finite-difference step, so the rendering is smooth there.
The outputs are contracted with fixed random weights: one backward pass checks the whole gradient.
"""

from __future__ import annotations

import torch
from torch.autograd import gradcheck

from feat2gs.geometry.rotation import pose_vec_to_viewmat, viewmat_to_pose_vec
from feat2gs.render import Gaussians, RenderSettings, rasterize

W, H, FOCAL = 12, 10, 12.0


def weighted_sum(out, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    total = (torch.rand(out.alpha.shape, generator=g, dtype=torch.float64) * out.alpha).sum()
    total = total + (torch.rand(out.image.shape, generator=g, dtype=torch.float64) * out.image).sum()
    return total + (torch.rand(out.depth.shape, generator=g, dtype=torch.float64) * out.depth).sum()


def check(fn, inputs) -> None:
    inputs = tuple(x.detach().clone().requires_grad_() for x in inputs)
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_gradients_wrt_gaussian_parameters(make_random_scene, make_pinhole):
    scene = make_random_scene(5, W, H, FOCAL, seed=11)
    K = make_pinhole(W, H, FOCAL)
    viewmat = torch.eye(4, dtype=torch.float64)
    settings = RenderSettings(sh_degree=None, background=(0.2, 0.4, 0.6), render_mode="RGB+ED")

    def loss(means, quats, scales, opacities, colors):
        out = rasterize(Gaussians(means, quats, scales, opacities, colors), viewmat, K, W, H, settings, "torch")
        return weighted_sum(out, seed=0)

    check(loss, (scene.means, scene.quats, scene.scales, scene.opacities, scene.colors))


def test_gradients_wrt_sh_and_camera_pose(make_random_scene, make_pinhole):
    scene = make_random_scene(5, W, H, FOCAL, seed=12, sh_degree=3)
    K = make_pinhole(W, H, FOCAL)
    # A camera slightly off the identity, so that every pose component matters.
    pose = viewmat_to_pose_vec(torch.eye(4, dtype=torch.float64))
    pose = pose + torch.tensor([0.0, 0.02, -0.03, 0.01, 0.05, -0.04, 0.1], dtype=torch.float64)
    settings = RenderSettings(sh_degree=3, render_mode="RGB+ED")

    def loss(pose, means, colors):
        g = Gaussians(means, scene.quats, scene.scales, scene.opacities, colors)
        out = rasterize(g, pose_vec_to_viewmat(pose), K, W, H, settings, "torch")
        return weighted_sum(out, seed=1)

    check(loss, (pose, scene.means, scene.colors))


def test_camera_pose_gradient_is_nonzero(make_random_scene, make_pinhole):
    """Guards the pose test against a vacuous pass (a pose that does not reach the image)."""
    scene = make_random_scene(5, W, H, FOCAL, seed=12, sh_degree=3)
    pose = viewmat_to_pose_vec(torch.eye(4, dtype=torch.float64)).requires_grad_()
    out = rasterize(scene, pose_vec_to_viewmat(pose), make_pinhole(W, H, FOCAL), W, H,
                    RenderSettings(sh_degree=3, render_mode="RGB+ED"), "torch")
    weighted_sum(out, seed=1).backward()
    assert (pose.grad[4:].abs() > 1e-3).all()
