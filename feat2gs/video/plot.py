"""3D scatter plot of training cameras and a rendering trajectory (PNG, Agg, written atomically)."""

from __future__ import annotations

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from feat2gs.io import atomic_save
from feat2gs.video.trajectories import camera_centers


def trajectory_figure(train_w2c: np.ndarray, traj_w2c: np.ndarray) -> Figure:
    """A 3D scatter of the camera centres of ``train_w2c`` [N, 4, 4] and ``traj_w2c`` [F, 4, 4], one scale on all
    axes."""
    train = camera_centers(np.asarray(train_w2c, dtype=np.float64))  # [N, 3]
    traj = camera_centers(np.asarray(traj_w2c, dtype=np.float64))  # [F, 3]
    fig = Figure(figsize=(6, 6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(projection="3d")
    ax.scatter(*traj.T, s=4, c="tab:blue", label=f"trajectory ({len(traj)})")
    ax.scatter(*train.T, s=30, c="tab:red", label=f"training cameras ({len(train)})")
    # equal scale on a cube box: "equal" aspect would squash a flat trajectory's box until its tick labels overlap
    points = np.concatenate([train, traj])
    centre = (points.max(0) + points.min(0)) / 2
    half = max(float((points.max(0) - points.min(0)).max()) / 2, 1e-6) * 1.05
    for axis, name, c in zip((ax.xaxis, ax.yaxis, ax.zaxis), "xyz", centre):
        getattr(ax, f"set_{name}lim")(c - half, c + half)
        getattr(ax, f"set_{name}label")(name)
        axis.set_major_locator(MaxNLocator(4))
    ax.set_box_aspect((1, 1, 1))
    ax.legend(loc="upper right")
    return fig


def plot_trajectory(path: str | os.PathLike, train_w2c: np.ndarray, traj_w2c: np.ndarray) -> None:
    """Save :func:`trajectory_figure` as a PNG."""
    fig = trajectory_figure(train_w2c, traj_w2c)
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
