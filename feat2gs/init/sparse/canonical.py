"""Canonical views, base focals and anchor depth offsets (spec §6–7).

Per image u, every pointmap of u in its own frame (one per ordered pair involving u, in pair order, so each one
twice for a symmetric pair list) is averaged into a *canonical view*:

* ``canon`` [H, W, 3] = Σ c·X / Σ c with c = C − 0.999 (C the raw confidence, so c > 0);
* ``canon2`` [H, W]: the depth of each pixel relative to its block's anchor (the block centre
  (s·by + s/2, s·bx + s/2)): per slice, the angle θ = atan((z(p) − z_c) / r(p)) of the pixel seen from the anchor
  (r = in-plane distance), averaged with weights c; r averaged without weights; canon2 = 1 + r̄·tan θ̄ / canon_z(anchor);
* ``cconf`` [H, W] = Σ c² / Σ c.

The base focal of u is the Weiszfeld focal of ``canon`` (principal point (W/2, H/2)), clipped to
[0.5, 3.5] · max(H, W) / (2 tan 30°). Each matched pixel gets its block index and its depth offset
canon2(p) / canon2(anchor); the anchor depths are ``canon_z`` at the block centres.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from feat2gs.init.align.focal import estimate_focal
from feat2gs.init.sparse.pairs import SparsePairs
from feat2gs.init.sparse.settings import SparseAlignmentError, SparseGAConfig, focal_base

log = logging.getLogger(__name__)

FLOAT32_EPS = 1.1920929e-07  # floor of the anchor depth in the angle computation (the reference's float32 eps)


@dataclass
class CanonicalView:
    """What the alignment keeps of image u (all tensors on the alignment device)."""

    canon: torch.Tensor  # [H, W, 3]
    canon2: torch.Tensor  # [H, W]
    cconf: torch.Tensor  # [H, W]
    focal: float  # base focal (clipped Weiszfeld)
    focal_unclipped: float
    pp: tuple[float, float]  # (W/2, H/2)
    core_depth: torch.Tensor  # [Hs, Ws] raw anchor depths canon_z[s/2::s, s/2::s]
    pixels: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # v -> (xy [M,2], conf [M])
    anchor_idx: dict[int, torch.Tensor] = field(default_factory=dict)  # v -> [M] block index of each match
    depth_offset: dict[int, torch.Tensor] = field(default_factory=dict)  # v -> [M]
    preds21: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # v -> ([Hs*Ws,3], [Hs*Ws])


def _blocks(t: torch.Tensor, s: int) -> torch.Tensor:
    """[..., H, W, C] -> [..., Hs, Ws, s*s, C] (pixel (dy, dx) of a block at index dy*s + dx)."""
    *lead, h, w, c = t.shape
    t = t.reshape(*lead, h // s, s, w // s, s, c)
    t = t.movedim(-4, -3)  # [..., Hs, Ws, s, s, C]
    return t.reshape(*lead, h // s, w // s, s * s, c)


def _unblocks(t: torch.Tensor, s: int) -> torch.Tensor:
    """Inverse of :func:`_blocks` for [..., Hs, Ws, s*s, C]."""
    *lead, hs, ws, _, c = t.shape
    t = t.reshape(*lead, hs, ws, s, s, c).movedim(-3, -4)
    return t.reshape(*lead, hs * s, ws * s, c)


def canonical_view(ptmaps: torch.Tensor, confs: torch.Tensor, subsample: int = 8, conf_shift: float = 0.999
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ptmaps [n, H, W, 3] (one image in its own frame), confs [n, H, W] raw -> (canon, canon2, cconf)."""
    n, h, w, _ = ptmaps.shape
    s = subsample
    if h % s or w % s:
        raise SparseAlignmentError(f"sparse alignment: image size {w}x{h} is not a multiple of subsample {s}")
    c = confs - conf_shift
    csum = c.sum(0)
    canon = (c[..., None] * ptmaps).sum(0) / csum[..., None]
    cconf = c.square().sum(0) / csum
    centre = (s // 2) * s + s // 2
    X = _blocks(ptmaps, s)  # [n, Hs, Ws, s*s, 3]
    cb = _blocks(c[..., None], s)[..., 0]  # [n, Hs, Ws, s*s]
    zc = X[..., centre:centre + 1, 2].clamp(min=FLOAT32_EPS)
    r = (X[..., :2] - X[..., centre:centre + 1, :2]).norm(dim=-1).clamp(min=1e-8)
    theta = torch.atan((X[..., 2] - zc) / r)
    theta_mean = (cb * theta).sum(0) / cb.sum(0)
    r_mean = r.mean(0)
    canon_zc = _blocks(canon[..., 2:3], s)[..., centre:centre + 1, 0]  # [Hs, Ws, 1]
    canon2 = 1 + r_mean * torch.tan(theta_mean) / canon_zc
    return canon, _unblocks(canon2[..., None], s)[..., 0], cconf


def base_focal(canon: torch.Tensor, cfg: SparseGAConfig = SparseGAConfig()) -> tuple[float, float]:
    """(clipped, unclipped) Weiszfeld focal of a canonical pointmap [H, W, 3], principal point (W/2, H/2)."""
    h, w = canon.shape[:2]
    f = estimate_focal(canon, pp=(w / 2, h / 2))
    fb = focal_base(h, w)
    return min(max(f, cfg.min_focal * fb), cfg.max_focal * fb), f


def degenerate_anchors(canon2: torch.Tensor, subsample: int = 8) -> torch.Tensor:
    """[Hs*Ws] bool: anchors whose relative depth canon2 is not a positive number. This happens only when a
    pointmap puts the anchor pixel behind its camera (e.g. random weights); the reference stops there (assert)."""
    s = subsample
    anchors = canon2[s // 2::s, s // 2::s].reshape(-1)
    return ~(torch.isfinite(anchors) & (anchors > 0))


def anchor_offsets(canon2: torch.Tensor, xy: torch.Tensor, subsample: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Block index and depth offset canon2(p) / canon2(anchor) of integer pixels xy [M, 2].

    Deviation from the reference, which asserts canon2 > 0 at every anchor: the pixels of a degenerate block
    (:func:`degenerate_anchors`) get offset 1 (the anchor's depth). Nothing changes when every anchor is valid.
    """
    h, w = canon2.shape
    s = subsample
    anchors = canon2[s // 2::s, s // 2::s].reshape(-1)
    bad = degenerate_anchors(canon2, s)
    x, y = xy[:, 0], xy[:, 1]
    idx = (y // s) * (w // s) + x // s
    offset = canon2[y, x] / anchors[idx]
    if bool(bad.any()):
        offset = torch.where(bad[idx], torch.ones_like(offset), offset)
    return idx, offset


def canonical_views(pairs: SparsePairs, cfg: SparseGAConfig = SparseGAConfig(), progress: bool = True
                    ) -> list[CanonicalView]:
    """Canonical view of every image from the pairwise predictions and matches (spec §6.1–6.4, §7)."""
    s = cfg.subsample
    h, w = pairs.height, pairs.width
    out = []
    for u in tqdm(range(pairs.n_images), desc="mast3r canonical views", disable=not progress, mininterval=0.5):
        maps, confs = [], []
        pixels: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        preds21: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for a, b in pairs.pairs:
            if u not in (a, b):
                continue
            v = b if a == u else a
            view = pairs.views[(u, v)]
            m = pairs.matches[(u, v)]
            pixels[v] = (m.xy1, m.conf)
            preds21[v] = (view.pts_other[::s, ::s].reshape(-1, 3), view.conf_other[::s, ::s].reshape(-1))
            maps.append(view.pts_self)
            confs.append(view.conf_self)
        if not maps:
            raise SparseAlignmentError(f"sparse alignment: image {u} is in no pair")
        canon, canon2, cconf = canonical_view(torch.stack(maps), torch.stack(confs), s, cfg.conf_shift)
        n_bad = int(degenerate_anchors(canon2, s).sum())
        if n_bad:
            log.warning("sparse alignment: %d of %d anchors of image %d have a non-positive canonical depth "
                        "(pointmaps behind the camera: random weights?); their blocks take the anchor depth",
                        n_bad, canon2[s // 2::s, s // 2::s].numel(), u)
        focal, unclipped = base_focal(canon, cfg)
        view = CanonicalView(canon, canon2, cconf, focal, unclipped, (w / 2, h / 2),
                             canon[s // 2::s, s // 2::s, 2].clone(), pixels, preds21=preds21)
        for v, (xy, _) in pixels.items():
            view.anchor_idx[v], view.depth_offset[v] = anchor_offsets(canon2, xy, s)
        out.append(view)
    return out
