"""``global_align``: DUSt3R's dense global alignment with Feat2GS's settings (MST init + 300 Adam steps + clean)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from feat2gs.errors import Feat2GSError
from feat2gs.init.align.clean import clean_pointcloud
from feat2gs.init.align.mst import minimum_spanning_tree_init
from feat2gs.init.align.optimizer import AlignParams, DenseAligner


@dataclass
class AlignResult:
    """All tensors on the CPU. Cameras are OpenCV camera-to-world; pixel (u, v) sits at integer coordinates with
    the principal point ``pp`` (= (W/2, H/2), DUSt3R's convention; add 0.5 for the package's pixel-centre K)."""

    c2w: torch.Tensor  # [N, 4, 4]
    focals: torch.Tensor  # [N]
    pp: torch.Tensor  # [N, 2]
    depthmaps: torch.Tensor  # [N, H, W]
    pts3d: torch.Tensor  # [N, H, W, 3] world
    conf: torch.Tensor  # [N, H, W] per-image max raw confidence over edges
    conf_clean: torch.Tensor  # [N, H, W] after clean_pointcloud
    loss_trace: list[float]  # loss before each Adam step
    init_loss: float
    final_loss: float
    pw_c2w: torch.Tensor  # [E, 4, 4] scaled pairwise poses
    pw_scale: torch.Tensor  # [E]
    init_params: AlignParams  # raw parameters at the start of the loop (wxyz quaternions)
    params: AlignParams  # raw parameters at the end
    mst_tree_edges: list[tuple[int, int]] = field(default_factory=list)
    mst_focals: list[float | None] = field(default_factory=list)  # per image, before averaging
    mst_log: list[str] = field(default_factory=list)

    @property
    def masks(self) -> torch.Tensor:
        """Feat2GS's masks: ``conf_clean > log(1) = 0``."""
        return self.conf_clean > 0


def _validate(edges, pred1_pts3d, pred2_pts3d, pred1_conf, pred2_conf, true_shapes):
    shapes = np.asarray(true_shapes, dtype=np.int64).reshape(-1, 2)
    n = len(shapes)
    if n < 2:
        raise Feat2GSError(f"global alignment needs at least 2 images, got {n}")
    if not (shapes == shapes[0]).all():
        sizes = sorted({f"{h}x{w}" for h, w in shapes.tolist()})
        raise Feat2GSError(f"global alignment needs all images at one size (H x W), got {', '.join(sizes)}")
    H, W = int(shapes[0, 0]), int(shapes[0, 1])
    E = len(edges)
    if E == 0:
        raise Feat2GSError("global alignment needs at least one image pair")
    for name, t, tail in (("pred1_pts3d", pred1_pts3d, (H, W, 3)), ("pred2_pts3d_in_other_view", pred2_pts3d, (H, W, 3)),
                          ("pred1_conf", pred1_conf, (H, W)), ("pred2_conf", pred2_conf, (H, W))):
        if tuple(t.shape) != (E,) + tail:
            raise Feat2GSError(f"global alignment: {name} has shape {tuple(t.shape)}, expected {(E,) + tail} "
                               f"({E} edges, images {H}x{W})")
    seen = set()
    for e, (i, j) in enumerate(edges):
        if not (0 <= i < n and 0 <= j < n) or i == j:
            raise Feat2GSError(f"global alignment: bad edge #{e} {(i, j)} for {n} images")
        seen.update((int(i), int(j)))
    if len(seen) != n:
        raise Feat2GSError(f"global alignment: images {sorted(set(range(n)) - seen)} are in no pair")
    for e, (i, j) in enumerate(edges):
        for name, t in (("pred1_pts3d", pred1_pts3d), ("pred2_pts3d_in_other_view", pred2_pts3d),
                        ("pred1_conf", pred1_conf), ("pred2_conf", pred2_conf)):
            if not torch.isfinite(t[e]).all():
                raise Feat2GSError(f"global alignment: non-finite values in {name} of pair {(int(i), int(j))}")
        for name, t in (("pred1_conf", pred1_conf), ("pred2_conf", pred2_conf)):
            if (t[e] <= 0).any():
                raise Feat2GSError(f"global alignment: {name} of pair {(int(i), int(j))} has confidences <= 0 "
                                   "(the loss weights are log(conf))")
    if not ((pred1_conf > 1).any() or (pred2_conf > 1).any()):
        raise Feat2GSError("global alignment: every confidence is <= 1, so every loss weight log(conf) is <= 0 "
                           "(degenerate confidences)")
    return n, H, W


def global_align(
    edges: list[tuple[int, int]],
    pred1_pts3d: torch.Tensor,
    pred2_pts3d_in_other_view: torch.Tensor,
    pred1_conf: torch.Tensor,
    pred2_conf: torch.Tensor,
    true_shapes,
    niter: int = 300,
    lr: float = 0.01,
    focal_avg: bool = True,
    known_focal: float | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    *,
    init_params: AlignParams | None = None,
    niter_pnp: int = 10,
    min_conf_thr: float = 3.0,
    base_scale: float = 0.5,
    reproduce_official_focal_quirk: bool = True,
    pnp_backend: str = "auto",
    clean_tol: float = 0.001,
    dtype: torch.dtype = torch.float32,
) -> AlignResult:
    """Dense global alignment of pairwise pointmaps (DUSt3R ``PointCloudOptimizer``, Feat2GS settings).

    edges: E ordered pairs (i, j); ``pred1_pts3d[e]`` [H, W, 3] = points of image i in i's frame,
    ``pred2_pts3d_in_other_view[e]`` = points of image j in i's frame, confidences raw (DUSt3R's ``1 + exp``).
    true_shapes [N, 2] = (H, W) of each image, all equal.

    Focals: ``known_focal`` -> every focal fixed to it; else ``focal_avg`` -> mean of the MST estimates, fixed;
    else the per-image MST focals are optimised too (DUSt3R's default). PnP in the MST init always uses the
    per-image estimated focals (the known/averaged focal is applied afterwards, as in Feat2GS).
    ``init_params`` starts the loop from given raw parameters instead of the MST init (focals in them are kept
    and frozen unless ``focal_avg=False`` and no ``known_focal``).
    Raises ``Feat2GSError`` on mismatched shapes, non-finite inputs or a diverging optimisation.
    """
    edges = [(int(i), int(j)) for i, j in (edges.tolist() if hasattr(edges, "tolist") else edges)]
    tensors = [torch.as_tensor(t) for t in (pred1_pts3d, pred2_pts3d_in_other_view, pred1_conf, pred2_conf)]
    n, H, W = _validate(edges, *tensors, true_shapes)
    p1, p2, c1, c2 = (t.to(device=device, dtype=dtype) for t in tensors)
    optimize_focal = known_focal is None and not focal_avg
    aligner = DenseAligner(edges, p1, p2, c1, c2, n, H, W, base_scale=base_scale, min_conf_thr=min_conf_thr,
                           optimize_focal=optimize_focal, device=device, dtype=dtype)
    mst = None
    if init_params is None:
        mst = minimum_spanning_tree_init(
            edges, aligner.pred_i.reshape(-1, H, W, 3), aligner.pred_j.reshape(-1, H, W, 3), aligner.conf_i,
            aligner.conf_j, aligner.im_conf, min_conf_thr=min_conf_thr, niter_pnp=niter_pnp,
            reproduce_official_focal_quirk=reproduce_official_focal_quirk, pnp_backend=pnp_backend,
            pnp_focals=None if known_focal is None else [float(known_focal)] * n,
        )
        if known_focal is not None:
            aligner.set_focals([float(known_focal)] * n, freeze=True)
        elif focal_avg:
            if any(f is None for f in mst.focals):
                raise Feat2GSError("global alignment: no focal estimate for some images; pass known_focal")
            aligner.set_focals([float(np.mean(np.asarray(mst.focals, dtype=np.float64)))] * n, freeze=True)
        aligner.init_from_pts3d(mst.pts3d, mst.c2w, mst.focals)
    else:
        aligner.set_params(init_params)
        if known_focal is not None:
            aligner.set_focals([float(known_focal)] * n, freeze=True)
    aligner.check_finite("after the initialisation")
    start = aligner.get_params()
    with torch.no_grad():
        init_loss = float(aligner())
    if not np.isfinite(init_loss):
        raise Feat2GSError(f"global alignment: the initial loss is {init_loss} (degenerate inputs?)")
    with torch.enable_grad():
        trace = aligner.optimize(niter=niter, lr=lr, progress=progress)
    with torch.no_grad():
        final_loss = float(aligner())
        c2w = aligner.im_c2w()
        K = aligner.intrinsics()
        depth = aligner.depthmaps().reshape(n, H, W)
        pts = aligner.pts3d().reshape(n, H, W, 3)
        conf_clean = clean_pointcloud(aligner.im_conf, K, c2w, depth, pts, tol=clean_tol, bad_conf=0.0)
        out = AlignResult(
            c2w=c2w.cpu(), focals=aligner.focals()[:, 0].cpu(), pp=aligner.principal_points().cpu(),
            depthmaps=depth.cpu(), pts3d=pts.cpu(), conf=aligner.im_conf.cpu(), conf_clean=conf_clean.cpu(),
            loss_trace=trace, init_loss=init_loss, final_loss=final_loss, pw_c2w=aligner.pw_c2w().cpu(),
            pw_scale=aligner.pw_scale().cpu(), init_params=start, params=aligner.get_params(),
        )
    if mst is not None:
        out.mst_tree_edges, out.mst_focals, out.mst_log = mst.tree_edges, mst.focals, mst.log
    return out
