"""Constants of MASt3R's sparse global alignment as Feat2GS calls it, and the error type of the package.

Every default below is the value the reference runs with (spec: shared/spec/mast3r_sparse_ga.md §13); the
conformance tests check the defaults against the fixture's settings.json, so a changed constant fails them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from feat2gs.errors import Feat2GSError


class SparseAlignmentError(Feat2GSError):
    """The sparse global alignment cannot run on these inputs (bad shapes, disconnected pair graph, ...)."""


@dataclass(frozen=True)
class SparseGAConfig:
    """Settings of the sparse global alignment (Feat2GS's ``sparse_global_alignment`` call + upstream defaults)."""

    subsample: int = 8  # seed grid of the matcher and anchor grid of the optimiser (offset subsample // 2)
    nn_max_iter: int = 10  # rounds of reciprocal nearest-neighbour search
    nn_block_size: int = 2**13  # db chunk of the brute-force NN when queries x db > 2^26
    conf_shift: float = 0.999  # canonical view weights: C - conf_shift
    min_focal: float = 0.5  # base-focal clip, x focal_base = max(H, W) / (2 tan 30deg)
    max_focal: float = 3.5
    focal_clip_min: float = 0.25  # optimiser focal clip, x ||(W, H)||
    focal_clip_max: float = 10.0
    lr1: float = 0.07  # stage 1 (3D matching), Feat2GS value (upstream 0.2)
    niter1: int = 500
    lr2: float = 0.014  # stage 2 (2D reprojection), Feat2GS value (upstream 0.02, 500)
    niter2: int = 200
    gamma1: float = 1.1  # robust kernel of loss_3d
    gamma2: float = 0.4  # robust kernel of loss_2d
    gamma_fallback: float = 1.1  # robust kernel of the DUSt3R-regression fallback loss
    loss_dust3r_w: float = 0.01  # weight of the fallback loss in both stages
    matching_conf_thr: float = 5.0  # a pair uses its matches iff max(conf) > this (strict)
    shared_intrinsics: bool = True  # Feat2GS passes --focal_avg: one focal and pp for all views
    opt_pp: bool = True
    betas: tuple[float, float] = (0.9, 0.9)  # Adam
    adam_eps: float = 1e-8
    reproj_min_z: float = 1e-3  # loss_2d clamps
    reproj_clip: tuple[float, float] = (-1000.0, 2000.0)
    clean_tol: float = 0.001  # clean_pointcloud of the dense read-out
    tsdf_thresh: float = 0.0  # TSDF depth refinement of the read-out (0: off, as Feat2GS)
    tsdf_samples: int = 1000  # candidate depths per pixel when tsdf_thresh > 0
    seed: int = 0  # only the TSDF sampling is random

    def __post_init__(self):
        if self.subsample < 1 or self.nn_max_iter < 1 or self.nn_block_size < 1:
            raise SparseAlignmentError(f"subsample, nn_max_iter and nn_block_size must be >= 1 ({self})")
        if self.niter1 < 0 or self.niter2 < 0 or self.lr1 < 0 or self.lr2 < 0:
            raise SparseAlignmentError(f"iterations and learning rates must be >= 0, got niter1={self.niter1}, "
                                       f"niter2={self.niter2}, lr1={self.lr1}, lr2={self.lr2}")
        if self.tsdf_thresh < 0 or not math.isfinite(self.tsdf_thresh):
            raise SparseAlignmentError(f"tsdf_thresh must be a finite value >= 0, got {self.tsdf_thresh}")

    def replace(self, **changes) -> "SparseGAConfig":
        return replace(self, **changes)


def gamma_offset(gamma: float) -> float:
    """c_gamma = (1/gamma)^(1/(gamma-1)): the shift that makes rho_gamma'(0) = 1."""
    return (1.0 / gamma) ** (1.0 / (gamma - 1.0))


def focal_base(height: int, width: int) -> float:
    """max(H, W) / (2 tan 30deg): the focal of a 60-degree field of view across the long side."""
    return max(height, width) / (2.0 * math.tan(math.radians(30.0)))
