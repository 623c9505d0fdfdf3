"""Reference rasteriser in plain PyTorch: runs on any device, differentiable through autograd.

It reproduces gsplat's classic 3DGS semantics without tiles. Every Gaussian is paired with the pixels inside
its screen box (gsplat's per-axis, opacity-aware box, which holds every pixel its alpha test can pass, so the
result is the same as gsplat's per-tile evaluation); the pairs that pass gsplat's tests are sorted by one int64 key
(pixel, depth rank) so that each pixel's Gaussians form a contiguous, front-to-back segment; transmittance is
an exclusive cumulative sum of log(1 - alpha) within segments (float64, then exp). The decisions (which pairs
exist, the 1/255 alpha floor, the transmittance cut-off) are taken without autograd; the kept pairs are then
re-evaluated with autograd, so the backward pass only touches what was composited.
"""

from __future__ import annotations

import itertools

import torch

from feat2gs.render._projection import ALPHA_THRESHOLD, project_gaussians
from feat2gs.render.sh import sh_to_rgb
from feat2gs.render.types import Gaussians, RenderOutput, RenderSettings

MAX_ALPHA = 0.999  # alpha ceiling, keeps log(1 - alpha) finite
TRANSMITTANCE_THRESHOLD = 1e-4  # a pixel stops before the Gaussian that would bring T to this or below
DEPTH_EPS = 1e-10  # expected depth = accumulated depth / max(alpha, DEPTH_EPS), as gsplat
# Candidate pairs are generated and tested in chunks of about this many, so peak memory stays bounded by the
# pairs that are kept rather than by all bounding-square pixels.
MAX_PAIRS_PER_CHUNK = 1 << 21


def rasterize_torch(
    gaussians: Gaussians,
    viewmat: torch.Tensor,  # [4, 4]
    K: torch.Tensor,  # [3, 3]
    width: int,
    height: int,
    settings: RenderSettings,
    max_pairs_per_chunk: int = MAX_PAIRS_PER_CHUNK,
) -> RenderOutput:
    """Render one view; see :func:`feat2gs.render.rasterize` for the contract."""
    proj = project_gaussians(
        gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities, viewmat, K, width, height,
        settings.near_plane, settings.far_plane, settings.eps2d,
    )
    # Visible Gaussians in front-to-back order: the position in `vis` is the depth rank. gsplat gives tiles only
    # to boxes with both radii > 0.
    vis = torch.nonzero((proj.radii > 0).all(dim=-1)).squeeze(1)
    vis = vis[torch.argsort(proj.depths.detach()[vis], stable=True)]

    splats = torch.cat(  # [Nv, 6] = (u, v, conic a, b, c, opacity)
        [proj.means2d[vis], proj.conics[vis], gaussians.opacities[vis, None]], dim=-1
    )
    with_rgb = settings.render_mode in ("RGB", "RGB+ED")
    with_depth = settings.render_mode in ("ED", "RGB+ED")
    features = []
    if with_rgb:
        features.append(_visible_rgb(gaussians, vis, viewmat, settings.sh_degree))
    if with_depth:
        features.append(proj.depths[vis, None])
    feats = torch.cat(features, dim=-1)  # [Nv, D]

    pix, gid = _composited_pairs(splats.detach(), proj.radii[vis], width, height, max_pairs_per_chunk)
    accum, log_t_final = _composite(splats, feats, pix, gid, width, height)

    alpha = (-torch.expm1(log_t_final)).to(feats.dtype)[:, None]  # [HW, 1]
    image = depth = None
    if with_rgb:
        background = torch.tensor(settings.background, dtype=feats.dtype, device=feats.device)
        image = (accum[:, :3] + (1.0 - alpha) * background).reshape(height, width, 3)
    if with_depth:
        depth = (accum[:, -1:] / alpha.clamp_min(DEPTH_EPS)).reshape(height, width, 1)
    radii = proj.radii.amax(dim=-1)  # [N]: the larger half-extent, as the gsplat adapter reports it
    return RenderOutput(image=image, alpha=alpha.reshape(height, width, 1), depth=depth, radii=radii)


def _visible_rgb(
    gaussians: Gaussians,
    vis: torch.Tensor,  # [Nv] int64
    viewmat: torch.Tensor,  # [4, 4]
    sh_degree: int | None,
) -> torch.Tensor:
    """RGB [Nv, 3] of the visible Gaussians: given directly, or SH seen from the camera centre."""
    colors = gaussians.colors[vis]
    if sh_degree is None:
        return colors
    # The full inverse (not -R^T t) keeps the gradient right for any viewmat, as gsplat does.
    cam_center = torch.linalg.inv(viewmat)[:3, 3]
    return sh_to_rgb(sh_degree, colors, gaussians.means[vis] - cam_center)


def _pair_alpha(
    splats: torch.Tensor,  # [Nv, 6]
    gid: torch.Tensor,  # [P] int64 index into splats
    px: torch.Tensor,  # [P] int64 pixel column
    py: torch.Tensor,  # [P] int64 pixel row
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sigma [P], alpha [P]) of each Gaussian at each pixel centre."""
    u, v, a, b, c, opacity = torch.index_select(splats, 0, gid).unbind(-1)
    dx = u - (px.to(u.dtype) + 0.5)
    dy = v - (py.to(v.dtype) + 0.5)
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    return sigma, torch.clamp_max(opacity * torch.exp(-sigma), MAX_ALPHA)


def _exclusive_segment_cumsum(
    values: torch.Tensor,  # [P] float64
    pix: torch.Tensor,  # [P] int64, sorted
    num_pixels: int,
) -> torch.Tensor:
    """For each pair, the sum of the values before it in its pixel's segment (0 for the first) -> [P]."""
    exclusive = torch.cumsum(values, dim=0) - values
    counts = torch.bincount(pix, minlength=num_pixels)
    segment_start = (torch.cumsum(counts, dim=0) - counts)[pix]
    return exclusive - exclusive[segment_start]


@torch.no_grad()
def _composited_pairs(
    splats: torch.Tensor,  # [Nv, 6] detached, rows in depth order
    radii: torch.Tensor,  # [Nv, 2] int32 box half-extents (x, y)
    width: int,
    height: int,
    max_pairs_per_chunk: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(pix [P], gid [P]): the pairs that get composited, sorted by pixel, then front to back."""
    n = max(splats.shape[0], 1)
    device = splats.device
    u, v = splats[:, 0], splats[:, 1]
    rx, ry = radii.to(u.dtype).unbind(-1)
    # Pixels whose centre (x + 0.5) lies within [u - rx, u + rx] x [v - ry, v + ry], clipped to the image.
    x0 = torch.ceil(u - rx - 0.5).clamp(0, width).long()
    x1 = (torch.floor(u + rx - 0.5) + 1).clamp(0, width).long()
    y0 = torch.ceil(v - ry - 0.5).clamp(0, height).long()
    y1 = (torch.floor(v + ry - 0.5) + 1).clamp(0, height).long()
    nx = (x1 - x0).clamp_min(0)
    counts = nx * (y1 - y0).clamp_min(0)  # [Nv]

    keys, alphas = [], []
    for lo, hi in _chunk_bounds(counts, max_pairs_per_chunk):
        c = counts[lo:hi]
        num = int(c.sum())
        gid = torch.repeat_interleave(torch.arange(lo, hi, device=device), c, output_size=num)
        first = torch.cumsum(c, dim=0) - c
        k = torch.arange(num, device=device) - torch.repeat_interleave(first, c, output_size=num)
        w = nx[gid]
        px, py = x0[gid] + k % w, y0[gid] + k // w
        sigma, alpha = _pair_alpha(splats, gid, px, py)
        keep = (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
        keys.append(((py * width + px) * n + gid)[keep])
        alphas.append(alpha[keep])
    keys, order = torch.sort(torch.cat(keys))
    pix, gid = keys // n, keys % n

    # Cut each pixel before the Gaussian that would bring T to <= threshold; T only decreases, so this keeps
    # a prefix of every segment and the result stays sorted.
    log1m = torch.log1p(-torch.cat(alphas)[order].double())
    t_after = torch.exp(_exclusive_segment_cumsum(log1m, pix, width * height) + log1m)
    keep = t_after > TRANSMITTANCE_THRESHOLD
    return pix[keep], gid[keep]


def _chunk_bounds(counts: torch.Tensor, max_pairs: int) -> list[tuple[int, int]]:
    """Split Gaussians [0, len(counts)) into contiguous runs of about ``max_pairs`` pairs (at least one each)."""
    if counts.numel() == 0:
        return [(0, 0)]
    start = torch.cumsum(counts, dim=0) - counts
    sizes = torch.unique_consecutive(start // max_pairs, return_counts=True)[1].tolist()
    bounds = [0, *itertools.accumulate(sizes)]
    return list(itertools.pairwise(bounds))


def _composite(
    splats: torch.Tensor,  # [Nv, 6]
    feats: torch.Tensor,  # [Nv, D]
    pix: torch.Tensor,  # [P] int64 sorted
    gid: torch.Tensor,  # [P] int64
    width: int,
    height: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable front-to-back compositing -> (sum of w * feature [HW, D], log final T [HW] float64)."""
    num_pixels = width * height
    _, alpha = _pair_alpha(splats, gid, pix % width, pix // width)
    log1m = torch.log1p(-alpha.double())
    transmittance = torch.exp(_exclusive_segment_cumsum(log1m, pix, num_pixels)).to(alpha.dtype)
    weighted = (alpha * transmittance)[:, None] * torch.index_select(feats, 0, gid)  # [P, D]
    accum = feats.new_zeros(num_pixels, feats.shape[1]).index_add(0, pix, weighted)
    log_t_final = log1m.new_zeros(num_pixels).index_add(0, pix, log1m)
    return accum, log_t_final

