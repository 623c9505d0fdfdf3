"""Both backends against gsplat 1.5.3's own pure-PyTorch reference, on CPU, in every CI run.

The reference is ``gsplat.rendering._rasterization`` (gsplat's autograd renderer: its projection, tile
intersection, offsets, ``_rasterize_to_pixels`` and SH) with the CUDA-only pieces substituted as described in
``_gsplat_cpu``; the gsplat backend is our adapter ``render/_gsplat.py`` calling ``gsplat.rasterization`` with the
same substitutions. Everything runs in float64, so agreement is to round-off: any convention slip (quaternion
order, viewmat transposed, intrinsics, eps2d, SH layout, background, expected depth) is far outside the tolerances.
"""

from __future__ import annotations

import inspect
import math

import gsplat
import pytest
import torch
from gsplat import rendering

from feat2gs.geometry.rotation import pose_vec_to_viewmat, viewmat_to_pose_vec
from feat2gs.render import Gaussians, RenderSettings, rasterize
from feat2gs.render._gsplat import rasterize_gsplat
from tests.render._gsplat_cpu import patch_gsplat_for_cpu

BACKGROUND = (0.1, 0.2, 0.3)
# Forward outputs: the same float64 expressions evaluated in other orders (covariance as A A^T vs J Sigma J^T,
# transmittance as a sum of logs vs a cumprod); measured differences <= 1.4e-13.
FORWARD_TOL = dict(rtol=1e-9, atol=1e-11)
# Expected depth divides by alpha; at faint pixels (alpha ~ 1/255) that amplifies round-off; measured <= 1.6e-12.
DEPTH_TOL = dict(rtol=1e-9, atol=1e-10)
# Gradients: round-off relative to each gradient's largest entry; measured <= 9e-14 of it.
GRAD_REL_ATOL = 1e-10
GRAD_RTOL = 1e-8  # entry-wise relative part, for the large entries; round-off is ~1e-14

# (width, height, sh_degree, seed): landscape and portrait, 16 x 16-tile-aligned and not, colours as RGB and
# as SH of degree 0..3 (16 coefficients stored, so lower degrees also check that unused bands are ignored).
CASES = [
    (64, 48, 3, 0),
    (48, 64, None, 1),
    (37, 53, 2, 2),
    (53, 29, 1, 3),
    (45, 32, 0, 4),
]


def hard_scene(width: int, height: int, focal: float, sh_degree: int | None, seed: int, n: int = 120) -> Gaussians:
    """Anisotropic Gaussians, some behind the camera, inside the near plane, off-screen or fainter than 1/255,
    a few with opacity 1 (alpha capped at 0.999), and an opaque stack at the centre (transmittance cut-off)."""
    g = torch.Generator().manual_seed(seed)
    kind = torch.rand(n, generator=g)
    z = 1.5 + 4.5 * torch.rand(n, generator=g)
    z = torch.where(kind < 0.1, -0.5 - 2.5 * torch.rand(n, generator=g), z)  # behind the camera
    z = torch.where((kind >= 0.1) & (kind < 0.13), 0.002 + 0.006 * torch.rand(n, generator=g), z)  # < near
    u = (-0.3 + 1.6 * torch.rand(n, generator=g)) * width  # 30 % margins: partly and fully off-screen
    v = (-0.3 + 1.6 * torch.rand(n, generator=g)) * height
    opacities = 0.05 + 0.94 * torch.rand(n, generator=g)
    opacities[::17] = 0.002
    opacities[5::23] = 1.0
    # The opaque stack: six Gaussians on the image centre at depths 2..3.
    stack = torch.arange(6)
    u[stack], v[stack], z[stack] = width / 2 + stack - 3.0, height / 2 - stack + 3.0, 2.0 + 0.2 * stack
    opacities[stack] = 0.95
    means = torch.stack([(u - width / 2) * z / focal, (v - height / 2) * z / focal, z], dim=-1)
    sigmas_px = 0.3 * torch.exp(math.log(12.0) * torch.rand(n, 3, generator=g))  # 0.3..3.6 px, per axis
    sigmas_px[stack] = 4.0
    if sh_degree is None:
        colors = torch.rand(n, 3, generator=g)
    else:
        colors = 0.4 * torch.randn(n, 16, 3, generator=g)
    scene = Gaussians(means=means, quats=torch.randn(n, 4, generator=g),
                      scales=sigmas_px * z.abs()[:, None] / focal, opacities=opacities, colors=colors)
    return Gaussians(**{k: t.double() for k, t in vars(scene).items()})


def camera(width: int, height: int, focal: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A world-to-camera pose off the identity (rotation and translation) and intrinsics with fx != fy and an
    off-centre principal point, so that a transposed viewmat or K, or swapped axes, change the image."""
    g = torch.Generator().manual_seed(1000 + seed)
    pose = viewmat_to_pose_vec(torch.eye(4, dtype=torch.float64))
    viewmat = pose_vec_to_viewmat(pose + 0.03 * torch.randn(7, generator=g, dtype=torch.float64))
    K = torch.tensor([[focal, 0.0, width / 2 + 0.7], [0.0, 1.05 * focal, height / 2 - 1.3], [0.0, 0.0, 1.0]],
                     dtype=torch.float64)
    return viewmat, K


def gsplat_reference(gaussians: Gaussians, viewmat, K, width, height, settings: RenderSettings):
    """gsplat's ``_rasterization`` -> (image, alpha, depth). near/far/eps2d are passed only where the settings
    differ from our defaults, so that our defaults are also checked against gsplat's."""
    explicit = {name: getattr(settings, name) for name in ("near_plane", "far_plane", "eps2d")
                if getattr(settings, name) != getattr(RenderSettings(), name)}
    backgrounds = torch.tensor([settings.background], dtype=gaussians.means.dtype)
    colors, alphas, _ = rendering._rasterization(
        gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities, gaussians.colors, viewmat[None],
        K[None], width, height, sh_degree=settings.sh_degree, backgrounds=backgrounds, render_mode="RGB+ED",
        **explicit)
    return colors[0, ..., :3], alphas[0], colors[0, ..., 3:]


def torch_backend(gaussians, viewmat, K, width, height, settings):
    out = rasterize(gaussians, viewmat, K, width, height, settings, backend="torch")
    return out.image, out.alpha, out.depth


def gsplat_backend(gaussians, viewmat, K, width, height, settings):
    out = rasterize_gsplat(gaussians, viewmat, K, width, height, settings)  # the CPU check in rasterize() aside
    return out.image, out.alpha, out.depth


def outputs_and_gradients(render, scene: Gaussians, viewmat, K, width, height, settings):
    """Forward outputs and the gradients of one fixed random contraction of all of them w.r.t. every input."""
    params = {k: t.detach().clone().requires_grad_() for k, t in vars(scene).items()}
    pose = viewmat.detach().clone().requires_grad_()
    image, alpha, depth = render(Gaussians(**params), pose, K, width, height, settings)
    g = torch.Generator().manual_seed(7)
    loss = sum((torch.rand(x.shape, generator=g, dtype=x.dtype) * x).sum() for x in (image, alpha, depth))
    grads = torch.autograd.grad(loss, [*params.values(), pose])
    outputs = {"image": image.detach(), "alpha": alpha.detach(), "depth": depth.detach()}
    return outputs, dict(zip([*params, "viewmat"], grads))


def assert_matches_reference(render, width, height, sh_degree, seed, settings=None):
    focal = 0.9 * max(width, height)
    scene = hard_scene(width, height, focal, sh_degree, seed)
    viewmat, K = camera(width, height, focal, seed)
    settings = settings or RenderSettings(sh_degree=sh_degree, background=BACKGROUND, render_mode="RGB+ED")
    ref_out, ref_grads = outputs_and_gradients(gsplat_reference, scene, viewmat, K, width, height, settings)
    out, grads = outputs_and_gradients(render, scene, viewmat, K, width, height, settings)

    assert ref_out["alpha"].max() > 0.5, "the reference renders (almost) nothing: the comparison would be vacuous"
    torch.testing.assert_close(out["image"], ref_out["image"], **FORWARD_TOL)
    torch.testing.assert_close(out["alpha"], ref_out["alpha"], **FORWARD_TOL)
    torch.testing.assert_close(out["depth"], ref_out["depth"], **DEPTH_TOL)
    assert set(grads) == {"means", "quats", "scales", "opacities", "colors", "viewmat"}
    for name, ref in ref_grads.items():
        scale = ref.abs().max().item()
        assert scale > 0, f"reference gradient w.r.t. {name} is zero: nothing to compare"
        torch.testing.assert_close(grads[name], ref, rtol=GRAD_RTOL, atol=GRAD_REL_ATOL * scale, msg=name)
    return scene, viewmat, K, ref_out


@pytest.fixture
def gsplat_cpu(monkeypatch):
    patch_gsplat_for_cpu(monkeypatch)


@pytest.mark.parametrize(("width", "height", "sh_degree", "seed"), CASES)
def test_torch_backend_matches_gsplat_reference(gsplat_cpu, width, height, sh_degree, seed):
    scene, viewmat, K, ref_out = assert_matches_reference(torch_backend, width, height, sh_degree, seed)
    # The scene reaches what it is meant to: transmittance cut-off at the stack, culling of every kind.
    assert ref_out["alpha"].max() > 1 - 1e-3
    radii = rasterize(scene, viewmat, K, width, height, RenderSettings(sh_degree=sh_degree), "torch").radii
    depth = (scene.means @ viewmat[:3, :3].T + viewmat[:3, 3])[:, 2]
    assert (radii[depth < 0] == 0).all() and (radii[(depth > 0) & (depth < 0.01)] == 0).all()
    assert (radii[scene.opacities < 1 / 255] == 0).all()
    assert (radii > 0).sum() > 30 and ((radii == 0) & (depth > 1) & (scene.opacities > 0.01)).any()  # off-screen


@pytest.mark.parametrize(("width", "height", "sh_degree", "seed"), CASES)
def test_gsplat_adapter_matches_gsplat_reference(gsplat_cpu, width, height, sh_degree, seed):
    scene, viewmat, K, _ = assert_matches_reference(gsplat_backend, width, height, sh_degree, seed)
    # gsplat's per-axis radii, reduced to [N] by the adapter, are the torch backend's.
    settings = RenderSettings(sh_degree=sh_degree)
    ours = rasterize(scene, viewmat, K, width, height, settings, "torch").radii
    theirs = rasterize_gsplat(scene, viewmat, K, width, height, settings).radii
    assert theirs.shape == ours.shape == (len(scene),) and theirs.dtype == torch.int32
    assert torch.equal(theirs, ours)


@pytest.mark.parametrize("render", [torch_backend, gsplat_backend], ids=["torch", "gsplat"])
def test_non_default_planes_and_blur_match_gsplat_reference(gsplat_cpu, render):
    # The near and far planes cut through the scene (depths 1.5..6); a smaller eps2d.
    settings = RenderSettings(near_plane=2.5, far_plane=5.0, eps2d=0.1, sh_degree=1, background=(0.7, 0.0, 0.4),
                              render_mode="RGB+ED")
    assert_matches_reference(render, 40, 56, 1, seed=5, settings=settings)


def test_our_defaults_are_gsplats():
    defaults = inspect.signature(gsplat.rasterization).parameters
    ours = RenderSettings()
    for name in ("near_plane", "far_plane", "eps2d"):
        assert getattr(ours, name) == defaults[name].default, name


@pytest.mark.parametrize("mode", ["RGB", "ED", "RGB+ED"])
def test_gsplat_adapter_render_modes(gsplat_cpu, mode):
    width, height = 37, 29
    scene = hard_scene(width, height, 40.0, 3, seed=6)
    viewmat, K = camera(width, height, 40.0, seed=6)
    settings = RenderSettings(sh_degree=3, background=BACKGROUND, render_mode=mode)
    ours = rasterize(scene, viewmat, K, width, height, settings, "torch")
    theirs = rasterize_gsplat(scene, viewmat, K, width, height, settings)
    assert (theirs.image is None) == (mode == "ED") and (theirs.depth is None) == (mode == "RGB")
    torch.testing.assert_close(theirs.alpha, ours.alpha, **FORWARD_TOL)
    if theirs.image is not None:
        assert theirs.image.shape == (height, width, 3)
        torch.testing.assert_close(theirs.image, ours.image, **FORWARD_TOL)
    if theirs.depth is not None:
        assert theirs.depth.shape == (height, width, 1)
        torch.testing.assert_close(theirs.depth, ours.depth, **DEPTH_TOL)


def test_gsplat_adapter_packed_and_unpacked_agree(gsplat_cpu, monkeypatch):
    layouts = []  # what gsplat's projection was asked for: the packed run must really be packed
    project = rendering.fully_fused_projection
    monkeypatch.setattr(rendering, "fully_fused_projection",
                        lambda *args, **kwargs: layouts.append(kwargs["packed"]) or project(*args, **kwargs))
    width, height = 45, 32
    scene = hard_scene(width, height, 40.0, 2, seed=7)
    viewmat, K = camera(width, height, 40.0, seed=7)
    settings = RenderSettings(sh_degree=2, background=BACKGROUND, render_mode="RGB+ED")
    runs = {}
    for packed in (False, True):
        def render(gaussians, pose, K, width, height, settings, packed=packed):
            out = rasterize_gsplat(gaussians, pose, K, width, height, settings, packed=packed)
            runs[packed] = out.radii
            return out.image, out.alpha, out.depth
        runs[packed, "out"] = outputs_and_gradients(render, scene, viewmat, K, width, height, settings)
    assert layouts == [False, True]
    assert (runs[True] == 0).any() and (runs[True] > 0).any()
    assert torch.equal(runs[True], runs[False])
    (out_p, grads_p), (out_u, grads_u) = runs[True, "out"], runs[False, "out"]
    for name in out_u:
        torch.testing.assert_close(out_p[name], out_u[name], **FORWARD_TOL)
    for name, ref in grads_u.items():
        assert ref.abs().max() > 0, name
        torch.testing.assert_close(grads_p[name], ref, rtol=GRAD_RTOL, atol=GRAD_REL_ATOL * ref.abs().max().item())
