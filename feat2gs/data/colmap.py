"""COLMAP text ``cameras.txt`` / ``images.txt`` (w2c, one PINHOLE camera per image, ids 1..N)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from feat2gs.errors import DatasetError
from feat2gs.geometry.camera import Camera
from feat2gs.geometry.rotation import quat_to_rotmat, rotmat_to_quat
from feat2gs.io import atomic_write_text


def format_cameras_txt(cameras: Sequence[Camera]) -> str:
    lines = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
             f"# Number of cameras: {len(cameras)}"]
    for i, cam in enumerate(cameras, start=1):
        K = cam.K
        lines.append(f"{i} PINHOLE {cam.width} {cam.height} {K[0, 0]:.10g} {K[1, 1]:.10g} {K[0, 2]:.10g} {K[1, 2]:.10g}")
    return "\n".join(lines) + "\n"


def format_images_txt(cameras: Sequence[Camera]) -> str:
    lines = ["# Image list with two lines of data per image:",
             "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME", "#   POINTS2D[] as (X, Y, POINT3D_ID)",
             f"# Number of images: {len(cameras)}"]
    for i, cam in enumerate(cameras, start=1):
        q = rotmat_to_quat(cam.w2c[:3, :3])
        t = cam.w2c[:3, 3]
        lines.append(f"{i} " + " ".join(f"{v:.12g}" for v in (*q, *t)) + f" {i} {cam.name}")
        lines.append("")
    return "\n".join(lines) + "\n"


def write_colmap_text(directory: str | Path, cameras: Sequence[Camera]) -> None:
    """Write ``cameras.txt`` and ``images.txt`` atomically."""
    directory = Path(directory)
    atomic_write_text(directory / "cameras.txt", format_cameras_txt(cameras))
    atomic_write_text(directory / "images.txt", format_images_txt(cameras))


def _data_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetError(f"missing COLMAP file {path}")
    return [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def read_colmap_text(directory: str | Path) -> list[Camera]:
    """Read ``cameras.txt`` + ``images.txt`` from ``directory``; returns cameras sorted by image name."""
    directory = Path(directory)
    intrinsics: dict[int, tuple[int, int, np.ndarray]] = {}
    for ln in _data_lines(directory / "cameras.txt"):
        tok = ln.split()
        cam_id, model, w, h = int(tok[0]), tok[1], int(tok[2]), int(tok[3])
        params = [float(v) for v in tok[4:]]
        if model == "PINHOLE":
            fx, fy, cx, cy = params[:4]
        elif model == "SIMPLE_PINHOLE":
            fx, cx, cy = params[:3]
            fy = fx
        else:
            raise DatasetError(f"{directory / 'cameras.txt'}: camera model {model} is not supported (PINHOLE only)")
        intrinsics[cam_id] = (w, h, np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64))
    cameras = []
    for ln in _data_lines(directory / "images.txt"):
        tok = ln.split()
        if len(tok) < 10:
            continue  # a POINTS2D line
        qvec = np.array([float(v) for v in tok[1:5]])
        tvec = np.array([float(v) for v in tok[5:8]])
        cam_id, name = int(tok[8]), " ".join(tok[9:])
        if cam_id not in intrinsics:
            raise DatasetError(f"{directory / 'images.txt'}: image {name} refers to unknown camera {cam_id}")
        w, h, K = intrinsics[cam_id]
        w2c = np.eye(4)
        w2c[:3, :3] = quat_to_rotmat(torch.as_tensor(qvec)).numpy()
        w2c[:3, 3] = tvec
        cameras.append(Camera(name=name, K=K.copy(), w2c=w2c, width=w, height=h))
    return sorted(cameras, key=lambda c: c.name)
