"""Helpers of the demo tests: a tiny preset (seconds on 2 CPU cores), photos to upload, a free port."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
from PIL import Image

# The example scene at 32 px with 20 iterations: steps 1-3 take seconds. LPIPS off (its VGG weights are a download).
TINY = ("train.iterations=20", "train.warm_iterations=10", "eval.test_pose_iterations=2", "video.n_frames=4",
        "init.image_size=32", "train.resolution=32", "video.resolution=32", "eval.lpips=false",
        "init.align_iterations=20")


def tiny_settings(cache_dir: Path, **kw):
    from feat2gs.demo.settings import DemoSettings

    return DemoSettings(cache_dir=Path(cache_dir), preset="quick", overrides=TINY, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_photo(path: Path, size=(64, 48), seed: int = 0, fmt: str | None = None, mode: str = "RGB") -> Path:
    """A small textured picture (smooth gradients + noise) saved as ``path``."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], -1) + rng.normal(0, 20, (h, w, 3))
    arr = img.clip(0, 255).astype(np.uint8)
    pil = Image.fromarray(arr)
    if mode == "RGBA":
        alpha = np.full((h, w), 255, np.uint8)
        alpha[: h // 4] = 0
        pil = Image.fromarray(np.concatenate([arr, alpha[..., None]], -1), "RGBA")
    path.parent.mkdir(parents=True, exist_ok=True)
    pil.save(path, format=fmt)
    return path
