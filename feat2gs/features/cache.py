"""On-disk cache of raw (pre-PCA) feature grids, shared by every mode, feature string and concatenation.

A network's grid depends only on the images it sees, the backbone's config, its weights (or random seed) and, for
DIFT, the noise seed; the file name's key hashes exactly those, so ``dino_b16``, ``dino_b16-iuvrgb`` and
``radio-dino_b16`` all reuse one extraction, and a changed checkpoint or config never reuses a stale grid::

    <scene>/<N>_views/feature_cache/<feature>/<H>x<W>-<key>.safetensors   ("features" [N, h, w, C] float32)

Files are written atomically with a digest of their content (``feat2gs.integrity.save_checked_tensors``); an
unreadable, damaged (digest mismatch) or inconsistent file is recomputed (and replaced), never trusted.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from feat2gs.integrity import load_checked_tensors, save_checked_tensors, tensor_sha256

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def file_identity(path: Path) -> str:
    """A weights file, identified without reading gigabytes: resolved path, size and modification time."""
    path = Path(path).resolve()
    st = path.stat()
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def cache_file(cache_dir: Path, name: str, images: torch.Tensor, identity: str) -> Path:
    key = hashlib.sha256("\n".join([f"v{FORMAT_VERSION}", name, identity, tensor_sha256(images)]).encode())
    _, h, w, _ = images.shape
    return Path(cache_dir) / name / f"{h}x{w}-{key.hexdigest()[:20]}.safetensors"


def _read(path: Path, n_images: int) -> torch.Tensor | None:
    tensors, problem = load_checked_tensors(path)
    if problem or "features" not in tensors:
        log.warning("damaged output %s (%s); recomputing", path, problem or "no 'features' tensor")
        return None
    feats = tensors["features"]
    if feats.ndim != 4 or feats.shape[0] != n_images or not torch.isfinite(feats).all():
        log.warning("feature cache %s holds a %s grid for %d images; recomputing", path, tuple(feats.shape), n_images)
        return None
    return feats


def cached_extract(cache_dir: Path | None, name: str, images: torch.Tensor, identity: str | None,
                   compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``compute()`` -> [N, h, w, C] float32 on the CPU, read from / written to the cache when a directory and
    identity are given."""
    if cache_dir is None or identity is None:
        return compute().float().cpu()
    path = cache_file(cache_dir, name, images, identity)
    if path.is_file():
        feats = _read(path, images.shape[0])
        if feats is not None:
            log.info("feature %s: reusing %s", name, path)
            return feats
    feats = compute().float().cpu().contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checked_tensors(path, {"features": feats}, {"feature": name, "identity": identity})
    return feats
