"""PLY I/O: the standard 3DGS splat layout (any splat viewer opens it) and coloured point clouds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement

from feat2gs.errors import DatasetError
from feat2gs.io import atomic_save
from feat2gs.render.types import Gaussians


def _write(path: str | Path, vertex: np.ndarray) -> None:
    element = PlyElement.describe(vertex, "vertex")
    atomic_save(path, lambda tmp: PlyData([element], text=False).write(str(tmp)))


def write_points_ply(path: str | Path, xyz: np.ndarray, rgb: np.ndarray) -> None:
    """xyz [M, 3] float, rgb [M, 3] uint8 -> binary PLY with x,y,z,nx,ny,nz,red,green,blue."""
    dtype = [(n, "f4") for n in ("x", "y", "z", "nx", "ny", "nz")] + [(n, "u1") for n in ("red", "green", "blue")]
    vertex = np.zeros(xyz.shape[0], dtype=dtype)
    for i, n in enumerate("xyz"):
        vertex[n] = xyz[:, i]
    for i, n in enumerate(("red", "green", "blue")):
        vertex[n] = rgb[:, i]
    _write(path, vertex)


def write_gaussian_ply(path: str | Path, raw: dict[str, torch.Tensor]) -> None:
    """Raw parameters (log scales, logit opacity, unnormalised wxyz quats, SH) -> standard 3DGS PLY.

    f_rest is stored channel-major (all R coefficients, then G, then B) as the INRIA layout requires.
    """
    m = raw["xyz"].shape[0]
    f_rest = raw["f_rest"].detach().reshape(m, -1, 3).transpose(1, 2).reshape(m, -1)
    columns = {
        "xyz": raw["xyz"], "normals": torch.zeros(m, 3), "f_dc": raw["f_dc"].reshape(m, 3), "f_rest": f_rest,
        "opacity": raw["opacity"].reshape(m, 1), "scale": raw["scaling"], "rot": raw["rotation"],
    }
    names = ["x", "y", "z", "nx", "ny", "nz"] + [f"f_dc_{i}" for i in range(3)]
    names += [f"f_rest_{i}" for i in range(f_rest.shape[1])] + ["opacity"]
    names += [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)]
    data = torch.cat([c.detach().float().cpu().reshape(m, -1) for c in columns.values()], dim=1).numpy()
    vertex = np.empty(m, dtype=[(n, "f4") for n in names])
    for i, n in enumerate(names):
        vertex[n] = data[:, i]
    _write(path, vertex)


def read_gaussian_ply(path: str | Path) -> dict[str, torch.Tensor]:
    """Standard 3DGS PLY -> raw parameters in the flat layout of ``initial_params``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing Gaussian PLY {path}")
    try:
        v = PlyData.read(str(path))["vertex"]
        names = [p.name for p in v.properties]
        missing = [n for n in ("x", "y", "z", "opacity", "f_dc_0", "scale_0", "rot_0") if n not in names]
        if missing:
            raise ValueError(f"no {', '.join(missing)} column (not a 3DGS PLY)")
    except Exception as exc:  # plyfile raises many kinds (PlyParseError, ValueError, KeyError, struct.error)
        raise DatasetError(f"cannot read Gaussian PLY {path} (damaged or not a 3DGS file): {exc}") from exc

    def stack(prefix: str) -> np.ndarray:
        cols = sorted((n for n in names if n.startswith(prefix)), key=lambda n: int(n.rsplit("_", 1)[1]))
        return np.stack([np.asarray(v[n], dtype=np.float32) for n in cols], axis=1)

    m = len(v["x"])
    f_rest = torch.from_numpy(stack("f_rest_")) if any(n.startswith("f_rest_") for n in names) else torch.zeros(m, 0)
    f_rest = f_rest.reshape(m, 3, -1).transpose(1, 2).reshape(m, -1)
    return {
        "xyz": torch.from_numpy(np.stack([np.asarray(v[n], dtype=np.float32) for n in "xyz"], axis=1)),
        "scaling": torch.from_numpy(stack("scale_")),
        "rotation": torch.from_numpy(stack("rot_")),
        "opacity": torch.from_numpy(np.asarray(v["opacity"], dtype=np.float32))[:, None],
        "f_dc": torch.from_numpy(stack("f_dc_")),
        "f_rest": f_rest.contiguous(),
    }


def load_gaussians(path: str | Path, device: torch.device) -> tuple[Gaussians, int]:
    """A trained 3DGS PLY -> (activated Gaussians on ``device``, SH degree)."""
    from feat2gs.gaussians.readout import activate, sh_degree_of

    raw = {k: v.to(device) for k, v in read_gaussian_ply(path).items()}
    return activate(raw), sh_degree_of(raw)
