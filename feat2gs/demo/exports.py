"""What the page shows beyond the job's own files: a GLB of the step-1 points with camera frustums (for the 3D
viewer), a GLB of the trained Gaussians' centres (a light alternative to the splat viewer, which renders every
Gaussian and is slow without a GPU) and a PNG of the training loss.

Coordinates: our world frame is OpenCV-like (x right, y down, z forward); glTF is y up, so the GLB is rotated
by 180 degrees about x. The trained 3DGS PLY is shown as it is (the viewer's splat renderer reads it directly).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from feat2gs.data.colmap import read_colmap_model
from feat2gs.geometry.camera import Camera
from feat2gs.io import atomic_save

OPENCV_TO_GLTF = np.diag([1.0, -1.0, -1.0])
MAX_POINTS = 200_000
CAMERA_COLORS = np.array([[230, 85, 13], [49, 130, 189], [49, 163, 84], [117, 107, 177], [222, 45, 38],
                          [99, 99, 99], [253, 174, 107], [158, 202, 225]], dtype=np.uint8)


def read_points(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """xyz float32 [M, 3] and rgb uint8 [M, 3] of a step-1 ``points3D.ply``."""
    from plyfile import PlyData

    v = PlyData.read(str(path))["vertex"]
    xyz = np.stack([np.asarray(v[k], dtype=np.float32) for k in "xyz"], axis=1)
    rgb = np.stack([np.asarray(v[k], dtype=np.uint8) for k in ("red", "green", "blue")], axis=1)
    return xyz, rgb


def frustum(cam: Camera, depth: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertices [5, 3] (world, OpenCV frame) and faces of a camera pyramid ``depth`` deep: apex at the centre,
    base at the image corners; every face twice (both windings) so it shows from both sides."""
    corners = np.array([[0, 0, 1], [cam.width, 0, 1], [cam.width, cam.height, 1], [0, cam.height, 1]], float)
    rays = corners @ np.linalg.inv(cam.K).T * depth
    c2w = cam.c2w
    verts = np.concatenate([c2w[:3, 3][None], rays @ c2w[:3, :3].T + c2w[:3, 3]])
    faces = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1]])
    return verts, np.concatenate([faces, faces[:, ::-1]])


def scene_extent(xyz: np.ndarray, centers: np.ndarray) -> float:
    """A robust size of the scene: the 5-95 percentile box diagonal of the points and camera centres."""
    pts = np.concatenate([xyz, centers]) if len(xyz) else centers
    lo, hi = np.percentile(pts, 5, axis=0), np.percentile(pts, 95, axis=0)
    return float(np.linalg.norm(hi - lo)) or 1.0


def _subsample(n: int, max_points: int, seed: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))


def write_glb(target: Path, xyz: np.ndarray, rgb: np.ndarray, cameras: list[Camera]) -> Path:
    """A GLB of a coloured point cloud (OpenCV world frame, uint8 rgb) and one coloured pyramid per camera."""
    import trimesh

    centers = np.stack([c.center for c in cameras]) if cameras else np.zeros((0, 3))
    depth = 0.08 * scene_extent(xyz, centers) if len(centers) or len(xyz) else 1.0
    scene = trimesh.Scene()
    if len(xyz):
        alpha = np.full((len(rgb), 1), 255, np.uint8)
        scene.add_geometry(trimesh.PointCloud(xyz @ OPENCV_TO_GLTF.T, colors=np.concatenate([rgb, alpha], 1)),
                           geom_name="points")
    for i, cam in enumerate(cameras):
        verts, faces = frustum(cam, depth)
        color = np.append(CAMERA_COLORS[i % len(CAMERA_COLORS)], 255).astype(np.uint8)
        mesh = trimesh.Trimesh(verts @ OPENCV_TO_GLTF.T, faces, process=False,
                               face_colors=np.tile(color, (len(faces), 1)))
        scene.add_geometry(mesh, geom_name=f"camera_{i}_{Path(cam.name).stem}")
    data = scene.export(file_type="glb")
    atomic_save(target, lambda tmp: Path(tmp).write_bytes(data))
    return target


def points_and_cameras_glb(step1: Path, target: Path, max_points: int = MAX_POINTS, seed: int = 0) -> Path:
    """A GLB of the step-1 point cloud (coloured) and the training cameras (coloured pyramids)."""
    xyz, rgb = read_points(step1 / "points3D.ply")
    keep = _subsample(len(xyz), max_points, seed)
    return write_glb(target, xyz[keep], rgb[keep], read_colmap_model(step1))


SH_C0 = 0.28209479177387814


def gaussians_and_cameras_glb(ply: Path, poses: Path | None, cameras_json: Path | None, target: Path,
                              max_points: int = MAX_POINTS, min_opacity: float = 0.05, seed: int = 0) -> Path:
    """A light view of trained Gaussians: their centres coloured by the SH base colour (Gaussians with opacity
    below ``min_opacity`` left out), and the optimised training cameras (``pose_<it>.npy`` w2c with the
    intrinsics of ``cameras.json``)."""
    from feat2gs.gaussians.ply import read_gaussian_ply

    raw = read_gaussian_ply(ply)
    xyz = raw["xyz"].numpy()
    rgb = np.clip(0.5 + SH_C0 * raw["f_dc"].reshape(len(xyz), 3).numpy(), 0, 1)
    opacity = 1 / (1 + np.exp(-raw["opacity"].numpy()[:, 0]))
    visible = np.flatnonzero(opacity >= min_opacity)
    visible = visible[_subsample(len(visible), max_points, seed)]
    cameras: list[Camera] = []
    if cameras_json is not None and cameras_json.is_file():
        entries = json.loads(cameras_json.read_text())
        w2cs = np.load(poses) if poses is not None and poses.is_file() else None
        for i, e in enumerate(entries):
            if w2cs is not None and i < len(w2cs):
                w2c = w2cs[i]
            else:
                c2w = np.eye(4)
                c2w[:3, :3], c2w[:3, 3] = e["rotation"], e["position"]
                w2c = np.linalg.inv(c2w)
            K = np.array([[e["fx"], 0, e["width"] / 2], [0, e["fy"], e["height"] / 2], [0, 0, 1]])
            cameras.append(Camera(e["img_name"], K, np.asarray(w2c, float), int(e["width"]), int(e["height"])))
    return write_glb(target, xyz[visible], (rgb[visible] * 255).round().astype(np.uint8), cameras)


def loss_curve_png(train_log: Path, target: Path, title: str = "") -> Path:
    """Plot ``train_log.json`` (entries iteration/phase/loss/l1): the warm start (head outputs regressed onto
    their initial values) and the photometric phase, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = json.loads(Path(train_log).read_text())
    phases = [("warm", "warm start (L1 to initial values)"), ("render", "photometric (0.8 L1 + 0.2 D-SSIM)")]
    present = [(p, label) for p, label in phases if any(h.get("phase") == p for h in history)] or phases[:1]
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 2.8), dpi=110, squeeze=False)
    for ax, (phase, label) in zip(axes[0], present):
        rows = [h for h in history if h.get("phase") == phase and h.get("loss") is not None]
        it = [h["iteration"] for h in rows]
        ax.plot(it, [h["loss"] for h in rows], color="#1f77b4", lw=1.5, label="loss")
        if phase == "render" and any(h.get("l1") for h in rows):
            ax.plot(it, [h.get("l1") for h in rows], color="#ff7f0e", lw=1.0, label="L1")
            ax.legend(fontsize=7)
        if rows and min(h["loss"] for h in rows) > 0:
            ax.set_yscale("log")
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_save(target, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return target
