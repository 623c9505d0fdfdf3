"""Step 1: pointmaps + cameras + per-pixel features, written in the published step-1 layout.

``<scene>/<N>_views/sparse/0/<method>/<feat-string>/``::

    cameras.txt, images.txt   COLMAP text at the original image size (w2c)
    points3D.ply              one vertex per valid pixel: x,y,z,nx,ny,nz,red,green,blue
    features.safetensors      "features" [M, D] float16, same order as the PLY vertices
    geometry.safetensors      "points" [N,H,W,3], "valid" [N,H,W], "images" [N,H,W,3] uint8 (working size)
    feat_dim0-9.png           feature visualisation
    manifest.json             how it was made; its "key" tells whether the folder is still valid
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from feat2gs.config import InitConfig, fingerprint, parse_feature_checkpoints, step_settings
from feat2gs.data.colmap import write_colmap_text
from feat2gs.data.layout import SceneLayout
from feat2gs.errors import DatasetError
from feat2gs.features import FeatureInputs, compose_features, parse_feature_string, save_feature_visualisation
from feat2gs.features.registry import feature_identity
from feat2gs.gaussians.ply import write_points_ply
from feat2gs.init.geometry_cache import geometry_key, init_geometry
from feat2gs.integrity import folder_outputs, folder_problem, reuse_folder
from feat2gs.io import atomic_dir, atomic_write_json, file_lock, remove_all_temps
from feat2gs.runinfo import versions

FILES = ("cameras.txt", "images.txt", "points3D.ply", "features.safetensors", "geometry.safetensors", "manifest.json")


def step1_key(layout: SceneLayout, cfg: InitConfig, feat_string: str) -> str:
    return fingerprint({"geometry": geometry_key(layout, cfg), "feat_string": feat_string,
                        "model": feature_identity(feat_string), **step_settings(cfg, "features")})


def to_uint8(images: torch.Tensor, truncate: bool = False) -> torch.Tensor:
    """[0, 1] floats -> uint8, rounded; or as the reference wrote its point colours (``truncate``): the network
    input ``(x - 0.5) / 0.5`` mapped back with ``· 0.5 + 0.5`` in float32, times 255, truncated. The float32
    round trip matters: it puts about one value in six just below its integer."""
    if truncate:
        x = images.float()
        return (((x - 0.5) / 0.5 * 0.5 + 0.5) * 255).floor().clamp(0, 255).to(torch.uint8)
    return (images * 255).round().clamp(0, 255).to(torch.uint8)


def step1_ready(layout: SceneLayout, cfg: InitConfig, feat_string: str) -> bool:
    """Whether step 1 of (scene, settings, feature string) is on disk, current and undamaged: the one place that
    decides it (``run_init`` recomputes exactly when this is False)."""
    out = layout.step1_dir(cfg.method, canonical_feature_string(feat_string), cfg.image_size)
    return folder_problem(out, step1_key(layout, cfg, canonical_feature_string(feat_string)), list(FILES)) is None


def canonical_feature_string(feat_string: str) -> str:
    return "-".join(s.name for s in parse_feature_string(feat_string))




def run_init(layout: SceneLayout, cfg: InitConfig, feat_string: str, force: bool = False,
             progress: bool = False) -> Path:
    """Compute step 1 unless a valid copy exists; concurrent callers wait on a lock and reuse the result."""
    specs = parse_feature_string(feat_string)
    feat_string = canonical_feature_string(feat_string)
    out = layout.step1_dir(cfg.method, feat_string, cfg.image_size)
    key = step1_key(layout, cfg, feat_string)
    with file_lock(out.parent / f".{feat_string}.lock"):
        remove_all_temps(out.parent, names={feat_string})  # leftovers of a killed step 1 (we hold its lock)
        if not force and reuse_folder(out, key, list(FILES), f"step 1 ({out})"):
            return out
        t0 = time.perf_counter()
        result = init_geometry(layout, cfg, progress)
        checkpoints = {cfg.method: cfg.checkpoint, **parse_feature_checkpoints(cfg.feature_checkpoints)}
        inputs = FeatureInputs(result.images, result.points, seed=cfg.seed, precomputed=result.precomputed,
                               checkpoints=checkpoints, random_weights=cfg.random_weights, autocast=cfg.autocast,
                               cache_dir=layout.views_dir / "feature_cache" if cfg.feature_cache else None,
                               device=cfg.device, max_pixels=cfg.backbone_max_pixels, progress=progress)
        feats = compose_features(feat_string, inputs, cfg.feat_dim, cfg.pca)
        if not torch.isfinite(feats).all():
            raise DatasetError(f"features {feat_string!r} of {layout.scene_dir} contain NaN/inf values")
        valid = result.valid & torch.isfinite(result.points).all(-1)
        if not valid.any():
            raise DatasetError(f"{cfg.method} init of {layout.scene_dir} produced no valid point")
        w0, h0 = result.original_size
        with atomic_dir(out) as tmp:
            write_colmap_text(tmp, [c.resized(w0, h0) for c in result.cameras])
            rgb = to_uint8(result.images[valid], cfg.truncate_colors).numpy()
            write_points_ply(tmp / "points3D.ply", result.points[valid].numpy(), rgb)
            save_file({"features": feats[valid].to(torch.float16).contiguous()}, str(tmp / "features.safetensors"))
            save_file({
                "points": result.points.float().contiguous(), "valid": valid.to(torch.uint8).contiguous(),
                "images": to_uint8(result.images, cfg.truncate_colors).contiguous(),
            }, str(tmp / "geometry.safetensors"))
            if cfg.vis_feat:
                save_feature_visualisation(tmp / "feat_dim0-9.png", result.images, feats)
            n, h, w = valid.shape
            atomic_write_json(tmp / "manifest.json", {
                "key": key, "outputs": folder_outputs(tmp), "geometry_key": geometry_key(layout, cfg),
                "method": cfg.method, "feat_string": feat_string, "features": [asdict_spec(s) for s in specs],
                "config": asdict(cfg), "names": result.names, "working_size": [w, h], "original_size": [w0, h0],
                "n_points": int(valid.sum()), "feature_dim": int(feats.shape[-1]),
                "random_weights": result.random_weights or (cfg.random_weights and any(s.needs_weights for s in specs)),
                "seconds": round(time.perf_counter() - t0, 3),
                "versions": versions(),
            })
        return out


def asdict_spec(spec) -> dict:
    return {"name": spec.name, "channels": spec.channels, "stride": spec.stride, "tiny": spec.tiny,
            "control": spec.control}


def load_step1(directory: Path) -> dict:
    """Read what training needs from a step-1 folder."""
    manifest = json.loads((directory / "manifest.json").read_text())
    geometry = load_file(str(directory / "geometry.safetensors"))
    features = load_file(str(directory / "features.safetensors"))["features"].float()
    valid = geometry["valid"].bool()
    images = geometry["images"].float() / 255.0
    return {
        "manifest": manifest,
        "points": geometry["points"][valid],
        "colors": images[valid],
        "features": features,
        "all_points": geometry["points"],
        "valid": valid,
        "images": images,
    }
