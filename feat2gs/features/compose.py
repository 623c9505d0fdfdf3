"""Turn a feature string into per-pixel features [N, H, W, D]: extract, PCA, concatenate, upsample (protocol §3.10)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from feat2gs.features.cache import cached_extract
from feat2gs.features.pca import pca_project
from feat2gs.features.registry import FeatureInputs, FeatureSpec, parse_feature_string


def resize_grid(features: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[N, h, w, C] -> [N, height, width, C], bilinear with ``align_corners=False`` (cell centres map to cell centres)."""
    if features.shape[1:3] == (height, width):
        return features
    x = features.permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return x.permute(0, 2, 3, 1).contiguous()


def _minmax(x: torch.Tensor) -> torch.Tensor:
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo).clamp_min(1e-12)


def _extract(spec: FeatureSpec, inputs: FeatureInputs) -> torch.Tensor:
    if spec.name in inputs.precomputed:
        return inputs.precomputed[spec.name].float().cpu()
    identity = spec.cache_identity(inputs) if spec.cache_identity is not None else None
    return cached_extract(inputs.cache_dir, spec.name, inputs.images, identity,
                          lambda: spec.extract(inputs))


def compose_features(
    feat_string: str, inputs: FeatureInputs, feat_dim: int | None, pca: str = "exact"
) -> torch.Tensor:
    """Per-pixel features for ``feat_string`` at the resolution of ``inputs.images``.

    One feature: PCA to ``feat_dim`` at its native grid (tiny features skip it), then bilinear upsampling.
    Several: each non-tiny feature is PCA'd, min-max normalised (one global scalar range per feature, as the
    reference), resized to the coarsest grid among them and concatenated, PCA'd again and upsampled; tiny
    features (iuv, iuvrgb) are min-max normalised and appended at pixel level, followed by a final PCA.
    """
    specs = parse_feature_string(feat_string)
    _, height, width, _ = inputs.images.shape
    reduce = (lambda x: pca_project(x, feat_dim, pca, inputs.seed)) if feat_dim else (lambda x: x)

    if len(specs) == 1:
        spec = specs[0]
        feats = _extract(spec, inputs)
        if not spec.tiny:
            feats = reduce(feats)
        return resize_grid(feats, height, width)

    grids, kickoff = [], []
    for spec in specs:
        feats = _extract(spec, inputs)
        if spec.tiny:
            kickoff.append(_minmax(resize_grid(feats, height, width)))
        else:
            grids.append(_minmax(reduce(feats)))
    parts = []
    if grids:
        gh = min(g.shape[1] for g in grids)
        gw = min(g.shape[2] for g in grids)
        joint = torch.cat([resize_grid(g, gh, gw) for g in grids], dim=-1)
        parts.append(resize_grid(reduce(joint), height, width))
    parts.extend(kickoff)
    joint = torch.cat(parts, dim=-1)
    if grids and kickoff:
        joint = reduce(joint)
    return joint
