"""Shared pieces of the benchmark scripts: a random splat scene, a synchronised timer and the device's name.

Kept in one place so that the CPU and GPU rasteriser benchmarks time exactly the same scene the same way.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from feat2gs.geometry.rotation import normalize_quat
from feat2gs.render import Gaussians


def random_scene(n: int, width: int, height: int, device: torch.device,
                 seed: int = 0) -> tuple[Gaussians, torch.Tensor, torch.Tensor]:
    """Gaussians spread over the view frustum at depth 2..6, each about 0.2..1 px in screen-space sigma
    (so 2..4 px bounding radius), SH degree 3 with small view-dependent terms; identity camera.

    Returns (gaussians with leaf tensors that require grad, viewmat [4, 4], K [3, 3]), all on ``device``.
    """
    g = torch.Generator().manual_seed(seed)
    focal = 0.8 * width
    K = torch.tensor([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])
    z = 2.0 + 4.0 * torch.rand(n, generator=g)
    u = torch.rand(n, generator=g) * width
    v = torch.rand(n, generator=g) * height
    means = torch.stack([(u - width / 2) * z / focal, (v - height / 2) * z / focal, z], dim=-1)
    sigma_px = torch.exp(torch.empty(n, 3).uniform_(math.log(0.2), math.log(1.0), generator=g))
    scales = sigma_px * z[:, None] / focal
    sh = 0.1 * torch.randn(n, 16, 3, generator=g)
    sh[:, 0] = (torch.rand(n, 3, generator=g) - 0.5) / 0.28209479177387814
    gaussians = Gaussians(
        means=means,
        quats=normalize_quat(torch.randn(n, 4, generator=g)),
        scales=scales,
        opacities=0.1 + 0.85 * torch.rand(n, generator=g),
        colors=sh,
    )
    fields = {k: v.to(device).requires_grad_() for k, v in vars(gaussians).items()}
    return Gaussians(**fields), torch.eye(4, device=device), K.to(device)


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so that a wall-clock interval covers the kernels and not just their launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn``, synchronised before and after on CUDA."""
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model (``platform.processor()`` is often just "x86_64" on Linux)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def orbit_views(n: int, height: int, width: int, g: torch.Generator, spacing: float = 0.8, jitter: float = 0.0,
                depth_noise: float = 0.0) -> tuple[float, list[torch.Tensor], list[torch.Tensor]]:
    """``n`` cameras ``spacing`` apart on a line, yawing from -10 to +10 degrees, each seeing a wavy surface about
    3 units away (optionally jittered in height and depth): (focal, c2w [4, 4] per view, world points [H, W, 3]
    per view), float64 — the scene of the alignment benchmarks."""
    focal = 0.85 * max(width, height)
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                          indexing="ij")
    c2w = []
    for k in range(n):
        yaw = math.radians(-10 + 20 * k / max(n - 1, 1))
        M = torch.eye(4, dtype=torch.float64)
        M[:3, :3] = torch.tensor([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]],
                                 dtype=torch.float64)
        M[:3, 3] = torch.tensor([spacing * (k - (n - 1) / 2), jitter * torch.randn(1, generator=g).item(), 0.2])
        c2w.append(M)
    ray = torch.stack([(u - width / 2) / focal, (v - height / 2) / focal, torch.ones_like(u)], -1)
    world = []
    for k in range(n):
        depth = 3 + 0.5 * torch.sin(u / width * 6 + k) * torch.cos(v / height * 4)
        depth = depth + depth_noise * torch.rand(height, width, generator=g, dtype=torch.float64)
        world.append((ray * depth[..., None]) @ c2w[k][:3, :3].T + c2w[k][:3, 3])
    return focal, c2w, world
