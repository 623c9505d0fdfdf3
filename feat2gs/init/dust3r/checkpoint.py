"""Load DUSt3R / MASt3R weights: official ``.pth`` files, Hugging Face directories or hub ids, or random init.

Search order when no explicit source is given: ``$FEAT2GS_CHECKPOINTS`` (one or more directories separated by
``os.pathsep``), then ``cache_dir`` (default ``~/.cache/feat2gs/checkpoints``). In each directory the official
file name (``DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth`` / ``MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric.pth``)
or a Hugging Face snapshot directory of the same stem (``config.json`` + ``model.safetensors``) is accepted.

The ``.pth`` constructor string (``ckpt['args'].model``) is parsed with ``ast`` (never ``eval``'d) and the pickle is
read with ``torch.load(weights_only=True)`` allowing only ``argparse.Namespace`` besides tensors.
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import math
import os
import pickle
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from feat2gs.errors import Feat2GSError
from feat2gs.init.dust3r.config import Dust3rConfig, config_from_kwargs, preset
from feat2gs.init.dust3r.model import Dust3rNet
from feat2gs.weights import CHECKPOINT_ENV, DEFAULT_CACHE, checkpoint_dirs, in_hf_cache, looks_like_hub_id

log = logging.getLogger(__name__)

OFFICIAL = {
    "dust3r": {
        "name": "DUSt3R",
        "stem": "DUSt3R_ViTLarge_BaseDecoder_512_dpt",
        "url": "https://download.europe.naverlabs.com/ComputerVision/DUSt3R/DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth",
        "hub_id": "naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt",
        "class": "AsymmetricCroCo3DStereo",
    },
    "mast3r": {
        "name": "MASt3R",
        "stem": "MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric",
        "url": "https://download.europe.naverlabs.com/ComputerVision/MASt3R/"
               "MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric.pth",
        "hub_id": "naver/MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric",
        "class": "AsymmetricMASt3R",
    },
}
_MAST3R_MARKER = "downstream_head1.head_local_features.fc1.weight"


class CheckpointError(Feat2GSError):
    """DUSt3R/MASt3R weights are missing, unreadable, of the wrong model or do not fit the network."""


@dataclass
class LoadedDust3r:
    """What :func:`load_dust3r` returns. ``random_weights`` is True when nothing pretrained was loaded."""

    model: Dust3rNet
    config: Dust3rConfig
    kind: str
    source: str
    random_weights: bool = False


# ------------------------------------------------------------------------------------------------------------------
# constructor string

_NAMES = {"inf": math.inf, "nan": math.nan, "True": True, "False": False, "None": None}


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        vals = [_literal(e) for e in node.elts]
        return tuple(vals) if isinstance(node, ast.Tuple) else vals
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}  # type: ignore[arg-type]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        val = _literal(node.operand)
        if isinstance(val, (int, float)) and not isinstance(val, bool):
            return -val if isinstance(node.op, ast.USub) else val
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "float"
            and len(node.args) == 1 and not node.keywords):
        return float(_literal(node.args[0]))
    raise ValueError(f"not a literal: {ast.dump(node)[:80]}")


def parse_constructor(text: str) -> tuple[str, dict[str, Any]]:
    """``"AsymmetricCroCo3DStereo(pos_embed='RoPE100', depth_mode=('exp', -inf, inf), ...)"`` -> (class, kwargs).

    Only literals (numbers, strings, tuples, lists, dicts, True/False/None, inf/nan, float('inf')) are accepted;
    nothing is evaluated.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise CheckpointError(f"cannot parse the model constructor string {text!r}: {exc.msg}") from exc
    call = tree.body
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        raise CheckpointError(f"the model constructor string is not a plain call: {text!r}")
    if call.args:
        raise CheckpointError(f"positional arguments are not supported in the constructor string {text!r}")
    kwargs = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise CheckpointError(f"'**' arguments are not supported in the constructor string {text!r}")
        try:
            kwargs[kw.arg] = _literal(kw.value)
        except ValueError as exc:
            raise CheckpointError(f"argument {kw.arg!r} of the constructor string is not a literal: "
                                  f"{ast.unparse(kw.value)}") from exc
    return call.func.id, kwargs


def config_from_constructor(text: str, overrides: dict[str, Any] | None = None, inference: bool = True
                            ) -> Dust3rConfig:
    """Config of the network the official ``load_model`` builds from a checkpoint's constructor string
    (ManyAR_PatchEmbed -> PatchEmbedDust3R, landscape_only=False)."""
    cls, kwargs = parse_constructor(text)
    return config_from_kwargs(kwargs, cls, inference=inference, overrides=overrides)


# ------------------------------------------------------------------------------------------------------------------
# locating weights

def search_dirs(cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """``$FEAT2GS_CHECKPOINTS``, then ``cache_dir`` when given (else the default cache)."""
    dirs = checkpoint_dirs()
    return dirs[:-1] + [Path(cache_dir).expanduser()] if cache_dir is not None else dirs


def download_hint(kind: str, cache_dir: str | os.PathLike | None = None) -> str:
    info = OFFICIAL[kind]
    dest = str(cache_dir) if cache_dir is not None else DEFAULT_CACHE
    return (f"Download the {info['name']} weights with\n"
            f"  wget {info['url']} -P {dest}\n"
            f"or from Hugging Face:\n"
            f"  huggingface-cli download {info['hub_id']} --local-dir {dest}/{info['stem']}\n"
            f"(or `hf download ...` with huggingface_hub >= 1.0); then pass --checkpoint <file or directory> or "
            f"set {CHECKPOINT_ENV}=<directory>.")


def _find_in_dir(d: Path, kind: str) -> tuple[str, Path] | None:
    stem = OFFICIAL[kind]["stem"]
    if (d / f"{stem}.pth").is_file():
        return "file", d / f"{stem}.pth"
    if (d / stem / "config.json").is_file():
        return "hf_dir", d / stem
    return None


def resolve_source(source: str | os.PathLike | None, kind: str, cache_dir: str | os.PathLike | None = None
                   ) -> tuple[str, Path | str]:
    """-> ("file", path) | ("hf_dir", path) | ("hub", repo_id)."""
    if source is not None:
        text = str(source)
        path = Path(text).expanduser()
        if path.is_file():
            return "file", path
        if path.is_dir():
            if (path / "config.json").is_file() or (path / "model.safetensors").is_file():
                return "hf_dir", path
            found = _find_in_dir(path, kind)
            if found:
                return found
            raise CheckpointError(f"checkpoint directory {path} holds neither {OFFICIAL[kind]['stem']}.pth nor a "
                                  f"Hugging Face snapshot (config.json + model.safetensors).\n"
                                  + download_hint(kind, cache_dir))
        if looks_like_hub_id(text):
            return "hub", text
        raise CheckpointError(f"checkpoint {path} does not exist.\n" + download_hint(kind, cache_dir))
    looked = search_dirs(cache_dir)
    for d in looked:
        found = _find_in_dir(d, kind)
        if found:
            return found
    cached = in_hf_cache(OFFICIAL[kind]["hub_id"], ["model.safetensors"])
    if cached is not None and (cached.parent / "config.json").is_file():
        return "hf_dir", cached.parent
    where = ", ".join(str(d) for d in looked)
    raise CheckpointError(f"no {OFFICIAL[kind]['name']} weights found: looked for {OFFICIAL[kind]['stem']}.pth "
                          f"(or a {OFFICIAL[kind]['stem']}/ Hugging Face directory) in {where} "
                          f"and the Hugging Face cache (search order: --checkpoint, ${CHECKPOINT_ENV}, {DEFAULT_CACHE}, "
                          f"the Hugging Face cache).\n"
                          + download_hint(kind, cache_dir))


# ------------------------------------------------------------------------------------------------------------------
# reading files

def _torch_load(path: Path, trust_pickle: bool) -> Any:
    mmap = zipfile.is_zipfile(path)
    try:
        if trust_pickle:
            return torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc) and "global" in str(exc).lower():
            raise CheckpointError(
                f"{path} contains Python objects other than tensors and argparse.Namespace, so it is not loaded "
                f"by default (unpickling can run code). If you trust the file, pass trust_pickle=True.\n"
                f"torch says: {str(exc).splitlines()[-1][:300]}") from exc
        raise CheckpointError(f"cannot read checkpoint {path}: the file is corrupt or truncated "
                              f"({_size(path)}); download it again. ({exc})") from exc
    except Exception as exc:  # truncated zip, wrong format, I/O errors
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: the file is corrupt or truncated ({_size(path)}); "
                              f"download it again. torch says: {first}") from exc


def _size(path: Path) -> str:
    try:
        return f"{path.stat().st_size:,} bytes"
    except OSError:
        return "size unknown"


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:
        raise CheckpointError(f"cannot read {path}: the file is corrupt or truncated ({_size(path)}); download it "
                              f"again. safetensors says: {str(exc)[:200]}") from exc


def _read_hf_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())  # Python's json accepts the bare Infinity the mixin writes
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read the Hugging Face config {path}: {exc}") from exc


def _hf_kind(cfg: dict[str, Any]) -> str:
    return "mast3r" if cfg.get("head_type") == "catmlp+dpt" or "desc_mode" in cfg or "two_confs" in cfg else "dust3r"


def _hub_download(repo_id: str, kind: str, cache_dir: str | os.PathLike | None) -> Path:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:
        raise CheckpointError(f"loading {repo_id!r} from the Hugging Face hub needs huggingface_hub "
                              f"(pip install huggingface_hub), or download the weights yourself.\n"
                              + download_hint(kind, cache_dir)) from exc
    try:
        cfg = hf_hub_download(repo_id, "config.json")
        hf_hub_download(repo_id, "model.safetensors")
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(f"cannot fetch {repo_id!r} from the Hugging Face hub ({type(exc).__name__}: {first}). "
                              f"If this machine is offline, copy the weights over.\n"
                              + download_hint(kind, cache_dir)) from exc
    return Path(cfg).parent


# ------------------------------------------------------------------------------------------------------------------
# state dict handling

def state_dict_kind(sd: dict[str, Any]) -> str:
    return "mast3r" if _MAST3R_MARKER in sd else "dust3r"


def normalize_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip DDP ``module.`` prefixes, add the missing half of the ``layer{i}_rn`` / ``layer_rn.{i-1}`` aliases
    (safetensors keeps only ``layer{i}_rn``), copy ``dec_blocks`` to ``dec_blocks2`` when absent (CroCo)."""
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    sd = dict(sd)
    for head in ("downstream_head1", "downstream_head2"):
        for i in range(4):
            a = f"{head}.dpt.scratch.layer{i + 1}_rn.weight"
            b = f"{head}.dpt.scratch.layer_rn.{i}.weight"
            if a in sd and b not in sd:
                sd[b] = sd[a]
            elif b in sd and a not in sd:
                sd[a] = sd[b]
            elif a in sd and b in sd and sd[a] is not sd[b] and not torch.equal(sd[a], sd[b]):
                raise CheckpointError(f"{a} and {b} must be the same tensor (aliases) but differ")
    if not any(k.startswith("dec_blocks2.") for k in sd) and any(k.startswith("dec_blocks.") for k in sd):
        log.warning("checkpoint has no dec_blocks2: copying dec_blocks (CroCo pretraining layout)")
        sd.update({"dec_blocks2." + k[len("dec_blocks."):]: v for k, v in list(sd.items())
                   if k.startswith("dec_blocks.")})
    return sd


def _summary(keys: list[str], limit: int = 6) -> str:
    groups = Counter(k.split(".")[0] for k in keys)
    by_module = ", ".join(f"{g}: {n}" for g, n in groups.most_common())
    shown = ", ".join(keys[:limit]) + (", ..." if len(keys) > limit else "")
    return f"{len(keys)} ({by_module}); e.g. {shown}"


def check_state_dict(model: torch.nn.Module, sd: dict[str, torch.Tensor], origin: str, strict: bool = True) -> None:
    """Raise CheckpointError summarising missing/unexpected keys and shape mismatches (unexpected keys only warn
    when strict=False)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [f"{k}: file {tuple(sd[k].shape)} vs model {expected[k]}" for k in expected
             if k in sd and tuple(sd[k].shape) != expected[k]]
    problems = []
    if missing:
        problems.append("missing keys " + _summary(missing))
    if wrong:
        problems.append(f"shape mismatches {len(wrong)}; e.g. " + "; ".join(wrong[:4]))
    if unexpected:
        if strict:
            problems.append("unexpected keys " + _summary(unexpected))
        else:
            log.warning("%s: ignoring unexpected keys %s", origin, _summary(unexpected))
    if problems:
        raise CheckpointError(f"the weights in {origin} do not fit the {model.cfg.kind} network "
                              f"({len(sd)} entries, model expects {len(expected)}): " + "; ".join(problems))


def _kind_error(expected: str, found: str, origin: str, detail: str = "") -> CheckpointError:
    return CheckpointError(f"{origin} holds a {OFFICIAL[found]['name']} model{detail}, but {OFFICIAL[expected]['name']} "
                           f"weights were requested; load it with kind={found!r} (feature/init '{found}') or pass "
                           f"the {OFFICIAL[expected]['name']} checkpoint ({OFFICIAL[expected]['stem']}.pth).")


def build_model(cfg: Dust3rConfig, sd: dict[str, torch.Tensor], origin: str, device: torch.device | str,
                strict: bool = True) -> Dust3rNet:
    """Network on ``device`` holding ``sd`` (float32); built on the meta device first, so no random init runs."""
    sd = normalize_state_dict(sd)
    with torch.device("meta"):
        model = Dust3rNet(cfg)
    check_state_dict(model, sd, origin, strict)
    expected = model.state_dict().keys()
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items() if k in expected}
    model.load_state_dict(sd, strict=True, assign=True)
    return model.to(device).eval()


# ------------------------------------------------------------------------------------------------------------------

def load_dust3r(source: str | os.PathLike | None = None, kind: str = "dust3r", device: torch.device | str = "cpu",
                random_weights: bool = False, cache_dir: str | os.PathLike | None = None,
                config: Dust3rConfig | None = None, overrides: dict[str, Any] | None = None, strict: bool = True,
                trust_pickle: bool = False) -> LoadedDust3r:
    """Load DUSt3R (kind='dust3r') or MASt3R (kind='mast3r') for inference.

    source: a ``.pth`` (official ``{'model': state_dict, 'args': Namespace(model='Asymmetric...(...)')}``), a
      ``.safetensors`` file, a Hugging Face directory (config.json + model.safetensors), a hub id
      (``naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt``), or None to search ``$FEAT2GS_CHECKPOINTS`` then cache_dir
      (default ``~/.cache/feat2gs/checkpoints``) for the official file name.
    random_weights: build the official-size network with random init (no file needed); the result has
      ``random_weights=True`` and must never be reported as pretrained.
    config: use this architecture instead of the one stored with the weights; overrides: fields changed on the
      stored architecture (e.g. head widths of a non-official model; not expressible in the constructor string).
    strict: unexpected keys are an error (missing keys and shape mismatches always are).
    trust_pickle: allow arbitrary pickled objects in a ``.pth`` (only for files you trust).
    """
    if kind not in OFFICIAL:
        raise CheckpointError(f"unknown model kind {kind!r}; use 'dust3r' or 'mast3r'")
    if random_weights:
        cfg = config if config is not None else preset(kind)
        if overrides:
            cfg = cfg.replace(**overrides)
        log.warning("%s: using RANDOM weights (random_weights=True); results are not pretrained", kind)
        with torch.device(device):
            model = Dust3rNet(cfg)
        return LoadedDust3r(model.eval(), cfg, kind, "random", random_weights=True)

    where, loc = resolve_source(source, kind, cache_dir)
    if where == "hub":
        loc = _hub_download(str(loc), kind, cache_dir)
        where = "hf_dir"
    path = Path(loc)
    stored_cfg: Dust3rConfig | None = None
    if where == "hf_dir" or path.suffix == ".safetensors":
        weights = path / "model.safetensors" if where == "hf_dir" else path
        cfg_file = (path if where == "hf_dir" else path.parent) / "config.json"
        if where == "hf_dir" and not weights.is_file():
            raise CheckpointError(f"{path} has no model.safetensors.\n" + download_hint(kind, cache_dir))
        if cfg_file.is_file() and config is None:
            hf = _read_hf_config(cfg_file)
            found = _hf_kind(hf)
            if found != kind:
                raise _kind_error(kind, found, str(cfg_file), f" (head_type {hf.get('head_type')!r})")
            stored_cfg = config_from_kwargs(hf, None, inference=True, overrides=overrides)
        sd = _load_safetensors(weights)
        origin = str(weights)
    else:
        ckpt = _torch_load(path, trust_pickle)
        origin = str(path)
        if isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict):
            sd = ckpt["model"]
            args = ckpt.get("args")
            text = args.get("model") if isinstance(args, dict) else getattr(args, "model", None)
        elif isinstance(ckpt, dict) and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
            sd, text = ckpt, None  # a bare state_dict
        else:
            raise CheckpointError(f"{path} is not a DUSt3R/MASt3R checkpoint (expected a dict with a 'model' "
                                  f"state_dict, got {type(ckpt).__name__})")
        if isinstance(text, str) and config is None:
            cls = text.strip().split("(", 1)[0].strip()
            found = {"AsymmetricMASt3R": "mast3r", "AsymmetricCroCo3DStereo": "dust3r"}.get(cls)
            if found is not None and found != kind:
                raise _kind_error(kind, found, origin, f" ({cls})")
            stored_cfg = config_from_constructor(text, overrides=overrides)
    found = state_dict_kind(sd)
    if found != kind:
        raise _kind_error(kind, found, origin)
    if config is not None:
        cfg = config
    elif stored_cfg is not None:
        cfg = stored_cfg
    else:
        cfg = preset(kind).replace(**(overrides or {}))
        log.info("%s stores no architecture; assuming the official %s configuration", origin, kind)
    if cfg.kind != kind:
        raise _kind_error(kind, cfg.kind, f"the configuration for {origin}")
    model = build_model(cfg, sd, origin, device, strict=strict)
    return LoadedDust3r(model, cfg, kind, origin, random_weights=False)
