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
from feat2gs.io import atomic_save_npy
from feat2gs.render import RenderSettings, depth_to_normals, rasterize
from feat2gs.video.plot import plot_trajectory
from feat2gs.video.trajectories import make_trajectory
from feat2gs.video.writer import colorize_depth, normals_to_rgb, write_mp4

def video_outputs(job_dir: Path, target: Path, cfg: VideoConfig) -> list[Path]:
    """The files step 6 writes for one trajectory (``target``: the RGB mp4)."""
    videos = [target] + ([target.with_name(target.stem + s + ".mp4") for s in ("_depth", "_normal")]
                         if cfg.depth_normal else [])
    return videos + [job_dir / "pose" / f"pose_{cfg.trajectory}.npy", job_dir / "pose" / f"poses_{cfg.trajectory}.png"]


def render_trajectory_video(ply: Path, train_w2c: np.ndarray, template: Camera, cfg: VideoConfig,
                            long_side: int | None, job_dir: Path, target: Path, device: torch.device,
                            backend: str = "auto", progress: bool = False) -> dict:
    """Render ``cfg.trajectory`` built from the optimised training poses ``train_w2c`` [N, 4, 4] through the
    Gaussians of ``ply``, with ``template``'s intrinsics at long side ``cfg.resolution`` (else ``long_side``);
    writes the mp4(s) (``target``) and the trajectory (``job_dir/pose/``)."""
    gaussians, sh_degree = load_gaussians(ply, device)
    w, h = render_size(template.width, template.height, cfg.resolution if cfg.resolution is not None else long_side)
    cam0 = template.resized(w, h)
    params = {"reference_radii": True} if cfg.trajectory == "spiral" and cfg.spiral_reference_radii else {}
    traj = make_trajectory(cfg.trajectory, train_w2c, cam0.K, cfg.n_frames, **params)
    atomic_save_npy(job_dir / "pose" / f"pose_{cfg.trajectory}.npy", traj)
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
                valid = (out.alpha[..., 0] > 0.5).cpu().numpy()
                depth.append(colorize_depth(out.depth[..., 0].cpu().numpy(), valid))
                normals = depth_to_normals(out.depth, viewmat, K) * out.alpha
                normal.append(normals_to_rgb(normals.cpu().numpy()))
    if cfg.depth_normal:
        write_mp4(target.with_name(target.stem + "_depth.mp4"), np.stack(depth), fps=cfg.fps)
        write_mp4(target.with_name(target.stem + "_normal.mp4"), np.stack(normal), fps=cfg.fps)
    write_mp4(target, np.stack(rgb), fps=cfg.fps)
    return {"frames": len(traj), "size": [w, h], "trajectory": cfg.trajectory}
