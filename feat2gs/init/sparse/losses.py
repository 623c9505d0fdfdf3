"""Losses of the sparse optimiser (spec §9).

* rho_gamma(x, y) = (‖x − y‖ + c)^gamma − c^gamma with c = (1/gamma)^(1/(gamma−1)) (so rho'(0) = 1).
* A pair *has matches* when its largest match confidence exceeds ``matching_conf_thr`` (strict). Its slices then
  enter the 3D loss (stage 1: the two images' sparse points of each match) and the 2D loss (stage 2: each match's
  pixel against the reprojection of the partner's point, both images, both orientations).
* A pair without matches uses the fallback instead, in both stages: image a's *whole* anchor list against b's
  network prediction of a's points (at each entry's block, top-left pixel) moved to the world with b's camera,
  weighted by that prediction's confidence, times ``loss_dust3r_w``.
Each term is a confidence-weighted mean over all its entries; a term with no entry is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from feat2gs.init.sparse.model import Frame, SparseModel
from feat2gs.init.sparse.settings import SparseGAConfig, gamma_offset


def gamma_loss(x: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor:
    """rho_gamma of the Euclidean distances of x, y [..., D] -> [...]."""
    c = gamma_offset(gamma)
    return (torch.linalg.vector_norm(x - y, dim=-1) + c) ** gamma - c**gamma


@dataclass
class LossTerms:
    total: torch.Tensor
    main: torch.Tensor  # loss_3d (stage 1) or loss_2d (stage 2); 0 without matched pairs
    fallback: torch.Tensor  # unweighted fallback term; 0 when every pair has matches


class SparseLoss:
    """Index arrays of the three terms for a model and a matching threshold."""

    def __init__(self, model: SparseModel, cfg: SparseGAConfig = SparseGAConfig()):
        self.model, self.cfg = model, cfg
        cd = model.cd
        device = cd.core_depth.device
        thr = cfg.matching_conf_thr
        self.ok = {(s.img1, s.img2): s.matching_ok(thr) for s in cd.slices}
        i1, i2, c3 = [], [], []
        fb_idx, fb_cam, fb_pts, fb_w = [], [], [], []
        for s in cd.slices:
            o1, o2 = model.span(s.img1)[0], model.span(s.img2)[0]
            if self.ok[(s.img1, s.img2)]:
                i1.append(torch.arange(s.start1, s.end1, device=device) + o1)
                i2.append(torch.arange(s.start2, s.end2, device=device) + o2)
                c3.append(s.confs)
            else:
                a0, a1 = model.span(s.img1)
                pts, w = cd.preds21[(s.img2, s.img1)]
                fb_idx.append(torch.arange(a0, a1, device=device))
                fb_cam.append(torch.full((a1 - a0,), s.img2, device=device))
                fb_pts.append(pts)
                fb_w.append(w)
        self.idx3 = (torch.cat(i1), torch.cat(i2), torch.cat(c3)) if i1 else None
        self.fallback = (torch.cat(fb_idx), torch.cat(fb_cam), torch.cat(fb_pts), torch.cat(fb_w)) if fb_idx else None
        cams, pix, c2, pidx = [], [], [], []
        for u, entries in enumerate(cd.corres2d):
            for e in entries:
                if not self.ok[(e.img, e.other)]:
                    continue
                o = model.span(e.other)[0]
                cams.append(torch.full((len(e.pixels),), u, device=device))
                pix.append(e.pixels)
                c2.append(e.confs)
                pidx.append(torch.arange(e.start, e.end, device=device) + o)
        self.idx2 = (torch.cat(cams), torch.cat(pix), torch.cat(c2), torch.cat(pidx)) if cams else None

    def loss_3d(self, frame: Frame) -> torch.Tensor:
        if self.idx3 is None:
            return frame.pts3d.new_zeros(())
        i1, i2, c = self.idx3
        return (c * gamma_loss(frame.pts3d[i1], frame.pts3d[i2], self.cfg.gamma1)).sum() / c.sum()

    def loss_2d(self, frame: Frame) -> torch.Tensor:
        if self.idx2 is None:
            return frame.pts3d.new_zeros(())
        cams, pix, c, pidx = self.idx2
        R, t = frame.cam2w[:, :3, :3], frame.cam2w[:, :3, 3]
        Rt = R.transpose(1, 2)
        w2c = torch.cat([Rt, -(Rt @ t[:, :, None])], dim=-1)  # [N, 3, 4]
        proj = frame.K @ w2c
        P = proj[cams]
        X = frame.pts3d[pidx]
        abc = (P[:, :, :3] @ X[:, :, None])[..., 0] + P[:, :, 3]
        depth = abc[:, 2:3].clamp(min=self.cfg.reproj_min_z)
        uv = (abc[:, :2] / depth).clamp(*self.cfg.reproj_clip)
        return (c * gamma_loss(pix, uv, self.cfg.gamma2)).sum() / c.sum()

    def loss_fallback(self, frame: Frame) -> torch.Tensor:
        if self.fallback is None:
            return frame.pts3d.new_zeros(())
        idx, cam, pts, w = self.fallback
        R, t = frame.cam2w[cam, :3, :3], frame.cam2w[cam, :3, 3]
        target = (R @ pts.to(R.dtype)[:, :, None])[..., 0] + t
        return (w * gamma_loss(frame.pts3d[idx], target, self.cfg.gamma_fallback)).sum() / w.sum()

    def __call__(self, frame: Frame, stage: int) -> LossTerms:
        main = self.loss_3d(frame) if stage == 1 else self.loss_2d(frame)
        fb = self.loss_fallback(frame)
        return LossTerms(main + self.cfg.loss_dust3r_w * fb, main, fb)
