"""Rendering-video helpers: camera trajectories, MP4 writing, depth/normal colouring, trajectory plots."""

from feat2gs.video.plot import plot_trajectory
from feat2gs.video.trajectories import (
    TRAJECTORIES,
    arc_trajectory,
    average_pose,
    camera_centers,
    camera_radii,
    default_n_frames,
    ellipse_trajectory,
    interpolated_trajectory,
    invert_rigid,
    lemniscate_trajectory,
    look_at,
    lookat_point,
    make_trajectory,
    spiral_trajectory,
    up_vector,
    wander_trajectory,
)
from feat2gs.video.writer import colorize_depth, normals_to_rgb, write_mp4

__all__ = [
    "TRAJECTORIES",
    "arc_trajectory",
    "average_pose",
    "camera_centers",
    "camera_radii",
    "colorize_depth",
    "default_n_frames",
    "ellipse_trajectory",
    "interpolated_trajectory",
    "invert_rigid",
    "lemniscate_trajectory",
    "look_at",
    "lookat_point",
    "make_trajectory",
    "normals_to_rgb",
    "plot_trajectory",
    "spiral_trajectory",
    "up_vector",
    "wander_trajectory",
    "write_mp4",
]
