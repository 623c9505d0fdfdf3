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
