"""3D scatter plot of training cameras and a rendering trajectory (PNG, Agg, written atomically)."""

from __future__ import annotations

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from feat2gs.io import atomic_save
from feat2gs.video.trajectories import camera_centers


def plot_trajectory(path: str | os.PathLike, train_w2c: np.ndarray, traj_w2c: np.ndarray) -> None:
    """Save a PNG scatter of the camera centres of ``train_w2c`` [N, 4, 4] and ``traj_w2c`` [F, 4, 4]."""
    train = camera_centers(np.asarray(train_w2c, dtype=np.float64))  # [N, 3]
    traj = camera_centers(np.asarray(traj_w2c, dtype=np.float64))  # [F, 3]
    fig = Figure(figsize=(6, 6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(projection="3d")
    ax.scatter(*traj.T, s=4, c="tab:blue", label=f"trajectory ({len(traj)})")
    ax.scatter(*train.T, s=30, c="tab:red", label=f"training cameras ({len(train)})")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel("z")
    ax.set_aspect("equal")
    ax.legend(loc="upper right")
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
