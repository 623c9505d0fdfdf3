"""Training views: images at the render resolution with their cameras (from the step-1 COLMAP files)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from feat2gs.data.colmap import read_colmap_model
from feat2gs.data.images import load_image, render_size, resize_to
from feat2gs.errors import DatasetError
from feat2gs.geometry.camera import Camera


@dataclass
class View:
    camera: Camera  # at the render resolution
    image: torch.Tensor  # [H, W, 3] in [0, 1]


def load_views(colmap_dir: Path, image_dir: Path, names: list[str], long_side: int | None,
               device: torch.device) -> list[View]:
    """Cameras of ``colmap_dir`` for ``names`` with images from ``image_dir``, resized to the render size."""
    by_name = {c.name: c for c in read_colmap_model(colmap_dir)}
    views = []
    for name in names:
        if name not in by_name:
            raise DatasetError(f"{colmap_dir / 'images.txt'} has no camera for {name}")
        cam = by_name[name]
        img = load_image(image_dir / name)
        if img.shape[:2] != (cam.height, cam.width):
            raise DatasetError(
                f"{image_dir / name} is {img.shape[1]}x{img.shape[0]} but {colmap_dir / 'cameras.txt'} says "
                f"{cam.width}x{cam.height}"
            )
        w, h = render_size(cam.width, cam.height, long_side)
        views.append(View(cam.resized(w, h), torch.from_numpy(resize_to(img, w, h)).to(device)))
    return views


def scene_extent(cameras: list[Camera]) -> float:
    """1.1 × the largest distance of a camera centre from their mean (3DGS ``cameras_extent``)."""
    centers = np.stack([c.center for c in cameras])
    return float(1.1 * np.linalg.norm(centers - centers.mean(0), axis=1).max()) or 1.0
