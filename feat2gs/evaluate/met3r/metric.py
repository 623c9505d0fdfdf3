"""The MET3R score of image pairs (met3r HEAD 3259e41, cosine distance, FeatUp upsampler, DUSt3R/MASt3R pointmaps).

For a pair (I1, I2) in [-1, 1]:

1. features: DINO ViT-S/16 tokens -> ChannelNorm -> JBU ×16 guided by the [0, 1] image (:mod:`.dino`, :mod:`.jbu`);
2. pointmaps: DUSt3R/MASt3R on (I1, I2): view 1's points and view 2's points, both in view 1's frame;
3. one camera for both clouds from the median focal of the canonical pointmap (:mod:`.geometry`);
4. both feature clouds splatted into view 1 (:mod:`.splat`), background -10000;
5. overlap mask = pixels both renderings hit; score map = 1 - cos(F̂1, F̂2) (eps 1e-5 in the denominator);
   score = Σ(map · mask) / (Σ mask + 1e-5). Lower is more consistent; an empty mask gives 0 (not NaN).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from feat2gs.errors import ConfigError
from feat2gs.evaluate.met3r import geometry, splat
from feat2gs.evaluate.met3r.dino import DinoFeaturizer, Met3rInputError, check_image_size
from feat2gs.evaluate.met3r.jbu import JBUStack

COSINE_EPS = 1e-5  # score map: 1 - <a, b> / (|a| |b| + eps)
MEAN_EPS = 1e-5  # score: Σ(map · mask) / (Σ mask + eps)
# met3r@92a75c6 (Jan-Apr 2025): JBU guided by the ImageNet-normalised image, eps 1e-3 / 1e-6
VARIANTS = {
    "2025-07": {"guidance": "unit", "cosine_eps": None, "mean_eps": None},
    "2025-04": {"guidance": "imagenet", "cosine_eps": 1e-3, "mean_eps": 1e-6},
}
BACKBONES = ("mast3r", "dust3r")
OFFICIAL_COMMIT = "mohammadasim98/met3r@3259e41 (2025-07-17)"


@dataclass(frozen=True)
class Met3rOptions:
    """The official options that change the score.

    img_size: raster size (official ``img_size``; None = each input's own H×W); backbone: pointmap network
    (official HEAD default ``mast3r``); feature_backbone: only FeatUp's ``dino16``; use_norm: FeatUp ChannelNorm;
    radius / points_per_pixel: PyTorch3D raster settings (official 0.01 / 10); variant: ``2025-07`` (HEAD) or
    ``2025-04`` (met3r@92a75c6).
    """

    img_size: int | None = 256
    backbone: str = "mast3r"
    feature_backbone: str = "dino16"
    use_norm: bool = True
    radius: float = splat.DEFAULT_RADIUS
    points_per_pixel: int = splat.POINTS_PER_PIXEL
    variant: str = "2025-07"

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(f"MET3R backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}")
        if self.feature_backbone != "dino16":
            raise ConfigError(f"MET3R feature backbone {self.feature_backbone!r} is not implemented; only FeatUp's "
                              "'dino16' (the official default)")
        if self.variant not in VARIANTS:
            raise ConfigError(f"MET3R variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.img_size is not None and (not isinstance(self.img_size, int) or self.img_size < 16):
            raise ConfigError(f"MET3R img_size must be an integer >= 16 or None, got {self.img_size!r}")
        if not self.radius > 0 or self.points_per_pixel < 1:
            raise ConfigError("MET3R radius must be > 0 and points_per_pixel >= 1")

    @property
    def cosine_eps(self) -> float:
        return VARIANTS[self.variant]["cosine_eps"] or COSINE_EPS

    @property
    def mean_eps(self) -> float:
        return VARIANTS[self.variant]["mean_eps"] or MEAN_EPS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Met3rOutput:
    """score [B]; overlap_mask / score_map [B, S_h, S_w]; projections [B, 2, C, S_h, S_w] (background 0) when
    asked; intermediates: named tensors of every stage when asked (names as the conformance fixture)."""

    score: torch.Tensor
    overlap_mask: torch.Tensor
    score_map: torch.Tensor
    projections: torch.Tensor | None = None
    intermediates: dict[str, torch.Tensor] = field(default_factory=dict)


def overlap_and_projections(rendered: torch.Tensor,  # [B, 2, C, S_h, S_w] composited, background -10000
                            inplace: bool = False) -> tuple[torch.Tensor, torch.Tensor]:  # -> mask [B, S_h, S_w], proj
    """Mask = 1 where no channel of either view is the background; background values then set to 0
    (in ``rendered`` itself when ``inplace``)."""
    non_overlap = rendered == splat.BACKGROUND
    mask = (~non_overlap).all(dim=2).all(dim=1).to(rendered.dtype)  # = Π_views Π_channels (1 - non_overlap)
    if inplace:
        return mask, rendered.masked_fill_(non_overlap, 0.0)
    return mask, rendered.masked_fill(non_overlap, 0.0)


def cosine_score_map(projections: torch.Tensor, eps: float = COSINE_EPS) -> torch.Tensor:  # -> [B, S_h, S_w]
    a, b = projections[:, 0], projections[:, 1]
    return 1 - (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def masked_mean(score_map: torch.Tensor, mask: torch.Tensor, eps: float = MEAN_EPS) -> torch.Tensor:  # -> [B]
    return (score_map * mask).sum((1, 2)) / (mask.sum((1, 2)) + eps)


class Met3r(nn.Module):
    """MET3R on pairs: ``forward(images [B, 2, 3, H, W] in [-1, 1])`` -> :class:`Met3rOutput`.

    The networks are given (see :func:`feat2gs.evaluate.met3r.load_met3r`); everything runs on their device in
    float32. ``features`` and ``score_from_features`` let a caller reuse one image's features in several pairs.
    """

    def __init__(self, featurizer: DinoFeaturizer, upsampler: JBUStack, pointmap_net: nn.Module,
                 options: Met3rOptions | None = None, sources: dict[str, str] | None = None,
                 random_weights: bool = False):
        super().__init__()
        self.featurizer = featurizer.eval()
        self.upsampler = upsampler.eval()
        self.pointmap_net = pointmap_net.eval()
        self.options = options or Met3rOptions()
        self.sources = dict(sources or {})
        self.random_weights = bool(random_weights)

    @property
    def device(self) -> torch.device:
        return next(self.featurizer.parameters()).device

    # ----------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def features(self, x01: torch.Tensor,  # [N, 3, H, W] in [0, 1]
                 keep: dict[str, torch.Tensor] | None = None) -> torch.Tensor:  # -> [N, C, H, W]
        """High-resolution features (``hr_feat``); ``keep`` receives dino_tokens, lr_feat, jbu_up1..4, jbu_out."""
        tokens, lr = self.featurizer(x01)
        guidance = x01 if VARIANTS[self.options.variant]["guidance"] == "unit" else self.featurizer.normalize(x01)
        out, stages = self.upsampler(lr, guidance)
        if keep is not None:
            keep.update({"dino_tokens": tokens, "lr_feat": lr, "jbu_out": out})
            keep.update({f"jbu_up{k + 1}": s for k, s in enumerate(stages)})
        h, w = x01.shape[-2:]
        if tuple(out.shape[-2:]) != (h, w):
            out = F.interpolate(out, (h, w), mode="bilinear", align_corners=False)
        return out

    @torch.no_grad()
    def pointmaps(self, images: torch.Tensor) -> dict[str, torch.Tensor]:  # [B, 2, 3, H, W] in [-1, 1]
        """Pointmap network on (view 1, view 2) without ``true_shape``: pts1/conf1 [B, H, W(, 3)] in view 1's frame,
        pts2/conf2 (view 2's points in view 1's frame)."""
        pred1, pred2 = self.pointmap_net({"img": images[:, 0]}, {"img": images[:, 1]})
        return {"pred1.pts3d": pred1["pts3d"].float(), "pred1.conf": pred1["conf"].float(),
                "pred2.pts3d_in_other_view": pred2["pts3d_in_other_view"].float(),
                "pred2.conf": pred2["conf"].float()}

    @torch.no_grad()
    def score_from_features(self, hr1: torch.Tensor, hr2: torch.Tensor,  # [B, C, H, W] each
                            preds: dict[str, torch.Tensor], keep: dict[str, torch.Tensor] | None = None
                            ) -> Met3rOutput:
        opt = self.options
        pts1, pts2 = preds["pred1.pts3d"], preds["pred2.pts3d_in_other_view"]
        b, h, w, _ = pts1.shape
        canon = geometry.canonical_pointmap(pts1, preds["pred1.conf"], pts2, preds["pred2.conf"])
        votes = geometry.focal_votes(canon)
        focal_px = geometry.median_focal(votes)
        focal = geometry.ndc_focal(focal_px, h, w).repeat_interleave(2, dim=0)  # [2B, 2]: both clouds of a pair
        points = torch.stack([pts1, pts2], dim=1).reshape(2 * b, h * w, 3)
        frags = splat.rasterize_points(geometry.project_ndc(points, focal), splat.raster_size(opt.img_size, h, w),
                                       opt.radius, opt.points_per_pixel)
        feats = torch.stack([hr1, hr2], dim=1).reshape(2 * b, hr1.shape[1], h * w)
        composited = splat.composite(frags, feats, opt.radius)
        if keep is not None:
            keep["composited"] = composited.clone()
        rendered = composited.view(b, 2, *composited.shape[1:])
        mask, projections = overlap_and_projections(rendered, inplace=True)
        smap = cosine_score_map(projections, opt.cosine_eps)
        score = masked_mean(smap, mask, opt.mean_eps)
        if keep is not None:
            keep.update({"focal_votes": votes, "focal_median": focal_px, "camera_focal_length": focal,
                         "frag_idx": frags.idx, "frag_zbuf": frags.zbuf, "frag_dists": frags.dists})
        return Met3rOutput(score, mask, smap, projections)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, return_projections: bool = False,
                return_intermediates: bool = False) -> Met3rOutput:
        if images.ndim != 5 or images.shape[1] != 2 or images.shape[2] != 3:
            raise Met3rInputError(f"MET3R expects images [B, 2, 3, H, W] in [-1, 1], got {tuple(images.shape)}")
        b, _, _, h, w = images.shape
        check_image_size(h, w)
        images = images.to(self.device, torch.float32)
        keep: dict[str, torch.Tensor] | None = {} if return_intermediates else None
        x01 = ((images + 1) / 2).reshape(2 * b, 3, h, w)
        hr = self.features(x01, keep).view(b, 2, -1, h, w)
        preds = self.pointmaps(images)
        out = self.score_from_features(hr[:, 0], hr[:, 1], preds, keep)
        if keep is not None:
            keep.update(preds)
            out.intermediates = keep
        if not return_projections:
            out.projections = None
        return out
