"""Pair scores and the kinematic tree of the sparse alignment (spec §5).

The score of a pair is its number of matches. The maximum-score spanning tree (scipy's minimum spanning tree of
the negated scores) is rooted at its most central node: walk breadth-first from node 0 to the farthest node a,
from a to the farthest node b, and take the node maximising min(rank from a, rank from b) (first on ties).
The edges (parent, child) come in breadth-first order from that root, so parents precede children.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

from feat2gs.init.sparse.settings import SparseAlignmentError


@dataclass
class KinematicTree:
    root: int
    edges: list[tuple[int, int]]  # (parent, child), parents before children


def pairwise_scores(n_images: int, counts: dict[tuple[int, int], int]) -> np.ndarray:
    """[N, N] symmetric matrix of match counts from {(i, j): count}."""
    scores = np.zeros((n_images, n_images), dtype=np.float32)
    for (i, j), n in counts.items():
        scores[i, j] = scores[j, i] = n
    return scores


def _bfs_rank(tree, start: int, n: int) -> np.ndarray:
    order = breadth_first_order(tree, start, directed=False, return_predecessors=False)
    rank = np.full(n, -1, dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def spanning_tree(scores: np.ndarray) -> KinematicTree:
    """Maximum-score spanning tree of the [N, N] pair scores, rooted at its most central node."""
    n = scores.shape[0]
    if n == 1:
        return KinematicTree(0, [])
    graph = sp.dok_array((n, n), dtype=np.float64)
    for i, j in zip(*np.nonzero(scores)):
        graph[int(i), int(j)] = -float(scores[i, j])
    tree = minimum_spanning_tree(graph.tocsr())
    if tree.nnz != n - 1:
        isolated = [k for k in range(n) if not scores[k].any()]
        hint = f" (images {isolated} have no match)" if isolated else ""
        raise SparseAlignmentError(f"sparse alignment: the pair graph is disconnected{hint}; the images do not "
                                   "overlap enough for MASt3R's matching (try --set init.mast3r_alignment=dense)")
    a = int(np.argmax(_bfs_rank(tree, 0, n)))
    rank_a = _bfs_rank(tree, a, n)
    b = int(np.argmax(rank_a))
    rank_b = _bfs_rank(tree, b, n)
    root = int(np.argmax(np.minimum(rank_a, rank_b)))
    order, pred = breadth_first_order(tree, root, directed=False, return_predecessors=True)
    return KinematicTree(root, [(int(pred[v]), int(v)) for v in order[1:]])
