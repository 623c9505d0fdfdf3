"""Pairwise MASt3R inference and matching for the sparse alignment (spec §3–4).

For each unordered pair, the orientation (a, b) met first in the pair list runs the network twice: pass a-b gives
``res11`` (a in a's frame) and ``res21`` (b in a's frame), pass b-a gives ``res22`` (b in b's frame) and ``res12``
(a in b's frame). The four descriptor maps are matched at once (:func:`extract_correspondences`) and dropped; the
pointmaps, confidences, encoder features and matches are kept (and cached on disk when a cache is given). The
reversed orientation (b, a) reuses them with the roles swapped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from feat2gs.init.sparse.cache import PairCache
from feat2gs.init.sparse.matching import Matches, extract_correspondences, matching_score
from feat2gs.init.sparse.settings import SparseAlignmentError, SparseGAConfig


@dataclass
class PairView:
    """Ordered pair (u, v) as the network saw it with u first: u's and v's points in u's frame."""

    pts_self: torch.Tensor  # [H, W, 3]
    conf_self: torch.Tensor  # [H, W]
    pts_other: torch.Tensor  # [H, W, 3]
    conf_other: torch.Tensor  # [H, W]
    feat_self: torch.Tensor | None = None  # u's encoder output [H/16, W/16, C]


@dataclass
class SparsePairs:
    """Everything the alignment needs from the network. ``views``, ``matches`` and ``scores`` hold both
    orientations of every pair; ``pairs`` is the ordered pair list (its order drives the canonical views)."""

    n_images: int
    height: int
    width: int
    pairs: list[tuple[int, int]]
    views: dict[tuple[int, int], PairView] = field(default_factory=dict)
    matches: dict[tuple[int, int], Matches] = field(default_factory=dict)
    scores: dict[tuple[int, int], tuple[float, float, int]] = field(default_factory=dict)

    def add(self, a: int, b: int, res: dict[str, torch.Tensor], matches: Matches,
            score: tuple[float, float, int]) -> None:
        """Store pair (a, b) from the tensors of :data:`PAIR_KEYS` (and the reversed pair)."""
        self.views[(a, b)] = PairView(res["X11"], res["C11"], res["X21"], res["C21"], res.get("F1"))
        self.views[(b, a)] = PairView(res["X22"], res["C22"], res["X12"], res["C12"], res.get("F2"))
        self.matches[(a, b)] = matches
        self.matches[(b, a)] = matches.swapped()
        self.scores[(a, b)] = self.scores[(b, a)] = score

    def to(self, device: torch.device | str) -> "SparsePairs":
        """A copy with every tensor on ``device``."""
        def mv(t):
            return None if t is None else t.to(device)
        out = SparsePairs(self.n_images, self.height, self.width, list(self.pairs), scores=dict(self.scores))
        out.views = {k: PairView(*(mv(getattr(v, f)) for f in ("pts_self", "conf_self", "pts_other", "conf_other",
                                                                "feat_self"))) for k, v in self.views.items()}
        out.matches = {k: Matches(m.xy1.to(device), m.xy2.to(device), m.conf.to(device))
                       for k, m in self.matches.items()}
        return out

    def match_counts(self) -> dict[tuple[int, int], int]:
        """Number of matches of each unordered pair, keyed by its first orientation in ``pairs``."""
        out: dict[tuple[int, int], int] = {}
        for a, b in self.pairs:
            if (b, a) not in out:
                out[(a, b)] = len(self.matches[(a, b)])
        return out

    def features(self) -> torch.Tensor:
        """[N, H/16, W/16, C]: each image's own encoder output (the last pair it appears in, in pair order)."""
        feats: dict[int, torch.Tensor] = {}
        for a, b in self.pairs:
            feats[a] = self.views[(a, b)].feat_self
            feats[b] = self.views[(b, a)].feat_self
        if len(feats) != self.n_images or any(f is None for f in feats.values()):
            raise SparseAlignmentError("sparse alignment: some images have no encoder features")
        return torch.stack([feats[k] for k in range(self.n_images)])


PAIR_KEYS = ("X11", "C11", "X21", "C21", "X22", "C22", "X12", "C12", "F1", "F2")


def match_pair(res11: dict, res21: dict, res22: dict, res12: dict, cfg: SparseGAConfig = SparseGAConfig()
               ) -> tuple[Matches, tuple[float, float, int]]:
    """Matches and matching score of a pair from the four head outputs (dicts with desc, desc_conf, conf)."""
    m = extract_correspondences(res11["desc"], res21["desc"], res22["desc"], res12["desc"], res11["desc_conf"],
                                res21["desc_conf"], res22["desc_conf"], res12["desc_conf"], cfg)
    return m, matching_score(res11["conf"], res12["conf"], res21["conf"], res22["conf"], m)


def _check_images(imgs: list[torch.Tensor], subsample: int) -> tuple[int, int]:
    shapes = {tuple(im.shape[-2:]) for im in imgs}
    if len(shapes) != 1:
        raise SparseAlignmentError(f"sparse alignment needs all images at one size, got {sorted(shapes)}")
    h, w = shapes.pop()
    if h % subsample or w % subsample:
        raise SparseAlignmentError(f"sparse alignment: image size {w}x{h} is not a multiple of {subsample}")
    return h, w


def _head(pred: dict, k: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Edge k's matching inputs, back on the device the network ran on (matching runs there)."""
    return {name: pred[name][k].to(device) for name in ("desc", "desc_conf", "conf")}


@torch.no_grad()
def infer_pairs(model, imgs: list[torch.Tensor], pairs: list[tuple[int, int]],
                cfg: SparseGAConfig = SparseGAConfig(), cache: PairCache | None = None, batch_size: int = 1,
                device: torch.device | str | None = None, autocast: torch.dtype | None = None,
                progress: bool = True) -> SparsePairs:
    """Run MASt3R on every pair of ``pairs`` (ordered, both orientations expected) and match it.

    imgs: N tensors [1, 3, H, W] (or [3, H, W]) in [-1, 1], all the same size. Results live on the CPU.
    """
    from feat2gs.init.dust3r.pairs import run_pairs

    if not getattr(getattr(model, "cfg", None), "has_desc", False):
        raise SparseAlignmentError("sparse alignment needs MASt3R (a network with descriptor heads)")
    imgs = [im if im.ndim == 4 else im[None] for im in imgs]
    h, w = _check_images(imgs, cfg.subsample)
    n = len(imgs)
    out = SparsePairs(n, h, w, [(int(a), int(b)) for a, b in pairs])
    todo = []
    for a, b in out.pairs:
        if a == b or not (0 <= a < n and 0 <= b < n):
            raise SparseAlignmentError(f"sparse alignment: bad pair {(a, b)} for {n} images")
        if (a, b) not in todo and (b, a) not in todo:
            todo.append((a, b))
    keys = {"pts3d", "pts3d_in_other_view", "conf", "desc", "desc_conf"}
    run_device = torch.device(device) if device is not None else next(model.parameters()).device
    for a, b in tqdm(todo, desc="mast3r pairs", disable=not progress, mininterval=0.5):
        key = cache.key(imgs[a], imgs[b]) if cache is not None else None
        stored = cache.load(key) if key is not None else None
        if stored is None:
            pred = run_pairs(model, [imgs[a], imgs[b]], [(0, 1), (1, 0)], batch_size=batch_size, device=device,
                             autocast=autocast, progress=False, keys=keys)
            p1, p2 = pred.pred1, pred.pred2
            matches, score = match_pair(_head(p1, 0, run_device), _head(p2, 0, run_device),
                                        _head(p1, 1, run_device), _head(p2, 1, run_device), cfg)
            matches = Matches(matches.xy1.cpu(), matches.xy2.cpu(), matches.conf.cpu())
            stored = {"X11": p1["pts3d"][0], "C11": p1["conf"][0], "X21": p2["pts3d_in_other_view"][0],
                      "C21": p2["conf"][0], "X22": p1["pts3d"][1], "C22": p1["conf"][1],
                      "X12": p2["pts3d_in_other_view"][1], "C12": p2["conf"][1], "F1": pred.encoder_features[0],
                      "F2": pred.encoder_features[1], "xy1": matches.xy1, "xy2": matches.xy2, "conf": matches.conf,
                      "score": torch.tensor(score[:2], dtype=torch.float64)}
            if key is not None:
                cache.save(key, stored)
        matches = Matches(stored["xy1"].long(), stored["xy2"].long(), stored["conf"])
        score = (float(stored["score"][0]), float(stored["score"][1]), len(matches))
        out.add(a, b, stored, matches, score)
    return out
