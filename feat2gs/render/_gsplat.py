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
    packed: bool = False,
) -> RenderOutput:
    """Render one view with gsplat's classic (non-antialiased) rasteriser; same contract as the torch backend.

    ``packed`` picks gsplat's memory layout for the projected Gaussians (same images; the radii come back as
    ``[nnz, 2]`` for the kept Gaussians instead of ``[C, N, 2]`` and are scattered back to ``[N]`` here).
    """
    from gsplat import rasterization

    means = gaussians.means
    backgrounds = torch.tensor([settings.background], dtype=means.dtype, device=means.device)  # [C=1, 3]
    render, alphas, meta = rasterization(
        means=means,
        quats=gaussians.quats,  # wxyz, as ours
        scales=gaussians.scales,
        opacities=gaussians.opacities,
        colors=gaussians.colors,  # [N, K, 3] SH coefficients, or [N, 3] RGB with sh_degree=None
        viewmats=viewmat[None],  # [C=1, 4, 4] world-to-camera
        Ks=K[None],  # [C=1, 3, 3]
        width=width,
        height=height,
        near_plane=settings.near_plane,
        far_plane=settings.far_plane,
        eps2d=settings.eps2d,
        sh_degree=settings.sh_degree,
        backgrounds=backgrounds,  # gsplat substitutes zeros for the depth channel itself
        render_mode=settings.render_mode,
        packed=packed,
        rasterize_mode="classic",
    )
    render = render[0]  # [H, W, X]: RGB, ED or RGB+ED channels
    image = render[..., :3] if settings.render_mode != "ED" else None
    depth = render[..., -1:] if settings.render_mode != "RGB" else None
    radii = meta["radii"]  # per axis: [C=1, N, 2], or [nnz, 2] (packed)
    if packed:
        radii = radii.new_zeros(len(gaussians), 2).index_put((meta["gaussian_ids"].long(),), radii)
    else:
        radii = radii[0]
    return RenderOutput(image=image, alpha=alphas[0], depth=depth, radii=radii.amax(dim=-1).to(torch.int32))
