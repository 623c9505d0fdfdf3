"""Image loading (EXIF-aware, validated) and the protocol's resize to a long side of ``size`` and multiples of 16."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from feat2gs.errors import DatasetError

T = TypeVar("T")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


def _read(path: str | Path, reader: Callable[[Image.Image], T]) -> T:
    """Open an image file and apply ``reader``; a missing, empty or unreadable file is a DatasetError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing image {path}")
    if path.stat().st_size == 0:
        raise DatasetError(f"image {path} is empty (0 bytes)")
    try:
        with Image.open(path) as img:
            return reader(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from exc


def load_image(path: str | Path) -> np.ndarray:
    """Read an image as uint8 RGB [H, W, 3], applying its EXIF orientation."""
    return _read(path, lambda img: np.asarray(ImageOps.exif_transpose(img).convert("RGB")))


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) after EXIF orientation, read from the header only."""
    def size(img: Image.Image) -> tuple[int, int]:
        w, h = img.size
        return (h, w) if img.getexif().get(0x0112, 1) in (5, 6, 7, 8) else (w, h)

    return _read(path, size)


def check_same_size(paths: Sequence[str | Path]) -> tuple[int, int]:
    """All images of a scene must share one size; returns it or names the first image that differs."""
    sizes = [(Path(p), image_size(p)) for p in paths]
    if not sizes:
        raise DatasetError("no images given")
    ref_path, ref = sizes[0]
    for path, size in sizes[1:]:
        if size != ref:
            raise DatasetError(
                f"images of one scene must have the same size: {path} is {size[0]}x{size[1]} "
                f"but {ref_path} is {ref[0]}x{ref[1]}"
            )
    return ref


def working_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """Protocol working size: scale the long side to ``long_side`` (rounded), then floor both sides to /16."""
    scale = long_side / max(width, height)
    w, h = round(width * scale), round(height * scale)
    w16, h16 = w // 16 * 16, h // 16 * 16
    if w16 < 16 or h16 < 16:
        raise DatasetError(f"image size {width}x{height} at long side {long_side} is too small (< 16 px)")
    return w16, h16


def resize_to(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 [H, W, 3] -> float32 [height, width, 3] in [0, 1].

    As the protocol: first scale the long side (LANCZOS when shrinking, BICUBIC when enlarging), then a
    bilinear resize to the exact target (a slight anisotropic rescale to multiples of 16, not a crop).
    """
    h0, w0 = image.shape[:2]
    pil = Image.fromarray(image)
    long_target = max(width, height)
    if (w0, h0) != (width, height):
        scale = long_target / max(w0, h0)
        mid = (round(w0 * scale), round(h0 * scale))
        if mid != (w0, h0):
            pil = pil.resize(mid, Image.LANCZOS if scale < 1 else Image.BICUBIC)
        if pil.size != (width, height):
            pil = pil.resize((width, height), Image.BILINEAR)
    return np.asarray(pil, dtype=np.float32) / 255.0


def render_size(width: int, height: int, long_side: int | None) -> tuple[int, int]:
    """Training/test render size: the original (width capped at 1600, as 3DGS) or a given long side."""
    if long_side is None:
        if width <= 1600:
            return width, height
        return 1600, round(height * 1600 / width)
    scale = long_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))
