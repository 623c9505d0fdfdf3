"""The one rendering entry point, :func:`rasterize`, and its backend table.

Backends: ``"torch"`` (reference, any device, see ``_torch``) and ``"gsplat"`` (CUDA kernels, optional
dependency). ``"auto"`` prefers gsplat for CUDA tensors when it imports. Nothing is imported or warned about at
import time: a missing gsplat only matters, as a :class:`ConfigError`, when it is explicitly asked for.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch

from feat2gs.errors import ConfigError
from feat2gs.render._gsplat import rasterize_gsplat
from feat2gs.render._torch import rasterize_torch
from feat2gs.render.sh import MAX_SH_DEGREE, num_sh_bases
from feat2gs.render.types import Gaussians, RenderOutput, RenderSettings

Backend = Callable[[Gaussians, torch.Tensor, torch.Tensor, int, int, RenderSettings], RenderOutput]

BACKENDS: dict[str, Backend] = {"torch": rasterize_torch, "gsplat": rasterize_gsplat}
RENDER_MODES = ("RGB", "ED", "RGB+ED")
GSPLAT_INSTALL_HINT = 'install it with: pip install "feat2gs[gpu]" (pins gsplat==1.5.3)'


@functools.cache
def has_gsplat() -> bool:
    """True when ``import gsplat`` succeeds (it can fail beyond ModuleNotFoundError, e.g. on a CUDA mismatch)."""
    try:
        import gsplat  # noqa: F401
    except Exception:
        return False
    return True


def available_backends() -> list[str]:
    """Backends usable in this environment: always "torch", plus "gsplat" with CUDA and gsplat installed."""
    usable = ["torch"]
    if torch.cuda.is_available() and has_gsplat():
        usable.append("gsplat")
    return usable


def rasterize(
    gaussians: Gaussians,
    viewmat: torch.Tensor,  # [4, 4] OpenCV world-to-camera
    K: torch.Tensor,  # [3, 3] pixel intrinsics
    width: int,
    height: int,
    settings: RenderSettings = RenderSettings(),
    backend: str = "auto",
) -> RenderOutput:
    """Render ``gaussians`` seen by one pinhole camera.

    Differentiable w.r.t. all Gaussian parameters and ``viewmat`` (not ``K``). ``settings.render_mode`` picks
    the outputs: "RGB" fills ``image``, "ED" fills ``depth`` (expected depth), "RGB+ED" both; ``alpha`` and
    ``radii`` are always filled. Raises :class:`ConfigError` for an unknown or unusable backend or an invalid
    setting, ``ValueError`` for tensors of the wrong shape.
    """
    _check_settings(settings)
    _check_shapes(gaussians, viewmat, K, settings.sh_degree)
    return BACKENDS[_resolve_backend(backend, gaussians.means)](gaussians, viewmat, K, width, height, settings)


def _resolve_backend(name: str, means: torch.Tensor) -> str:
    if name == "auto":
        return "gsplat" if means.is_cuda and has_gsplat() else "torch"
    if name not in BACKENDS:
        valid = ", ".join(repr(n) for n in ("auto", *BACKENDS))
        raise ConfigError(f"unknown render backend {name!r}; valid backends: {valid}")
    if name == "gsplat":
        if not has_gsplat():
            raise ConfigError(f'render backend "gsplat" needs the gsplat package, which is not importable; '
                              f"{GSPLAT_INSTALL_HINT}, or use backend=\"torch\"")
        if not means.is_cuda:
            raise ConfigError(f'render backend "gsplat" needs CUDA tensors, got tensors on {means.device}; '
                              f'move the Gaussians and camera to a GPU or use backend="torch" '
                              f"(gsplat itself: {GSPLAT_INSTALL_HINT})")
    return name


def _check_settings(settings: RenderSettings) -> None:
    if settings.render_mode not in RENDER_MODES:
        raise ConfigError(f"unknown render_mode {settings.render_mode!r}; valid modes: {', '.join(RENDER_MODES)}")
    if settings.sh_degree is not None and not 0 <= settings.sh_degree <= MAX_SH_DEGREE:
        raise ConfigError(f"sh_degree must be None or in 0..{MAX_SH_DEGREE}, got {settings.sh_degree}")
    if not 0 < settings.near_plane < settings.far_plane:
        raise ConfigError(f"need 0 < near_plane < far_plane, got {settings.near_plane} and {settings.far_plane}")
    if len(settings.background) != 3:
        raise ConfigError(f"background must be an RGB triple, got {settings.background}")


def _check_shapes(gaussians: Gaussians, viewmat: torch.Tensor, K: torch.Tensor, sh_degree: int | None) -> None:
    n = len(gaussians)
    expected = {"means": (n, 3), "quats": (n, 4), "scales": (n, 3), "opacities": (n,)}
    for field, shape in expected.items():
        got = tuple(getattr(gaussians, field).shape)
        if got != shape:
            raise ValueError(f"gaussians.{field} must have shape {list(shape)}, got {list(got)}")
    colors = tuple(gaussians.colors.shape)
    if sh_degree is None and colors != (n, 3):
        raise ValueError(f"with sh_degree=None gaussians.colors must be RGB [{n}, 3], got {list(colors)}")
    if sh_degree is not None and (len(colors) != 3 or colors[0] != n or colors[2] != 3
                                  or colors[1] < num_sh_bases(sh_degree)):
        raise ValueError(f"with sh_degree={sh_degree} gaussians.colors must be SH coefficients "
                         f"[{n}, K >= {num_sh_bases(sh_degree)}, 3], got {list(colors)}")
    if tuple(viewmat.shape) != (4, 4) or tuple(K.shape) != (3, 3):
        raise ValueError(f"viewmat must be [4, 4] and K [3, 3], got {list(viewmat.shape)} and {list(K.shape)}")
