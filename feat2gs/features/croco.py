"""DUSt3R / MASt3R encoder features: the ViT-L/16 encoder output after its final norm (1024 channels, stride 16).

When the init method is the same network, step 1 reuses the features it computed (``FeatureInputs.precomputed``)
instead of running the network again.
"""

from __future__ import annotations

import torch

from feat2gs.features.registry import FeatureInputs, FeatureSpec, register_feature
from feat2gs.runinfo import resolve_device


def _encoder(kind: str):
    def extract(inputs: FeatureInputs) -> torch.Tensor:
        from feat2gs.init.dust3r import load_dust3r

        device = resolve_device("auto")
        loaded = load_dust3r(inputs.checkpoints.get(kind), kind, device, random_weights=inputs.random_weights)
        feats = []
        with torch.no_grad():
            for img in inputs.images:
                x = ((img.permute(2, 0, 1)[None] - 0.5) / 0.5).to(device)
                feats.append(loaded.model.encoder_features(x)[0].float().cpu())
        return torch.stack(feats)

    return extract


register_feature(FeatureSpec("dust3r", 1024, 16, "DUSt3R ViT-L/16 encoder after enc_norm", _encoder("dust3r"),
                             needs_weights=True))
register_feature(FeatureSpec("mast3r", 1024, 16, "MASt3R ViT-L/16 encoder after enc_norm", _encoder("mast3r"),
                             needs_weights=True))
