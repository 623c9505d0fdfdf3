"""Small cameras and scenes shared by the rendering tests."""

from __future__ import annotations

from typing import Callable

import pytest
import torch

from feat2gs.render import Gaussians


def pinhole(width: int, height: int, focal: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """K [3, 3] with the principal point at the image centre."""
    return torch.tensor([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]], dtype=dtype)


def gaussians_from(
    means: list[list[float]],
    sigmas: list[float],
    opacities: list[float],
    colors: list,
    dtype: torch.dtype = torch.float64,
) -> Gaussians:
    """Isotropic Gaussians (identity rotation, world-space standard deviation ``sigmas``)."""
    n = len(means)
    return Gaussians(
        means=torch.tensor(means, dtype=dtype),
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]] * n, dtype=dtype),
        scales=torch.tensor(sigmas, dtype=dtype)[:, None].expand(n, 3).clone(),
        opacities=torch.tensor(opacities, dtype=dtype),
        colors=torch.tensor(colors, dtype=dtype),
    )


def random_scene(
    n: int, width: int, height: int, focal: float, seed: int, sh_degree: int | None = None,
    dtype: torch.dtype = torch.float64, device: str = "cpu",
) -> Gaussians:
    """Anisotropic Gaussians at depth 3..5 whose centres project inside the image (away from its border)."""
    g = torch.Generator().manual_seed(seed)
    z = 3.0 + 2.0 * torch.rand(n, generator=g)
    u = (0.15 + 0.7 * torch.rand(n, generator=g)) * width
    v = (0.15 + 0.7 * torch.rand(n, generator=g)) * height
    means = torch.stack([(u - width / 2) * z / focal, (v - height / 2) * z / focal, z], dim=-1)
    if sh_degree is None:
        colors = torch.rand(n, 3, generator=g)
    else:
        colors = 0.3 * torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g)
    gaussians = Gaussians(
        means=means,
        quats=torch.randn(n, 4, generator=g),
        scales=(0.4 + 0.8 * torch.rand(n, 3, generator=g)) * z[:, None] / focal,
        opacities=0.2 + 0.6 * torch.rand(n, generator=g),
        colors=colors,
    )
    return Gaussians(**{k: t.to(dtype=dtype, device=device) for k, t in vars(gaussians).items()})


@pytest.fixture
def make_pinhole() -> Callable[..., torch.Tensor]:
    return pinhole


@pytest.fixture
def make_gaussians() -> Callable[..., Gaussians]:
    return gaussians_from


@pytest.fixture
def make_random_scene() -> Callable[..., Gaussians]:
    return random_scene
