"""FeatUp ``dino16`` weights: find them on this machine (never downloaded at run time), read them, build the
featurizer (DINO ViT-S/16 + ChannelNorm) and the JBU upsampler.

FeatUp's released checkpoint ``dino16_jbu_stack_cocostuff.ckpt`` (the one ``torch.hub.load("mhamilton723/FeatUp",
"dino16", use_norm=True)`` fetches) is a Lightning checkpoint whose ``state_dict`` holds ``upsampler.*`` (the JBU
stack), ``model.1.norm.*`` (ChannelNorm) and, in the released files, ``model.0.model.*`` (the frozen DINO ViT-S/16).
When the ViT is not inside, DINO's ViT-S/16 weights are looked up as the backbone zoo looks up ``dino_b16``
(:mod:`feat2gs.features.backbones.weights`: ``$FEAT2GS_CHECKPOINTS``, ``~/.cache/feat2gs/checkpoints``, the
Hugging Face cache for ``timm/vit_small_patch16_224.dino``, torch.hub's checkpoint dir for DINO's own file).

Search order for the FeatUp file: an explicit path, then ``$FEAT2GS_CHECKPOINTS`` (``os.pathsep``-separated),
``~/.cache/feat2gs/checkpoints`` and torch.hub's checkpoint directory (``$TORCH_HOME/hub/checkpoints``, where
FeatUp's own hub loader puts it).

Reading is safe: ``torch.load(weights_only=True)``; any non-tensor class a Lightning checkpoint pickles (loop
state, callbacks, hyper-parameters) is replaced by an inert placeholder, so no foreign code runs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from feat2gs.errors import ConfigError
from feat2gs.evaluate.met3r.dino import VIT_S16, ChannelNorm, DinoFeaturizer, build_vit
from feat2gs.evaluate.met3r.jbu import JBUStack

log = logging.getLogger(__name__)

FEATUP_FILE = "dino16_jbu_stack_cocostuff.ckpt"
FEATUP_FILE_NO_NORM = "dino16_jbu_stack_cocostuff_no_norm.ckpt"  # our name for the no_norm/ release
FEATUP_URL = ("https://marhamilresearch4.blob.core.windows.net/feature-upsampling-public/pretrained/"
              "dino16_jbu_stack_cocostuff.ckpt")
FEATUP_URL_NO_NORM = ("https://marhamilresearch4.blob.core.windows.net/feature-upsampling-public/pretrained/"
                      "no_norm/dino16_jbu_stack_cocostuff.ckpt")
VIT_PREFIX, NORM_PREFIX, JBU_PREFIX = "model.0.model.", "model.1.", "upsampler."


class Met3rWeightsError(ConfigError):
    """FeatUp / DINO weights for MET3R are missing or unusable."""


@dataclass
class FeatUpParts:
    """The loaded (or random) featurizer and upsampler, and where their weights came from."""

    featurizer: DinoFeaturizer
    upsampler: JBUStack
    source: str
    vit_source: str
    random_weights: bool


# ------------------------------------------------------------------------------------------------------------------
# locating

def _fetch_hint(use_norm: bool) -> str:
    from feat2gs.weights import DEFAULT_CACHE

    url, name = (FEATUP_URL, FEATUP_FILE) if use_norm else (FEATUP_URL_NO_NORM, FEATUP_FILE_NO_NORM)
    return (f"Fetch FeatUp's dino16 JBU weights (on a machine with internet) with\n"
            f"  wget {url} -O {DEFAULT_CACHE}/{name}\n"
            f"then pass --featup-checkpoint <file> or put it in $FEAT2GS_CHECKPOINTS or {DEFAULT_CACHE}. "
            f"(--random-weights runs random networks instead; their scores are meaningless.)")


def find_featup_checkpoint(source: str | os.PathLike | None = None, use_norm: bool = True
                           ) -> tuple[Path | None, list[str]]:
    """-> (file or None, places looked at). A given ``source`` that does not exist is an error."""
    from feat2gs.weights import checkpoint_dirs, torch_hub_checkpoint_dir

    name = FEATUP_FILE if use_norm else FEATUP_FILE_NO_NORM
    if source is not None:
        path = Path(source).expanduser()
        if path.is_file():
            return path, [str(path)]
        if path.is_dir() and (path / name).is_file():
            return path / name, [str(path / name)]
        raise Met3rWeightsError(f"FeatUp checkpoint {path} does not exist (or holds no {name}).\n"
                                + _fetch_hint(use_norm))
    looked = []
    dirs = checkpoint_dirs() + ([torch_hub_checkpoint_dir()] if use_norm else [])
    for d in dirs:
        looked.append(str(d / name))
        if (d / name).is_file():
            return d / name, looked
    return None, looked


def resolve_featup_checkpoint(source: str | os.PathLike | None = None, use_norm: bool = True) -> Path:
    path, looked = find_featup_checkpoint(source, use_norm)
    if path is None:
        raise Met3rWeightsError(f"no FeatUp dino16 weights on this machine; looked for {', '.join(looked)}.\n"
                                + _fetch_hint(use_norm))
    return path


def dino_s16_config():
    """Backbone-zoo config of DINO ViT-S/16: the zoo's ``dino_b16`` at ViT-S width (weights lookup only)."""
    from feat2gs.features.backbones.config import load_backbone_config

    base = load_backbone_config("dino_b16")
    return dataclasses.replace(
        base, name="dino_s16", arch="vit_small_patch16_224.dino", channels=VIT_S16["embed_dim"],
        hf_hub_id="timm/vit_small_patch16_224.dino", weight_files=("model.safetensors", "pytorch_model.bin"),
        url="https://dl.fbaipublicfiles.com/dino/dino_deitsmall16_pretrain/dino_deitsmall16_pretrain.pth",
        protocol_source="torch.hub.load('facebookresearch/dino:main', 'dino_vits16')",
        layer="last block, final LayerNorm, patch tokens (FeatUp dino16)", block=11)


# ------------------------------------------------------------------------------------------------------------------
# reading

class _Inert:
    """Stand-in for a class a checkpoint pickles but we do not need: accepts any construction or state."""

    def __new__(cls, *args: Any, **kwargs: Any):
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> "_Inert":
        return _Inert()


def read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Flat tensor dict of a ``.safetensors``, a ``.pth``/``.bin`` state_dict or a Lightning ``.ckpt``
    (its ``state_dict``); unknown pickled classes become inert placeholders (nothing foreign is executed)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise Met3rWeightsError(f"cannot read {path}: {str(exc)[:200]}") from exc
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as exc:
        raise Met3rWeightsError(f"cannot read {path}: the file is corrupt or not a torch checkpoint "
                                f"({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})") from exc
    stubs = [(type(name.rsplit(".", 1)[-1], (_Inert,), {}), name) for name in unsafe]
    try:
        with torch.serialization.safe_globals(stubs):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as exc:
        raise Met3rWeightsError(f"cannot read {path}: {str(exc).splitlines()[0][:300] if str(exc) else exc!r}") \
            from exc
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict):
        raise Met3rWeightsError(f"{path} holds no state_dict (got {type(obj).__name__})")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _sub(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def split_featup_state_dict(sd: dict[str, torch.Tensor]) -> tuple[dict, dict, dict]:
    """FeatUp checkpoint keys -> (ViT, ChannelNorm, JBU) state dicts (``module.`` prefixes stripped)."""
    if sd and all(k.startswith("module.") for k in sd):
        sd = _sub(sd, "module.")
    return _sub(sd, VIT_PREFIX), _sub(sd, NORM_PREFIX), _sub(sd, JBU_PREFIX)


def _load_into(module: torch.nn.Module, sd: dict[str, torch.Tensor], what: str, origin: str) -> None:
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise Met3rWeightsError(f"the {what} weights in {origin} do not fit FeatUp dino16: "
                                f"{str(exc).splitlines()[0][:300]} ...") from exc


def _vit_from_zoo(source: str | os.PathLike | None) -> tuple[torch.nn.Module, str]:
    """DINO ViT-S/16 through the backbone zoo's lookup and timm loader (original DINO or timm files)."""
    from feat2gs.features.backbones.timm_models import _build_timm
    from feat2gs.features.backbones.weights import BackboneWeightsError, resolve_weights

    cfg = dino_s16_config()
    try:
        path = resolve_weights(cfg, source)
    except BackboneWeightsError as exc:
        raise Met3rWeightsError("the FeatUp checkpoint holds no DINO ViT (model.0.model.*) and no DINO ViT-S/16 "
                                f"weights were found (give them with --dino-checkpoint FILE): {exc}") from exc
    timm_vit = _build_timm(cfg, path)
    vit = build_vit(**VIT_S16)
    sd = {k: v for k, v in timm_vit.state_dict().items() if not k.startswith("head.")}
    _load_into(vit, sd, "DINO ViT-S/16", str(path))
    return vit, str(path)


# ------------------------------------------------------------------------------------------------------------------

def load_featup_dino16(source: str | os.PathLike | None = None, *, use_norm: bool = True,
                       dino_source: str | os.PathLike | None = None, random_weights: bool = False, seed: int = 0,
                       device: torch.device | str = "cpu") -> FeatUpParts:
    """FeatUp ``dino16``: DINO ViT-S/16 (+ ChannelNorm when ``use_norm``) and its JBU stack, in eval mode.

    random_weights: seeded random init of the same architecture (no file needed; never reported as pretrained).
    """
    if random_weights:
        log.warning("MET3R FeatUp dino16: using RANDOM weights (random_weights=True, seed %d); scores are "
                    "meaningless", seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            vit = build_vit(**VIT_S16)
            norm = ChannelNorm(VIT_S16["embed_dim"]) if use_norm else None
            jbu = JBUStack(VIT_S16["embed_dim"])
        return FeatUpParts(DinoFeaturizer(vit, norm).to(device).eval(), jbu.to(device).eval(), "random", "random",
                           True)
    path = resolve_featup_checkpoint(source, use_norm)
    vit_sd, norm_sd, jbu_sd = split_featup_state_dict(read_checkpoint(path))
    if not jbu_sd:
        raise Met3rWeightsError(f"{path} holds no FeatUp JBU weights (upsampler.*); is it a FeatUp "
                                f"{FEATUP_FILE}?")
    jbu = JBUStack(VIT_S16["embed_dim"])
    _load_into(jbu, jbu_sd, "JBU", str(path))
    norm = None
    if use_norm:
        norm = ChannelNorm(VIT_S16["embed_dim"])
        if norm_sd:
            _load_into(norm, norm_sd, "ChannelNorm", str(path))
        else:  # FeatUp's hub loader (strict=False) keeps the LayerNorm's init then
            log.warning("%s holds no ChannelNorm weights (model.1.norm.*): using LayerNorm's init as FeatUp does",
                        path)
    if vit_sd:
        vit = build_vit(**VIT_S16)
        _load_into(vit, {k: v for k, v in vit_sd.items() if not k.startswith("head.")}, "DINO ViT", str(path))
        vit_source = str(path)
    else:
        vit, vit_source = _vit_from_zoo(dino_source)
    return FeatUpParts(DinoFeaturizer(vit, norm).to(device).eval(), jbu.to(device).eval(), str(path), vit_source,
                       False)
