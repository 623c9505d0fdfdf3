"""Point splatting as MET3R does it with PyTorch3D (naive rasteriser, ``bin_size=0``, alpha compositor), in plain
PyTorch on any device.

Rasterisation, for each cloud and each pixel of an S_h × S_w raster:

* the pixel centre in NDC is ``PN(S_w-1-col, S_w, S_h)``, ``PN(S_h-1-row, S_h, S_w)`` with
  ``PN(i, S1, S2) = -R/2 + (R·i + R/2)/S1``, R = 2 if S1 <= S2 else 2·S1/S2 (the short side spans [-1, 1]);
* a point covers a pixel when its depth z >= 0 and its squared NDC distance to the centre ``d² < radius²``;
* the K covering points of smallest z are kept, ordered by (z, packed index); empty slots hold -1.

Each point only tests the pixels of a small window around its projection (exact fp32 test inside), and the
K-selection is one stable sort of (pixel, z) keys, so the cost is O(points · window) rather than O(points · pixels).

Compositing: ``α_k = 1 - d²_k / radius²``, ``out = Σ_k α_k Π_{j<k}(1-α_j) f_k``; pixels whose first slot is empty
get the background value (-10000 in MET3R).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from feat2gs.errors import ConfigError

BACKGROUND = -10000.0  # MET3R's compositor background; the overlap mask tests rendering == BACKGROUND
DEFAULT_RADIUS = 0.01  # NDC
POINTS_PER_PIXEL = 10
CANDIDATES_PER_CHUNK = 1 << 22  # (point, pixel) pairs tested at once


@dataclass
class Fragments:
    """PyTorch3D-style fragments, each [N, S_h, S_w, K]: idx = packed index cloud·P + point (-1 empty, int64),
    zbuf = depth (-1 empty), dists = squared NDC distance (-1 empty)."""

    idx: torch.Tensor
    zbuf: torch.Tensor
    dists: torch.Tensor


def _as_f32(value: float, device: torch.device) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float32, device=device)


def _ndc_range(s1: int, s2: int, device: torch.device) -> torch.Tensor:
    two = _as_f32(2.0, device)
    return two if s1 <= s2 else (s1 * two) / s2


def pixel_centres(s1: int, s2: int, device: torch.device | str = "cpu") -> torch.Tensor:  # -> [s1] float32
    """NDC centre of raster index 0..s1-1 along a side of s1 pixels (the other side has s2), flipped as PyTorch3D."""
    device = torch.device(device)
    r = _ndc_range(s1, s2, device)
    offset = r / 2
    i = (s1 - 1 - torch.arange(s1, device=device)).to(torch.float32)
    return -offset + (r * i + offset) / s1


def raster_size(img_size: int | None, h: int, w: int) -> tuple[int, int]:
    """MET3R's raster: img_size × img_size when given, else the image's own (h, w)."""
    return (h, w) if img_size is None else (int(img_size), int(img_size))


def _cloud_candidates(pts: torch.Tensor, size: tuple[int, int], radius: float, xc: torch.Tensor, yc: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Covered (pixel, point) pairs of one cloud [P, 3], in point order: (pixel, point, z, d²)."""
    sh, sw = size
    device = pts.device
    rx, ry = float(_ndc_range(sw, sh, device)), float(_ndc_range(sh, sw, device))
    r2 = _as_f32(radius, device) * _as_f32(radius, device)
    x, y, z = pts.unbind(-1)
    ok = (z >= 0) & torch.isfinite(x) & torch.isfinite(y) & torch.isfinite(z)
    point = ok.nonzero().squeeze(1)
    if point.numel() == 0:
        empty = torch.empty(0, dtype=torch.int64, device=device)
        return empty, empty, empty.float(), empty.float()
    x, y, z = x[point], y[point], z[point]
    # continuous raster coordinates of the projection (inverse of pixel_centres), then a window around it
    col = (sw - 1) - ((x.double() + rx / 2) * sw - rx / 2) / rx
    row = (sh - 1) - ((y.double() + ry / 2) * sh - ry / 2) / ry
    wx, wy = radius * sw / rx, radius * sh / ry
    nx, ny = 2 * math.ceil(wx) + 4, 2 * math.ceil(wy) + 4
    c0 = torch.floor(col - wx).long() - 1
    r0 = torch.floor(row - wy).long() - 1
    dc = torch.arange(nx, device=device)
    dr = torch.arange(ny, device=device)
    outs: list[list[torch.Tensor]] = [[], [], [], []]
    step = max(1, CANDIDATES_PER_CHUNK // (nx * ny))
    for s in range(0, point.numel(), step):
        sl = slice(s, s + step)
        cc = (c0[sl, None, None] + dc[None, None, :]).expand(-1, ny, nx)
        rr = (r0[sl, None, None] + dr[None, :, None]).expand(-1, ny, nx)
        inside = (cc >= 0) & (cc < sw) & (rr >= 0) & (rr < sh)
        cc, rr = cc.clamp(0, sw - 1), rr.clamp(0, sh - 1)
        dx = xc[cc] - x[sl, None, None]
        dy = yc[rr] - y[sl, None, None]
        d2 = dx * dx + dy * dy
        hit = inside & (d2 < r2)
        p_i, r_i, c_i = hit.nonzero(as_tuple=True)
        outs[0].append(rr[p_i, r_i, c_i] * sw + cc[p_i, r_i, c_i])
        outs[1].append(point[sl][p_i])
        outs[2].append(z[sl][p_i])
        outs[3].append(d2[p_i, r_i, c_i])
    return tuple(torch.cat(o) for o in outs)  # type: ignore[return-value]


def rasterize_points(points: torch.Tensor,  # [N, P, 3] NDC x, y and depth z
                     image_size: tuple[int, int],  # (S_h, S_w)
                     radius: float = DEFAULT_RADIUS,
                     points_per_pixel: int = POINTS_PER_PIXEL) -> Fragments:
    """PyTorch3D's naive point rasteriser (see the module docstring); float32."""
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ConfigError(f"rasterize_points expects points [N, P, 3], got {tuple(points.shape)}")
    if not radius > 0:
        raise ConfigError(f"point radius must be positive, got {radius}")
    n, p, _ = points.shape
    sh, sw = image_size
    k = int(points_per_pixel)
    device = points.device
    points = points.float()
    xc, yc = pixel_centres(sw, sh, device), pixel_centres(sh, sw, device)
    idx = torch.full((n, sh * sw, k), -1, dtype=torch.int64, device=device)
    zbuf = torch.full((n, sh * sw, k), -1.0, dtype=torch.float32, device=device)
    dists = torch.full((n, sh * sw, k), -1.0, dtype=torch.float32, device=device)
    for cloud in range(n):
        pix, pt, z, d2 = _cloud_candidates(points[cloud], (sh, sw), radius, xc, yc)
        if pix.numel() == 0:
            continue
        # order by (pixel, z, point): candidates come in point order, z >= 0 floats sort as their int bits
        zbits = (z + 0.0).view(torch.int32).to(torch.int64)
        order = torch.sort(pix * (1 << 31) + zbits, stable=True).indices
        pix, pt, z, d2 = pix[order], pt[order], z[order], d2[order]
        first = torch.ones_like(pix, dtype=torch.bool)
        first[1:] = pix[1:] != pix[:-1]
        starts = first.nonzero().squeeze(1)
        rank = torch.arange(pix.numel(), device=device) - starts[torch.cumsum(first, 0) - 1]
        keep = rank < k
        pix, rank = pix[keep], rank[keep]
        idx[cloud, pix, rank] = pt[keep] + cloud * p
        zbuf[cloud, pix, rank] = z[keep]
        dists[cloud, pix, rank] = d2[keep]
    shape = (n, sh, sw, k)
    return Fragments(idx.view(shape), zbuf.view(shape), dists.view(shape))


def composite(fragments: Fragments,
              features: torch.Tensor,  # [N, C, P] per-point features of each cloud
              radius: float = DEFAULT_RADIUS,
              background: float | None = None) -> torch.Tensor:  # -> [N, C, S_h, S_w]
    """PyTorch3D's AlphaCompositor with ``α = 1 - d²/radius²`` and a constant background (default BACKGROUND)."""
    background = BACKGROUND if background is None else background
    n, sh, sw, k = fragments.idx.shape
    if features.ndim != 3 or features.shape[0] != n:
        raise ConfigError(f"composite: features {tuple(features.shape)} do not fit {n} clouds")
    c, p = features.shape[1:]
    idx = fragments.idx.reshape(n, sh * sw, k)
    alpha = 1 - fragments.dists.reshape(n, sh * sw, k) / (radius * radius)
    out = torch.empty((n, c, sh, sw), dtype=features.dtype, device=features.device)
    for cloud in range(n):
        rows = features[cloud].t().contiguous()  # [P, C]: gathering points reads contiguous rows
        acc = torch.zeros((sh * sw, c), dtype=features.dtype, device=features.device)
        cum = torch.ones(sh * sw, dtype=features.dtype, device=features.device)
        for slot in range(k):
            sel = (idx[cloud, :, slot] >= 0).nonzero().squeeze(1)
            if sel.numel() == 0:
                break
            a = alpha[cloud, sel, slot].to(features.dtype)
            w = cum[sel] * a
            acc.index_add_(0, sel, torch.index_select(rows, 0, idx[cloud, sel, slot] - cloud * p).mul_(w[:, None]))
            cum[sel] = cum[sel] * (1 - a)
        acc[idx[cloud, :, 0] < 0] = background
        out[cloud] = acc.t().reshape(c, sh, sw)
    return out
