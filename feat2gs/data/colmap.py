"""COLMAP models: written as text ``cameras.txt`` / ``images.txt`` (w2c, one PINHOLE camera per image, ids 1..N);
read as text or binary (through pycolmap), pinhole-form cameras only (distortion must be zero)."""

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


# Pinhole-form models: (parameter names, number of distortion parameters at the end). With every distortion
# parameter exactly 0 they are a pinhole camera; otherwise the images must be undistorted first.
PINHOLE_FORM = {
    "SIMPLE_PINHOLE": (("f", "cx", "cy"), 0), "PINHOLE": (("fx", "fy", "cx", "cy"), 0),
    "SIMPLE_RADIAL": (("f", "cx", "cy"), 1), "RADIAL": (("f", "cx", "cy"), 2),
    "OPENCV": (("fx", "fy", "cx", "cy"), 4), "FULL_OPENCV": (("fx", "fy", "cx", "cy"), 8),
}


def undistort_hint(directory: Path) -> str:
    return (f"undistort the model first: `colmap image_undistorter --image_path <images> --input_path {directory} "
            "--output_path <out> --output_type COLMAP` writes PINHOLE cameras and undistorted images")


def _intrinsics(model: str, params: list[float], where: str, directory: Path) -> np.ndarray:
    if model not in PINHOLE_FORM:
        raise DatasetError(f"{where}: camera model {model} is not supported (pinhole cameras only); "
                           + undistort_hint(directory))
    names, n_dist = PINHOLE_FORM[model]
    if len(params) != len(names) + n_dist:
        raise DatasetError(f"{where}: camera model {model} needs {len(names) + n_dist} parameters, got {len(params)}")
    if any(params[len(names):]):
        raise DatasetError(f"{where}: camera model {model} has non-zero distortion {params[len(names):]}; "
                           + undistort_hint(directory))
    v = dict(zip(names, params))
    fx, fy = v.get("fx", v.get("f")), v.get("fy", v.get("f"))
    return np.array([[fx, 0, v["cx"]], [0, fy, v["cy"]], [0, 0, 1]], dtype=np.float64)


def _pose(qvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    w2c = np.eye(4)
    w2c[:3, :3] = quat_to_rotmat(torch.as_tensor(qvec)).numpy()
    w2c[:3, 3] = tvec
    return w2c


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetError(f"missing COLMAP file {path}")
    try:
        return path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read COLMAP file {path}: {exc}") from exc


def _read_text(directory: Path) -> list[Camera]:
    """COLMAP's text format exactly: cameras.txt has one camera per data line; images.txt has two lines per
    image — the image line, then its POINTS2D line (which may be empty) — after comment and blank lines."""
    cams_file, images_file = directory / "cameras.txt", directory / "images.txt"
    intrinsics: dict[int, tuple[int, int, np.ndarray]] = {}
    for number, line in enumerate(_lines(cams_file), 1):
        tok = line.split()
        if not tok or tok[0].startswith("#"):
            continue
        where = f"{cams_file}:{number}"
        try:
            cam_id, model, w, h = int(tok[0]), tok[1], int(tok[2]), int(tok[3])
            params = [float(v) for v in tok[4:]]
        except (IndexError, ValueError):
            raise DatasetError(f"{where}: expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS..., got {line.strip()!r}") from None
        intrinsics[cam_id] = (w, h, _intrinsics(model, params, where, directory))
    cameras = []
    lines = _lines(images_file)
    i = 0
    while i < len(lines):
        line, number = lines[i].strip(), i + 1
        i += 1
        if not line or line.startswith("#"):
            continue
        i += 1  # the POINTS2D line that belongs to this image, whatever it holds
        tok = line.split()
        where = f"{images_file}:{number}"
        try:
            if len(tok) < 10:
                raise ValueError
            qvec = np.array([float(v) for v in tok[1:5]])
            tvec = np.array([float(v) for v in tok[5:8]])
            cam_id, name = int(tok[8]), " ".join(tok[9:])
        except ValueError:
            raise DatasetError(f"{where}: expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME, got "
                               f"{line[:80]!r}") from None
        if cam_id not in intrinsics:
            raise DatasetError(f"{where}: image {name} refers to camera {cam_id}, which {cams_file} does not define")
        w, h, K = intrinsics[cam_id]
        cameras.append(Camera(name=name, K=K.copy(), w2c=_pose(qvec, tvec), width=w, height=h))
    return cameras


def _read_binary(directory: Path) -> list[Camera]:
    """A binary model (cameras.bin, images.bin) through pycolmap."""
    import pycolmap

    try:
        rec = pycolmap.Reconstruction(str(directory))
    except Exception as exc:  # noqa: BLE001 - pycolmap raises RuntimeError/ValueError on damaged files
        raise DatasetError(f"cannot read the COLMAP model in {directory}: {exc}") from exc
    cameras = []
    for image in rec.images.values():
        if not image.has_pose:
            continue  # not registered
        cam = rec.cameras[image.camera_id]
        K = _intrinsics(cam.model.name, list(cam.params), f"{directory / 'cameras.bin'} camera {image.camera_id}",
                        directory)
        w2c = np.eye(4)
        w2c[:3] = image.cam_from_world().matrix()
        cameras.append(Camera(name=image.name, K=K, w2c=w2c, width=cam.width, height=cam.height))
    return cameras


def read_colmap_model(directory: str | Path) -> list[Camera]:
    """Read a COLMAP model — text (``cameras.txt`` + ``images.txt``) or binary (``cameras.bin`` +
    ``images.bin``) — from ``directory``; returns the pinhole cameras sorted by image name."""
    directory = Path(directory)
    if (directory / "cameras.txt").is_file() or not (directory / "cameras.bin").is_file():
        cameras = _read_text(directory)
    else:
        cameras = _read_binary(directory)
    return sorted(cameras, key=lambda c: c.name)
