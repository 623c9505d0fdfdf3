"""Gaussian parameters, readout heads, probing modes and 3DGS PLY I/O."""

from feat2gs.gaussians.initial import initial_params, knn_log_scale, rgb_to_sh
from feat2gs.gaussians.modes import MODES, PARAM_KEYS, ProbeMode, get_mode, param_dims
from feat2gs.gaussians.ply import load_gaussians, read_gaussian_ply, write_gaussian_ply, write_points_ply
from feat2gs.gaussians.readout import FeatureReadout, ReadoutHead, activate

__all__ = [
    "MODES",
    "PARAM_KEYS",
    "FeatureReadout",
    "ProbeMode",
    "ReadoutHead",
    "activate",
    "get_mode",
    "initial_params",
    "load_gaussians",
    "knn_log_scale",
    "param_dims",
    "read_gaussian_ply",
    "rgb_to_sh",
    "write_gaussian_ply",
    "write_points_ply",
]
