"""Step 3: initial test-view poses in the training frame, and their visibility masks.

Written once per (scene, method, working size) to ``<N>_views/test_view/sparse/0/<method>/``::

    cameras.txt, images.txt   test cameras (COLMAP text, original image size)
    masks/<stem>.png          8-bit lossless visibility masks at the original image size (255 = visible)
    manifest.json
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from safetensors.torch import load_file

from feat2gs.config import EvalConfig, InitConfig, fingerprint, step_settings
from feat2gs.data.colmap import read_colmap_model, write_colmap_text
from feat2gs.data.images import check_same_size, working_size
from feat2gs.data.layout import SceneLayout
from feat2gs.errors import DatasetError
from feat2gs.evaluate.visibility import visibility_mask
from feat2gs.geometry.camera import Camera, perturb_w2c
from feat2gs.geometry.similarity import apply_similarity_to_c2w, umeyama
from feat2gs.init.gt import gt_cameras, load_depth, resize_nearest
from feat2gs.init.geometry_cache import images_digest
from feat2gs.integrity import folder_outputs, read_manifest, reuse_folder
from feat2gs.io import atomic_dir, atomic_write_json, file_lock, remove_all_temps


def gt_test_poses(layout: SceneLayout, init_cfg: InitConfig, eval_cfg: EvalConfig) -> tuple[list[Camera], list[np.ndarray]]:
    """Known test cameras (optionally perturbed) and masks from the ground-truth depths of all views."""
    names = list(layout.test_names)
    w0, h0 = check_same_size(layout.train_paths() + layout.test_paths())
    w, h = working_size(w0, h0, init_cfg.image_size)
    rng = np.random.default_rng(eval_cfg.seed)
    test = gt_cameras(layout, names)
    perturbed = [c.with_pose(perturb_w2c(c.w2c, eval_cfg.perturb_rot_deg, eval_cfg.perturb_trans, rng))
                 if eval_cfg.perturb_rot_deg or eval_cfg.perturb_trans else c for c in test]
    train = [c.resized(w, h) for c in gt_cameras(layout, list(layout.train_names))]
    depths_train = torch.from_numpy(np.stack([resize_nearest(load_depth(layout, c.name, w0, h0), w, h) for c in train]))
    Ks = torch.from_numpy(np.stack([c.K for c in train]))
    c2ws = torch.from_numpy(np.stack([c.c2w for c in train]))
    masks = []
    for cam in test:
        small = cam.resized(w, h)
        depth = torch.from_numpy(resize_nearest(load_depth(layout, cam.name, w0, h0), w, h)).double()
        mask = visibility_mask(depth, torch.from_numpy(small.K), torch.from_numpy(small.c2w), depths_train.double(),
                               Ks, c2ws, eval_cfg.mask_depth_atol)
        masks.append(resize_nearest(mask.numpy(), w0, h0))
    return perturbed, masks


def network_test_poses(layout: SceneLayout, init_cfg: InitConfig, eval_cfg: EvalConfig, step1: Path,
                       progress: bool = False) -> tuple[list[Camera], list[np.ndarray]]:
    """Joint DUSt3R/MASt3R run on train+test with the training focal fixed, registered onto the step-1 points.

    The similarity ``m1 ≈ s·R·n1 + t`` (Umeyama on the same pixels of the training views) maps test cameras
    as rigid poses: centre ``s·R·c + t``, rotation ``R·R_c`` (the reference scaled the translation instead).
    """
    from feat2gs.init.pointmap import load_network_images, network_K, network_pointmaps, pair_cache_dir

    n = layout.n_views
    images, (w0, h0) = load_network_images(layout.train_paths() + layout.test_paths(), init_cfg.image_size)
    _, h, w, _ = images.shape
    step1_points = load_file(str(step1 / "geometry.safetensors"))["points"].double()
    train_cams = read_colmap_model(step1)
    focal = float(train_cams[0].resized(w, h).K[0, 0])
    known = focal if eval_cfg.test_pose_focal == "train" else None  # "estimated": the reference's free focal
    # the sparse alignment's pair cache is step 1's: the training pairs are not run through the network again
    align, _, _ = network_pointmaps(images, init_cfg.method, init_cfg, known_focal=known,
                                    cache_dir=pair_cache_dir(layout, init_cfg.method, init_cfg), progress=progress)
    joint = align.pts3d.double().cpu()
    if step1_points.shape != joint[:n].shape:
        raise DatasetError(f"step-1 points in {step1} do not match the joint run ({tuple(step1_points.shape)} vs "
                           f"{tuple(joint[:n].shape)}); rerun `feat2gs init`")
    s, R, t = umeyama(joint[:n].reshape(-1, 3).numpy(), step1_points.reshape(-1, 3).numpy())
    c2ws = align.c2w.double().cpu()
    Ks = torch.from_numpy(np.stack([network_K(float(f), w, h, pp.tolist()) for f, pp in zip(align.focals, align.pp)]))
    depths = align.depthmaps.double().cpu()
    cameras, masks = [], []
    for k, name in enumerate(layout.test_names):
        c2w = apply_similarity_to_c2w(c2ws[n + k].numpy(), s, R, t)
        small = Camera(name, Ks[n + k].numpy(), np.linalg.inv(c2w), w, h)
        cameras.append(small.resized(w0, h0))
        mask = visibility_mask(depths[n + k], Ks[n + k], c2ws[n + k], depths[:n], Ks[:n], c2ws[:n],
                               eval_cfg.mask_depth_atol)
        masks.append(resize_nearest(mask.numpy(), w0, h0))
    return cameras, masks


def run_init_test_pose(layout: SceneLayout, init_cfg: InitConfig, eval_cfg: EvalConfig, step1: Path | None = None,
                       force: bool = False, progress: bool = False) -> Path:
    """Write test poses and masks unless a valid copy exists (shared by every feature and mode of the scene).

    Network methods register the test views onto the step-1 points of ``step1`` (any feature string of the
    same method and settings: the geometry is the same).
    """
    if not layout.test_names:
        raise DatasetError(f"{layout.dataset}/{layout.scene} has no test views in dataset_split.json")
    out = layout.test_view_dir(init_cfg.method, init_cfg.image_size)
    parts = {"images": images_digest(layout.train_paths() + layout.test_paths()), "method": init_cfg.method,
             "image_size": init_cfg.image_size, **step_settings(eval_cfg, "test_pose")}
    if init_cfg.method != "gt":
        if step1 is None or not (step1 / "manifest.json").is_file():
            raise DatasetError(f"test-pose initialisation with {init_cfg.method} needs step 1 of the scene; "
                               "run `feat2gs init` (or `feat2gs eval`) first")
        parts["geometry"] = (read_manifest(step1) or {}).get("geometry_key")
    key = fingerprint(parts)
    with file_lock(out.parent / f".{out.name}.lock"):
        remove_all_temps(out.parent, names={out.name})  # leftovers of a killed step 3 (we hold its lock)
        if not force and reuse_folder(out, key, test_pose_files(layout), f"step 3 ({out})"):
            return out
        if init_cfg.method == "gt":
            cameras, masks = gt_test_poses(layout, init_cfg, eval_cfg)
        else:
            cameras, masks = network_test_poses(layout, init_cfg, eval_cfg, step1, progress)
        with atomic_dir(out) as tmp:
            write_colmap_text(tmp, cameras)
            (tmp / "masks").mkdir()
            for cam, mask in zip(cameras, masks):
                Image.fromarray(mask.astype(np.uint8) * 255).save(tmp / "masks" / f"{Path(cam.name).stem}.png")
            atomic_write_json(tmp / "manifest.json", {
                "key": key, "outputs": folder_outputs(tmp), "method": init_cfg.method, "names": [c.name for c in cameras],
                "visible_fraction": {c.name: float(m.mean()) for c, m in zip(cameras, masks)},
            })
        return out


def test_pose_files(layout: SceneLayout) -> list[str]:
    """The files of a step-3 folder (relative paths)."""
    return ["manifest.json", "cameras.txt", "images.txt"] + [f"masks/{Path(n).stem}.png" for n in layout.test_names]


def load_mask(directory: Path, name: str, width: int, height: int) -> torch.Tensor:
    """Mask [height, width] float {0, 1}, nearest-resized (no border shaving by interpolation)."""
    path = directory / "masks" / f"{Path(name).stem}.png"
    if not path.is_file():
        raise DatasetError(f"missing visibility mask {path}; rerun `feat2gs init-test-pose`")
    mask = np.asarray(Image.open(path).convert("L")) > 127
    return torch.from_numpy(resize_nearest(mask, width, height).astype(np.float32))
