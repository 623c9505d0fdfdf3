"""Your own model as a feature, with no edit to feat2gs.

* ``-f mypkg.mymodule:extract`` (also ``mypkg.mymodule:extract-iuvrgb``, sweeps, the parallel script): any
  importable callable from a float tensor ``[B, 3, H, W]`` (RGB in [0, 1], on the job's device) to ``[B, C, h, w]``
  features. The stride is inferred from the shapes; PCA, resizing and concatenation work as for the zoo. The
  module is imported by name (the working directory is searched too, after ``sys.path``).
* A class (or instance) following :class:`Backbone` for richer cases: a name and description, its own
  normalisation, a weights file, a batch limit, a ``load`` step.
* A pip-installed package adds models under the ``feat2gs.backbones`` entry-point group
  (``name = "pkg.module:Model"``); they are listed by ``feat2gs features`` and used by name (``-f name``). An
  entry point may also point at a :class:`~feat2gs.features.backbones.BackboneConfig` of a zoo family.

The feature cache keys on the model's identity: module, attribute name and the module file's content hash (plus
the weights file's identity for a :class:`Backbone` that names one), so editing the model recomputes its features.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import logging
import re
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from feat2gs.errors import ConfigError
from feat2gs.features.registry import FeatureInputs, FeatureSpec
from feat2gs.runinfo import resolve_device

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "feat2gs.backbones"
_IMPORT_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class Backbone:
    """Base class (optional: any object with these attributes works) for a model probed by feat2gs.

    Subclass it, set the attributes, implement :meth:`forward`; ``-f mymodule:MyBackbone`` (or an entry point)
    instantiates it with no arguments.
    """

    name: str = ""  # shown by `feat2gs features` (entry points use the entry point's name)
    description: str = ""
    mean: tuple[float, float, float] | None = None  # normalisation applied to [0, 1] RGB before forward
    std: tuple[float, float, float] | None = None
    weights: str | Path | None = None  # a weights file: its identity (path, size, mtime) is part of the cache key
    max_batch: int | None = None  # images per forward pass (default: as many as fit the pixel budget)

    def load(self, device: torch.device) -> None:
        """Build the network and read its weights on ``device`` (called once, before the first forward)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] -> [B, C, h, w]
        raise NotImplementedError

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward(images)


def import_object(spec: str) -> Any:
    """``"pkg.module:attr"`` -> the object; a clear ConfigError when it cannot be imported."""
    if not _IMPORT_SPEC.match(spec):
        raise ConfigError(f"feature {spec!r}: a model is named module:attribute (e.g. mypkg.models:extract)")
    module_name, attr = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name.split(".")[0] or "" in sys.path:
            raise ConfigError(f"feature {spec!r}: cannot import {module_name}: {exc}") from exc
        sys.path.append("")  # the working directory, as `python -m` would have it
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            raise ConfigError(f"feature {spec!r}: no module {module_name!r} on the Python path or in the working "
                              "directory (add its folder to PYTHONPATH)") from exc
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing
        raise ConfigError(f"feature {spec!r}: importing {module_name} failed: {type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"feature {spec!r}: module {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _model(obj: Any, spec: str) -> Any:
    """A class is instantiated (no arguments); functions and instances are used as they are."""
    model = obj() if inspect.isclass(obj) else obj
    if not callable(model):
        raise ConfigError(f"feature {spec!r} is not callable (expected images [B, 3, H, W] -> features [B, C, h, w])")
    return model


def _source_hash(obj: Any) -> str:
    """Content hash of the file that defines ``obj`` (its edits invalidate cached features)."""
    target = obj if inspect.isclass(obj) or inspect.isfunction(obj) else type(obj)
    try:
        path = Path(inspect.getsourcefile(target) or "")
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "no-source"
    except (TypeError, OSError):
        return "no-source"


def _code_identity(spec: str, obj: Any, model: Any) -> str:
    """Module, name, the defining file's content hash, normalisation and the weights file's identity."""
    from feat2gs.features.cache import file_identity

    parts = [spec, getattr(obj, "__module__", ""), getattr(obj, "__qualname__", type(obj).__qualname__),
             _source_hash(obj), f"mean={getattr(model, 'mean', None)} std={getattr(model, 'std', None)}"]
    weights = getattr(model, "weights", None)
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"feature {spec!r}: its weights file {path} does not exist")
        parts.append(file_identity(path))
    return "|".join(parts)


def _cache_identity(code: str, inputs: FeatureInputs) -> str:
    return f"{code}|{inputs.autocast}"


@torch.no_grad()
def run_model(model: Any, name: str, inputs: FeatureInputs) -> torch.Tensor:
    """Run a user's model over ``inputs.images`` in batches -> [N, h, w, C] float32 on the CPU (checked)."""
    device = resolve_device(inputs.device)
    loaded = getattr(model, "_feat2gs_loaded_on", None)
    if hasattr(model, "load") and loaded != str(device):
        model.load(device)
        try:
            model._feat2gs_loaded_on = str(device)
        except AttributeError:
            pass
    images = inputs.images.float().permute(0, 3, 1, 2)  # [N, 3, H, W] in [0, 1]
    n, _, h, w = images.shape
    if getattr(model, "mean", None) is not None:
        mean = torch.tensor(model.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(model.std if model.std is not None else (1.0, 1.0, 1.0), dtype=torch.float32)
        images = (images - mean) / std.view(1, 3, 1, 1)
    batch = getattr(model, "max_batch", None) or max(1, inputs.max_pixels // (h * w))
    outs = []
    for start in range(0, n, batch):
        x = images[start:start + batch].to(device)
        y = model(x)
        if not isinstance(y, torch.Tensor) or y.ndim != 4 or y.shape[0] != x.shape[0]:
            shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ConfigError(f"feature {name!r} returned {shape} for images {tuple(x.shape)}; expected a tensor "
                              "[B, C, h, w] (channels first, one grid per image)")
        if y.shape[-2] > h or y.shape[-1] > w:
            raise ConfigError(f"feature {name!r} returned a {y.shape[-2]}x{y.shape[-1]} grid for {h}x{w} images "
                              "(more cells than pixels)")
        y = y.float().cpu()
        if not torch.isfinite(y).all():
            raise ConfigError(f"feature {name!r} returned NaN or infinite values")
        outs.append(y.permute(0, 2, 3, 1))
    grid = torch.cat(outs).contiguous()
    log.info("feature %s: %d channels on a %dx%d grid (stride %.2f x %.2f)", name, grid.shape[-1], grid.shape[1],
             grid.shape[2], h / grid.shape[1], w / grid.shape[2])
    return grid


def _spec(name: str, obj: Any, kind: str, label: str) -> FeatureSpec:
    model = _model(obj, label)
    description = getattr(model, "description", "") or (inspect.getdoc(obj) or "").split("\n")[0] or label
    code = _code_identity(label, obj, model)
    return FeatureSpec(name, getattr(model, "channels", None), None, description,
                       functools.partial(run_model, model, name), needs_weights=False, kind=kind,
                       cache_identity=functools.partial(_cache_identity, code), code_identity=code)


@functools.cache
def callable_feature(spec: str) -> FeatureSpec:
    """``module:attr`` -> a feature (the model is imported now, built on first use)."""
    return _spec(spec, import_object(spec), "custom", spec)


@functools.cache
def plugin_features() -> dict[str, Callable[[], FeatureSpec]]:
    """Installed ``feat2gs.backbones`` entry points: name -> feature maker (imported when used or listed)."""
    from feat2gs.features.backbones import BackboneConfig, backbone_feature, register_backbone

    def make(ep: metadata.EntryPoint) -> FeatureSpec:
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the rest
            raise ConfigError(f"feature {ep.name!r} (entry point {ep.value} of {ENTRY_POINT_GROUP}) cannot be "
                              f"loaded: {type(exc).__name__}: {exc}") from exc
        if isinstance(obj, BackboneConfig):
            if obj.name != ep.name:
                raise ConfigError(f"entry point {ep.name!r} names a backbone called {obj.name!r}")
            return backbone_feature(register_backbone(obj))
        return _spec(ep.name, obj, "plugin", ep.value)

    out: dict[str, Callable[[], FeatureSpec]] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if "-" in ep.name or ":" in ep.name:
            log.warning("entry point %r of %s ignored: feature names may not contain '-' or ':'", ep.name,
                        ENTRY_POINT_GROUP)
            continue
        out[ep.name] = functools.cache(functools.partial(make, ep))
    return out
