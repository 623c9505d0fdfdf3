"""Outputs that verify: each step records the size and a digest of what it wrote, and trusts it only while
both still match.

A record is ``{relative path: [size, blake2b hex]}``: in ``run.json`` per job step, in ``manifest.json`` for the
shared step folders (step 1, step 3). :func:`verify` names the first damaged, missing or
unexpected file; records written before digests existed are checked by parsing each file instead
(:func:`parses`), so older results are not recomputed needlessly but a truncated file is never trusted.

Cache files that live outside any step record (the backbone-grid cache, the MASt3R pair cache) verify themselves:
:func:`save_checked_tensors` stores a digest of their tensors in the safetensors metadata and
:func:`load_checked_tensors` refuses a file whose content no longer matches it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from feat2gs.config import fingerprint
from feat2gs.io import atomic_save

log = logging.getLogger(__name__)

Record = dict[str, list]  # relative path -> [size, digest]
CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """blake2b-128 of the file's bytes (about 1 GB/s: a 150 MB PLY takes a fraction of a second)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def tensor_sha256(t: torch.Tensor) -> str:
    """sha256 (hex) of a tensor's shape and float32 bytes: the content part of the cache keys."""
    x = t.detach().to(torch.float32).contiguous().cpu()
    h = hashlib.sha256(str(tuple(x.shape)).encode())
    h.update(x.numpy().tobytes())
    return h.hexdigest()


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """blake2b-128 of every tensor's name, dtype, shape and bytes."""
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_checked_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomically write a safetensors file that carries the digest of its own tensors."""
    data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {**(metadata or {}), "digest": tensors_digest(data)}
    atomic_save(path, lambda tmp: save_file(data, str(tmp), metadata=meta))


def load_checked_tensors(path: Path) -> tuple[dict[str, torch.Tensor] | None, str | None]:
    """(tensors, None), or (None, why not): unreadable, or its tensors differ from the digest it was written with
    (a flipped bit that still parses; files written without a digest count as damaged too)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            digest = (f.metadata() or {}).get("digest")
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (OSError, SafetensorError) as exc:
        return None, f"unreadable ({exc})"
    if digest != tensors_digest(tensors):
        return None, "digest mismatch"
    return tensors, None


def _files(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file())
        elif p.is_file():
            out.append(p)
    return out


def record_outputs(root: Path, paths: Iterable[Path]) -> Record:
    """Size and digest of every file in ``paths`` (folders are walked), keyed by path relative to ``root``."""
    return {f.relative_to(root).as_posix(): [f.stat().st_size, file_digest(f)] for f in _files(paths)}


def signature(record: Record) -> str:
    """A short hash of a record: what a downstream step's key depends on (its inputs' bytes)."""
    return fingerprint(record)


def verify(root: Path, record: Record | None, expected: Iterable[Path] = ()) -> str | None:
    """``None`` when every recorded file has its recorded size and digest and every path in ``expected``
    exists; otherwise the first problem, naming the file. A record without digests (older versions) is
    accepted when each expected file parses."""
    missing = [p for p in expected if not p.exists()]
    if missing:
        return f"{missing[0]} is missing"
    if record is None:
        for f in _files(expected):
            if not parses(f):
                return f"{f} does not parse"
        return None
    for rel, (size, digest) in record.items():
        f = root / rel
        if not f.is_file():
            return f"{f} is missing"
        if f.stat().st_size != size:
            return f"{f} has {f.stat().st_size} bytes, {size} were written"
        if file_digest(f) != digest:
            return f"{f} differs from what was written (digest mismatch)"
    return None


def parses(path: Path) -> bool:
    """Whether a file of a known kind reads completely (PLY, safetensors, PNG/JPEG, npy, JSON, text)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            json.loads(path.read_text())
        elif suffix == ".ply":
            from plyfile import PlyData

            PlyData.read(str(path))
        elif suffix == ".safetensors":
            from safetensors.torch import load_file

            load_file(str(path))
        elif suffix in (".png", ".jpg", ".jpeg"):
            from feat2gs.data.images import image_size

            image_size(path, decode=True)
        elif suffix == ".npy":
            import numpy as np

            np.load(path, allow_pickle=False)
        else:
            return path.stat().st_size > 0
    except Exception:  # noqa: BLE001 - any failure to read means "damaged"
        return False
    return True


# -- step folders with a manifest.json (step 1, step 3) ---------------------------------------------------------
def read_manifest(directory: Path) -> dict | None:
    """A step folder's manifest.json, or None when it is missing or unreadable."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return manifest if isinstance(manifest, dict) else None


def folder_problem(directory: Path, key: str, files: list[str]) -> str | None:
    """Why a step folder (step 1, step 3) cannot be reused: ``None`` when its manifest has ``key`` and every
    file it recorded still has its size and digest; "stale" when it was made with other inputs or settings."""
    manifest = read_manifest(directory)
    if manifest is None:
        return "missing" if not (directory / "manifest.json").exists() else f"{directory / 'manifest.json'} is damaged"
    if manifest.get("key") != key:
        return "stale"
    return verify(directory, manifest.get("outputs"), [directory / f for f in files])


def reuse_folder(directory: Path, key: str, files: list[str], what: str) -> bool:
    """True when the folder can be reused; a damaged one is reported ("damaged output X, recomputing")."""
    problem = folder_problem(directory, key, files)
    if problem is None:
        return True
    if problem not in ("missing", "stale"):
        log.warning("damaged output %s, recomputing %s", problem, what)
    return False


def folder_outputs(tmp: Path) -> Record:
    """Size and digest of every file of a step folder but its manifest, which records them."""
    return record_outputs(tmp, [p for p in tmp.iterdir() if p.name != "manifest.json"])


def folder_signature(directory: Path) -> str:
    """What the steps reading a step folder are keyed on: the bytes of its outputs (their recorded digests)."""
    manifest = read_manifest(directory) or {}
    return signature(manifest["outputs"]) if "outputs" in manifest else str(manifest.get("key"))
