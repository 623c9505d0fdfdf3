"""``--method gt``: known cameras and depth maps -> one 3D point per pixel (the path DTU uses).

Reads ``<scene>/gt/{cameras,images}.txt`` (COLMAP text, original image size) and ``<scene>/depths/<stem>.npy``
(camera-space z depth, 0 = invalid).
"""

from __future__ import annotations

import numpy as np
import torch

from feat2gs.config import InitConfig
from feat2gs.data.colmap import read_colmap_model
from feat2gs.data.images import check_same_size, load_image, resize_to, working_size
from feat2gs.data.layout import SceneLayout
from feat2gs.errors import DatasetError
from feat2gs.geometry.camera import Camera, perturb_w2c
from feat2gs.geometry.pixels import camera_rays
from feat2gs.init.base import InitResult, register_init


def gt_cameras(layout: SceneLayout, names: list[str]) -> list[Camera]:
    if not (layout.gt_dir / "images.txt").is_file():
        raise DatasetError(
            f"--method gt needs ground-truth cameras in {layout.gt_dir}/cameras.txt and images.txt (COLMAP text)"
        )
    by_name = {c.name: c for c in read_colmap_model(layout.gt_dir)}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise DatasetError(f"{layout.gt_dir / 'images.txt'} has no pose for {', '.join(missing[:5])}")
    return [by_name[n] for n in names]


def load_depth(layout: SceneLayout, name: str, width: int, height: int) -> np.ndarray:
    """Depth [H, W] float32 at the original image size; non-finite values become 0 (invalid)."""
    path = layout.depth_path(name)
    if not path.is_file():
        raise DatasetError(f"--method gt needs a depth map {path} (float32 [H, W], camera z, 0 = invalid)")
    try:
        depth = np.load(path).astype(np.float32)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read depth map {path}: {exc}") from exc
    if depth.shape != (height, width):
        raise DatasetError(f"depth map {path} is {depth.shape[1]}x{depth.shape[0]}, image is {width}x{height}")
    depth[~np.isfinite(depth)] = 0.0
    return depth


def resize_nearest(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize by pixel centres (never mixes depths across an edge)."""
    h0, w0 = array.shape[:2]
    rows = np.minimum(((np.arange(height) + 0.5) * h0 / height).astype(int), h0 - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w0 / width).astype(int), w0 - 1)
    return array[rows][:, cols]


def unproject(depth: np.ndarray, cam: Camera) -> np.ndarray:
    """depth [H, W] -> world points [H, W, 3] through pixel centres."""
    pts_cam = camera_rays(torch.as_tensor(cam.K, dtype=torch.float64), *depth.shape).numpy() * depth[..., None]
    c2w = cam.c2w
    return pts_cam @ c2w[:3, :3].T + c2w[:3, 3]


@register_init("gt")
def init_gt(layout: SceneLayout, cfg: InitConfig, progress: bool = False) -> InitResult:
    names = list(layout.train_names)
    w0, h0 = check_same_size(layout.train_paths())
    w, h = working_size(w0, h0, cfg.image_size)
    original = gt_cameras(layout, names)
    for cam in original:
        if (cam.width, cam.height) != (w0, h0):
            raise DatasetError(
                f"{layout.gt_dir / 'cameras.txt'}: camera of {cam.name} is {cam.width}x{cam.height}, image is {w0}x{h0}"
            )
    cameras = [c.resized(w, h) for c in original]
    images, points, valid = [], [], []
    for name, path, cam in zip(names, layout.train_paths(), cameras):
        images.append(resize_to(load_image(path), w, h))
        depth = resize_nearest(load_depth(layout, name, w0, h0), w, h)
        points.append(unproject(depth, cam).astype(np.float32))
        valid.append(depth > 0)
    if cfg.perturb_rot_deg or cfg.perturb_trans:  # noisy cameras around exact geometry: for pose optimisation
        rng = np.random.default_rng(cfg.seed)
        cameras = [c.with_pose(perturb_w2c(c.w2c, cfg.perturb_rot_deg, cfg.perturb_trans, rng)) for c in cameras]
    return InitResult(
        names=names,
        images=torch.from_numpy(np.stack(images)),
        points=torch.from_numpy(np.stack(points)),
        valid=torch.from_numpy(np.stack(valid)),
        cameras=cameras,
        original_size=(w0, h0),
    )
