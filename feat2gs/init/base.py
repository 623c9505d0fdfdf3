"""What every pointmap initialiser returns, and the registry of initialisers."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch

from feat2gs.config import InitConfig
from feat2gs.data.layout import SceneLayout
from feat2gs.errors import ConfigError
from feat2gs.geometry.camera import Camera


@dataclass
class InitResult:
    """Dense per-pixel geometry of the N training views at the step-1 working resolution.

    images [N, H, W, 3] float32 in [0, 1]; points [N, H, W, 3] world frame; valid [N, H, W] bool
    cameras: w2c + intrinsics at the working resolution, sorted by image name (= ``names``)
    original_size: (width, height) of the input images
    precomputed: features the method computed anyway (e.g. its encoder), by feature name
    random_weights: True when a network ran with randomly initialised weights (never a real result)
    """

    names: list[str]
    images: torch.Tensor
    points: torch.Tensor
    valid: torch.Tensor
    cameras: list[Camera]
    original_size: tuple[int, int]
    precomputed: dict[str, torch.Tensor] = field(default_factory=dict)
    random_weights: bool = False


class InitFn(Protocol):
    def __call__(self, layout: SceneLayout, cfg: InitConfig, progress: bool = False) -> InitResult: ...


_METHODS: dict[str, InitFn] = {}


def _accepts_progress(fn: Callable) -> bool:
    params = inspect.signature(fn).parameters.values()
    return any(p.name == "progress" or p.kind is p.VAR_KEYWORD for p in params)


def register_init(name: str) -> Callable[[Callable[..., InitResult]], Callable[..., InitResult]]:
    """Register ``fn(layout, cfg[, progress])`` under ``name``; an initialiser without a ``progress`` parameter
    (``fn(layout, cfg)``) is registered as it is and called without one."""
    def wrap(fn: Callable[..., InitResult]) -> Callable[..., InitResult]:
        _METHODS[name] = fn if _accepts_progress(fn) else (lambda layout, cfg, progress=False: fn(layout, cfg))
        return fn

    return wrap


def available_inits() -> list[str]:
    """Names of the registered initialisers (the built-in gt, dust3r, mast3r and any registered since)."""
    from feat2gs.init import gt, pointmap  # noqa: F401  (register "gt", "dust3r", "mast3r")

    return sorted(_METHODS)


def get_init(name: str) -> InitFn:
    if name not in available_inits():
        raise ConfigError(f"unknown init method {name!r}; available: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]
