"""Condensed data of the sparse optimiser (spec §8.1): per-image anchor lists, pair slices, 2D correspondences.

* The anchor list of image u concatenates, partner by partner (in the order of ``pixels``), u's matched pixels
  (x, y, 1), their block index and depth offset. A pixel matched with two partners appears twice.
* Each ordered pair (a, b) of the pair list becomes one :class:`PairSlice`: where the matches sit in a's and in
  b's anchor list, and their confidences sqrt(conf_ab · conf_ba) (= the match confidences).
* ``corres2d[u]``: for each slice involving u, u's pixels, the confidences, the other image and the matches'
  place in the other image's list (the 2D reprojection loss).
* ``preds21[(u, v)]``: v's points predicted in u's frame, taken at the top-left pixel (s·by, s·bx) of the block of
  each entry of v's anchor list (the fallback regression loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from feat2gs.init.sparse.canonical import CanonicalView
from feat2gs.init.sparse.settings import SparseAlignmentError


@dataclass
class PairSlice:
    img1: int
    start1: int
    end1: int
    img2: int
    start2: int
    end2: int
    confs: torch.Tensor  # [M]

    def matching_ok(self, threshold: float) -> bool:
        """A pair uses its matches iff its largest confidence exceeds the threshold (strictly)."""
        return len(self.confs) > 0 and float(self.confs.max()) > threshold


@dataclass
class Corres2d:
    img: int  # the image whose pixels these are
    pixels: torch.Tensor  # [M, 2] float (x, y)
    confs: torch.Tensor  # [M]
    other: int
    start: int  # place of the matches in the other image's anchor list
    end: int


@dataclass
class CondensedData:
    uv1: list[torch.Tensor]  # per image [L_u, 3] int64 (x, y, 1)
    anchor_idx: list[torch.Tensor]  # per image [L_u]
    depth_offset: list[torch.Tensor]  # per image [L_u]
    spans: dict[tuple[int, int], tuple[int, int]]  # (u, v) -> where v's matches sit in u's list
    slices: list[PairSlice]
    corres2d: list[list[Corres2d]]
    preds21: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]]  # (u, v) -> ([L_v, 3], [L_v])
    imsizes: torch.Tensor  # [N, 2] (W, H) int64
    pps: torch.Tensor  # [N, 2] (W/2, H/2)
    base_focals: torch.Tensor  # [N]
    core_depth: torch.Tensor  # [N, Hs*Ws] raw anchor depths
    cconf_means: torch.Tensor  # [N] mean canonical confidence (weights of the shared intrinsics)

    @property
    def n_images(self) -> int:
        return len(self.uv1)


def condense(views: list[CanonicalView], pairs: list[tuple[int, int]]) -> CondensedData:
    """Condensed data from the canonical views and the ordered pair list (forward-dict order)."""
    uv1, aidx, offs = [], [], []
    spans: dict[tuple[int, int], tuple[int, int]] = {}
    for u, view in enumerate(views):
        parts_uv, parts_idx, parts_off, start = [], [], [], 0
        for v, (xy, _) in view.pixels.items():
            ones = torch.ones_like(xy[:, :1])
            parts_uv.append(torch.cat([xy, ones], dim=1))
            parts_idx.append(view.anchor_idx[v])
            parts_off.append(view.depth_offset[v])
            spans[(u, v)] = (start, start + len(xy))
            start += len(xy)
        if not parts_uv:
            raise SparseAlignmentError(f"sparse alignment: image {u} has no partner")
        uv1.append(torch.cat(parts_uv))
        aidx.append(torch.cat(parts_idx))
        offs.append(torch.cat(parts_off))

    slices: list[PairSlice] = []
    corres2d: list[list[Corres2d]] = [[] for _ in views]
    for a, b in pairs:
        s1, e1 = spans[(a, b)]
        s2, e2 = spans[(b, a)]
        confs = (views[a].pixels[b][1] * views[b].pixels[a][1]).sqrt()
        slices.append(PairSlice(a, s1, e1, b, s2, e2, confs))
        corres2d[a].append(Corres2d(a, uv1[a][s1:e1, :2].float(), confs, b, s2, e2))
        corres2d[b].append(Corres2d(b, uv1[b][s2:e2, :2].float(), confs, a, s1, e1))

    preds21 = {}
    for u, view in enumerate(views):
        for v, (pts, conf) in view.preds21.items():
            preds21[(u, v)] = (pts[aidx[v]], conf[aidx[v]])
    h, w = views[0].canon2.shape
    device = views[0].canon.device
    return CondensedData(
        uv1=uv1, anchor_idx=aidx, depth_offset=offs, spans=spans, slices=slices, corres2d=corres2d, preds21=preds21,
        imsizes=torch.tensor([[w, h]] * len(views), device=device),
        pps=torch.tensor([v.pp for v in views], dtype=torch.float32, device=device),
        base_focals=torch.tensor([v.focal for v in views], dtype=torch.float32, device=device),
        core_depth=torch.stack([v.core_depth.reshape(-1) for v in views]),
        cconf_means=torch.stack([v.cconf.mean() for v in views]),
    )
