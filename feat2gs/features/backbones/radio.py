"""RADIO v2 (NVlabs) through NVIDIA's own code, as the protocol loads it (family ``radio_features``).

No package on PyPI provides RADIO's network (its cropped position embedding and summary/register tokens), and
its exact evaluation-time behaviour cannot be checked here, so the pretrained path runs the official code from
the local torch.hub cache (``$TORCH_HOME/hub/NVlabs_RADIO_main``, filled by one online ``torch.hub.load``) on
the official checkpoint found by :mod:`.weights`: ``radio_model(version=<checkpoint path>, adaptor_names=None)``,
``make_preprocessor_external()`` (the protocol feeds ImageNet statistics instead), and the model's patch features
(last block through ``model.norm``, summary/register tokens skipped by RADIO itself).

``--random-weights`` cannot run NVIDIA's code without its checkpoint, so it builds a timm ViT-H/16 of RADIO v2's
width and depth (1280 x 32, last block through the final norm): a shape stand-in for pipeline tests, logged and
flagged as random like every random-weights run, never a pretrained RADIO.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from feat2gs.errors import ConfigError
from feat2gs.features.backbones.config import BackboneConfig, Family, register_family
from feat2gs.features.backbones.weights import BackboneWeightsError

log = logging.getLogger(__name__)

HUB_REPO_ENV = "FEAT2GS_RADIO_REPO"
STAND_IN = dict(patch_size=16, embed_dim=1280, depth=32, num_heads=16)  # ViT-H/16, RADIO v2's size


def hub_repo_dir(cfg: BackboneConfig) -> Path:
    """``$FEAT2GS_RADIO_REPO``, else torch.hub's checkout of ``cfg.arch`` (``NVlabs/RADIO`` -> ``NVlabs_RADIO_main``)."""
    if os.environ.get(HUB_REPO_ENV):
        return Path(os.environ[HUB_REPO_ENV]).expanduser()
    return Path(torch.hub.get_dir()) / f"{cfg.arch.replace('/', '_')}_main"


def fetch_command(cfg: BackboneConfig) -> str:
    return (f"python -c \"import torch; torch.hub.load('{cfg.arch}', 'radio_model', version='radio_v2', "
            f"adaptor_names=None)\"")


class RadioOfficial(torch.nn.Module):
    """NVIDIA's RADIO model with its preprocessor made external; ``forward`` -> [N, C, H/p, W/p]."""

    def __init__(self, model: torch.nn.Module, patch: int):
        super().__init__()
        self.model, self.patch = model, patch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        feats = out.features if hasattr(out, "features") else out[1]
        n, gh, gw = x.shape[0], x.shape[-2] // self.patch, x.shape[-1] // self.patch
        if feats.ndim != 3 or feats.shape[1] != gh * gw:
            raise RuntimeError(f"RADIO returned features of shape {tuple(feats.shape)} for a {gh}x{gw} patch grid")
        return feats.transpose(1, 2).reshape(n, -1, gh, gw)


class RadioStandIn(torch.nn.Module):
    """Random-weights shape stand-in (see the module docstring)."""

    def __init__(self, patch: int):
        from timm.models.vision_transformer import VisionTransformer

        super().__init__()
        self.vit = VisionTransformer(img_size=224, num_classes=0, dynamic_img_size=True, **{**STAND_IN, "patch_size": patch})
        self.patch = patch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit.forward_intermediates(x, indices=[len(self.vit.blocks) - 1], norm=True, output_fmt="NCHW",
                                             intermediates_only=True)[-1]


def build_radio(cfg: BackboneConfig, weights: Path | None) -> torch.nn.Module:
    if weights is None:
        log.warning("backbone %s: random weights use a timm ViT-H/16 shape stand-in, not NVIDIA's RADIO code",
                    cfg.name)
        return RadioStandIn(cfg.patch)
    repo = hub_repo_dir(cfg)
    if not (repo / "hubconf.py").is_file():
        raise BackboneWeightsError(
            f"backbone {cfg.name!r} runs NVIDIA's RADIO code, which is not on this machine (no {repo / 'hubconf.py'}). "
            f"Fetch code and weights once (on a machine with internet) with\n  {fetch_command(cfg)}\nor clone "
            f"https://github.com/{cfg.arch} and set ${HUB_REPO_ENV} to it.")
    try:
        model = torch.hub.load(str(repo), "radio_model", source="local", version=str(weights), adaptor_names=None,
                               progress=False)
    except Exception as exc:  # noqa: BLE001  (third-party code: report whatever it raises, with the file)
        raise BackboneWeightsError(f"NVIDIA's RADIO code in {repo} could not load {weights} for backbone "
                                   f"{cfg.name!r}: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
                                   ) from exc
    model.make_preprocessor_external()
    patch = int(getattr(model, "patch_size", cfg.patch))
    if patch != cfg.patch:
        raise ConfigError(f"backbone {cfg.name!r}: RADIO in {weights} has patch size {patch}, the config says "
                          f"{cfg.patch}")
    return RadioOfficial(model, patch)


def _missing_parts(cfg: BackboneConfig, weights: Path) -> list[str]:
    hubconf = hub_repo_dir(cfg) / "hubconf.py"
    return [] if hubconf.is_file() else [str(hubconf)]


register_family(Family("radio_features", "torch_hub", build_radio, missing_parts=_missing_parts,
                       grid=lambda module, x, cfg, first, seed: module(x)))
