"""On-disk cache of MASt3R pair inference + matching, one safetensors file per unordered image pair.

The key of a pair hashes everything its content depends on: the network weights (a fingerprint of the loaded
state_dict, so random weights never hit another run's entry), the autocast dtype, the matching settings and the
two network input tensors. Files are written atomically with a digest of their tensors in the metadata
(``feat2gs.integrity.save_checked_tensors``); an unreadable file, or one whose tensors no longer match their
digest (a flipped bit that still parses), is treated as a miss and rewritten. Unlike the reference (which deletes
its cache before every run) a valid entry is reused across runs, e.g. by the test-pose run on train+test images.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch

from feat2gs.integrity import load_checked_tensors, save_checked_tensors, tensor_sha256

log = logging.getLogger(__name__)

FORMAT = "mast3r-sparse-pair-v1"


def weights_fingerprint(model: torch.nn.Module, samples: int = 256) -> str:
    """Cheap content hash of a model's weights: names, shapes, dtypes and ``samples`` evenly spaced values of every
    tensor (exact bytes, so the same weights give the same key on any device)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        flat = t.detach().reshape(-1)
        step = max(1, flat.numel() // samples)
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(flat[::step][:samples].float().cpu().numpy().tobytes())
        if flat.numel():
            h.update(flat[-1:].float().cpu().numpy().tobytes())
    return h.hexdigest()[:24]


class PairCache:
    """``directory``/<key>.safetensors; a ``None`` directory disables the cache."""

    def __init__(self, directory: str | Path | None, context: str):
        self.directory = Path(directory) if directory is not None else None
        self.context = context  # weights fingerprint, autocast, matching settings

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def key(self, img_a: torch.Tensor, img_b: torch.Tensor) -> str:
        h = hashlib.sha256(f"{FORMAT}|{self.context}".encode())
        for img in (img_a, img_b):
            h.update(bytes.fromhex(tensor_sha256(img)))  # the raw digest: keys of existing caches stay valid
        return h.hexdigest()[:32]

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{key}.safetensors"

    def load(self, key: str) -> dict[str, torch.Tensor] | None:
        if self.directory is None:
            return None
        path = self._path(key)
        if not path.is_file():
            return None
        tensors, problem = load_checked_tensors(path)
        if problem:
            log.warning("damaged output %s (%s), recomputing the pair", path, problem)
        return tensors

    def save(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        if self.directory is None:
            return
        save_checked_tensors(self._path(key), tensors, {"format": FORMAT})
