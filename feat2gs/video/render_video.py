"""Step 6: render a camera trajectory through the trained Gaussians and write mp4 videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from feat2gs.config import VideoConfig
from feat2gs.data.images import render_size
from feat2gs.gaussians import load_gaussians
from feat2gs.geometry.camera import Camera
from feat2gs.io import atomic_save_npy, atomic_write_json
from feat2gs.render import RenderSettings, rasterize
from feat2gs.video.plot import plot_trajectory
from feat2gs.video.trajectories import make_trajectory
from feat2gs.video.trajectory_table import scene_trajectory_settings
from feat2gs.video.writer import depth_normal_frames, write_mp4


def square_frame(cam: Camera) -> Camera:
    """The reference's square video frame: side ``max(W, H)``, focal lengths kept in pixels (so the shorter side
    sees a wider field of view), the original frame at the square's centre (principal point shifted by half the
    added width/height: at the square's centre when it was at the image's)."""
    side = max(cam.width, cam.height)
    K = np.array(cam.K, dtype=np.float64, copy=True)
    K[0, 2] += (side - cam.width) / 2.0
    K[1, 2] += (side - cam.height) / 2.0
    return Camera(cam.name, K, np.asarray(cam.w2c, dtype=np.float64), side, side)


def video_camera(template: Camera, cfg: VideoConfig, long_side: int | None) -> Camera:
    """The camera whose intrinsics and size every frame uses: ``template`` at long side ``cfg.resolution`` (else
    ``long_side``), made square with ``cfg.square``."""
    w, h = render_size(template.width, template.height, cfg.resolution if cfg.resolution is not None else long_side)
    cam = template.resized(w, h)
    return square_frame(cam) if cfg.square else cam


def trajectory_record(cfg: VideoConfig, scene_key: tuple[str, str] | None, cam: Camera) -> dict:
    """What ``pose/traj_params_<trajectory>.json`` holds: the options the trajectory was built with, where each came
    from (``setting``, ``table``: resources/trajectories.csv, ``default``), the frame size and K."""
    dataset, scene = scene_key if scene_key is not None else (None, None)
    record = scene_trajectory_settings(dataset, scene, cfg).to_dict(cfg.trajectory)
    if cfg.trajectory == "spiral" and cfg.spiral_reference_radii:
        record["params"]["reference_radii"] = True
    record.update(square=bool(cfg.square), size=[cam.width, cam.height], K=np.asarray(cam.K).tolist())
    return record


def video_outputs(job_dir: Path, target: Path, cfg: VideoConfig) -> list[Path]:
    """The files step 6 writes for one trajectory (``target``: the RGB mp4)."""
    videos = [target] + ([target.with_name(target.stem + s + ".mp4") for s in ("_depth", "_normal")]
                         if cfg.depth_normal else [])
    pose = job_dir / "pose"
    met3r = list(met3r_paths(target).values()) if cfg.met3r else []
    return videos + met3r + [pose / f"pose_{cfg.trajectory}.npy", pose / f"poses_{cfg.trajectory}.png",
                             pose / f"traj_params_{cfg.trajectory}.json"]


def met3r_paths(target: Path) -> dict[str, Path]:
    """MET3R of a trajectory video: ``<video stem>_met3r.json`` and ``.png`` beside it."""
    from feat2gs.evaluate.met3r import output_paths

    return output_paths(target.parent, target.stem)


def render_trajectory_video(ply: Path, train_w2c: np.ndarray, template: Camera, cfg: VideoConfig,
                            long_side: int | None, job_dir: Path, target: Path, device: torch.device,
                            backend: str = "auto", progress: bool = False,
                            scene_key: tuple[str, str] | None = None) -> dict:
    """Render ``cfg.trajectory`` built from the optimised training poses ``train_w2c`` [N, 4, 4] through the
    Gaussians of ``ply``, with ``template``'s intrinsics at long side ``cfg.resolution`` (else ``long_side``), square
    with ``cfg.square``; writes the mp4(s) (``target``) and the trajectory (``job_dir/pose/``).

    ``scene_key``: (dataset, scene), to read the scene's trajectory settings from the shipped table
    (``feat2gs.video.trajectory_table``); explicit ``video.*`` settings override it. Without it only the settings
    and the defaults apply. The options used are returned (``params``) and written to
    ``pose/traj_params_<trajectory>.json``."""
    metric = None
    if cfg.met3r:  # built first: missing weights stop the step before anything is rendered
        from feat2gs.evaluate.met3r import Met3rOptions, load_met3r

        metric = load_met3r(Met3rOptions(), device=device, random_weights=cfg.met3r_random_weights)
    gaussians, sh_degree = load_gaussians(ply, device)
    cam0 = video_camera(template, cfg, long_side)
    w, h = cam0.width, cam0.height
    record = trajectory_record(cfg, scene_key, cam0)
    traj = make_trajectory(cfg.trajectory, train_w2c, cam0.K, cfg.n_frames, **record["params"])
    atomic_save_npy(job_dir / "pose" / f"pose_{cfg.trajectory}.npy", traj)
    atomic_write_json(job_dir / "pose" / f"traj_params_{cfg.trajectory}.json", record)
    plot_trajectory(job_dir / "pose" / f"poses_{cfg.trajectory}.png", train_w2c, traj)

    bg = (1.0, 1.0, 1.0) if cfg.white_background else (0.0, 0.0, 0.0)
    mode = "RGB+ED" if cfg.depth_normal else "RGB"
    settings = RenderSettings(sh_degree=sh_degree, background=bg, render_mode=mode)
    K = torch.as_tensor(cam0.K, dtype=torch.float32, device=device)
    rgb, depth, normal = [], [], []
    with torch.no_grad():
        for w2c in tqdm(traj, desc=f"video {cfg.trajectory}", disable=not progress):
            viewmat = torch.as_tensor(w2c, dtype=torch.float32, device=device)
            out = rasterize(gaussians, viewmat, K, w, h, settings, backend=backend)
            rgb.append((out.image.clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8))
            if cfg.depth_normal:
                depth_rgb, normal_rgb = depth_normal_frames(out, viewmat, K)
                depth.append(depth_rgb)
                normal.append(normal_rgb)
    if cfg.depth_normal:
        write_mp4(target.with_name(target.stem + "_depth.mp4"), np.stack(depth), fps=cfg.fps)
        write_mp4(target.with_name(target.stem + "_normal.mp4"), np.stack(normal), fps=cfg.fps)
    write_mp4(target, np.stack(rgb), fps=cfg.fps)
    info = {"frames": len(traj), "size": [w, h], "trajectory": cfg.trajectory, "square": bool(cfg.square),
            "params": record["params"], "sources": record["sources"], "table_row": record["table_row"]}
    if metric is not None:
        from feat2gs.evaluate.met3r import score_sequence, write_met3r_outputs

        scores = score_sequence(np.stack(rgb), metric=metric, progress=progress)
        write_met3r_outputs(scores, target.parent, target.stem)
        info["met3r"] = scores["mean"]
    return info
