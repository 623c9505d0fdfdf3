"""``clean_pointcloud``: zero the confidence of pixels whose 3D point is seen *in front of* another view's surface.

For every ordered pair of images (i, j), i != j, in that order (i outer, j inner): project image i's world points
into view j (pixel = round(K_j · p / z), half-to-even like ``torch.round``); for the points with z > 0 landing
inside the image, a pixel of i is bad when ``z < (1 - tol) · depth_j[v, u]`` *and* its current confidence is lower
than view j's confidence at (v, u). Bad pixels get ``min(conf, bad_conf)``. Confidences are updated in place as the
loop runs, so later comparisons see earlier changes (as the official code does).
"""

from __future__ import annotations

import torch


@torch.no_grad()
def clean_pointcloud(
    im_conf: torch.Tensor,
    K: torch.Tensor,
    c2w: torch.Tensor,
    depthmaps: torch.Tensor,
    pts3d: torch.Tensor,
    tol: float = 0.001,
    bad_conf: float = 0.0,
) -> torch.Tensor:
    """im_conf [N, H, W], K [N, 3, 3], c2w [N, 4, 4], depthmaps [N, H, W], pts3d [N, H, W, 3] (world) -> new conf."""
    if not 0 <= tol < 1:
        raise ValueError(f"clean_pointcloud: tol must be in [0, 1), got {tol}")
    res = im_conf.clone()
    N, H, W = im_conf.shape
    w2c = torch.linalg.inv(c2w)
    for i in range(N):
        pts = pts3d[i]
        for j in range(N):
            if i == j:
                continue
            proj = pts @ w2c[j, :3, :3].T + w2c[j, :3, 3]
            z = proj[..., 2]
            pix = proj @ K[j].T
            uv = (pix / pix[..., 2:3])[..., :2].round()
            # out-of-range/non-finite projections are masked below; clamp before the integer cast
            uv = torch.nan_to_num(uv, nan=-1.0, posinf=-1.0, neginf=-1.0).clamp(-1, max(H, W) + 1).long()
            u, v = uv[..., 0], uv[..., 1]
            msk = (z > 0) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
            vj, uj = v[msk], u[msk]
            bad = (z[msk] < (1 - tol) * depthmaps[j][vj, uj]) & (res[i][msk] < res[j][vj, uj])
            bad_msk = msk.clone()
            bad_msk[msk] = bad
            res[i][bad_msk] = res[i][bad_msk].clamp(max=bad_conf)
    return res
