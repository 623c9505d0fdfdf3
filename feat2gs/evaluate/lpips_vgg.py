"""LPIPS-VGG (v0.1) built offline from files already on disk, or a clear reason why it cannot be.

The linear calibration layers ship inside the ``lpips`` package; the VGG16 trunk is torchvision's
IMAGENET1K_V1 checkpoint, looked up in the torch hub cache (``$TORCH_HOME/hub/checkpoints``) or at the path
in ``FEAT2GS_VGG16_WEIGHTS``. Nothing is downloaded and a random trunk is never used in its place.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import torch

VGG16_FILE = "vgg16-397923af.pth"
VGG16_URL = f"https://download.pytorch.org/models/{VGG16_FILE}"


def vgg16_weights_path() -> Path:
    env = os.environ.get("FEAT2GS_VGG16_WEIGHTS")
    return Path(env) if env else Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE


def missing_message() -> str:
    path = vgg16_weights_path()
    return (f"LPIPS not computed: VGG16 weights not found at {path}. Fetch them with "
            f"`python -c \"import torchvision; torchvision.models.vgg16(weights='IMAGENET1K_V1')\"` "
            f"(or download {VGG16_URL} there, or set FEAT2GS_VGG16_WEIGHTS).")


def load_lpips_vgg(device: torch.device) -> tuple[torch.nn.Module | None, str | None]:
    """(model, None) when the VGG16 weights are on disk, else (None, message)."""
    path = vgg16_weights_path()
    if not path.is_file():
        return None, missing_message()
    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net="vgg", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        return None, f"LPIPS not computed: cannot read VGG16 weights {path}: {exc}"
    trunk = {}
    for name in model.net.state_dict():
        index = re.match(r"slice\d+\.(\d+)\.(weight|bias)", name)
        key = f"features.{index.group(1)}.{index.group(2)}" if index else None
        if key not in state:
            return None, f"LPIPS not computed: {path} is not a torchvision VGG16 checkpoint (no {key})"
        trunk[name] = state[key]
    model.net.load_state_dict(trunk)
    return model.eval().to(device).requires_grad_(False), None
