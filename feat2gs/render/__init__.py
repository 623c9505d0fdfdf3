"""Differentiable Gaussian splatting: a plain-PyTorch reference rasteriser and an optional gsplat backend."""

from feat2gs.render.api import available_backends, has_gsplat, rasterize
from feat2gs.render.normals import depth_to_normals
from feat2gs.render.types import Gaussians, RenderMode, RenderOutput, RenderSettings

__all__ = [
    "Gaussians",
    "RenderMode",
    "RenderOutput",
    "RenderSettings",
    "available_backends",
    "depth_to_normals",
    "has_gsplat",
    "rasterize",
]
