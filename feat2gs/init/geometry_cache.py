"""Step 1's geometry (pointmaps, cameras, and the encoder features the init network computed anyway), computed once
per (scene, method, settings) and shared by every feature string: a DUSt3R/MASt3R alignment is not repeated for
each of the 13 features of the benchmark.

``<scene>/<N>_views/geometry_cache/<method folder>-<geometry key>/``: ``geometry.safetensors`` (images, points,
valid, cameras, precomputed features) and ``manifest.json`` (names, sizes, random-weights flag, the digests of
what it holds). Written atomically, verified before reuse, recomputed when damaged.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from feat2gs.config import InitConfig, fingerprint, step_settings
from feat2gs.data.layout import SceneLayout
from feat2gs.geometry.camera import Camera
from feat2gs.init.base import InitResult, get_init
from feat2gs.integrity import folder_outputs, read_manifest, reuse_folder
from feat2gs.io import atomic_dir, atomic_write_json, file_lock, remove_all_temps

FILES = ["geometry.safetensors", "manifest.json"]


def images_digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:16]


def geometry_key(layout: SceneLayout, cfg: InitConfig) -> str:
    """Identifies the step-1 geometry, which every feature string of a (scene, method) shares."""
    return fingerprint({"images": images_digest(layout.train_paths()), **step_settings(cfg, "geometry")})


def _save(tmp: Path, key: str, result: InitResult) -> None:
    tensors = {"images": result.images.float().contiguous(), "points": result.points.float().contiguous(),
               "valid": result.valid.to(torch.uint8).contiguous(),
               "K": torch.from_numpy(np.stack([c.K for c in result.cameras])).double(),
               "w2c": torch.from_numpy(np.stack([c.w2c for c in result.cameras])).double(),
               **{f"precomputed.{k}": v.float().contiguous() for k, v in result.precomputed.items()}}
    save_file(tensors, str(tmp / "geometry.safetensors"))
    h, w = result.images.shape[1:3]
    atomic_write_json(tmp / "manifest.json", {
        "key": key, "outputs": folder_outputs(tmp), "names": result.names, "camera_size": [
            result.cameras[0].width, result.cameras[0].height], "working_size": [w, h],
        "original_size": list(result.original_size), "random_weights": result.random_weights})


def _load(directory: Path) -> InitResult:
    manifest = read_manifest(directory) or {}
    t = load_file(str(directory / "geometry.safetensors"))
    cw, ch = manifest["camera_size"]
    cameras = [Camera(name, K.numpy(), w2c.numpy(), cw, ch)
               for name, K, w2c in zip(manifest["names"], t["K"], t["w2c"])]
    precomputed = {k[len("precomputed."):]: v for k, v in t.items() if k.startswith("precomputed.")}
    return InitResult(names=list(manifest["names"]), images=t["images"], points=t["points"], valid=t["valid"].bool(),
                      cameras=cameras, original_size=tuple(manifest["original_size"]), precomputed=precomputed,
                      random_weights=bool(manifest["random_weights"]))


def init_geometry(layout: SceneLayout, cfg: InitConfig, progress: bool = False) -> InitResult:
    """The init method's result for (scene, settings), computed once and then read from the cache."""
    key = geometry_key(layout, cfg)
    out = layout.views_dir / "geometry_cache" / f"{layout.method_folder(cfg.method, cfg.image_size)}-{key}"
    with file_lock(out.parent / f".{out.name}.lock"):
        remove_all_temps(out.parent, names={out.name})
        if reuse_folder(out, key, FILES, f"the step-1 geometry ({out})"):
            return _load(out)
        result = get_init(cfg.method)(layout, cfg, progress=progress)
        with atomic_dir(out) as tmp:
            _save(tmp, key, result)
    return result
