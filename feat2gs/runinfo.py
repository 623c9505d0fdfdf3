"""Run records: library versions, device, timings — written next to every result."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

import torch

import feat2gs
from feat2gs.errors import ConfigError

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def versions() -> dict[str, str]:
    out = {"feat2gs": feat2gs.__version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("torch", "torchvision", "numpy", "gsplat", "lpips"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(name: str | None) -> torch.dtype | None:
    """The ``autocast`` setting (``bf16`` / ``fp16`` / unset) as a dtype."""
    if name is None:
        return None
    if name not in AUTOCAST:
        raise ConfigError(f"autocast must be one of {sorted(AUTOCAST)} or unset, got {name!r}")
    return AUTOCAST[name]


def device_info(device: torch.device) -> dict[str, str | int]:
    if device.type == "cuda":
        return {"device": torch.cuda.get_device_name(device), "type": "cuda"}
    return {"device": platform.processor() or platform.machine(), "type": "cpu", "threads": torch.get_num_threads()}


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
