"""Adapter to ``gsplat.rasterization`` (CUDA, gsplat 1.5.3); gsplat is imported only when it is used."""

from __future__ import annotations

import torch

from feat2gs.render.types import Gaussians, RenderOutput, RenderSettings


def rasterize_gsplat(
    gaussians: Gaussians,
    viewmat: torch.Tensor,  # [4, 4]
    K: torch.Tensor,  # [3, 3]
    width: int,
    height: int,
    settings: RenderSettings,
) -> RenderOutput:
    """Render one view with gsplat's classic (non-antialiased) rasteriser; same contract as the torch backend."""
    from gsplat import rasterization

    means = gaussians.means
    backgrounds = torch.tensor([settings.background], dtype=means.dtype, device=means.device)  # [1, 3]
    render, alphas, meta = rasterization(
        means=means,
        quats=gaussians.quats,
        scales=gaussians.scales,
        opacities=gaussians.opacities,
        colors=gaussians.colors,
        viewmats=viewmat[None],
        Ks=K[None],
        width=width,
        height=height,
        near_plane=settings.near_plane,
        far_plane=settings.far_plane,
        eps2d=settings.eps2d,
        sh_degree=settings.sh_degree,
        backgrounds=backgrounds,  # gsplat substitutes zeros for the depth channel itself
        render_mode=settings.render_mode,
        packed=False,
        rasterize_mode="classic",
    )
    render = render[0]  # [H, W, X]: RGB, ED or RGB+ED channels
    image = render[..., :3] if settings.render_mode != "ED" else None
    depth = render[..., -1:] if settings.render_mode != "RGB" else None
    radii = meta["radii"][0]  # [N] or, from gsplat 1.5 on, per-axis [N, 2]
    if radii.dim() == 2:
        radii = radii.max(dim=-1).values
    return RenderOutput(image=image, alpha=alphas[0], depth=depth, radii=radii.to(torch.int32))
