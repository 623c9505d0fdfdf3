"""Step 6: render a camera trajectory through the trained Gaussians and write mp4 videos."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from feat2gs.config import VideoConfig
from feat2gs.data.colmap import read_colmap_model
from feat2gs.data.images import render_size
from feat2gs.gaussians import load_gaussians
from feat2gs.io import atomic_save_npy
from feat2gs.render import RenderSettings, depth_to_normals, rasterize
from feat2gs.video.plot import plot_trajectory
from feat2gs.video.trajectories import make_trajectory
from feat2gs.video.writer import colorize_depth, normals_to_rgb, write_mp4

if TYPE_CHECKING:
    from feat2gs.job import Job


def video_outputs(job_dir: Path, target: Path, cfg: VideoConfig) -> list[Path]:
    """The files step 6 writes for one trajectory."""
    videos = [target] + ([target.with_name(target.stem + s + ".mp4") for s in ("_depth", "_normal")]
                         if cfg.depth_normal else [])
    return videos + [job_dir / "pose" / f"pose_{cfg.trajectory}.npy", job_dir / "pose" / f"poses_{cfg.trajectory}.png"]


def render_trajectory_video(job: "Job", cfg: VideoConfig, target: Path) -> dict:
    """Render ``cfg.trajectory`` from the optimised training poses; writes the mp4(s) and the trajectory."""
    device = job.device
    gaussians, sh_degree = load_gaussians(job.ply_path, device)
    train_w2c = np.load(job.dir / "pose" / f"pose_{job.iteration}.npy")
    step1 = job.layout.step1_dir(job.cfg.init.method, job.feat_string, job.cfg.init.image_size)
    cam0 = read_colmap_model(step1)[0]
    long_side = cfg.resolution if cfg.resolution is not None else job.cfg.train.resolution
    w, h = render_size(cam0.width, cam0.height, long_side)
    cam0 = cam0.resized(w, h)
    params = {"reference_radii": True} if cfg.trajectory == "spiral" and cfg.spiral_reference_radii else {}
    traj = make_trajectory(cfg.trajectory, train_w2c, cam0.K, cfg.n_frames, **params)
    atomic_save_npy(job.dir / "pose" / f"pose_{cfg.trajectory}.npy", traj)
    plot_trajectory(job.dir / "pose" / f"poses_{cfg.trajectory}.png", train_w2c, traj)

    bg = (1.0, 1.0, 1.0) if cfg.white_background else (0.0, 0.0, 0.0)
    mode = "RGB+ED" if cfg.depth_normal else "RGB"
    settings = RenderSettings(sh_degree=sh_degree, background=bg, render_mode=mode)
    K = torch.as_tensor(cam0.K, dtype=torch.float32, device=device)
    rgb, depth, normal = [], [], []
    with torch.no_grad():
        for w2c in tqdm(traj, desc=f"video {cfg.trajectory}", disable=not job.progress):
            viewmat = torch.as_tensor(w2c, dtype=torch.float32, device=device)
            out = rasterize(gaussians, viewmat, K, w, h, settings, backend=job.cfg.backend)
            rgb.append((out.image.clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8))
            if cfg.depth_normal:
                valid = (out.alpha[..., 0] > 0.5).cpu().numpy()
                depth.append(colorize_depth(out.depth[..., 0].cpu().numpy(), valid))
                normals = depth_to_normals(out.depth, viewmat, K) * out.alpha
                normal.append(normals_to_rgb(normals.cpu().numpy()))
    if cfg.depth_normal:
        write_mp4(target.with_name(target.stem + "_depth.mp4"), np.stack(depth), fps=cfg.fps)
        write_mp4(target.with_name(target.stem + "_normal.mp4"), np.stack(normal), fps=cfg.fps)
    write_mp4(target, np.stack(rgb), fps=cfg.fps)
    return {"frames": len(traj), "size": [w, h], "trajectory": cfg.trajectory}
