"""MET3R's point splatting against a brute-force rasteriser (every point against every pixel), beyond the fixture's
cases: non-square rasters both ways, many points per pixel (K truncation), points behind / at the camera or
non-finite, ties in depth."""

from __future__ import annotations

import pytest
import torch

from feat2gs.evaluate.met3r import splat


def brute_force(points: torch.Tensor, size: tuple[int, int], radius: float, k: int) -> splat.Fragments:
    n, p, _ = points.shape
    sh, sw = size
    xc, yc = splat.pixel_centres(sw, sh), splat.pixel_centres(sh, sw)
    r2 = torch.tensor(radius, dtype=torch.float32) ** 2
    idx = torch.full((n, sh, sw, k), -1, dtype=torch.int64)
    zbuf = torch.full((n, sh, sw, k), -1.0)
    dists = torch.full((n, sh, sw, k), -1.0)
    for c in range(n):
        x, y, z = points[c].unbind(-1)
        for row in range(sh):
            for col in range(sw):
                dx, dy = xc[col] - x, yc[row] - y
                d2 = dx * dx + dy * dy
                hit = [(float(z[i]), i, float(d2[i])) for i in range(p) if z[i] >= 0 and d2[i] < r2]
                for slot, (zi, i, di) in enumerate(sorted(hit)[:k]):
                    idx[c, row, col, slot] = c * p + i
                    zbuf[c, row, col, slot] = zi
                    dists[c, row, col, slot] = di
    return splat.Fragments(idx, zbuf, dists)


def random_points(n: int, p: int, seed: int, span: float = 1.2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    pts = torch.empty(n, p, 3)
    pts[..., :2] = (torch.rand(n, p, 2, generator=g) * 2 - 1) * span
    pts[..., 2] = torch.rand(n, p, generator=g) * 2 - 0.3  # some behind the camera
    pts[0, :5, 2] = 0.7  # depth ties: broken by the point index
    pts[0, 5, 2] = 0.0  # at the camera plane: kept (z >= 0)
    pts[0, 6, 0] = float("nan")
    pts[0, 7, 1] = float("inf")
    return pts


@pytest.mark.parametrize("size,radius,k", [((12, 12), 0.2, 4), ((8, 16), 0.25, 3), ((16, 8), 0.15, 10),
                                           ((10, 14), 0.6, 2)])
def test_rasteriser_matches_brute_force(size, radius, k):
    pts = random_points(2, 60, seed=sum(size))
    ours = splat.rasterize_points(pts, size, radius, k)
    ref = brute_force(pts, size, radius, k)
    assert int((ref.idx >= 0).sum()) > 0
    assert torch.equal(ours.idx, ref.idx)
    assert torch.equal(ours.zbuf, ref.zbuf)
    assert torch.equal(ours.dists, ref.dists)
    if radius >= 0.6:
        assert bool((ref.idx[..., -1] >= 0).any())  # K truncation happened


def test_pixel_centres_are_pytorch3d_ndc():
    # square raster: x = 1 - (2c + 1)/S (+x points left)
    assert torch.allclose(splat.pixel_centres(4, 4), torch.tensor([0.75, 0.25, -0.25, -0.75]))
    # the long side spans more than [-1, 1]: 8 columns next to 4 rows span [-2, 2]
    assert torch.allclose(splat.pixel_centres(8, 4), torch.tensor([1.75, 1.25, 0.75, 0.25, -0.25, -0.75, -1.25, -1.75]))


def test_compositing_order_and_background():
    # one pixel, two points on it: front alpha 1 - 0.25 = 0.75, back 1 - 0 = 1 -> 0.75 f0 + 0.25 f1
    pts = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, 2.0]]])
    pts[0, 0, 0] = 0.5  # d² = 0.25 with radius 1 on a 1x1 raster (centre 0, 0)
    frags = splat.rasterize_points(pts, (1, 1), 1.0, 10)
    assert frags.idx[0, 0, 0].tolist()[:3] == [0, 1, -1]
    feats = torch.tensor([[[1.0, 3.0]]])  # [N=1, C=1, P=2]
    out = splat.composite(frags, feats, 1.0)
    assert float(out) == pytest.approx(0.75 * 1 + 0.25 * 1.0 * 3)
    empty = splat.rasterize_points(torch.tensor([[[5.0, 5.0, 1.0]]]), (2, 2), 0.1, 10)
    assert torch.all(splat.composite(empty, torch.ones(1, 3, 1), 0.1) == splat.BACKGROUND)


def test_all_points_invalid_gives_empty_fragments():
    pts = torch.tensor([[[0.0, 0.0, -1.0], [float("nan"), 0.0, 1.0]]])
    frags = splat.rasterize_points(pts, (4, 4), 0.5, 3)
    assert bool((frags.idx == -1).all())
