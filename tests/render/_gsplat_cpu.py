"""gsplat 1.5.3 on CPU: its rendering code with each CUDA-only piece replaced by a pure-PyTorch counterpart.

What runs is gsplat's own code wherever gsplat ships a PyTorch version: ``gsplat.rendering.rasterization`` (the
function our ``render/_gsplat.py`` adapter calls) and ``gsplat.rendering._rasterization`` (gsplat's reference
renderer), and from ``gsplat/cuda/_torch_impl.py``: ``_quat_scale_to_covar_preci``, ``_fully_fused_projection``,
``_isect_tiles``, ``_isect_offset_encode``, ``_spherical_harmonics``, ``_rasterize_to_pixels`` and ``accumulate``.

Ours (stand-ins, written from gsplat's CUDA sources in the wheel, because the originals cannot run on a CPU):

- :func:`rasterize_to_indices_in_range` replaces the CUDA op of that name, which ``_rasterize_to_pixels`` calls
  (rule of ``csrc/RasterizeToIndices3DGS.cu``).
- :data:`NERFACC` replaces the two nerfacc functions that ``accumulate`` imports: nerfacc is not a dependency, and
  its segmented scan behind ``render_weight_from_alpha`` is a CUDA kernel.
- :func:`fully_fused_projection` wraps ``_fully_fused_projection`` and then applies the culling and per-axis radius
  rule of the CUDA kernel (``csrc/ProjectionEWA3DGSFused.cu``), which the PyTorch twin lacks (it ignores the
  opacities and always uses 3.33 sigma), and lays the result out as the packed kernel does when asked.
- :func:`isect_tiles`, :func:`rasterize_to_pixels`, :func:`spherical_harmonics`: argument adapters from the CUDA
  wrappers' signatures (``packed``, ``masks``) to the PyTorch twins.
"""

from __future__ import annotations

import math
import sys
import types

import pytest
import torch
from gsplat import rendering
from gsplat.cuda import _torch_impl, _wrapper

ALPHA_THRESHOLD = 1.0 / 255.0  # csrc/Common.h
MAX_ALPHA = 0.999  # csrc/RasterizeToIndices3DGS.cu
TRANSMITTANCE_STOP = 1e-4  # csrc/RasterizeToIndices3DGS.cu
RADIUS_EXTENT = 3.33  # csrc/ProjectionEWA3DGSFused.cu


@torch.no_grad()
def rasterize_to_indices_in_range(
    range_start: int,
    range_end: int,
    transmittances: torch.Tensor,  # [..., H, W]
    means2d: torch.Tensor,  # [..., N, 2]
    conics: torch.Tensor,  # [..., N, 3]
    opacities: torch.Tensor,  # [..., N]
    image_width: int,
    image_height: int,
    tile_size: int,
    isect_offsets: torch.Tensor,  # [..., tile_height, tile_width]
    flatten_ids: torch.Tensor,  # [n_isects]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stand-in (ours) for gsplat's CUDA op: the kept (Gaussian, pixel, image) triples, per pixel front to back.

    The rule of ``RasterizeToIndices3DGS.cu``: each pixel walks the Gaussians of its tile in ``flatten_ids``
    order, batches ``[range_start, range_end)`` of tile_size^2 entries, starting from ``transmittances``; sigma
    from the conic at the pixel centre; sigma < 0 or alpha = min(0.999, opacity exp(-sigma)) < 1/255 is skipped;
    if T (1 - alpha) <= 1e-4 the pixel is done and that Gaussian is not kept; otherwise it is kept and T updated.
    Written as a loop over the tile's Gaussians, vectorised over the tile's pixels (not as our renderer does it).
    """
    image_dims = means2d.shape[:-2]
    n = means2d.shape[-2]
    num_images = math.prod(image_dims)
    tile_height, tile_width = isect_offsets.shape[-2:]
    means2d = means2d.reshape(num_images, n, 2)
    conics = conics.reshape(num_images, n, 3)
    opacities = opacities.reshape(num_images, n)
    transmittances = transmittances.reshape(num_images, image_height, image_width)
    bounds = torch.cat([isect_offsets.flatten().long(), torch.tensor([len(flatten_ids)])]).tolist()
    block = tile_size * tile_size

    gauss_out, pixel_out, image_out = [], [], []
    for tile in range(num_images * tile_height * tile_width):
        image, local = divmod(tile, tile_height * tile_width)
        ty, tx = divmod(local, tile_width)
        ys = torch.arange(ty * tile_size, min((ty + 1) * tile_size, image_height))
        xs = torch.arange(tx * tile_size, min((tx + 1) * tile_size, image_width))
        if len(ys) == 0 or len(xs) == 0:
            continue
        py, px = torch.meshgrid(ys, xs, indexing="ij")
        pix = (py * image_width + px).flatten()  # [P] row-major pixel ids of this tile
        centre_x, centre_y = px.flatten().to(means2d.dtype) + 0.5, py.flatten().to(means2d.dtype) + 0.5
        start = bounds[tile] + block * range_start
        end = min(bounds[tile + 1], bounds[tile] + block * range_end)
        trans = transmittances[image].flatten()[pix].clone()
        done = torch.zeros(len(pix), dtype=torch.bool)
        kept = torch.zeros(len(pix), 0, dtype=torch.bool)
        ids = flatten_ids[start:end].long() % n if end > start else flatten_ids[:0].long()
        columns = []
        for g in ids.tolist():
            (u, v), (a, b, c) = means2d[image, g].tolist(), conics[image, g].tolist()
            dx, dy = u - centre_x, v - centre_y
            sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
            alpha = torch.clamp_max(opacities[image, g] * torch.exp(-sigma), MAX_ALPHA)
            candidate = ~done & (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
            next_trans = trans * (1.0 - alpha)
            stop = candidate & (next_trans <= TRANSMITTANCE_STOP)
            done |= stop
            keep = candidate & ~stop
            trans = torch.where(keep, next_trans, trans)
            columns.append(keep)
        if columns:
            kept = torch.stack(columns, dim=1)  # [P, G]: pixel-major, then front to back
        p_idx, g_idx = torch.nonzero(kept, as_tuple=True)
        gauss_out.append(ids[g_idx])
        pixel_out.append(pix[p_idx])
        image_out.append(torch.full_like(p_idx, image))
    if not gauss_out:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty, empty
    gauss, pixel, image = torch.cat(gauss_out), torch.cat(pixel_out), torch.cat(image_out)
    order = torch.argsort(image * image_height * image_width + pixel, stable=True)  # the CUDA op's output order
    return gauss[order], pixel[order], image[order]


def _exclusive_transmittance(alphas: torch.Tensor, ray_indices: torch.Tensor) -> torch.Tensor:
    """prod over earlier samples of the same ray of (1 - alpha), by a padded [rays, samples] cumprod."""
    if len(alphas) == 0:
        return alphas
    assert bool((ray_indices[1:] >= ray_indices[:-1]).all()), "samples must be grouped by ray"
    rays, counts = torch.unique_consecutive(ray_indices, return_counts=True)
    row = torch.repeat_interleave(torch.arange(len(rays)), counts)
    col = torch.arange(len(alphas)) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    padded = alphas.new_zeros(len(rays), int(counts.max()) + 1).index_put((row, col + 1), alphas)
    return torch.cumprod(1.0 - padded, dim=1)[row, col]


def _render_weight_from_alpha(alphas, packed_info=None, ray_indices=None, n_rays=None, prefix_trans=None):
    """Stand-in (ours) for nerfacc.render_weight_from_alpha: weights alpha * T, T exclusive along each ray."""
    assert packed_info is None and prefix_trans is None and ray_indices is not None
    trans = _exclusive_transmittance(alphas, ray_indices)
    return alphas * trans, trans


def _accumulate_along_rays(weights, values=None, ray_indices=None, n_rays=None):
    """Stand-in (ours) for nerfacc.accumulate_along_rays: per-ray sum of weights (x values)."""
    src = weights[:, None] if values is None else weights[:, None] * values
    return src.new_zeros(n_rays, src.shape[-1]).index_add(0, ray_indices, src)


NERFACC = types.ModuleType("nerfacc")
NERFACC.render_weight_from_alpha = _render_weight_from_alpha
NERFACC.accumulate_along_rays = _accumulate_along_rays


def fully_fused_projection(
    means, covars, quats, scales, viewmats, Ks, width, height, eps2d=0.3, near_plane=0.01, far_plane=1e10,
    radius_clip=0.0, packed=False, sparse_grad=False, calc_compensations=False, camera_model="pinhole",
    opacities=None,
):
    """gsplat's ``_fully_fused_projection``, then (ours) the CUDA kernel's culling and per-axis radii.

    ``ProjectionEWA3DGSFused.cu``: culled when z < near or z > far, det <= 0, opacity < 1/255 (opacities
    given), both radii <= radius_clip or the box off-screen; radius = ceil(extent sqrt(diag of the blurred
    2D covariance)), extent = min(3.33, sqrt(2 ln(255 opacity))) (3.33 without opacities).
    """
    assert covars is None and not sparse_grad and camera_model == "pinhole"  # what rasterization() passes us
    covars, _ = _torch_impl._quat_scale_to_covar_preci(quats, scales, True, False, triu=False)
    _, means2d, depths, conics, compensations = _torch_impl._fully_fused_projection(
        means, covars, viewmats, Ks, width, height, eps2d=eps2d, near_plane=near_plane, far_plane=far_plane,
        calc_compensations=calc_compensations, camera_model=camera_model,
    )
    with torch.no_grad():
        a, b, c = conics.unbind(-1)  # inverse of the blurred covariance -> its diagonal
        det_conic = a * c - b * b
        var_x, var_y = c / det_conic, a / det_conic
        extent = torch.full_like(depths, RADIUS_EXTENT)
        valid = (depths >= near_plane) & (depths <= far_plane) & (det_conic > 0)
        if opacities is not None:
            opacity = torch.broadcast_to(opacities[..., None, :], depths.shape)
            if compensations is not None:
                opacity = opacity * compensations
            valid &= opacity >= ALPHA_THRESHOLD
            extent = torch.clamp_max(torch.sqrt(2.0 * torch.log(opacity.clamp_min(1e-30) / ALPHA_THRESHOLD)), extent)
        rx, ry = torch.ceil(extent * torch.sqrt(var_x)), torch.ceil(extent * torch.sqrt(var_y))
        u, v = means2d.unbind(-1)
        valid &= ~((rx <= radius_clip) & (ry <= radius_clip))
        valid &= (u + rx > 0) & (u - rx < width) & (v + ry > 0) & (v - ry < height)
        radii = torch.where(valid[..., None], torch.stack([rx, ry], dim=-1), 0.0).int()
    if not packed:
        return radii, means2d, depths, conics, compensations
    # Packed: the valid entries in (batch, camera, Gaussian) order, as the packed kernel writes them.
    num_gaussians, num_cameras = means.shape[-2], viewmats.shape[-3]
    flat = (radii > 0).all(dim=-1).reshape(-1, num_cameras, num_gaussians)
    batch_ids, camera_ids, gaussian_ids = torch.nonzero(flat, as_tuple=True)
    mask = flat.reshape(radii.shape[:-1])
    return (batch_ids, camera_ids, gaussian_ids, radii[mask], means2d[mask], depths[mask], conics[mask],
            None if compensations is None else compensations[mask])


def isect_tiles(means2d, radii, depths, tile_size, tile_width, tile_height, sort=True, segmented=False,
                packed=False, n_images=None, image_ids=None, gaussian_ids=None):
    """gsplat's ``_isect_tiles``; packed input [nnz, ...] is laid out as [n_images, nnz] rows first (ours)."""
    if not packed:
        return _torch_impl._isect_tiles(means2d, radii, depths, tile_size, tile_width, tile_height, sort)
    nnz = means2d.shape[0]
    rows = image_ids.long()
    cols = torch.arange(nnz)
    spread_radii = radii.new_zeros(n_images, nnz, 2).index_put((rows, cols), radii)
    spread_means = means2d.new_zeros(n_images, nnz, 2).index_put((rows, cols), means2d)
    spread_depths = depths.new_ones(n_images, nnz).index_put((rows, cols), depths)
    tiles, isect_ids, flatten_ids = _torch_impl._isect_tiles(
        spread_means, spread_radii, spread_depths, tile_size, tile_width, tile_height, sort)
    return tiles[rows, cols], isect_ids, flatten_ids % nnz  # flatten ids index the packed entries


def rasterize_to_pixels(means2d, conics, colors, opacities, image_width, image_height, tile_size, isect_offsets,
                        flatten_ids, backgrounds=None, masks=None, packed=False, absgrad=False):
    """gsplat's ``_rasterize_to_pixels``; packed entries of a single image are passed as that image's N."""
    assert masks is None and not absgrad
    if packed:
        assert isect_offsets.shape[:-2] == (1,), "packed stand-in: one image"
        means2d, conics, colors, opacities = means2d[None], conics[None], colors[None], opacities[None]
    return _torch_impl._rasterize_to_pixels(means2d, conics, colors, opacities, image_width, image_height,
                                            tile_size, isect_offsets, flatten_ids, backgrounds=backgrounds)


def spherical_harmonics(degrees_to_use, dirs, coeffs, masks=None):
    """gsplat's ``_spherical_harmonics``; masked entries give 0, as the CUDA op writes them."""
    colors = _torch_impl._spherical_harmonics(degrees_to_use, dirs, coeffs)
    return colors if masks is None else torch.where(masks[..., None], colors, 0.0)


def patch_gsplat_for_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace, for one test, the CUDA entry points that ``gsplat.rendering`` and ``_rasterize_to_pixels`` call."""
    for name, fn in [("fully_fused_projection", fully_fused_projection), ("isect_tiles", isect_tiles),
                     ("isect_offset_encode", _torch_impl._isect_offset_encode),
                     ("rasterize_to_pixels", rasterize_to_pixels), ("spherical_harmonics", spherical_harmonics)]:
        monkeypatch.setattr(rendering, name, fn)
    monkeypatch.setattr(_wrapper, "rasterize_to_indices_in_range", rasterize_to_indices_in_range)
    monkeypatch.setitem(sys.modules, "nerfacc", NERFACC)
    for name in ("fully_fused_projection", "rasterize_to_pixels", "isect_tiles", "spherical_harmonics"):
        # Nothing may still reach a compiled op: the real wrappers are now unreachable from gsplat.rendering.
        assert getattr(rendering, name) is not getattr(_wrapper, name)
