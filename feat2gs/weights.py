"""Where network weights are looked for: one search order for every network feat2gs loads (the backbone zoo,
DUSt3R/MASt3R, MET3R's FeatUp), never the network.

1. an explicit source (``--checkpoint``, ``--feature-checkpoint``, ...): a file, a folder, or a hub id found in
   the Hugging Face cache;
2. ``$FEAT2GS_CHECKPOINTS`` (folders separated by ``os.pathsep``), then ``~/.cache/feat2gs/checkpoints``;
3. the Hugging Face hub cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``);
4. torch.hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``).

Each loader names the files it accepts in a folder; a miss is an error naming every place looked at and the
command that fetches the weights.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

CHECKPOINT_ENV = "FEAT2GS_CHECKPOINTS"
DEFAULT_CACHE = "~/.cache/feat2gs/checkpoints"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def checkpoint_dirs() -> list[Path]:
    """``$FEAT2GS_CHECKPOINTS`` then ``~/.cache/feat2gs/checkpoints`` (read at call time)."""
    dirs = [Path(p).expanduser() for p in os.environ.get(CHECKPOINT_ENV, "").split(os.pathsep) if p.strip()]
    return dirs + [Path(DEFAULT_CACHE).expanduser()]


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time (so tests can redirect it)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def torch_hub_checkpoint_dir() -> Path:
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(home).expanduser() / "hub" / "checkpoints"


def looks_like_hub_id(text: str) -> bool:
    """``owner/name`` and not a path (``./x``, ``/x``, ``~/x``, ``x.pth``)."""
    looks_like_path = text.startswith((".", "/", "~")) or text.endswith((".pth", ".pt", ".safetensors", ".bin"))
    return bool(_HUB_ID.match(text)) and not looks_like_path


def in_hf_cache(repo_id: str, files: list[str]) -> Path | None:
    """The cached file of ``repo_id`` among ``files`` (first hit), or None; never downloads."""
    cache = hf_cache_dir()
    if not (cache / f"models--{repo_id.replace('/', '--')}").is_dir():
        return None  # nothing cached for this repo; skip huggingface_hub entirely
    from huggingface_hub import try_to_load_from_cache

    for f in files:
        hit = try_to_load_from_cache(repo_id, f, cache_dir=str(cache))
        if isinstance(hit, str) and Path(hit).is_file():
            return Path(hit)
    return None
