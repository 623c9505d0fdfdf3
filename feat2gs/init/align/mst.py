"""Minimum-spanning-tree initialisation of the dense aligner (DUSt3R's ``init='mst'``), written from its description.

1. Edge score = ``mean(conf_i) · mean(conf_j)`` (raw confidences). The pair graph (a sparse matrix holding
   ``-score`` at ``[i, j]`` for every ordered edge) goes through ``scipy.sparse.csgraph.minimum_spanning_tree``,
   i.e. a maximum-confidence spanning tree.
2. Tree edges are visited strongest first. The first one fixes image i at the identity, with
   ``pts3d[i] = pred_i``, ``pts3d[j] = pred_j`` and ``focal[i] = estimate_focal(pred_i)``.
3. Each further edge (i, j): if image i has no focal yet it gets ``estimate_focal(pred_i[e])`` — where, in the
   official code, ``e`` is the *previous* edge (a stale variable; reproduced with
   ``reproduce_official_focal_quirk=True``). If i is placed, ``pred_i`` is registered (confidence-weighted
   Umeyama) onto ``pts3d[i]`` and ``pts3d[j]`` is the registered ``pred_j``; if j is placed, ``pred_j`` onto
   ``pts3d[j]`` and ``pts3d[i]`` follows. Either way the rigid part of that registration becomes image i's pose
   if it has none. An edge with neither end placed goes to the back of the queue.
4. Images still without a focal take ``estimate_focal(pred_i)`` of their best-scored edge where they are first;
   images without a pose get one by PnP on their points (pixels with ``im_conf > min_conf_thr``), identity if
   that fails.

``DenseAligner.init_from_pts3d`` (optimizer.py) then sets every pairwise pose by registering ``pred_i`` onto ``pts3d[i]``, rescales the world by
the base-scale normalisation factor, and writes the image poses and log-depth maps (``z`` of the points in each
camera).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import minimum_spanning_tree as _scipy_mst

from feat2gs.errors import Feat2GSError
from feat2gs.geometry.similarity import umeyama
from feat2gs.init.align.focal import estimate_focal
from feat2gs.init.align.ops import rigid_to_4x4, transform_points
from feat2gs.init.align.pnp import solve_pnp_c2w


@dataclass
class MSTResult:
    pts3d: list[torch.Tensor]  # per image [H, W, 3] world points (before the scale normalisation)
    tree_edges: list[tuple[int, int]]  # in visiting order
    focals: list[float | None]  # per image, before any averaging
    c2w: torch.Tensor  # [N, 4, 4] before the scale normalisation
    log: list[str]


def edge_scores(edges, conf_i: torch.Tensor, conf_j: torch.Tensor) -> dict[tuple[int, int], float]:
    return {(int(i), int(j)): float(conf_i[e].mean() * conf_j[e].mean()) for e, (i, j) in enumerate(edges)}


def spanning_tree(scores: dict[tuple[int, int], float], n_imgs: int) -> list[tuple[float, int, int]]:
    """Maximum-score spanning tree as ``[(score, i, j), ...]`` sorted ascending (pop() gives the strongest)."""
    graph = sp.dok_array((n_imgs, n_imgs), dtype=np.float64)
    for (i, j), s in scores.items():
        graph[i, j] = -s
    tree = _scipy_mst(graph.tocsr()).tocoo()
    return sorted(zip((-tree.data).tolist(), tree.row.tolist(), tree.col.tolist()))


def minimum_spanning_tree_init(
    edges: list[tuple[int, int]],
    pred_i: torch.Tensor,
    pred_j: torch.Tensor,
    conf_i: torch.Tensor,
    conf_j: torch.Tensor,
    im_conf: torch.Tensor,
    min_conf_thr: float = 3.0,
    niter_pnp: int = 10,
    reproduce_official_focal_quirk: bool = True,
    pnp_backend: str = "auto",
    pnp_focals: list[float] | None = None,
) -> MSTResult:
    """pred_i/pred_j [E, H, W, 3], conf_i/conf_j [E, H, W] raw confidences, im_conf [N, H, W].

    ``pnp_focals``: when given (a known focal), PnP uses these instead of the estimated focals.
    """
    n = im_conf.shape[0]
    edges = [(int(i), int(j)) for i, j in edges]
    index = {ij: e for e, ij in enumerate(edges)}
    scores = edge_scores(edges, conf_i, conf_j)
    todo = spanning_tree(scores, n)
    log: list[str] = []
    pts3d: list[torch.Tensor | None] = [None] * n
    poses: list[torch.Tensor | None] = [None] * n
    focals: list[float | None] = [None] * n

    score, i, j = todo.pop()
    e = index[(i, j)]
    log.append(f"init edge ({i}*,{j}*) score={score}")
    pts3d[i], pts3d[j] = pred_i[e].clone(), pred_j[e].clone()
    done = {i, j}
    poses[i] = torch.eye(4, dtype=pred_i.dtype, device=pred_i.device)
    focals[i] = estimate_focal(pred_i[e])
    tree = [(i, j)]
    last_e = e  # the official loop reads the edge variable of the previous iteration here
    while todo:
        score, i, j = todo.pop()
        if focals[i] is None:
            focals[i] = estimate_focal(pred_i[last_e if reproduce_official_focal_quirk else index[(i, j)]])
        if i in done or j in done:
            e = index[(i, j)]
            last_e = e
            if i in done:
                assert j not in done
                log.append(f" init edge ({i},{j}*) score={score}")
                s, R, T = umeyama(pred_i[e], pts3d[i], conf_i[e])
                pts3d[j] = transform_points(rigid_to_4x4(R, T, s), pred_j[e])
                done.add(j)
            else:
                log.append(f" init edge ({i}*,{j}) score={score}")
                s, R, T = umeyama(pred_j[e], pts3d[j], conf_j[e])
                pts3d[i] = transform_points(rigid_to_4x4(R, T, s), pred_i[e])
                done.add(i)
            if not math.isfinite(s):
                raise Feat2GSError(f"global alignment: MST registration of edge {(i, j)} is degenerate (scale {s})")
            tree.append((i, j))
            if poses[i] is None:
                poses[i] = rigid_to_4x4(R, T)
        else:
            todo.insert(0, (score, i, j))

    # complete the missing focals from each image's best edge where it is first
    for i, j in sorted(scores, key=lambda ij: -scores[ij]):
        if focals[i] is None:
            focals[i] = estimate_focal(pred_i[index[(i, j)]])
    if pnp_focals is not None:  # a known focal replaces the estimates (which degenerate pointmaps can break)
        focals = [float(f) for f in pnp_focals]
    for k, f in enumerate(focals):
        if f is not None and not (math.isfinite(f) and f > 0):
            raise Feat2GSError(f"global alignment: MST focal estimate of image {k} is {f} (degenerate pointmaps?)")
    for k in range(n):
        if poses[k] is None:
            msk = (im_conf[k] > min_conf_thr).cpu().numpy()
            f = pnp_focals[k] if pnp_focals is not None else focals[k]
            res = solve_pnp_c2w(pts3d[k].detach().cpu().numpy(), msk, f, niter=niter_pnp, backend=pnp_backend)
            if res is not None:
                focals[k], c2w = res
                poses[k] = torch.as_tensor(c2w, dtype=pred_i.dtype, device=pred_i.device)
                log.append(f" image {k}: pose from PnP ({int(msk.sum())} points)")
        if poses[k] is None:
            poses[k] = torch.eye(4, dtype=pred_i.dtype, device=pred_i.device)
            log.append(f" image {k}: PnP failed, identity pose")
    return MSTResult(pts3d=pts3d, tree_edges=tree, focals=focals, c2w=torch.stack(poses), log=log)
