"""``--method dust3r|mast3r``: network pointmaps of all ordered pairs + dense global alignment (protocol §3.2–3.5).

MASt3R runs through the same dense alignment as DUSt3R (on MASt3R's pointmaps); the reference's sparse
global alignment is not reproduced.
"""

from __future__ import annotations

import numpy as np
import torch

from feat2gs.config import InitConfig
from feat2gs.data.images import check_same_size, load_image, resize_to, working_size
from feat2gs.data.layout import SceneLayout
from feat2gs.errors import DatasetError
from feat2gs.geometry.camera import Camera
from feat2gs.init.base import InitResult, register_init
from feat2gs.runinfo import resolve_device


RANDOM_WEIGHTS_FOCAL = 1.2  # focal / long side used when the network has random weights


def load_network_images(paths, image_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Images [N, H, W, 3] in [0, 1] at the protocol working size, and the original (width, height)."""
    if len(paths) < 2:
        raise DatasetError(f"DUSt3R/MASt3R need at least 2 images, got {len(paths)}")
    w0, h0 = check_same_size(paths)
    w, h = working_size(w0, h0, image_size)
    return torch.from_numpy(np.stack([resize_to(load_image(p), w, h) for p in paths])), (w0, h0)


def network_pointmaps(images: torch.Tensor, kind: str, cfg: InitConfig, known_focal: float | None = None):
    """Run the network on every ordered pair and align globally; returns (alignment, encoder features, random)."""
    from feat2gs.init.align import global_align
    from feat2gs.init.dust3r import load_dust3r, make_pairs_complete, run_pairs

    device = resolve_device(cfg.device)
    loaded = load_dust3r(cfg.checkpoint, kind, device, random_weights=cfg.random_weights)
    n, h, w, _ = images.shape
    imgs = [(img.permute(2, 0, 1)[None] - 0.5) / 0.5 for img in images]
    edges = make_pairs_complete(n)
    autocast = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[cfg.autocast]
    out = run_pairs(loaded.model, imgs, edges, batch_size=cfg.batch_size, device=device, autocast=autocast,
                    keys={"pts3d", "pts3d_in_other_view", "conf"})
    del loaded.model
    true_shapes = torch.tensor([[h, w]] * n)
    if loaded.random_weights and known_focal is None:
        known_focal = RANDOM_WEIGHTS_FOCAL * max(w, h)  # random pointmaps carry no usable focal estimate
    align = global_align(edges, out.pred1["pts3d"], out.pred2["pts3d_in_other_view"], out.pred1["conf"],
                         out.pred2["conf"], true_shapes, niter=cfg.align_iterations, focal_avg=True,
                         known_focal=known_focal, device=device)
    return align, torch.stack(list(out.encoder_features)), loaded.random_weights


def network_K(focal: float, width: int, height: int) -> np.ndarray:
    """Intrinsics of an aligned view. DUSt3R indexes pixels by integers with the principal point at (W/2, H/2);
    our pixel centres sit at +0.5, hence the half-pixel shift."""
    return np.array([[focal, 0, width / 2 + 0.5], [0, focal, height / 2 + 0.5], [0, 0, 1]])


def _init(kind: str):
    def init(layout: SceneLayout, cfg: InitConfig) -> InitResult:
        images, original = load_network_images(layout.train_paths(), cfg.image_size)
        align, features, random_weights = network_pointmaps(images, kind, cfg)
        _, h, w, _ = images.shape
        cameras = []
        for name, c2w, focal in zip(layout.train_names, align.c2w, align.focals):
            K = network_K(float(focal), w, h)
            cameras.append(Camera(name, K, np.linalg.inv(c2w.double().cpu().numpy()), w, h))
        return InitResult(
            names=list(layout.train_names), images=images, points=align.pts3d.float().cpu(),
            valid=(align.conf_clean > 0).cpu(), cameras=cameras, original_size=original,
            precomputed={kind: features.float().cpu()}, random_weights=random_weights,
        )

    return init


register_init("dust3r")(_init("dust3r"))
register_init("mast3r")(_init("mast3r"))
