"""Feature visualisation: one row per image — the image, then channels 0–2, 3–5 and 6–8 shown as RGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from feat2gs.io import atomic_save


def feature_grid(images: torch.Tensor, features: torch.Tensor, min_width: int = 256) -> np.ndarray:
    """images [N, H, W, 3] in [0, 1], features [N, H, W, C] -> uint8 mosaic [N*H', 4*W', 3].

    Each channel is min-max normalised over all images and pixels; missing channels are shown white.
    """
    n, h, w, c = features.shape
    cols = [images.float().cpu().clamp(0, 1)]
    for start in (0, 3, 6):
        block = torch.ones(n, h, w, 3)
        for k in range(3):
            ch = start + k
            if ch < c:
                x = features[..., ch].float().cpu()
                block[..., k] = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12)
        cols.append(block)
    mosaic = torch.cat([torch.cat(list(col), dim=0) for col in cols], dim=1)  # [N*H, 4*W, 3]
    arr = (mosaic.numpy() * 255).round().astype(np.uint8)
    scale = max(1, -(-min_width // w))
    return np.repeat(np.repeat(arr, scale, axis=0), scale, axis=1)


def save_feature_visualisation(path: str | Path, images: torch.Tensor, features: torch.Tensor) -> None:
    grid = feature_grid(images, features)
    atomic_save(path, lambda tmp: Image.fromarray(grid).save(tmp, format="PNG"))
