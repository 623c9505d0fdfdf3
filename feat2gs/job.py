"""One probing job = one scene × one feature string × one mode; steps 1–6 with skip-if-done.

Each step records, in ``<job>/run.json``, a key computed from its inputs and settings; a step whose outputs
exist and whose key matches is skipped. Outputs are written atomically and the key is recorded last, so a
killed job never looks complete and a rerun finishes it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from tqdm import tqdm

from feat2gs.config import ExperimentConfig, TrainConfig, fingerprint, step_settings
from feat2gs.data.colmap import read_colmap_model
from feat2gs.data.images import load_image, render_size, resize_to
from feat2gs.data.layout import SceneLayout
from feat2gs.evaluate.lpips_vgg import load_lpips_vgg
from feat2gs.evaluate.accuracy import format_pose_eval, point_cloud_errors, pose_errors
from feat2gs.evaluate.metrics import METRIC_NAMES, image_metrics, summarise
from feat2gs.evaluate.refine import refine_test_pose
from feat2gs.evaluate.test_pose import load_mask, run_init_test_pose
from feat2gs.features import parse_feature_string
from feat2gs.errors import ConfigError, DatasetError
from feat2gs.gaussians import ProbeMode, get_mode, load_gaussians, write_gaussian_ply
from feat2gs.gaussians.initial import noised_positions
from feat2gs.gaussians.modes import BASELINE_FEATURE
from feat2gs.gaussians.ply import read_gaussian_ply
from feat2gs.init.gt import gt_cameras
from feat2gs.init.step import canonical_feature_string, load_step1, run_init, step1_ready
from feat2gs.integrity import file_digest, folder_signature, read_manifest, record_outputs, signature, verify
from feat2gs.io import (atomic_dir, atomic_save, atomic_save_npy, atomic_write_json, atomic_write_text, ensure_writable_dir,
                        file_lock, remove_all_temps)
from feat2gs.render import RenderSettings, rasterize
from feat2gs.runinfo import device_info, peak_memory_mb, resolve_device, versions
from feat2gs.train import train_readout
from feat2gs.train.views import load_views
from feat2gs.video.writer import depth_normal_frames

log = logging.getLogger(__name__)
MIN_TRAIN_COVERAGE = 0.01  # a training view the trained Gaussians cover less than this (mean alpha) is reported


def _save_png(path: Path, image: torch.Tensor) -> None:
    arr = (image.detach().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    Image.fromarray(arr).save(path)


@dataclass
class Job:
    layout: SceneLayout
    feat_string: str
    mode: ProbeMode
    cfg: ExperimentConfig
    out_root: Path
    progress: bool = True
    _verified: dict[str, str] = field(default_factory=dict, init=False, repr=False)  # step -> key checked here

    @classmethod
    def create(cls, data_root: str | Path, dataset: str, scene: str, feature: str | None, mode: str,
               cfg: ExperimentConfig, out_root: str | Path, progress: bool = True) -> "Job":
        """``feature`` is the feature string; a baseline mode (``instantsplat``) reads none (``None``)."""
        probe = get_mode(mode)
        if not probe.needs_feature:
            feature = BASELINE_FEATURE
        elif not feature:
            raise ConfigError(f"mode {probe.name} needs a feature string (--feature/-f), e.g. -f iuvrgb")
        feat_string = canonical_feature_string(feature)
        layout = SceneLayout.open(data_root, dataset, scene)
        return cls(layout, feat_string, probe, cfg, Path(out_root), progress)

    @property
    def dir(self) -> Path:
        return self.layout.job_dir(self.out_root, self.mode.name, self.cfg.init.method, self.feat_string,
                                   self.cfg.preset)

    @property
    def train_settings(self) -> TrainConfig:
        """What the trainer runs with: ``train``, or for the baseline its own section over the shared settings."""
        if self.mode.needs_feature:
            return self.cfg.train
        b = self.cfg.instantsplat
        return dataclasses.replace(
            self.cfg.train, iterations=b.iterations, warm_iterations=0, position_lr_init=b.position_lr_init,
            position_lr_final=b.position_lr_final, position_lr_max_steps=b.position_lr_max_steps,
            feature_lr=b.feature_lr, feature_sh_lr=b.feature_sh_lr, opacity_lr=b.opacity_lr, scaling_lr=b.scaling_lr,
            rotation_lr=b.rotation_lr)

    @property
    def iteration(self) -> int:
        return self.train_settings.iterations

    @property
    def test_dir(self) -> Path:
        return self.dir / "test" / f"ours_{self.iteration}"

    @property
    def ply_path(self) -> Path:
        return self.dir / "point_cloud" / f"iteration_{self.iteration}" / "point_cloud.ply"

    @property
    def device(self) -> torch.device:
        return resolve_device(self.cfg.device)

    # run.json bookkeeping -------------------------------------------------------------------------
    def record(self) -> dict:
        path = self.dir / "run.json"
        if path.is_file():
            try:
                rec = json.loads(path.read_text())
                if isinstance(rec, dict) and isinstance(rec.get("steps", {}), dict):
                    return rec
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                pass
            log.warning("damaged output %s (not a run record); its steps are recomputed", path)
        return {"steps": {}}

    def _mark(self, step: str, key: str, info: dict) -> None:
        rec = self.record()
        rec.update({"dataset": self.layout.dataset, "scene": self.layout.scene, "n_views": self.layout.n_views,
                    "mode": self.mode.name, "method": self.cfg.init.method,
                    "feature": self.feat_string if self.mode.needs_feature else self.mode.name,
                    "preset": self.cfg.preset, "seed": self.cfg.train.seed, "versions": versions(),
                    **device_info(self.device)})
        rec.setdefault("steps", {})[step] = {"key": key, **info}
        atomic_write_json(self.dir / "run.json", rec)

    def step_key(self, step: str) -> str | None:
        return self.record().get("steps", {}).get(step, {}).get("key")

    def outputs_signature(self, step: str) -> str | None:
        """Hash of the bytes a step wrote (its recorded outputs). Downstream steps are keyed on it: when a step
        is recomputed and its outputs change, what reads them is recomputed too; when they are the same, not."""
        outputs = self.record().get("steps", {}).get(step, {}).get("outputs")
        return signature(outputs) if outputs is not None else self.step_key(step)

    def lock(self):
        """The job's lock, re-entrant in this process. Every step writes under it, so the temporaries of a
        killed step can be removed safely by the next one."""
        return file_lock(self.dir / ".job.lock")

    def _run(self, step: str, key: str, outputs: list[Path], body: Callable[[], dict], force: bool) -> bool:
        """Run ``body`` unless the step is recorded with the same key and its recorded outputs still verify
        (size and digest); returns True when it ran. ``outputs``: the files and folders the step writes."""
        ensure_writable_dir(self.dir)
        with self.lock():
            remove_all_temps(self.dir)
            if not force and self._verified.get(step) == key:
                return False
            rec = self.record().get("steps", {}).get(step, {})
            if not force and rec.get("key") == key:
                problem = verify(self.dir, rec.get("outputs"), outputs)
                if problem is None:
                    self._verified[step] = key
                    return False
                log.warning("damaged output %s, recomputing step %s", problem, step)
            t0 = time.perf_counter()
            info = body()
            self._mark(step, key, {"seconds": round(time.perf_counter() - t0, 3), **info,
                                   "outputs": record_outputs(self.dir, outputs)})
            self._verified[step] = key
            return True

    # steps -----------------------------------------------------------------------------------------
    @cached_property
    def step1(self) -> Path:
        """Step-1 folder, computed (or validated and reused) once per Job: every later step reads it."""
        return run_init(self.layout, self.cfg.init, self.feat_string, progress=self.progress)

    def train_key(self, step1: Path) -> str:
        reads = "train" if self.mode.needs_feature else "train_instantsplat"
        return fingerprint({"step1": folder_signature(step1), "mode": self.mode.name, **step_settings(self.cfg, reads)})

    def train_outputs(self) -> list[Path]:
        files = [self.ply_path, self.dir / "pose" / "pose_org.npy", self.dir / "pose" / f"pose_{self.iteration}.npy",
                 self.dir / "train_log.json", self.dir / "config.yaml", self.dir / "cameras.json"]
        if self.mode.finetune_features:
            files.append(self.ply_path.with_name("features.safetensors"))
        return files

    def train(self, force: bool = False) -> bool:
        step1 = self.step1

        def body() -> dict:
            data = load_step1(step1)
            names = data["manifest"]["names"]
            views = load_views(step1, self.layout.train_images_dir, names, self.cfg.train.resolution, self.device)
            specs = parse_feature_string(self.feat_string)
            scale_regularised = self.mode.needs_feature and len(specs) == 1 and specs[0].scale_regularised
            result = train_readout(data["points"], data["colors"], data["features"], views, self.mode,
                                   scale_regularised, self.train_settings, self.device, self.cfg.backend, self.progress)
            write_gaussian_ply(self.ply_path, result.raw)
            if result.features is not None:  # ft modes: keep the fine-tuned per-Gaussian features
                feats = {"features": result.features.to(torch.float16).contiguous()}
                atomic_save(self.ply_path.with_name("features.safetensors"), lambda tmp: save_file(feats, str(tmp)))
            atomic_save_npy(self.dir / "pose" / "pose_org.npy", result.poses_init)
            atomic_save_npy(self.dir / "pose" / f"pose_{self.iteration}.npy", result.poses_final)
            atomic_write_json(self.dir / "train_log.json", result.history)
            atomic_write_text(self.dir / "config.yaml", self.cfg.to_yaml())
            atomic_write_json(self.dir / "cameras.json", [
                {"id": i, "img_name": v.camera.name, "width": v.camera.width, "height": v.camera.height,
                 "position": v.camera.center.tolist(), "rotation": v.camera.c2w[:3, :3].tolist(),
                 "fx": float(v.camera.K[0, 0]), "fy": float(v.camera.K[1, 1])} for i, v in enumerate(views)])
            first = next((h["loss"] for h in result.history if h["phase"] == "render"), None)
            for name, covered in zip(names, result.coverage):
                if covered < MIN_TRAIN_COVERAGE:
                    log.warning("training view %s: the trained Gaussians cover %.2f%% of it (mean alpha); the "
                                "readout or the poses failed, and the test views will show it", name, 100 * covered)
            return {"n_gaussians": int(data["points"].shape[0]), "iterations": self.iteration,
                    "train_view_coverage": {n: round(c, 4) for n, c in zip(names, result.coverage)},
                    "iterations_per_second": round(result.iterations_per_second, 2),
                    "first_render_loss": first, "final_loss": result.history[-1]["loss"] if result.history else None,
                    "peak_memory_mb": round(peak_memory_mb(self.device), 1),
                    "render_size": [views[0].camera.width, views[0].camera.height]}

        return self._run("train", self.train_key(step1), self.train_outputs(), body, force)

    def test_pose_dir(self) -> Path:
        return run_init_test_pose(self.layout, self.cfg.init, self.cfg.eval, self.step1, progress=self.progress)

    def render_key(self, test_pose: Path) -> str:
        return fingerprint({"train": self.outputs_signature("train"), "test_pose": folder_signature(test_pose),
                            **step_settings(self.cfg, "render")})

    def render(self, force: bool = False) -> bool:
        """Step 4 (trains first when the model is missing or damaged)."""
        self.train()
        test_pose = self.test_pose_dir()

        def body() -> dict:
            device = self.device
            gaussians, sh_degree = load_gaussians(self.ply_path, device)
            ev = self.cfg.eval
            bg = (1.0, 1.0, 1.0) if self.cfg.train.white_background else (0.0, 0.0, 0.0)
            settings = RenderSettings(sh_degree=sh_degree, background=bg)
            final = dataclasses.replace(settings, render_mode="RGB+ED" if ev.depth_normal else "RGB")
            cameras = {c.name: c for c in read_colmap_model(test_pose)}
            poses, summary = {}, {}
            with atomic_dir(self.test_dir) as tmp:
                for sub in ("renders", "gt", "masks"):
                    (tmp / sub).mkdir()
                for name in tqdm(self.layout.test_names, desc="refine test poses", disable=not self.progress):
                    cam = cameras[name]
                    w, h = render_size(cam.width, cam.height, self.cfg.train.resolution)
                    cam = cam.resized(w, h)
                    gt = torch.from_numpy(resize_to(load_image(self.layout.images_dir / name), w, h)).to(device)
                    mask = load_mask(test_pose, name, w, h).to(device)
                    K = torch.as_tensor(cam.K, dtype=torch.float32, device=device)
                    refined = refine_test_pose(gaussians, torch.as_tensor(cam.w2c, dtype=torch.float32, device=device),
                                               K, w, h, gt, mask, ev.test_pose_iterations, ev.test_pose_lr_t,
                                               ev.test_pose_lr_q, settings, self.cfg.backend)
                    with torch.no_grad():
                        out = rasterize(gaussians, refined.viewmat, K, w, h, final, backend=self.cfg.backend)
                    stem = Path(name).stem
                    if ev.depth_normal:  # colourised PNGs to look at, raw float depth to measure
                        depth_rgb, normal_rgb = depth_normal_frames(out, refined.viewmat, K)
                        for sub, image in (("depth", depth_rgb), ("normal", normal_rgb)):
                            (tmp / sub).mkdir(exist_ok=True)
                            Image.fromarray(image).save(tmp / sub / f"{stem}.png")
                        np.save(tmp / "depth" / f"{stem}.npy", out.depth[..., 0].cpu().numpy().astype(np.float32))
                    _save_png(tmp / "renders" / f"{stem}.png", out.image)
                    _save_png(tmp / "gt" / f"{stem}.png", gt)
                    Image.fromarray((mask.cpu().numpy() * 255).astype(np.uint8)).save(tmp / "masks" / f"{stem}.png")
                    poses[name] = {"initial_w2c": cam.w2c.tolist(), "refined_w2c": refined.viewmat.cpu().tolist(),
                                   "initial_loss": refined.initial_loss, "best_loss": refined.best_loss,
                                   "best_iteration": refined.best_iteration}
                    summary[name] = refined.best_loss
                atomic_write_json(tmp / "test_poses.json", poses)
            finite = [v for v in summary.values() if v is not None]
            return {"views": len(summary), "mean_refined_l1": float(np.mean(finite)) if finite else None}

        return self._run("render", self.render_key(test_pose), [self.test_dir], body, force)

    def metrics(self, force: bool = False) -> bool:
        """Step 5 (renders first when the test renders are missing or damaged)."""
        self.render()
        ev = self.cfg.eval
        lpips_model, lpips_message = (load_lpips_vgg(self.device) if ev.lpips
                                      else (None, "LPIPS disabled (eval.lpips=false)"))
        key = fingerprint({"render": self.outputs_signature("render"), "train": self.outputs_signature("train"),
                           "lpips_available": lpips_model is not None, "gt_cameras": self._gt_cameras_digest(),
                           **step_settings(self.cfg, "metrics")})
        outputs = [self.dir / "results.json", self.dir / "per_view.json",
                   self.test_dir.parent / f"metrics_{self.iteration}.txt"]
        if self.cfg.init.method == "gt":
            outputs.append(self.dir / "3d_metrics.json")

        def body() -> dict:
            per_view = {}
            for name in self.layout.test_names:
                stem = Path(name).stem
                render = self._read(self.test_dir / "renders" / f"{stem}.png")
                gt = self._read(self.test_dir / "gt" / f"{stem}.png")
                mask = (self._read(self.test_dir / "masks" / f"{stem}.png")[..., 0] > 0.5).float()
                per_view[name] = image_metrics(render, gt, mask, lpips_model, ev.min_visible_fraction)
                if per_view[name].reason:
                    log.warning("test view %s: %s; its metrics are null", name, per_view[name].reason)
            summary = summarise(per_view)
            tag = f"ours_{self.iteration}"
            pose, pose_note = self._pose_accuracy()
            result = {**summary.means, "num_views": len(per_view), "num_views_scored": summary.num_scored,
                      "status": summary.status, "status_reason": summary.reason,
                      "min_visible_fraction": ev.min_visible_fraction, "null_reasons": summary.null_reasons,
                      "lpips_net": "vgg (v0.1)", "lpips_note": lpips_message,
                      "random_weights": bool((read_manifest(self.step1) or {}).get("random_weights", False)),
                      "pose": pose, **({"pose_note": pose_note} if pose_note else {})}
            if pose is not None and pose["ATE"] is not None:
                atomic_write_text(self.dir / "pose" / "pose_eval.txt", format_pose_eval(pose))
            else:  # never leave an earlier run's numbers beside null ones
                (self.dir / "pose" / "pose_eval.txt").unlink(missing_ok=True)
            if self.cfg.init.method == "gt":
                atomic_write_json(self.dir / "3d_metrics.json", self._geometry_accuracy(tag))
            atomic_write_json(self.dir / "results.json", {tag: result})
            keys = list(METRIC_NAMES) + ["mask_fraction"]
            atomic_write_json(self.dir / "per_view.json", {tag: {
                **{k: {n: m.values[k] for n, m in per_view.items()} for k in keys},
                "null_reasons": summary.null_reasons}})
            lines = [f"{n}: " + ", ".join(f"{k} {v:.4f}" if v is not None else f"{k} null" for k, v in m.values.items())
                     + (f" ({m.reason})" if m.reason else "") for n, m in per_view.items()]
            atomic_write_text(self.test_dir.parent / f"metrics_{self.iteration}.txt", "\n".join(lines) + "\n")
            if summary.status != "ok":
                log.warning("%s: %s", summary.status, summary.reason)
            if lpips_message and self.progress:
                log.warning(lpips_message)
            return {"status": summary.status, **{k: summary.means[k] for k in ("PSNR", "SSIM", "LPIPS", "PSNR_masked")}}

        return self._run("metrics", key, outputs, body, force)

    def _gt_camera_files(self) -> list[Path] | None:
        files = [self.layout.gt_dir / n for n in ("cameras.txt", "images.txt")]
        return files if all(f.is_file() for f in files) else None

    def _gt_cameras_digest(self) -> str | None:
        files = self._gt_camera_files()
        return fingerprint([file_digest(f) for f in files]) if files else None

    def _pose_accuracy(self) -> tuple[dict | None, str | None]:
        """Camera-pose errors against the scene's ground-truth cameras, or (None, why not); (null errors, why)
        when no alignment onto the ground truth exists."""
        if self._gt_camera_files() is None:
            return None, f"no ground-truth cameras ({self.layout.gt_dir}/cameras.txt, images.txt)"
        if self.layout.n_views < 3:
            return None, f"pose accuracy needs 3 or more training views, the scene has {self.layout.n_views}"
        train_names, test_names = list(self.layout.train_names), list(self.layout.test_names)
        try:
            gt = {c.name: c.w2c for c in gt_cameras(self.layout, train_names + test_names)}
        except DatasetError as exc:
            return None, str(exc)
        poses = json.loads((self.test_dir / "test_poses.json").read_text())
        errors = pose_errors(
            np.load(self.dir / "pose" / f"pose_{self.iteration}.npy"), np.load(self.dir / "pose" / "pose_org.npy"),
            np.stack([gt[n] for n in train_names]),
            np.array([poses[n]["refined_w2c"] for n in test_names]), np.array([poses[n]["initial_w2c"] for n in test_names]),
            np.stack([gt[n] for n in test_names]))
        return errors, errors.get("note")  # a note: the estimated cameras coincide, the errors are null

    def _geometry_accuracy(self, tag: str) -> dict:
        """The trained Gaussian centres and the (noised) initial positions against the known geometry (gt init)."""
        gt = load_step1(self.step1)["points"].double().numpy()
        trained = read_gaussian_ply(self.ply_path)["xyz"].double().numpy()
        ts = self.train_settings
        initial = noised_positions(torch.from_numpy(gt), ts.noise_std, ts.seed).numpy()
        return {tag: {"threshold_0.0": point_cloud_errors(trained, gt)},
                "initial": {"threshold_0.0": point_cloud_errors(initial, gt)}}

    @staticmethod
    def _read(path: Path) -> torch.Tensor:
        return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0)

    def video(self, force: bool = False) -> bool:
        """Step 6 (trains first when the model is missing or damaged)."""
        from feat2gs.video.render_video import render_trajectory_video, video_outputs
        from feat2gs.video.trajectory_table import trajectory_params

        self.train()
        vc = self.cfg.video
        key = fingerprint({"train": self.outputs_signature("train"), **step_settings(self.cfg, "video"),
                           "trajectory": trajectory_params(self.layout.dataset, self.layout.scene, vc.trajectory, vc)})
        target = self.dir / "videos" / f"{self.layout.scene}_{self.layout.n_views}_view_{vc.trajectory}.mp4"
        def body() -> dict:
            train_w2c = np.load(self.dir / "pose" / f"pose_{self.iteration}.npy")
            template = read_colmap_model(self.step1)[0]
            return render_trajectory_video(self.ply_path, train_w2c, template, vc, self.cfg.train.resolution, self.dir,
                                           target, self.device, self.cfg.backend, self.progress,
                                           scene_key=(self.layout.dataset, self.layout.scene))

        return self._run(f"video_{vc.trajectory}", key, video_outputs(self.dir, target, vc), body, force)

    def run_all(self, force: bool = False, video: bool = True) -> dict[str, bool]:
        """Steps 1–6 in order; returns which steps ran (False = skipped as already done and verified)."""
        ensure_writable_dir(self.dir)
        with self.lock():
            ran = {"init": not step1_ready(self.layout, self.cfg.init, self.feat_string)}  # computed by train()
            ran["train"] = self.train(force)
            ran["render"] = self.render(force)
            ran["metrics"] = self.metrics(force)
            if video:
                ran["video"] = self.video(force)
            return ran
