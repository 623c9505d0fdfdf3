"""``sparse_align`` / ``mast3r_sparse_init``: MASt3R's sparse global alignment as Feat2GS runs it, end to end.

pairs (inference + matching, cached) -> canonical views and anchors -> condensed data -> kinematic tree ->
stage 1 (3D matches, lr 0.07, 500 it) -> stage 2 (2D reprojection, lr 0.014, 200 it) -> dense read-out + clean.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from feat2gs.init.sparse.cache import PairCache, weights_fingerprint
from feat2gs.init.sparse.canonical import canonical_views
from feat2gs.init.sparse.condense import condense
from feat2gs.init.sparse.graph import KinematicTree, pairwise_scores, spanning_tree
from feat2gs.init.sparse.losses import SparseLoss
from feat2gs.init.sparse.model import Frame, SparseModel, init_params
from feat2gs.init.sparse.optimize import run_stage
from feat2gs.init.sparse.pairs import SparsePairs, infer_pairs
from feat2gs.init.sparse.readout import dense_readout
from feat2gs.init.sparse.settings import SparseAlignmentError, SparseGAConfig


@dataclass
class SparseAlignResult:
    """All tensors on the CPU. Cameras are OpenCV camera-to-world. Pixels sit at integer coordinates (DUSt3R's
    convention): ``pp`` is the optimised principal point in that convention (add 0.5 for the package's K)."""

    c2w: torch.Tensor  # [N, 4, 4]
    focals: torch.Tensor  # [N] (clipped)
    pp: torch.Tensor  # [N, 2]
    intrinsics: torch.Tensor  # [N, 3, 3]
    depthmaps: torch.Tensor  # [N, H, W]
    pts3d: torch.Tensor  # [N, H, W, 3] world
    conf: torch.Tensor  # [N, H, W] canonical confidences
    conf_clean: torch.Tensor  # [N, H, W] after clean_pointcloud
    coarse: Frame  # stage 1 result (before its last step)
    fine: Frame  # stage 2 result (= the cameras above)
    loss_trace1: list[float] = field(default_factory=list)
    loss_trace2: list[float] = field(default_factory=list)
    tree: KinematicTree | None = None
    n_matches: dict[tuple[int, int], int] = field(default_factory=dict)
    pairs_with_matches: list[tuple[int, int]] = field(default_factory=list)  # the others use the fallback loss
    base_focals: list[float] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (synchronised on CUDA)

    @property
    def masks(self) -> torch.Tensor:
        """Feat2GS's masks: ``conf_clean > 0`` (min_conf_thr 0)."""
        return self.conf_clean > 0


def _to(frame: Frame, device) -> Frame:
    return Frame(*(t.to(device) for t in (frame.K, frame.cam2w, frame.depthmaps, frame.pts3d, frame.focals)))


@contextmanager
def _timer(timings: dict[str, float], name: str, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    yield
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    timings[name] = time.perf_counter() - t0


def sparse_align(pairs: SparsePairs, cfg: SparseGAConfig = SparseGAConfig(), known_focal: float | None = None,
                 device: torch.device | str | None = None, progress: bool = True) -> SparseAlignResult:
    """Align the matched pairwise predictions (on ``device``, default: where they are). ``known_focal``
    fixes every focal (pixels) and keeps the principal point at the image centre. The result's ``timings`` holds
    the seconds of each stage (canonical, optimise1, optimise2, readout)."""
    if known_focal is not None and not (math.isfinite(known_focal) and known_focal > 0):
        raise SparseAlignmentError(f"sparse alignment: known_focal must be a positive number, got {known_focal}")
    if pairs.n_images < 2:
        raise SparseAlignmentError(f"sparse alignment needs at least 2 images, got {pairs.n_images}")
    if device is not None:
        pairs = pairs.to(device)
    for (u, v), view in pairs.views.items():
        for name in ("pts_self", "conf_self", "pts_other", "conf_other"):
            t = getattr(view, name)
            if not bool(torch.isfinite(t).all()):
                raise SparseAlignmentError(f"sparse alignment: non-finite {name} for pair {(u, v)}")
        if bool((view.conf_self <= cfg.conf_shift).any()):
            raise SparseAlignmentError(f"sparse alignment: confidences of pair {(u, v)} must exceed "
                                       f"{cfg.conf_shift} (MASt3R's are 1 + exp(x))")
    dev = next(iter(pairs.views.values())).pts_self.device
    timings: dict[str, float] = {}
    with _timer(timings, "canonical", dev):
        views = canonical_views(pairs, cfg, progress)
        cd = condense(views, pairs.pairs)
        counts = pairs.match_counts()
        tree = spanning_tree(pairwise_scores(pairs.n_images, counts))
        params, med = init_params(cd, cfg, known_focal)
        model = SparseModel(cd, med, tree, cfg)
        loss = SparseLoss(model, cfg)
    frozen = known_focal is not None
    with _timer(timings, "optimise1", dev):
        r1 = run_stage(model, loss, params, 1, cfg.lr1, cfg.niter1, cfg, frozen, progress)
    with _timer(timings, "optimise2", dev):
        r2 = run_stage(model, loss, params, 2, cfg.lr2, cfg.niter2, cfg, frozen, progress) if cfg.niter2 > 0 else r1
    fine = r2.frame
    with _timer(timings, "readout", dev):
        dense = dense_readout(views, fine.K, fine.cam2w, fine.depthmaps, cd.base_focals, cfg, progress)
    cpu = torch.device("cpu")
    return SparseAlignResult(
        c2w=fine.cam2w.cpu(), focals=fine.focals.cpu(), pp=fine.K[:, :2, 2].cpu(), intrinsics=fine.K.cpu(),
        depthmaps=dense["depthmaps"].cpu(), pts3d=dense["pts3d"].cpu(), conf=dense["conf"].cpu(),
        conf_clean=dense["conf_clean"].cpu(), coarse=_to(r1.frame, cpu), fine=_to(fine, cpu),
        loss_trace1=r1.losses, loss_trace2=r2.losses if cfg.niter2 > 0 else [], tree=tree, n_matches=counts,
        pairs_with_matches=sorted(ij for ij, ok in loss.ok.items() if ok), base_focals=[v.focal for v in views],
        timings=timings,
    )


def cache_context(model: torch.nn.Module, autocast: torch.dtype | None, cfg: SparseGAConfig) -> str:
    """What a cached pair depends on besides its two images."""
    return (f"weights={weights_fingerprint(model)}|autocast={autocast}|subsample={cfg.subsample}|"
            f"nn_max_iter={cfg.nn_max_iter}|nn_block={cfg.nn_block_size}")


def mast3r_pairs(model: torch.nn.Module, imgs: list[torch.Tensor], pairs: list[tuple[int, int]],
                 cfg: SparseGAConfig = SparseGAConfig(), cache_dir=None, batch_size: int = 1,
                 device: torch.device | str | None = None, autocast: torch.dtype | None = None,
                 progress: bool = True) -> SparsePairs:
    """Pair inference + matching, cached in ``cache_dir`` when given. imgs: N [1, 3, H, W] in [-1, 1]."""
    cache = PairCache(cache_dir, cache_context(model, autocast, cfg)) if cache_dir is not None else None
    return infer_pairs(model, imgs, pairs, cfg, cache, batch_size, device, autocast, progress)


def mast3r_sparse_init(model: torch.nn.Module, imgs: list[torch.Tensor], pairs: list[tuple[int, int]],
                       cfg: SparseGAConfig = SparseGAConfig(), cache_dir=None, known_focal: float | None = None,
                       batch_size: int = 1, device: torch.device | str | None = None,
                       autocast: torch.dtype | None = None, progress: bool = True
                       ) -> tuple[SparseAlignResult, torch.Tensor]:
    """:func:`mast3r_pairs` + :func:`sparse_align`. Returns (alignment, per-image encoder features
    [N, H/16, W/16, C] on the CPU)."""
    matched = mast3r_pairs(model, imgs, pairs, cfg, cache_dir, batch_size, device, autocast, progress)
    return sparse_align(matched, cfg, known_focal, device, progress), matched.features().float().cpu()
