"""MP4 writing (H.264, written atomically) and colour-coding of depth and normal maps for videos."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import imageio.v2 as imageio
import matplotlib
import numpy as np

from feat2gs.io import atomic_save

MACRO_BLOCK = 16


def _fit_to_blocks(frame: np.ndarray, block: int = MACRO_BLOCK) -> np.ndarray:
    """Crop [H, W, 3] to multiples of ``block`` (bottom/right); pad with black up to ``block`` if smaller."""
    H, W = frame.shape[:2]
    h = H // block * block if H >= block else block
    w = W // block * block if W >= block else block
    out = np.zeros((h, w, 3), dtype=np.uint8)
    out[: min(H, h), : min(W, w)] = frame[:h, :w]
    return out


def _checked(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Yield frames fitted to macro blocks; all must be uint8 [H, W, 3] of the first frame's shape."""
    shape = None
    for i, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame {i}: expected uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
        shape = shape or frame.shape
        if frame.shape != shape:
            raise ValueError(f"frame {i}: shape {frame.shape} differs from the first frame's {shape}")
        yield _fit_to_blocks(frame)


def _encode(tmp: Path, frames: Iterator[np.ndarray], fps: int, crf: int) -> None:
    output_params = ["-crf", str(crf), "-movflags", "+faststart"]
    writer = imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p",
                                quality=None, macro_block_size=1, output_params=output_params,
                                ffmpeg_log_level="error")
    try:
        for frame in frames:
            writer.append_data(frame)
    finally:  # also on error: ffmpeg must be done with ``tmp`` before it is removed (imageio's ``with`` skips this)
        writer.close()


def write_mp4(path: str | os.PathLike, frames: Iterable[np.ndarray] | np.ndarray, fps: int = 30,
              crf: int = 28) -> None:
    """Write uint8 frames ([F, H, W, 3] array or an iterable of [H, W, 3]) as an H.264 / yuv420p MP4.

    Frames are cropped to multiples of 16 pixels (padded to 16 if smaller). The file appears under
    ``path`` only once complete (the temporary name beside it keeps the ``.mp4`` suffix).
    """
    if not 0 <= crf <= 51:
        raise ValueError(f"crf must be in [0, 51], got {crf}")
    stream = _checked(frames)
    first = next(stream, None)
    if first is None:
        raise ValueError(f"no frames to write to {path}")
    atomic_save(path, lambda tmp: _encode(tmp, itertools.chain([first], stream), fps, crf))


def colorize_depth(depth: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Depth [H, W] -> uint8 RGB [H, W, 3]: min–max over valid finite pixels, "Spectral" colormap; invalid black."""
    depth = np.asarray(depth, dtype=np.float64)
    mask = np.isfinite(depth)
    if valid is not None:
        mask &= np.asarray(valid, dtype=bool)
    out = np.zeros(depth.shape + (3,), dtype=np.uint8)
    if not mask.any():
        return out
    lo, hi = depth[mask].min(), depth[mask].max()
    norm = (depth[mask] - lo) / max(hi - lo, 1e-12)
    rgb = matplotlib.colormaps["Spectral"](norm)[:, :3]  # [M, 3]
    out[mask] = np.round(rgb * 255.0).astype(np.uint8)
    return out


def normals_to_rgb(normals: np.ndarray) -> np.ndarray:
    """Normals [H, W, 3] in [-1, 1] -> uint8 RGB [H, W, 3] via ``n · 0.5 + 0.5`` (clipped; NaN -> grey)."""
    normals = np.nan_to_num(np.asarray(normals, dtype=np.float64), nan=0.0)
    rgb = np.clip(normals * 0.5 + 0.5, 0.0, 1.0)
    return np.round(rgb * 255.0).astype(np.uint8)


def depth_normal_frames(out, viewmat, K) -> tuple[np.ndarray, np.ndarray]:
    """A render with expected depth (``render_mode`` "RGB+ED") -> (colourised depth, world normals as RGB), uint8
    [H, W, 3] each: depth min-max normalised over the pixels with alpha > 0.5, normals from the depth map x alpha."""
    from feat2gs.render import depth_to_normals

    valid = (out.alpha[..., 0] > 0.5).cpu().numpy()
    depth = colorize_depth(out.depth[..., 0].cpu().numpy(), valid)
    normals = depth_to_normals(out.depth, viewmat, K) * out.alpha
    return depth, normals_to_rgb(normals.cpu().numpy())
