"""``--method dust3r|mast3r``: network pointmaps of all ordered pairs + global alignment (protocol §3.2–3.6).

DUSt3R: dense global alignment (``feat2gs.init.align``). MASt3R: the reference's sparse global alignment
(``feat2gs.init.sparse``: descriptor matching, canonical views, 3D-matching and 2D-reprojection stages, dense
read-out) with ``init.mast3r_alignment=sparse``, or DUSt3R's dense alignment on MASt3R's pointmaps with ``dense``.
Step 1 caches MASt3R's pair inference in ``<scene>/<N>_views/mast3r_cache``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from feat2gs.config import InitConfig
from feat2gs.data.images import check_same_size, load_image, resize_to, working_size
from feat2gs.data.layout import SceneLayout
from feat2gs.errors import ConfigError, DatasetError
from feat2gs.geometry.camera import Camera
from feat2gs.init.base import InitResult, register_init
from feat2gs.runinfo import autocast_dtype, resolve_device


RANDOM_WEIGHTS_FOCAL = 1.2  # focal / long side used when the network has random weights


def load_network_images(paths, image_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Images [N, H, W, 3] in [0, 1] at the protocol working size, and the original (width, height)."""
    if len(paths) < 2:
        raise DatasetError(f"DUSt3R/MASt3R need at least 2 images, got {len(paths)}")
    w0, h0 = check_same_size(paths)
    w, h = working_size(w0, h0, image_size)
    return torch.from_numpy(np.stack([resize_to(load_image(p), w, h) for p in paths])), (w0, h0)


def uses_sparse_alignment(kind: str, cfg: InitConfig) -> bool:
    """MASt3R with ``init.mast3r_alignment=sparse`` (the reference's method); everything else aligns densely."""
    if kind != "mast3r":
        return False
    if cfg.mast3r_alignment not in ("sparse", "dense"):
        raise ConfigError(f"init.mast3r_alignment must be 'sparse' or 'dense', got {cfg.mast3r_alignment!r}")
    return cfg.mast3r_alignment == "sparse"


def pair_cache_dir(layout: SceneLayout, kind: str, cfg: InitConfig) -> Path | None:
    """``<N>_views/mast3r_cache``, where the sparse alignment keeps its pair inference (shared by steps 1 and 3);
    None for the dense alignment, which caches nothing."""
    return layout.views_dir / "mast3r_cache" if uses_sparse_alignment(kind, cfg) else None


def network_pointmaps(images: torch.Tensor, kind: str, cfg: InitConfig, known_focal: float | None = None,
                      cache_dir=None, progress: bool = False):
    """Run the network on every ordered pair and align globally; returns (alignment, encoder features, random).

    MASt3R with the sparse alignment caches its pair inference in ``cache_dir`` when given. ``known_focal`` fixes
    the focal (and, for the sparse alignment, keeps the principal point at the centre); random weights fix it to
    ``RANDOM_WEIGHTS_FOCAL`` times the long side.
    """
    from feat2gs.init.align import global_align
    from feat2gs.init.dust3r import load_dust3r, make_pairs_complete, run_pairs

    sparse = uses_sparse_alignment(kind, cfg)
    device = resolve_device(cfg.device)
    loaded = load_dust3r(cfg.checkpoint, kind, device, random_weights=cfg.random_weights)
    n, h, w, _ = images.shape
    imgs = [(img.permute(2, 0, 1)[None] - 0.5) / 0.5 for img in images]
    edges = make_pairs_complete(n)
    autocast = autocast_dtype(cfg.autocast)
    if loaded.random_weights and known_focal is None:
        known_focal = RANDOM_WEIGHTS_FOCAL * max(w, h)  # random pointmaps carry no usable focal estimate
    if sparse:
        from feat2gs.init.sparse import SparseGAConfig, mast3r_pairs, sparse_align

        scfg = SparseGAConfig(tsdf_thresh=cfg.mast3r_tsdf_thresh)
        matched = mast3r_pairs(loaded.model, imgs, edges, scfg, cache_dir=cache_dir, batch_size=cfg.batch_size,
                               device=device, autocast=autocast, progress=progress)
        del loaded.model
        align = sparse_align(matched, scfg, known_focal=known_focal, device=device, progress=progress)
        return align, matched.features().float().cpu(), loaded.random_weights
    out = run_pairs(loaded.model, imgs, edges, batch_size=cfg.batch_size, device=device, autocast=autocast,
                    progress=progress, keys={"pts3d", "pts3d_in_other_view", "conf"})
    del loaded.model
    true_shapes = torch.tensor([[h, w]] * n)
    align = global_align(edges, out.pred1["pts3d"], out.pred2["pts3d_in_other_view"], out.pred1["conf"],
                         out.pred2["conf"], true_shapes, niter=cfg.align_iterations, focal_avg=True,
                         known_focal=known_focal, device=device, progress=progress)
    return align, torch.stack(list(out.encoder_features)), loaded.random_weights


def network_K(focal: float, width: int, height: int, pp: tuple[float, float] | None = None) -> np.ndarray:
    """Intrinsics of an aligned view. DUSt3R indexes pixels by integers with the principal point at (W/2, H/2)
    (or the aligner's ``pp``); our pixel centres sit at +0.5, hence the half-pixel shift."""
    cx, cy = (width / 2, height / 2) if pp is None else (float(pp[0]), float(pp[1]))
    return np.array([[focal, 0, cx + 0.5], [0, focal, cy + 0.5], [0, 0, 1]])


def reference_K(K: np.ndarray, width: int, height: int, original: tuple[int, int]) -> np.ndarray:
    """The camera the reference writes, at the working size: principal point at the image centre W0/2 (half a pixel
    off ours), both focals scaled by the x factor ``(W0/2) / cx`` of the network's (integer-pixel) principal
    point. For the dense alignment (cx = W/2) that only changes fy by the aspect change of the working size;
    for the sparse alignment, whose principal point moves, it changes the focal too."""
    w0, h0 = original
    scale = (w0 / 2) / (K[0, 2] - 0.5)  # original pixels per working pixel, as the reference computes it
    f = K[0, 0] * scale  # the reference's focal at the original size, used for fx and fy
    return np.array([[f * width / w0, 0, width / 2], [0, f * height / h0, height / 2], [0, 0, 1]])


def _init(kind: str):
    def init(layout: SceneLayout, cfg: InitConfig, progress: bool = False) -> InitResult:
        images, original = load_network_images(layout.train_paths(), cfg.image_size)
        align, features, random_weights = network_pointmaps(
            images, kind, cfg, cache_dir=pair_cache_dir(layout, kind, cfg), progress=progress)
        _, h, w, _ = images.shape
        cameras = []
        for k, (name, c2w, focal) in enumerate(zip(layout.train_names, align.c2w, align.focals)):
            K = network_K(float(focal), w, h, align.pp[k].tolist())  # the sparse alignment optimises it
            if cfg.reference_intrinsics:
                K = reference_K(K, w, h, original)
            cameras.append(Camera(name, K, np.linalg.inv(c2w.double().cpu().numpy()), w, h))
        return InitResult(
            names=list(layout.train_names), images=images, points=align.pts3d.float().cpu(),
            valid=(align.conf_clean > 0).cpu(), cameras=cameras, original_size=original,
            precomputed={kind: features.float().cpu()}, random_weights=random_weights,
        )

    return init


register_init("dust3r")(_init("dust3r"))
register_init("mast3r")(_init("mast3r"))
