"""Dense read-out of the sparse alignment (spec §11): every pixel from its anchor, optional TSDF refinement, clean.

* Each pixel (x, y) of image u takes its block's anchor depth and its canonical depth offset
  canon2(p) / canon2(anchor), focal-compensated exactly like the sparse points (:func:`anchor_points`), with the
  final intrinsics and cameras. Its confidence is the canonical confidence ``cconf``.
* ``tsdf_thresh > 0`` refines the depths with a truncated signed distance built from all views (see
  :func:`tsdf_refine`). Feat2GS runs with 0, where nothing changes.
* ``clean_pointcloud`` (tol 0.001) then zeroes the confidence of pixels seen in front of another view's surface
  while less confident than it; Feat2GS keeps the pixels with a confidence > 0.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from feat2gs.init.align.clean import clean_pointcloud
from feat2gs.geometry.pixels import pixel_grid
from feat2gs.init.sparse.canonical import CanonicalView, anchor_offsets
from feat2gs.init.sparse.model import anchor_points
from feat2gs.init.sparse.settings import SparseGAConfig


@torch.no_grad()
def dense_points(views: list[CanonicalView], K: torch.Tensor, cam2w: torch.Tensor, depth: torch.Tensor,
                 base_focals: torch.Tensor, subsample: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dense (world points [N,H,W,3], depths [N,H,W], confidences [N,H,W]) from anchor depths ``depth`` [N, A]."""
    pts, depths = [], []
    h, w = views[0].canon2.shape
    grid = pixel_grid(h, w, device=depth.device, dtype=depth.dtype).reshape(-1, 2)
    for u, view in enumerate(views):
        block, offset = anchor_offsets(view.canon2, grid.long(), subsample)
        z, world = anchor_points(grid, block, offset, depth[u], K[u], cam2w[u], base_focals[u])
        depths.append(z.reshape(h, w))
        pts.append(world.reshape(h, w, 3))
    return torch.stack(pts), torch.stack(depths), torch.stack([v.cconf for v in views])


def backproject(depth: torch.Tensor, K: torch.Tensor, cam2w: torch.Tensor) -> torch.Tensor:
    """World points [..., H, W, 3] of depth maps [..., H, W] (integer pixel grid, DUSt3R convention)."""
    h, w = depth.shape[-2:]
    uv = pixel_grid(h, w, device=depth.device, dtype=depth.dtype)
    x = (uv[..., 0] - K[..., 0, 2, None, None]) / K[..., 0, 0, None, None]
    y = (uv[..., 1] - K[..., 1, 2, None, None]) / K[..., 1, 1, None, None]
    cam = depth[..., None] * torch.stack([x, y, torch.ones_like(x)], dim=-1)
    return (cam[..., None, :] * cam2w[..., None, None, :3, :3]).sum(-1) + cam2w[..., None, None, :3, 3]


def _tsdf(points: torch.Tensor, depth: torch.Tensor, K: torch.Tensor, w2c: torch.Tensor, conf: torch.Tensor,
          thresh: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Confidence-weighted truncated signed distance of world points [M, 3] to the N depth maps, and whether any
    view sees them (in front of the camera, inside the image)."""
    n, h, w = depth.shape
    num = torch.zeros(points.shape[0], dtype=points.dtype, device=points.device)
    den = torch.zeros_like(num)
    for j in range(n):
        cam = points @ w2c[j, :3, :3].T + w2c[j, :3, 3]
        z = cam[:, 2]
        pix = cam @ K[j].T
        uv = (pix[:, :2] / pix[:, 2:3]).round()
        uv = torch.nan_to_num(uv, nan=-1.0, posinf=-1.0, neginf=-1.0).clamp(-1, max(h, w) + 1).long()
        ok = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
        u_, v_ = uv[:, 0].clamp(0, w - 1), uv[:, 1].clamp(0, h - 1)
        sdf = (depth[j][v_, u_] - z).clamp(-thresh, thresh)
        wt = conf[j][v_, u_] * ok
        num += wt * sdf
        den += wt
    return num / den.clamp(min=1e-12), den > 0


@torch.no_grad()
def tsdf_refine(depth: torch.Tensor, K: torch.Tensor, cam2w: torch.Tensor, conf: torch.Tensor, thresh: float,
                samples: int = 1000, seed: int = 0, chunk: int = 4096, progress: bool = True) -> torch.Tensor:
    """Move each pixel's depth to the zero crossing of the fused TSDF along its ray (own implementation).

    For each pixel, ``samples`` candidate depths d + thresh·N(0, 1) (seeded, drawn on the CPU, so the same on any
    device) are scored by the confidence-weighted mean over the views that see them of
    clip(depth_j(π_j(X)) − z_j(X), ±thresh); the candidate with the smallest |TSDF| replaces d. Pixels whose
    candidates are all unseen or all at the truncation (flat, far from any surface) keep their depth.
    """
    n, h, w = depth.shape
    gen = torch.Generator().manual_seed(seed)
    w2c = torch.linalg.inv(cam2w)
    uv = pixel_grid(h, w, device=depth.device, dtype=depth.dtype).reshape(-1, 2)
    out = depth.clone()
    for i in tqdm(range(n), desc="mast3r TSDF refinement", disable=not progress, mininterval=0.5):
        flat = depth[i].reshape(-1)
        new = flat.clone()
        for p0 in range(0, flat.shape[0], chunk):
            d = flat[p0:p0 + chunk]
            noise = torch.randn(d.shape[0], samples, generator=gen).to(d)
            cand = d[:, None] + thresh * noise  # [P, S]
            x = (uv[p0:p0 + chunk, 0] - K[i, 0, 2]) / K[i, 0, 0]
            y = (uv[p0:p0 + chunk, 1] - K[i, 1, 2]) / K[i, 1, 1]
            ray = torch.stack([x, y, torch.ones_like(x)], dim=-1)  # [P, 3]
            cam = cand[..., None] * ray[:, None, :]
            world = cam.reshape(-1, 3) @ cam2w[i, :3, :3].T + cam2w[i, :3, 3]
            tsdf, seen = _tsdf(world, depth, K, w2c, conf, thresh)
            score = torch.where(seen, tsdf.abs(), torch.full_like(tsdf, torch.inf)).reshape(cand.shape)
            best = score.argmin(dim=1)
            flat_zone = (score >= thresh).all(dim=1)
            pick = cand.gather(1, best[:, None])[:, 0]
            new[p0:p0 + chunk] = torch.where(flat_zone, d, pick)
        out[i] = new.reshape(h, w)
    return out


@torch.no_grad()
def dense_readout(views: list[CanonicalView], K: torch.Tensor, cam2w: torch.Tensor, depth: torch.Tensor,
                  base_focals: torch.Tensor, cfg: SparseGAConfig = SparseGAConfig(), progress: bool = True
                  ) -> dict[str, torch.Tensor]:
    """Dense points, depths and confidences, with and without ``clean_pointcloud`` (Feat2GS's read-out)."""
    pts, depths, conf = dense_points(views, K, cam2w, depth, base_focals, cfg.subsample)
    if cfg.tsdf_thresh > 0:
        depths = tsdf_refine(depths, K, cam2w, conf, cfg.tsdf_thresh, cfg.tsdf_samples, cfg.seed,
                             progress=progress)
        pts = backproject(depths, K, cam2w)
    conf_clean = clean_pointcloud(conf, K, cam2w, depths, pts, tol=cfg.clean_tol, bad_conf=0.0)
    return {"pts3d": pts, "depthmaps": depths, "conf": conf, "conf_clean": conf_clean}
