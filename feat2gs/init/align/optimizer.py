"""Dense point-cloud optimiser (DUSt3R's ``PointCloudOptimizer`` with Feat2GS's settings), written from its
description.

Parameters (one tensor each; Adam is element-wise, so stacking them changes nothing):

* ``pw_poses`` [E, 8] = [quat wxyz, signed_log1p(T / s), log s]: pairwise camera-to-world similarity of edge e,
  ``P_e = σ_e · [R_e | T_e / s]`` with ``σ_e = exp(log s_e) · exp(log base_scale - mean(log s))`` (the base-scale
  normalisation; the mean is differentiated through).
* ``im_poses`` [N, 7] = [quat wxyz, signed_log1p(T)]: camera-to-world of image i (rigid).
* ``im_depthmaps`` [N, H·W] = log z.
* ``im_focals`` [N, 1] = focal_break · log f (focal_break = 20); frozen unless ``optimize_focal``.
* ``im_pp`` [N, 2] = (pp - (W/2, H/2)) / 10; frozen (``optimize_pp=False``).

Loss: ``1/E Σ_e [ mean_p w_i |X_i - P_e·pred_i| + mean_p w_j |X_j - P_e·pred_j| ]`` with ``X`` the world points of
the depth maps (``z · ((u, v) - pp) / f, z`` through the image pose), ``w = log(conf)`` and ``|·|`` the Euclidean
norm (``dist='l1'``). Adam(betas=(0.9, 0.9)), lr linear from ``lr`` to 1e-6 over ``niter`` steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from feat2gs.errors import Feat2GSError
from feat2gs.geometry.pixels import pixel_grid
from feat2gs.geometry.rotation import quat_to_rotmat, rotmat_to_quat
from feat2gs.geometry.similarity import umeyama
from feat2gs.init.align.ops import signed_expm1, signed_log1p, transform_points, xyzw_to_wxyz

FOCAL_BREAK = 20.0
PP_SCALE = 10.0


@dataclass
class AlignParams:
    """Raw optimiser parameters; quaternions are wxyz (use ``from_dust3r_raw`` for DUSt3R's roma xyzw tensors)."""

    pw_poses: torch.Tensor  # [E, 8]
    im_poses: torch.Tensor  # [N, 7]
    im_depthmaps: torch.Tensor  # [N, H*W]
    im_focals: torch.Tensor  # [N, 1]
    im_pp: torch.Tensor  # [N, 2]

    @classmethod
    def from_dust3r_raw(cls, pw_poses, im_poses, im_depthmaps, im_focals, im_pp) -> "AlignParams":
        """Convert the official ``raw.*`` tensors (quaternions xyzw) into our layout (wxyz)."""
        pw = torch.as_tensor(pw_poses).clone()
        im = torch.as_tensor(im_poses).clone()
        pw[:, :4] = xyzw_to_wxyz(pw[:, :4])
        im[:, :4] = xyzw_to_wxyz(im[:, :4])
        return cls(pw, im, torch.as_tensor(im_depthmaps).clone(), torch.as_tensor(im_focals).clone(),
                   torch.as_tensor(im_pp).clone())


class _WeightedDistMean(torch.autograd.Function):
    """``mean_p w[e, p] · |diff[e, p]|`` per edge -> [E]; a fused backward (``w · diff / |diff|``, 0 where the
    distance is 0, like ``torch.linalg.vector_norm``) that avoids the norm's masked backward."""

    @staticmethod
    def forward(ctx, diff: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        dist = diff.square().sum(-1).sqrt()
        ctx.save_for_backward(diff, dist, weight)
        return (weight * dist).mean(1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        diff, dist, weight = ctx.saved_tensors
        coef = (grad[:, None] / diff.shape[1]) * weight / dist
        coef = torch.where(dist > 0, coef, torch.zeros_like(coef))
        return diff * coef[..., None], None


def linear_lr(t: float, lr_start: float, lr_end: float) -> float:
    return (1 - t) * lr_start + t * lr_end


class DenseAligner(torch.nn.Module):
    """Holds the pairwise predictions and the parameters; ``forward()`` returns the alignment loss."""

    def __init__(
        self,
        edges: list[tuple[int, int]],
        pred_i: torch.Tensor,
        pred_j: torch.Tensor,
        conf_i: torch.Tensor,
        conf_j: torch.Tensor,
        n_imgs: int,
        height: int,
        width: int,
        base_scale: float = 0.5,
        min_conf_thr: float = 3.0,
        optimize_focal: bool = False,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        E = len(edges)
        self.edges = [(int(i), int(j)) for i, j in edges]
        self.n_imgs, self.H, self.W = int(n_imgs), int(height), int(width)
        self.base_scale = float(base_scale)
        self.min_conf_thr = float(min_conf_thr)
        kw = dict(device=device, dtype=dtype)
        HW = self.H * self.W
        self.register_buffer("ei", torch.tensor([i for i, _ in self.edges], device=device, dtype=torch.long))
        self.register_buffer("ej", torch.tensor([j for _, j in self.edges], device=device, dtype=torch.long))
        self.register_buffer("pred_i", pred_i.reshape(E, HW, 3).to(**kw))
        self.register_buffer("pred_j", pred_j.reshape(E, HW, 3).to(**kw))
        self.register_buffer("conf_i", conf_i.reshape(E, self.H, self.W).to(**kw))  # raw (> 1)
        self.register_buffer("conf_j", conf_j.reshape(E, self.H, self.W).to(**kw))
        self.register_buffer("weight_i", self.conf_i.log().reshape(E, HW))  # conf='log'
        self.register_buffer("weight_j", self.conf_j.log().reshape(E, HW))
        self.register_buffer("grid", pixel_grid(self.H, self.W, **kw).reshape(HW, 2))
        self.register_buffer("pp_base", torch.tensor([self.W / 2, self.H / 2], **kw))
        # per-image max confidence over the edges it appears in (raw, like DUSt3R's im_conf)
        im_conf = torch.zeros(self.n_imgs, self.H, self.W, **kw)
        for e, (i, j) in enumerate(self.edges):
            im_conf[i] = torch.maximum(im_conf[i], self.conf_i[e])
            im_conf[j] = torch.maximum(im_conf[j], self.conf_j[e])
        self.register_buffer("im_conf", im_conf)

        quat_id = torch.tensor([1.0, 0, 0, 0], **kw)
        pw = torch.zeros(E, 8, **kw)
        pw[:, :4] = quat_id
        im = torch.zeros(self.n_imgs, 7, **kw)
        im[:, :4] = quat_id
        self.pw_poses = torch.nn.Parameter(pw)
        self.im_poses = torch.nn.Parameter(im)
        self.im_depthmaps = torch.nn.Parameter(torch.full((self.n_imgs, HW), -3.0, **kw))  # overwritten by the init
        self.im_focals = torch.nn.Parameter(
            torch.full((self.n_imgs, 1), FOCAL_BREAK * math.log(max(self.H, self.W)), **kw),
            requires_grad=optimize_focal,
        )
        self.im_pp = torch.nn.Parameter(torch.zeros(self.n_imgs, 2, **kw), requires_grad=False)

    # ------------------------------------------------------------------ parameter access
    def set_params(self, params: AlignParams) -> None:
        with torch.no_grad():
            for name in ("pw_poses", "im_poses", "im_depthmaps", "im_focals", "im_pp"):
                p = getattr(self, name)
                p.copy_(torch.as_tensor(getattr(params, name)).reshape(p.shape).to(p))

    def get_params(self) -> AlignParams:
        return AlignParams(*(getattr(self, n).detach().clone() for n in
                             ("pw_poses", "im_poses", "im_depthmaps", "im_focals", "im_pp")))

    def set_focals(self, focals, freeze: bool = True) -> None:
        """focals: one value per image (float64 in, stored as focal_break · log f in the parameter dtype)."""
        f = torch.as_tensor(np.asarray(focals, dtype=np.float64).reshape(self.n_imgs, 1))
        with torch.no_grad():
            self.im_focals.copy_((FOCAL_BREAK * f.log()).to(self.im_focals))
        if freeze:
            self.im_focals.requires_grad_(False)

    def pw_norm_scale_factor(self) -> torch.Tensor:
        return (math.log(self.base_scale) - self.pw_poses[:, -1].mean()).exp()

    def pw_scale(self) -> torch.Tensor:
        return self.pw_poses[:, -1].exp() * self.pw_norm_scale_factor()

    def pw_c2w(self) -> torch.Tensor:
        """[E, 4, 4] scaled pairwise poses (rotation and translation multiplied by the pairwise scale)."""
        R = quat_to_rotmat(self.pw_poses[:, :4])
        T = signed_expm1(self.pw_poses[:, 4:7])
        s = self.pw_scale()[:, None, None]
        top = torch.cat([R, T[:, :, None]], dim=-1) * s
        bottom = torch.zeros_like(top[:, :1]).index_fill_(-1, torch.tensor([3], device=top.device), 1.0)
        return torch.cat([top, bottom], dim=1)

    def im_c2w(self) -> torch.Tensor:
        R = quat_to_rotmat(self.im_poses[:, :4])
        T = signed_expm1(self.im_poses[:, 4:7])
        top = torch.cat([R, T[:, :, None]], dim=-1)
        bottom = torch.zeros_like(top[:, :1]).index_fill_(-1, torch.tensor([3], device=top.device), 1.0)
        return torch.cat([top, bottom], dim=1)

    def focals(self) -> torch.Tensor:
        return (self.im_focals / FOCAL_BREAK).exp()  # [N, 1]

    def principal_points(self) -> torch.Tensor:
        return self.pp_base + PP_SCALE * self.im_pp  # [N, 2]

    def depthmaps(self) -> torch.Tensor:
        return self.im_depthmaps.exp()  # [N, HW]

    def intrinsics(self) -> torch.Tensor:
        f, pp = self.focals()[:, 0], self.principal_points()
        K = torch.zeros(self.n_imgs, 3, 3, dtype=f.dtype, device=f.device)
        K[:, 0, 0], K[:, 1, 1], K[:, :2, 2], K[:, 2, 2] = f, f, pp, 1.0
        return K

    def pts3d(self) -> torch.Tensor:
        """[N, HW, 3] world points of the depth maps."""
        depth = self.depthmaps()[..., None]
        cam = torch.cat([depth * (self.grid[None] - self.principal_points()[:, None]) / self.focals()[:, None], depth], -1)
        c2w = self.im_c2w()
        return cam @ c2w[:, :3, :3].transpose(1, 2) + c2w[:, None, :3, 3]

    # ------------------------------------------------------------------ loss
    def forward(self) -> torch.Tensor:
        X = self.pts3d()
        P = self.pw_c2w()
        Rt = P[:, :3, :3].transpose(1, 2)
        t = P[:, None, :3, 3]
        aligned_i = torch.baddbmm(t, self.pred_i, Rt)
        aligned_j = torch.baddbmm(t, self.pred_j, Rt)
        li = _WeightedDistMean.apply(X[self.ei] - aligned_i, self.weight_i)
        lj = _WeightedDistMean.apply(X[self.ej] - aligned_j, self.weight_j)
        return (li + lj).sum() / len(self.edges)

    # ------------------------------------------------------------------ init from registered point clouds
    @torch.no_grad()
    def init_from_pts3d(self, pts3d: list[torch.Tensor], c2w: torch.Tensor, focals: list[float | None] | None) -> None:
        """Pairwise poses by registering pred_i onto pts3d[i]; then scale-normalise; then image poses and depths.

        ``focals`` (per image, or None entries) are written only while the focal parameter is trainable, as in
        DUSt3R (a preset/frozen focal is kept).
        """
        pts3d = [p.to(self.pred_i) for p in pts3d]
        for e, (i, _) in enumerate(self.edges):
            s, R, T = umeyama(self.pred_i[e], pts3d[i], self.conf_i[e])
            if not math.isfinite(s) or s <= 0:
                raise Feat2GSError(f"global alignment init: registration of edge {self.edges[e]} is degenerate "
                                   f"(scale {s}); are the pairwise pointmaps constant or non-finite?")
            self.pw_poses[e, :4] = rotmat_to_quat(R)
            self.pw_poses[e, 4:7] = signed_log1p(T / s)
            self.pw_poses[e, 7] = math.log(s)
        factor = self.pw_norm_scale_factor()
        c2w = c2w.to(self.pred_i).clone()
        c2w[:, :3, 3] *= factor
        for k in range(self.n_imgs):
            p = pts3d[k].reshape(-1, 3) * factor
            depth = transform_points(torch.linalg.inv(c2w[k]), p)[:, 2]
            self.im_depthmaps[k] = torch.nan_to_num(depth.log(), neginf=0.0)
            self.im_poses[k, :4] = rotmat_to_quat(c2w[k, :3, :3])
            self.im_poses[k, 4:7] = signed_log1p(c2w[k, :3, 3])
        if focals is not None and self.im_focals.requires_grad:
            for k, f in enumerate(focals):
                if f is not None:
                    self.im_focals[k] = FOCAL_BREAK * math.log(f)

    # ------------------------------------------------------------------ optimisation loop
    def check_finite(self, where: str) -> None:
        for name in ("pw_poses", "im_poses", "im_depthmaps", "im_focals", "im_pp"):
            p = getattr(self, name)
            if not torch.isfinite(p).all():
                raise Feat2GSError(f"global alignment: non-finite values in {name} {where}")

    def optimize(
        self, niter: int = 300, lr: float = 0.01, lr_min: float = 1e-6, progress: bool = True
    ) -> list[float]:
        """Adam loop; returns the loss before each step. Raises Feat2GSError naming the iteration on NaN/inf."""
        self.check_finite("before the optimisation")
        params = [p for p in (self.pw_poses, self.im_depthmaps, self.im_poses, self.im_focals, self.im_pp)
                  if p.requires_grad]
        opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.9))
        trace: list[float] = []
        bar = tqdm(range(niter), desc="global alignment", disable=not progress, leave=False, mininterval=0.5)
        for it in bar:
            cur_lr = linear_lr(it / niter, lr, lr_min)
            for g in opt.param_groups:
                g["lr"] = cur_lr
            opt.zero_grad()
            loss = self()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise Feat2GSError(
                    f"global alignment diverged at iteration {it}/{niter}: loss is {value} (check for all-black "
                    "images or degenerate confidences)"
                )
            loss.backward()
            for p in params:
                if p.grad is not None and not torch.isfinite(p.grad).all():
                    raise Feat2GSError(f"global alignment diverged at iteration {it}/{niter}: non-finite gradient")
            opt.step()
            trace.append(value)
            if progress:
                bar.set_postfix(loss=f"{value:.6g}", lr=f"{cur_lr:.2g}")
        self.check_finite(f"after iteration {niter - 1}" if niter else "at the start")
        return trace
