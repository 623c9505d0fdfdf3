"""Rendered values against closed forms and against a per-Gaussian loop written straight from the rules."""

from __future__ import annotations

import math

import pytest
import torch

from feat2gs.render import RenderSettings, rasterize
from feat2gs.render._projection import project_gaussians
from feat2gs.render._torch import rasterize_torch
from feat2gs.render.sh import SH_C0, SH_C1

# 16 x 12 image whose pixel (8, 6) has its centre (8.5, 6.5) on the optical axis, so a Gaussian on the axis
# projects to a pixel centre and its Jacobian is diag(f / z, f / z): the screen covariance is exact.
W, H, F = 16, 12, 20.0
K_AXIS = torch.tensor([[F, 0.0, 8.5], [0.0, F, 6.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
EYE = torch.eye(4, dtype=torch.float64)
BG = (0.1, 0.2, 0.3)


def render(gaussians, settings=RenderSettings(sh_degree=None, background=BG, render_mode="RGB+ED"),
           viewmat=EYE, K=K_AXIS):
    return rasterize(gaussians, viewmat, K, W, H, settings, backend="torch")


def test_single_gaussian_matches_closed_form(make_gaussians):
    color = [0.2, 0.5, 0.9]
    g = make_gaussians([[0.0, 0.0, 2.0]], [0.1], [0.7], [color])  # screen sigma = 20 * 0.1 / 2 = 1 px
    out = render(g)
    var = 1.0 + 0.3  # + eps2d
    v, u = torch.meshgrid(torch.arange(H).double() - 6, torch.arange(W).double() - 8, indexing="ij")
    expected = 0.7 * torch.exp(-0.5 * (u**2 + v**2) / var)
    expected[expected < 1 / 255] = 0.0  # every pixel that passes the alpha test, none beyond
    # gsplat's box: out to the Mahalanobis distance where alpha = 1/255, per axis (equal here).
    radius = math.ceil(math.sqrt(2 * math.log(255 * 0.7)) * math.sqrt(var))

    assert out.radii.tolist() == [radius]
    assert out.alpha[6, 8, 0].item() == pytest.approx(0.7, abs=1e-12)
    torch.testing.assert_close(out.alpha[..., 0], expected, rtol=0, atol=1e-12)
    bg = torch.tensor(BG, dtype=torch.float64)
    torch.testing.assert_close(out.image, out.alpha * torch.tensor(color).double() + (1 - out.alpha) * bg)
    covered = out.alpha[..., 0] > 0
    torch.testing.assert_close(out.depth[covered], torch.full_like(out.depth[covered], 2.0))


def test_rotation_and_scales_give_the_projected_covariance(make_gaussians):
    g = make_gaussians([[0.0, 0.0, 2.0]], [1.0], [0.6], [[1.0, 1.0, 1.0]])
    g.scales = torch.tensor([[0.2, 0.05, 0.1]], dtype=torch.float64)
    g.quats = torch.tensor([[math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)]], dtype=torch.float64)
    alpha = render(g).alpha[..., 0]
    # 90 degrees about z: local x (0.2) becomes world y, local y (0.05) world x; screen sigma = 10 * world.
    var_x, var_y = 0.5**2 + 0.3, 2.0**2 + 0.3
    assert alpha[6, 9].item() == pytest.approx(0.6 * math.exp(-0.5 / var_x), rel=1e-10)
    assert alpha[7, 8].item() == pytest.approx(0.6 * math.exp(-0.5 / var_y), rel=1e-10)


@pytest.mark.parametrize("near_first", [True, False])
def test_nearer_gaussian_wins(make_gaussians, near_first):
    red, blue = [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]
    near = ([0.0, 0.0, 2.0], 0.1, 0.9, red)
    far = ([0.0, 0.0, 4.0], 0.2, 0.9, blue)
    order = [near, far] if near_first else [far, near]
    g = make_gaussians(*[list(x) for x in zip(*order)])
    out = render(g)
    bg = torch.tensor(BG, dtype=torch.float64)
    expected = 0.9 * torch.tensor(red).double() + 0.1 * 0.9 * torch.tensor(blue).double() + 0.01 * bg
    torch.testing.assert_close(out.image[6, 8], expected, rtol=0, atol=1e-12)
    assert out.depth[6, 8, 0].item() == pytest.approx((0.9 * 2.0 + 0.09 * 4.0) / 0.99, rel=1e-12)


def test_background_where_nothing_is(make_gaussians):
    g = make_gaussians([[0.0, 0.0, 2.0]], [0.05], [0.9], [[1.0, 1.0, 1.0]])
    out = render(g)
    assert out.alpha[0, 0, 0].item() == 0.0
    assert out.depth[0, 0, 0].item() == 0.0
    assert out.image[0, 0].tolist() == list(BG)


def test_culled_gaussians_leave_the_background(make_gaussians):
    # Behind the near plane, behind the camera, beyond the far plane, off-screen, fainter than 1/255; visible.
    means = [[0.0, 0.0, 0.005], [0.0, 0.0, -2.0], [0.0, 0.0, 200.0], [10.0, 0.0, 2.0], [0.0, 0.0, 1.0],
             [0.0, 0.0, 0.5]]
    opacities = [0.9, 0.9, 0.9, 0.9, 0.003, 0.9]
    g = make_gaussians(means, [0.01] * 6, opacities, [[1.0, 1.0, 1.0]] * 6)
    settings = RenderSettings(sh_degree=None, background=BG, near_plane=0.01, far_plane=100.0)
    out = render(g, settings)
    assert out.radii[:5].tolist() == [0, 0, 0, 0, 0]
    assert out.radii[5] > 0
    visible_only = render(make_gaussians(means[5:], [0.01], [0.9], [[1.0, 1.0, 1.0]]), settings)
    torch.testing.assert_close(out.image, visible_only.image, rtol=0, atol=0)
    torch.testing.assert_close(out.alpha, visible_only.alpha, rtol=0, atol=0)


def test_compositing_stops_before_transmittance_falls_below_threshold(make_gaussians):
    # T after the first = 0.01; the second would bring it to 5e-5 <= 1e-4, so the pixel stops there and the
    # faint third Gaussian is not composited either (gsplat's behaviour).
    colors = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    g = make_gaussians([[0.0, 0.0, 2.0], [0.0, 0.0, 3.0], [0.0, 0.0, 4.0]], [0.1, 0.15, 0.2],
                       [0.99, 0.995, 0.1], colors)
    out = render(g)
    bg = torch.tensor(BG, dtype=torch.float64)
    torch.testing.assert_close(out.image[6, 8], 0.99 * torch.tensor(colors[0]).double() + 0.01 * bg,
                               rtol=0, atol=1e-12)
    assert out.alpha[6, 8, 0].item() == pytest.approx(0.99, abs=1e-12)
    assert out.depth[6, 8, 0].item() == pytest.approx(2.0, abs=1e-12)


def test_alpha_is_capped(make_gaussians):
    out = render(make_gaussians([[0.0, 0.0, 2.0]], [0.1], [1.0], [[1.0, 1.0, 1.0]]))
    assert out.alpha[6, 8, 0].item() == pytest.approx(0.999, abs=1e-12)


@pytest.mark.parametrize(("mode", "has_image", "has_depth"),
                         [("RGB", True, False), ("ED", False, True), ("RGB+ED", True, True)])
def test_render_mode_selects_outputs(make_gaussians, mode, has_image, has_depth):
    g = make_gaussians([[0.0, 0.0, 2.0], [0.1, 0.0, 3.0]], [0.1, 0.1], [0.5, 0.5], [[1.0, 0.0, 0.0]] * 2)
    out = render(g, RenderSettings(sh_degree=None, render_mode=mode))
    assert out.alpha.shape == (H, W, 1)
    assert out.radii.shape == (2,) and out.radii.dtype == torch.int32
    assert (out.image is not None) == has_image and (out.depth is not None) == has_depth
    if has_image:
        assert out.image.shape == (H, W, 3)
    if has_depth:
        assert out.depth.shape == (H, W, 1)


def test_sh_degree_zero_is_offset_constant(make_gaussians):
    sh = torch.tensor([1.0, -0.5, -3.0], dtype=torch.float64)
    g = make_gaussians([[0.0, 0.0, 2.0]], [0.1], [0.8], [[sh.tolist()]])
    out = render(g, RenderSettings(sh_degree=0))
    expected = torch.clamp_min(SH_C0 * sh + 0.5, 0.0)  # the blue channel clamps to 0
    torch.testing.assert_close(out.image[6, 8], 0.8 * expected, rtol=0, atol=1e-12)

    # Higher bands present in the tensor are ignored at degree 0.
    g.colors = torch.cat([g.colors, torch.randn(1, 15, 3, dtype=torch.float64)], dim=1)
    torch.testing.assert_close(render(g, RenderSettings(sh_degree=0)).image, out.image, rtol=0, atol=0)


@pytest.mark.parametrize(("camera_z", "sign"), [(-2.0, 1.0), (2.0, -1.0)])
def test_sh_uses_direction_from_camera_centre(make_gaussians, camera_z, sign):
    coeffs = torch.zeros(1, 4, 3, dtype=torch.float64)
    coeffs[0, 2] = 0.4  # the z band: value C1 * z * coeff
    g = make_gaussians([[0.0, 0.0, 0.0]], [0.2], [0.8], coeffs.tolist())
    # Camera at (0, 0, camera_z) looking at the origin (a half turn about y when it sits on +z).
    R = torch.eye(3, dtype=torch.float64) if camera_z < 0 else torch.diag(torch.tensor([-1.0, 1.0, -1.0]))
    viewmat = torch.eye(4, dtype=torch.float64)
    viewmat[:3, :3] = R.double()
    viewmat[:3, 3] = -R.double() @ torch.tensor([0.0, 0.0, camera_z], dtype=torch.float64)
    out = render(g, RenderSettings(sh_degree=1), viewmat=viewmat)
    expected = 0.8 * (sign * SH_C1 * 0.4 + 0.5)
    torch.testing.assert_close(out.image[6, 8], torch.full((3,), expected, dtype=torch.float64))


def naive_render(g, viewmat, K, width, height, settings):
    """One Gaussian at a time, front to back, over the whole image: the rules written out directly (no screen
    box: the renderer's box must hold every pixel that passes the alpha test)."""
    proj = project_gaussians(g.means, g.quats, g.scales, g.opacities, viewmat, K, width, height,
                             settings.near_plane, settings.far_plane, settings.eps2d)
    ys, xs = torch.meshgrid(torch.arange(height).double() + 0.5, torch.arange(width).double() + 0.5, indexing="ij")
    T = torch.ones(height, width, dtype=torch.float64)
    done = torch.zeros(height, width, dtype=torch.bool)
    color = torch.zeros(height, width, 3, dtype=torch.float64)
    depth = torch.zeros(height, width, dtype=torch.float64)
    for i in torch.argsort(proj.depths, stable=True).tolist():
        if not (proj.radii[i] > 0).all():
            continue
        (u, v), (a, b, c) = proj.means2d[i], proj.conics[i]
        dx, dy = u - xs, v - ys
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        alpha = torch.clamp_max(g.opacities[i] * torch.exp(-sigma), 0.999)
        ok = (sigma >= 0) & (alpha >= 1 / 255) & ~done
        t_next = T * (1 - alpha)
        stop = ok & (t_next <= 1e-4)
        done |= stop
        ok &= ~stop
        w = torch.where(ok, alpha * T, torch.zeros_like(T))
        color += w[..., None] * g.colors[i]
        depth += w * proj.depths[i]
        T = torch.where(ok, t_next, T)
    alpha = 1 - T
    bg = torch.tensor(settings.background, dtype=torch.float64)
    return color + T[..., None] * bg, alpha[..., None], (depth / alpha.clamp_min(1e-10))[..., None]


def test_matches_per_gaussian_loop(make_random_scene, make_pinhole):
    width, height = 24, 20
    g = make_random_scene(60, width, height, focal=24.0, seed=3)
    g.opacities = torch.where(torch.arange(60) % 3 == 0, torch.full_like(g.opacities, 0.97), g.opacities)
    K = make_pinhole(width, height, 24.0)
    settings = RenderSettings(sh_degree=None, background=BG, render_mode="RGB+ED")
    out = rasterize(g, EYE, K, width, height, settings, backend="torch")
    image, alpha, depth = naive_render(g, EYE, K, width, height, settings)
    assert alpha.max() > 1 - 1e-3  # some pixels do reach the transmittance cut-off
    torch.testing.assert_close(out.image, image, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out.alpha, alpha, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out.depth, depth, rtol=1e-10, atol=1e-12)


def test_chunked_pair_generation_gives_the_same_image(make_random_scene, make_pinhole):
    width, height = 24, 20
    g = make_random_scene(40, width, height, focal=24.0, seed=5, sh_degree=2)
    K = make_pinhole(width, height, 24.0)
    settings = RenderSettings(sh_degree=2, render_mode="RGB+ED")
    whole = rasterize_torch(g, EYE, K, width, height, settings)
    chunked = rasterize_torch(g, EYE, K, width, height, settings, max_pairs_per_chunk=7)
    torch.testing.assert_close(chunked.image, whole.image, rtol=0, atol=1e-14)
    torch.testing.assert_close(chunked.depth, whole.depth, rtol=0, atol=1e-14)


def test_empty_view_renders_background_and_backpropagates(make_gaussians):
    g = make_gaussians([[0.0, 0.0, -3.0]], [0.1], [0.9], [[1.0, 0.0, 0.0]])
    g.means.requires_grad_()
    out = render(g)
    assert torch.equal(out.image, torch.tensor(BG, dtype=torch.float64).expand(H, W, 3))
    out.image.sum().backward()
    assert torch.equal(g.means.grad, torch.zeros_like(g.means))
