"""Find a backbone's weights on this machine, never over the network (the search order of :mod:`feat2gs.weights`).

Search order (the first hit wins):
  1. an explicit source (``FeatureInputs.checkpoints[name]``): a file; a directory holding one of the config's
     weight files (or the URL's file name); or a hub id looked up in the Hugging Face cache;
  2. ``$FEAT2GS_CHECKPOINTS`` (``os.pathsep``-separated) then ``~/.cache/feat2gs/checkpoints``: the URL's file name,
     ``<name>.safetensors|.pth|.bin`` or ``<hub repo name>/<weight file>``;
  3. the Hugging Face hub cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``), via
     ``huggingface_hub.try_to_load_from_cache`` (what ``timm`` / ``open_clip`` / ``huggingface-cli download`` fill);
  4. the URL's file name in torch.hub's checkpoint dir (``$TORCH_HOME/hub/checkpoints``; timm's URL downloads)
     and, for open_clip, ``~/.cache/clip`` (its URL downloads).
Nothing found: :class:`BackboneWeightsError` naming the hub id / file and the command that fetches it.
"""

from __future__ import annotations

import os
from pathlib import Path

from feat2gs.errors import ConfigError
from feat2gs.features.backbones.config import BackboneConfig
from feat2gs.weights import (CHECKPOINT_ENV, DEFAULT_CACHE, checkpoint_dirs, hf_cache_dir, in_hf_cache,
                             looks_like_hub_id, torch_hub_checkpoint_dir)

class BackboneWeightsError(ConfigError):
    """A backbone's pretrained weights are not on this machine (or the given file is unusable)."""


def _url_name(cfg: BackboneConfig) -> str | None:
    return cfg.url.rstrip("/").rsplit("/", 1)[-1] if cfg.url else None


def _local_names(cfg: BackboneConfig) -> list[str]:
    names = [n for n in [_url_name(cfg)] if n]
    names += [f"{cfg.name}{ext}" for ext in (".safetensors", ".pth", ".bin")]
    if cfg.hf_hub_id:
        repo = cfg.hf_hub_id.rsplit("/", 1)[-1]
        names += [f"{repo}/{f}" for f in cfg.weight_files]
    return names


def _in_hf_cache(repo_id: str, files: list[str], looked: list[str]) -> Path | None:
    looked.append(f"Hugging Face cache {hf_cache_dir()} ({repo_id}: {', '.join(files)})")
    return in_hf_cache(repo_id, files)


def _in_dir(d: Path, names: list[str], looked: list[str]) -> Path | None:
    looked.append(f"{d} ({', '.join(names)})")
    for n in names:
        if (d / n).is_file():
            return d / n
    return None


def find_weights(cfg: BackboneConfig, source: str | os.PathLike | None = None) -> tuple[Path | None, list[str]]:
    """-> (weights file or None, the places looked at). Raises BackboneWeightsError for a bad explicit source."""
    looked: list[str] = []
    if source is not None:
        text = str(source)
        path = Path(text).expanduser()
        if path.is_file():
            return path, [str(path)]
        if path.is_dir():
            hit = _in_dir(path, cfg.weight_files + _local_names(cfg), looked)
            if hit is None:
                raise BackboneWeightsError(f"checkpoint directory {path} holds none of the weight files of backbone "
                                           f"{cfg.name!r} ({', '.join(cfg.weight_files + _local_names(cfg))}).\n"
                                           + download_hint(cfg))
            return hit, looked
        if looks_like_hub_id(text):
            hit = _in_hf_cache(text, cfg.weight_files, looked)
            if hit is None:
                raise BackboneWeightsError(f"hub id {text!r} for backbone {cfg.name!r} is not in the local Hugging "
                                           f"Face cache ({hf_cache_dir()}); fetch it with\n  huggingface-cli download "
                                           f"{text} {cfg.weight_files[0] if cfg.weight_files else ''}".rstrip())
            return hit, looked
        raise BackboneWeightsError(f"checkpoint {path} for backbone {cfg.name!r} does not exist.\n" + download_hint(cfg))
    for d in checkpoint_dirs():
        hit = _in_dir(d, _local_names(cfg), looked)
        if hit:
            return hit, looked
    if cfg.hf_hub_id:
        hit = _in_hf_cache(cfg.hf_hub_id, cfg.weight_files, looked)
        if hit:
            return hit, looked
    if cfg.url:
        dirs = [torch_hub_checkpoint_dir()] + ([Path("~/.cache/clip").expanduser()] if cfg.library == "open_clip" else [])
        for d in dirs:
            hit = _in_dir(d, [_url_name(cfg)], looked)
            if hit:
                return hit, looked
    return None, looked


def download_hint(cfg: BackboneConfig) -> str:
    lines = ["Fetch the weights (on a machine with internet) with"]
    if cfg.hf_hub_id:
        lines.append(f"  huggingface-cli download {cfg.hf_hub_id} {cfg.weight_files[0]}   (or `hf download ...`)")
        lines.append("which fills the Hugging Face cache ($HF_HOME / $HF_HUB_CACHE, copy it over if needed)")
    if cfg.url:
        lines.append(("or " if cfg.hf_hub_id else "") + f"  wget {cfg.url} -P {DEFAULT_CACHE}")
    lines.append(f"or put the file in ${CHECKPOINT_ENV} or {DEFAULT_CACHE} (as {' or '.join(_local_names(cfg)[:2])}), "
                 f"or pass it as the checkpoint for feature {cfg.name!r}. "
                 f"(--random-weights runs a random-init network instead; its results are meaningless.)")
    return "\n".join(lines)


def resolve_weights(cfg: BackboneConfig, source: str | os.PathLike | None = None) -> Path:
    path, looked = find_weights(cfg, source)
    if path is None:
        ident = cfg.hf_hub_id or cfg.url
        raise BackboneWeightsError(
            f"no pretrained weights for backbone {cfg.name!r} ({cfg.library} {cfg.arch}, {ident}) on this machine; "
            f"looked in: {'; '.join(looked)}.\n" + download_hint(cfg))
    return path
