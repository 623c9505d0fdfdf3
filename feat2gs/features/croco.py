"""DUSt3R / MASt3R encoder features: the ViT-L/16 encoder output after its final norm (1024 channels, stride 16).

When the init method is the same network, step 1 reuses the features it computed (``FeatureInputs.precomputed``)
instead of running the network again.
"""

from __future__ import annotations

from pathlib import Path

import torch

from feat2gs.features.cache import file_identity
from feat2gs.features.registry import FeatureInputs, FeatureSpec, register_feature
from feat2gs.runinfo import autocast_dtype, resolve_device


def _encoder(kind: str):
    def extract(inputs: FeatureInputs) -> torch.Tensor:
        from feat2gs.init.dust3r import load_dust3r

        device = resolve_device(inputs.device)
        autocast = autocast_dtype(inputs.autocast) if device.type == "cuda" else None
        loaded = load_dust3r(inputs.checkpoints.get(kind), kind, device, random_weights=inputs.random_weights)
        feats = []
        with torch.no_grad():
            for img in inputs.images:
                x = ((img.permute(2, 0, 1)[None] - 0.5) / 0.5).to(device)
                feats.append(loaded.model.encoder_features(x, autocast=autocast)[0].float().cpu())
        return torch.stack(feats)

    return extract


def _identity(kind: str):
    def identity(inputs: FeatureInputs) -> str:
        from feat2gs.init.dust3r.checkpoint import resolve_source

        if inputs.random_weights:
            return f"{kind} random:{inputs.seed}"
        source_kind, where = resolve_source(inputs.checkpoints.get(kind), kind)
        if source_kind == "hf_dir" and (Path(where) / "model.safetensors").is_file():
            where = Path(where) / "model.safetensors"
        return f"{kind} {source_kind} " + (file_identity(where) if isinstance(where, Path) else where)

    return identity


for _kind, _label in (("dust3r", "DUSt3R"), ("mast3r", "MASt3R")):
    register_feature(FeatureSpec(_kind, 1024, 16, f"{_label} ViT-L/16 encoder after enc_norm", _encoder(_kind),
                                 needs_weights=True, cache_identity=_identity(_kind)))
