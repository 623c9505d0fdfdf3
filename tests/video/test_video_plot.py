"""Trajectory plot: a PNG written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from feat2gs.geometry.camera import look_at_w2c
from feat2gs.video import make_trajectory, plot_trajectory


def test_plot_trajectory_writes_png(tmp_path: Path) -> None:
    target, up = np.array([0.0, 0.0, 5.0]), np.array([0.0, -1.0, 0.0])
    train = np.stack([look_at_w2c(np.array([x, 0.0, 0.0]), target, up) for x in (-1.0, 0.0, 1.0)])
    K = np.array([[100.0, 0.0, 50.0], [0.0, 100.0, 50.0], [0.0, 0.0, 1.0]])
    out = tmp_path / "plots" / "trajectory.png"
    plot_trajectory(out, train, make_trajectory("spiral", train, K, n_frames=30))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["trajectory.png"]


def test_a_flat_trajectory_keeps_one_scale_and_readable_axes() -> None:
    """Cameras on a line (the interpolated trajectory of 3 views): every axis spans the same range (a cube box,
    not one squashed until its tick labels overlap) and shows at most 5 ticks."""
    from feat2gs.video.plot import trajectory_figure

    target, up = np.array([0.0, 0.0, 5.0]), np.array([0.0, -1.0, 0.0])
    train = np.stack([look_at_w2c(np.array([x, 0.0, 0.0]), target, up) for x in (-1.0, 0.0, 1.0)])
    K = np.array([[100.0, 0.0, 50.0], [0.0, 100.0, 50.0], [0.0, 0.0, 1.0]])
    ax = trajectory_figure(train, make_trajectory("interpolated", train, K, n_frames=20)).axes[0]
    spans = [hi - lo for lo, hi in (ax.get_xlim(), ax.get_ylim(), ax.get_zlim())]
    assert np.allclose(spans, spans[0]) and spans[0] >= 2.0
    assert all(len(axis.get_majorticklocs()) <= 5 for axis in (ax.xaxis, ax.yaxis, ax.zaxis))
