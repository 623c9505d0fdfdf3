"""Parameters and forward model of the sparse optimiser (spec §8.2–8.4).

Per image u: a principal point ``pp`` (normalised by the image size), ``log_focal``, a *relative* pose
(``quat`` xyzw, ``trans``) along the kinematic tree, ``log_size`` and the anchor depths ``core_depth`` (divided by
their lower median ``med``; frozen in Feat2GS). With shared intrinsics the lists ``pp`` and ``log_focal`` hold the
same tensor N times, which the optimiser sees N times (spec §10).

Forward model, evaluated at every iteration:

* f = clip(exp(log_focal), 0.25·‖(W,H)‖, 10·‖(W,H)‖), K = [[f, 0, pp_x·W], [0, f, pp_y·H], [0, 0, 1]];
* size = exp(log_size), g = 1 / min(size), z = size·med·f / base_focal;
* absolute poses A along the tree (A_root = T_root, A_child = A_parent·T_child), o = z·((W/f)(½ − pp_x),
  (H/f)(½ − pp_y), 1) the centre-ray point at depth z, and cam2w = [R_A | g·(t_A − R_A·o)];
* anchor depths D = g·(z + (core − 1)·med·size);
* the point of a pixel (x, y) in block k with depth offset δ: depth D[k]·(1 + (δ − 1)·base_focal / f), back-projected
  with K and moved to the world with cam2w.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from feat2gs.geometry.rotation import quat_to_rotmat
from feat2gs.init.align.ops import xyzw_to_wxyz
from feat2gs.init.sparse.condense import CondensedData
from feat2gs.init.sparse.graph import KinematicTree
from feat2gs.init.sparse.settings import SparseGAConfig

PARAM_NAMES = ("pp", "log_focal", "quat", "trans", "log_size", "core_depth")


@dataclass
class SparseParams:
    """Raw parameters, one list entry per image (shared intrinsics: one tensor repeated)."""

    pp: list[torch.Tensor]  # [2] normalised principal point
    log_focal: list[torch.Tensor]  # [1]
    quat: list[torch.Tensor]  # [4] xyzw, relative to the parent in the tree
    trans: list[torch.Tensor]  # [3]
    log_size: list[torch.Tensor]  # [1]
    core_depth: list[torch.Tensor]  # [Hs*Ws] median-normalised anchor depths

    def as_list(self) -> list[torch.Tensor]:
        """The optimiser's parameter list: pps + log_focals + quats + trans + log_sizes + core depths."""
        return [t for name in PARAM_NAMES for t in getattr(self, name)]

    def unique(self) -> list[torch.Tensor]:
        seen: dict[int, torch.Tensor] = {}
        for t in self.as_list():
            seen.setdefault(id(t), t)
        return list(seen.values())

    @classmethod
    def from_stacked(cls, values: dict[str, torch.Tensor], shared: bool = True) -> "SparseParams":
        """From stacked values {name: [N, ...]} (e.g. a recorded iteration); shared intrinsics take image 0's."""
        out = {}
        for name in PARAM_NAMES:
            v = values[name]
            if shared and name in ("pp", "log_focal"):
                one = v[0].clone()
                out[name] = [one] * v.shape[0]
            else:
                out[name] = [v[k].clone() for k in range(v.shape[0])]
        return cls(**out)

    def stacked(self) -> dict[str, torch.Tensor]:
        return {name: torch.stack([t.detach() for t in getattr(self, name)]) for name in PARAM_NAMES}


@dataclass
class Frame:
    """The forward model at one parameter value."""

    K: torch.Tensor  # [N, 3, 3]
    cam2w: torch.Tensor  # [N, 4, 4]
    depthmaps: torch.Tensor  # [N, Hs*Ws] anchor depths
    pts3d: torch.Tensor  # [L, 3] sparse points of all anchor lists, concatenated image by image
    focals: torch.Tensor  # [N] clipped


def lower_median(x: torch.Tensor) -> torch.Tensor:
    """Element of rank floor((n-1)/2) of the sorted values (torch.median)."""
    return x.reshape(-1).median()


def init_params(cd: CondensedData, cfg: SparseGAConfig = SparseGAConfig(),
                known_focal: float | None = None) -> tuple[SparseParams, torch.Tensor]:
    """Initial parameters (spec §8.2) and the per-image median anchor depths ``med`` [N].

    ``known_focal`` (pixels): every focal starts there and, like the principal point (kept at the image centre),
    stays fixed; used when registering test views with the training focal.
    """
    n = cd.n_images
    dtype, device = cd.core_depth.dtype, cd.core_depth.device
    pp_n = cd.pps / cd.imsizes.to(dtype)
    med = torch.stack([lower_median(cd.core_depth[u]) for u in range(n)])
    core = [(cd.core_depth[u] / med[u]).clone() for u in range(n)]
    if known_focal is not None:
        one_pp = torch.full((2,), 0.5, dtype=dtype, device=device)
        one_f = torch.tensor([math.log(known_focal)], dtype=dtype, device=device)
        pps, log_focals = [one_pp] * n, [one_f] * n
    elif cfg.shared_intrinsics:
        w = cd.cconf_means / cd.cconf_means.sum()
        one_pp = (w[:, None] * pp_n).sum(0)
        one_f = (w * cd.base_focals).sum().log().reshape(1)
        pps, log_focals = [one_pp] * n, [one_f] * n
    else:
        pps = [pp_n[u].clone() for u in range(n)]
        log_focals = [cd.base_focals[u].log().reshape(1) for u in range(n)]
    params = SparseParams(
        pp=pps, log_focal=log_focals,
        quat=[torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=dtype, device=device) for _ in range(n)],
        trans=[torch.zeros(3, dtype=dtype, device=device) for _ in range(n)],
        log_size=[torch.zeros(1, dtype=dtype, device=device) for _ in range(n)],
        core_depth=core,
    )
    return params, med


def anchor_points(uv: torch.Tensor, block: torch.Tensor, offset: torch.Tensor, depth: torch.Tensor,
                  K: torch.Tensor, cam2w: torch.Tensor, base_focal: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Points of pixels uv [L, 2] (float x, y) of one image from its anchor depths ``depth`` [A] (block [L], depth
    offset [L]), focal-compensated. Returns (camera-frame depth [L], world points [L, 3])."""
    f = K[0, 0]
    z = depth[block] * (1 + (offset - 1) * (base_focal / f))
    x = uv[:, 0] * (1 / f) + (-K[0, 2] / f)
    y = uv[:, 1] * (1 / K[1, 1]) + (-K[1, 2] / K[1, 1])
    cam = z[:, None] * torch.stack([x, y, torch.ones_like(x)], dim=-1)
    return z, cam @ cam2w[:3, :3].T + cam2w[:3, 3]


class SparseModel:
    """The forward model of :mod:`model` for fixed condensed data, medians and kinematic tree."""

    def __init__(self, cd: CondensedData, med: torch.Tensor, tree: KinematicTree,
                 cfg: SparseGAConfig = SparseGAConfig()):
        self.cd, self.med, self.tree, self.cfg = cd, med, tree, cfg
        self.n = cd.n_images
        size = cd.imsizes.to(med.dtype)
        self.size = size  # [N, 2] (W, H)
        diag = size.norm(dim=-1)
        self.f_min, self.f_max = cfg.focal_clip_min * diag, cfg.focal_clip_max * diag
        self.offsets = [0]
        for u in range(self.n):
            self.offsets.append(self.offsets[-1] + len(cd.uv1[u]))
        self.uv = [cd.uv1[u][:, :2].to(med.dtype) for u in range(self.n)]

    def span(self, u: int) -> tuple[int, int]:
        """Where image u's anchor list sits in the concatenated points."""
        return self.offsets[u], self.offsets[u + 1]

    def intrinsics(self, params: SparseParams) -> tuple[torch.Tensor, torch.Tensor]:
        log_f = torch.stack(params.log_focal)[:, 0]
        f = torch.maximum(torch.minimum(log_f.exp(), self.f_max), self.f_min)
        pp = torch.stack(params.pp) * self.size
        zero, one = torch.zeros_like(f), torch.ones_like(f)
        K = torch.stack([f, zero, pp[:, 0], zero, f, pp[:, 1], zero, zero, one], dim=-1).reshape(-1, 3, 3)
        return K, f

    def cameras(self, params: SparseParams) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(K [N,3,3], cam2w [N,4,4], anchor depths [N, A], focals [N])."""
        K, f = self.intrinsics(params)
        sizes = torch.stack(params.log_size)[:, 0].exp()
        g = 1 / sizes.min()
        z = sizes * self.med * f / self.cd.base_focals
        R = quat_to_rotmat(xyzw_to_wxyz(torch.stack(params.quat)))
        T = torch.cat([R, torch.stack(params.trans)[:, :, None]], dim=-1)
        bottom = torch.zeros((self.n, 1, 4), dtype=T.dtype, device=T.device)
        bottom[..., 3] = 1
        T = torch.cat([T, bottom], dim=1)
        absolute: list[torch.Tensor | None] = [None] * self.n
        absolute[self.tree.root] = T[self.tree.root]
        for parent, child in self.tree.edges:
            absolute[child] = absolute[parent] @ T[child]
        A = torch.stack(absolute)
        pp_n = torch.stack(params.pp)
        ox = self.size[:, 0] / f * (0.5 - pp_n[:, 0])
        oy = self.size[:, 1] / f * (0.5 - pp_n[:, 1])
        o = z[:, None] * torch.stack([ox, oy, torch.ones_like(f)], dim=-1)
        RA = A[:, :3, :3]
        t = g * (A[:, :3, 3] - (RA @ o[:, :, None])[..., 0])
        cam2w = torch.cat([torch.cat([RA, t[:, :, None]], dim=-1), bottom], dim=1)
        core = torch.stack(params.core_depth)
        depth = g * (z[:, None] + (core - 1) * (self.med * sizes)[:, None])
        return K, cam2w, depth, f

    def __call__(self, params: SparseParams) -> Frame:
        K, cam2w, depth, f = self.cameras(params)
        pts = [anchor_points(self.uv[u], self.cd.anchor_idx[u], self.cd.depth_offset[u], depth[u], K[u], cam2w[u],
                             self.cd.base_focals[u])[1] for u in range(self.n)]
        return Frame(K, cam2w, depth, torch.cat(pts), f)
