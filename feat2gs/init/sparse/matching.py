"""Descriptor matching of one image pair: fast reciprocal nearest neighbours of MASt3R's descriptors.

Spec §4 (shared/spec/mast3r_sparse_ga.md):

* Seeds are the pixels (x, y) = (s/2 + s·i, s/2 + s·j) of image 1 (s = subsample = 8). Each round maps the active
  seeds to their nearest neighbour in image 2 (largest dot product), then back to image 1; an entry stops when a
  map no longer changes it. After ``max_iter`` rounds the entries that stopped are reciprocal pairs.
* A pair of images is matched four ways: descriptors of the two heads of pass 1-2 (``d11`` against ``d21``, both
  directions) and of pass 2-1 (``d12`` against ``d22``). The union is de-duplicated and sorted by
  (linear index in image 1, linear index in image 2); each match keeps the descriptor confidences of its *first*
  occurrence, and its confidence is sqrt(q1 · q2).

Pixel coordinates are integer (x, y) with x the column; linear index = x + W·y.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from feat2gs.init.sparse.settings import SparseAlignmentError, SparseGAConfig

QUERY_BLOCK_ELEMENTS = 2**21  # queries x db entries per score block of the chunked search (8 MB in float32)


@dataclass
class Matches:
    """Correspondences of an ordered pair (a, b): ``xy1`` [M, 2] int64 pixels in a, ``xy2`` [M, 2] in b,
    ``conf`` [M] float32; sorted by a's linear index, then b's (a reversed pair keeps the row order)."""

    xy1: torch.Tensor
    xy2: torch.Tensor
    conf: torch.Tensor

    def swapped(self) -> "Matches":
        return Matches(self.xy2, self.xy1, self.conf)

    def __len__(self) -> int:
        return int(self.xy1.shape[0])


def seed_indices(height: int, width: int, subsample: int, device=None) -> torch.Tensor:
    """Linear indices of the seed grid (offset subsample // 2, step subsample), sorted, int64."""
    y = torch.arange(subsample // 2, height, subsample, device=device)
    x = torch.arange(subsample // 2, width, subsample, device=device)
    return (x[None, :] + width * y[:, None]).reshape(-1).unique()


def nearest_neighbours(db: torch.Tensor, queries: torch.Tensor, block_size: int = 2**13,
                       direct_limit: int = 2**26) -> torch.Tensor:
    """Index in ``db`` [M, D] of the largest dot product with each query [K, D].

    When K·M exceeds ``direct_limit`` the db is scanned in chunks of ``block_size``; a later chunk replaces an answer
    only when strictly better, so ties keep the lowest index (as inside a chunk). Queries go in groups small
    enough for one score block to stay in cache (the answer does not depend on the grouping).
    """
    if queries.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=db.device)
    if queries.shape[0] * db.shape[0] <= direct_limit:
        return (queries @ db.T).argmax(dim=1)
    q_block = max(1, QUERY_BLOCK_ELEMENTS // block_size)
    best = torch.full((queries.shape[0],), -torch.inf, dtype=db.dtype, device=db.device)
    index = torch.zeros(queries.shape[0], dtype=torch.int64, device=db.device)
    for q0 in range(0, queries.shape[0], q_block):
        q = queries[q0:q0 + q_block]
        b, i = best[q0:q0 + q_block], index[q0:q0 + q_block]
        for d0 in range(0, db.shape[0], block_size):
            score, arg = (q @ db[d0:d0 + block_size].T).max(dim=1)
            better = score > b
            b.copy_(torch.where(better, score, b))
            i.copy_(torch.where(better, arg + d0, i))
    return index


class NeighbourMemo:
    """Nearest neighbour in ``dst`` [M, D] of pixels of ``src`` [K, D], each pixel searched once: the reciprocal
    iterations and the two directions of a matching query the same pixels again."""

    def __init__(self, src: torch.Tensor, dst: torch.Tensor, block_size: int = 2**13):
        self.src, self.dst, self.block_size = src, dst, block_size
        self.memo = torch.full((src.shape[0],), -1, dtype=torch.int64, device=src.device)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        need = pixels[self.memo[pixels] < 0].unique()
        if need.numel():
            self.memo[need] = nearest_neighbours(self.dst, self.src[need], self.block_size)
        return self.memo[pixels]


def unique_pairs(idx1: torch.Tensor, idx2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unique (idx1, idx2) pairs sorted by idx1 then idx2, and the position of each pair's first occurrence."""
    packed = idx1.to(torch.int64) * 2**32 + idx2.to(torch.int64)
    values, inverse = packed.unique(sorted=True, return_inverse=True)
    positions = torch.arange(packed.shape[0], device=packed.device)
    first = torch.full((values.shape[0],), packed.shape[0], dtype=torch.int64, device=packed.device)
    first = first.scatter_reduce(0, inverse, positions, reduce="amin")
    return values // 2**32, values % 2**32, first


def reciprocal_nn(desc1: torch.Tensor, desc2: torch.Tensor, subsample: int = 8, max_iter: int = 10,
                  block_size: int = 2**13, memo: tuple[NeighbourMemo, NeighbourMemo] | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Reciprocal nearest neighbours of descriptor maps desc1 [H1, W1, D] and desc2 [H2, W2, D], seeded on desc1's
    grid. Returns unique linear-index pairs (idx1, idx2), sorted by idx1 then idx2. ``memo`` = (1 -> 2, 2 -> 1)
    neighbour memos shared with other searches on the same two maps."""
    h1, w1 = desc1.shape[:2]
    p = desc1.reshape(-1, desc1.shape[-1])
    q = desc2.reshape(-1, desc2.shape[-1])
    to2, to1 = memo if memo is not None else (NeighbourMemo(p, q, block_size), NeighbourMemo(q, p, block_size))
    xy1 = seed_indices(h1, w1, subsample, device=p.device)
    xy2 = torch.full_like(xy1, -1)
    old1, old2 = xy1.clone(), xy2.clone()
    active = torch.ones_like(xy1, dtype=torch.bool)
    for it in range(max_iter):
        xy2[active] = to2(xy1[active])
        active &= old2 != xy2
        xy1[active] = to1(xy2[active])
        active &= old1 != xy1
        if it == max_iter - 1 or not bool(active.any()):
            break
        old1, old2 = xy1.clone(), xy2.clone()
    done = ~active
    idx1, idx2, _ = unique_pairs(xy1[done], xy2[done])
    return idx1, idx2


def _to_xy(idx: torch.Tensor, width: int) -> torch.Tensor:
    return torch.stack([idx % width, idx // width], dim=-1)


def extract_correspondences(desc11: torch.Tensor, desc21: torch.Tensor, desc22: torch.Tensor, desc12: torch.Tensor,
                            qconf11: torch.Tensor, qconf21: torch.Tensor, qconf22: torch.Tensor,
                            qconf12: torch.Tensor, cfg: SparseGAConfig = SparseGAConfig()) -> Matches:
    """Matches of the pair (1, 2) from the descriptors and descriptor confidences of the four head outputs.

    desc11 [H1, W1, D]: image 1 in pass 1-2 (head 1); desc21 [H2, W2, D]: image 2 in pass 1-2 (head 2);
    desc22: image 2 in pass 2-1 (head 1); desc12: image 1 in pass 2-1 (head 2). qconf* [H, W]: ``desc_conf``.
    """
    for name, d, q in (("11", desc11, qconf11), ("21", desc21, qconf21), ("22", desc22, qconf22),
                       ("12", desc12, qconf12)):
        if d.ndim != 3 or q.shape != d.shape[:2]:
            raise SparseAlignmentError(f"matching: desc{name} must be [H, W, D] with desc_conf [H, W], got "
                                       f"{tuple(d.shape)} and {tuple(q.shape)}")
    if desc11.shape != desc12.shape or desc21.shape != desc22.shape:
        raise SparseAlignmentError("matching: both passes must describe each image at the same size")
    w1, w2 = desc11.shape[1], desc21.shape[1]
    kw = dict(subsample=cfg.subsample, max_iter=cfg.nn_max_iter, block_size=cfg.nn_block_size)
    flat = [d.reshape(-1, d.shape[-1]) for d in (desc11, desc21, desc12, desc22)]
    a12, a21 = NeighbourMemo(flat[0], flat[1], cfg.nn_block_size), NeighbourMemo(flat[1], flat[0], cfg.nn_block_size)
    b12, b21 = NeighbourMemo(flat[2], flat[3], cfg.nn_block_size), NeighbourMemo(flat[3], flat[2], cfg.nn_block_size)
    a1, a2 = reciprocal_nn(desc11, desc21, **kw, memo=(a12, a21))
    b2, b1 = reciprocal_nn(desc21, desc11, **kw, memo=(a21, a12))
    c1, c2 = reciprocal_nn(desc12, desc22, **kw, memo=(b12, b21))
    d2, d1 = reciprocal_nn(desc22, desc12, **kw, memo=(b21, b12))
    idx1 = torch.cat([a1, b1, c1, d1])
    idx2 = torch.cat([a2, b2, c2, d2])
    q11, q21, q22, q12 = (q.reshape(-1) for q in (qconf11, qconf21, qconf22, qconf12))
    conf1 = torch.cat([q11[a1], q11[b1], q12[c1], q12[d1]])
    conf2 = torch.cat([q21[a2], q21[b2], q22[c2], q22[d2]])
    u1, u2, first = unique_pairs(idx1, idx2)
    conf = (conf1[first] * conf2[first]).sqrt()
    return Matches(_to_xy(u1, w1), _to_xy(u2, w2), conf)


def matching_score(conf11: torch.Tensor, conf12: torch.Tensor, conf21: torch.Tensor, conf22: torch.Tensor,
                   matches: Matches) -> tuple[float, float, int]:
    """(conf_score, sum of match confidences, number of matches); only the count is used by the alignment.
    conf_score = (mean C11 · mean C12 · mean C21 · mean C22)^(1/4) of the pointmap confidences."""
    means = [float(c.double().mean()) for c in (conf11, conf12, conf21, conf22)]
    conf_score = ((means[0] * means[1]) ** 0.5 * (means[2] * means[3]) ** 0.5) ** 0.5
    return conf_score, float(matches.conf.sum()), len(matches)
