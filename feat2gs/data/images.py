"""Image loading (EXIF-aware, fully decoded, validated) and the protocol's resize to a long side of ``size`` and
multiples of 16.

Every image is decoded completely when read, so a truncated file is named at once rather than padded with grey.
Transparency is never dropped silently: :func:`load_image` refuses an image with transparent pixels (the dataset
builders composite such images onto a background chosen with ``--alpha``, see :func:`composite_alpha`); an alpha
channel that is fully opaque is harmless and ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from feat2gs.errors import DatasetError

T = TypeVar("T")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")
ALPHA_BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0)}


def _read(path: str | Path, reader: Callable[[Image.Image], T], decode: bool = True) -> T:
    """Open an image file, decode it completely (unless ``decode=False``: header only) and apply ``reader``;
    a missing, empty, truncated or unreadable file is a DatasetError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing image {path}")
    if path.stat().st_size == 0:
        raise DatasetError(f"image {path} is empty (0 bytes)")
    lenient, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        with Image.open(path) as img:
            if decode:
                img.load()
            return reader(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from exc
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient


def _alpha(img: Image.Image) -> np.ndarray | None:
    """The alpha channel as uint8 [H, W] when the image has one that is not fully opaque, else None."""
    if not img.has_transparency_data:
        return None
    alpha = np.asarray(img.convert("RGBA"))[..., 3]
    return alpha if alpha.min() < 255 else None


def _rgb(img: Image.Image, path: Path, background: str | None) -> np.ndarray:
    img = ImageOps.exif_transpose(img)
    alpha = _alpha(img)
    if alpha is None:
        return np.asarray(img.convert("RGB"))
    if background is None:
        raise DatasetError(
            f"image {path} has transparent pixels ({(alpha < 255).mean():.1%} of it); its alpha channel would be "
            "dropped. Composite it onto a background first, e.g. rebuild the scene with "
            "`feat2gs build-dataset ... --alpha white` (or black)")
    rgba = np.asarray(img.convert("RGBA")).astype(np.float32)
    bg = np.array(ALPHA_BACKGROUNDS[background], dtype=np.float32)
    a = rgba[..., 3:] / 255.0
    return np.round(rgba[..., :3] * a + bg * (1.0 - a)).clip(0, 255).astype(np.uint8)


def composite_alpha(path: str | Path, background: str) -> np.ndarray:
    """uint8 RGB [H, W, 3] of an image composited onto ``background`` (white | black) by its alpha channel."""
    if background not in ALPHA_BACKGROUNDS:
        raise DatasetError(f"unknown alpha background {background!r}; choose one of {', '.join(ALPHA_BACKGROUNDS)}")
    return _read(path, lambda img: _rgb(img, Path(path), background))


def has_transparency(path: str | Path) -> bool:
    """Whether the image has transparent pixels (decodes the whole image)."""
    return _read(path, lambda img: _alpha(img) is not None)


def load_image(path: str | Path) -> np.ndarray:
    """Read an image as uint8 RGB [H, W, 3], applying its EXIF orientation; transparency is an error."""
    return _read(path, lambda img: _rgb(img, Path(path), None))


def image_size(path: str | Path, decode: bool = False) -> tuple[int, int]:
    """(width, height) after EXIF orientation, from the header only (``decode=True``: after a full decode)."""
    def size(img: Image.Image) -> tuple[int, int]:
        w, h = img.size
        return (h, w) if img.getexif().get(0x0112, 1) in (5, 6, 7, 8) else (w, h)

    return _read(path, size, decode=decode)


def check_same_size(paths: Sequence[str | Path], decode: bool = False) -> tuple[int, int]:
    """All images of a scene must share one size; returns it or names the first image that differs.
    ``decode=True`` also decodes every image completely (dataset builders: a damaged file is named now)."""
    sizes = [(Path(p), image_size(p, decode)) for p in paths]
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
