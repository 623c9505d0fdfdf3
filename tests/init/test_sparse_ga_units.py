"""Unit tests of the sparse alignment's parts that the official fixture does not reach: the blocked NN search,
the duplicate-aware Adam, the pair cache, TSDF refinement, known focal, device handling and input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from feat2gs.errors import Feat2GSError
from feat2gs.init.sparse.cache import PairCache, weights_fingerprint
from feat2gs.init.sparse.graph import pairwise_scores, spanning_tree
from feat2gs.init.sparse.matching import nearest_neighbours, reciprocal_nn
from feat2gs.init.sparse.optimize import ListAdam
from feat2gs.init.sparse.pairs import PairView, SparsePairs, infer_pairs
from feat2gs.init.sparse.readout import backproject, tsdf_refine
from feat2gs.init.sparse.settings import SparseAlignmentError, SparseGAConfig

from tests.init._fixtures import FIXTURES as DUST3R_FIXTURES


def test_blocked_nearest_neighbours_equal_the_direct_search():
    g = torch.Generator().manual_seed(0)
    db = torch.nn.functional.normalize(torch.randn(1000, 8, generator=g), dim=-1)
    q = torch.nn.functional.normalize(torch.randn(300, 8, generator=g), dim=-1)
    direct = nearest_neighbours(db, q)
    blocked = nearest_neighbours(db, q, block_size=64, direct_limit=0)
    assert torch.equal(direct, blocked)
    # ties keep the lowest index across blocks, as within a block
    dup = torch.cat([db, db])
    assert torch.equal(nearest_neighbours(dup, q, block_size=700, direct_limit=0), direct)


def test_neighbour_memo_searches_each_pixel_once(monkeypatch):
    import feat2gs.init.sparse.matching as matching

    g = torch.Generator().manual_seed(2)
    src = torch.nn.functional.normalize(torch.randn(200, 8, generator=g), dim=-1)
    dst = torch.nn.functional.normalize(torch.randn(300, 8, generator=g), dim=-1)
    searched = []
    real = matching.nearest_neighbours
    monkeypatch.setattr(matching, "nearest_neighbours", lambda db, q, *a: searched.append(len(q)) or real(db, q, *a))
    memo = matching.NeighbourMemo(src, dst)
    first = memo(torch.tensor([5, 7, 5, 9]))
    again = memo(torch.tensor([9, 7, 11]))
    assert searched == [3, 1]  # 5, 7, 9 then only 11
    assert torch.equal(first, real(dst, src[[5, 7, 5, 9]])) and torch.equal(again, real(dst, src[[9, 7, 11]]))


def test_reciprocal_matches_of_a_shifted_descriptor_map():
    """Image 2 is image 1 shifted by (3, 2) px: every converged match must be that shift."""
    g = torch.Generator().manual_seed(1)
    big = torch.nn.functional.normalize(torch.randn(40, 50, 16, generator=g), dim=-1)
    d1, d2 = big[:32, :40], big[2:34, 3:43]
    i1, i2 = reciprocal_nn(d1, d2)
    assert len(i1) > 0
    x1, y1, x2, y2 = i1 % 40, i1 // 40, i2 % 40, i2 // 40
    assert torch.equal(x1 - x2, torch.full_like(x1, 3)) and torch.equal(y1 - y2, torch.full_like(y1, 2))


def test_list_adam_equals_torch_adam_and_repeats_shared_tensors():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, generator=g, dtype=torch.float64)
    b = a.clone()
    ref = torch.optim.Adam([b], lr=0.1, betas=(0.9, 0.9), foreach=False)
    ours = ListAdam([a], betas=(0.9, 0.9))
    for t in range(20):
        grad = torch.randn(5, generator=g, dtype=torch.float64)
        a.grad, b.grad = grad.clone(), grad.clone()
        ours.step(0.1 * (t + 1) / 20)
        for group in ref.param_groups:
            group["lr"] = 0.1 * (t + 1) / 20
        ref.step()
    assert torch.allclose(a, b, rtol=1e-12, atol=0)
    # a tensor listed 3 times takes 3 updates per step with the same gradient
    shared = torch.zeros(2, dtype=torch.float64)
    once = torch.zeros(2, dtype=torch.float64)
    triple, single = ListAdam([shared] * 3), ListAdam([once])
    for _ in range(2):
        shared.grad = once.grad = torch.tensor([1.0, -2.0], dtype=torch.float64)
        triple.step(0.1)
        for _ in range(3):
            single.step(0.1)
    assert torch.equal(shared, once) and triple.steps(shared) == 6


def test_spanning_tree_of_a_disconnected_graph_is_an_error():
    scores = pairwise_scores(3, {(1, 0): 10, (2, 0): 0, (2, 1): 0})
    with pytest.raises(SparseAlignmentError, match="disconnected.*images \\[2\\]"):
        spanning_tree(scores)
    assert issubclass(SparseAlignmentError, Feat2GSError)


def test_two_images_make_a_one_edge_tree():
    tree = spanning_tree(pairwise_scores(2, {(1, 0): 5}))
    assert tree.root in (0, 1) and len(tree.edges) == 1


requires_tiny = pytest.mark.skipif(not (DUST3R_FIXTURES / "mast3r_tiny_config.json").is_file(),
                                   reason=f"tiny MASt3R config not found in {DUST3R_FIXTURES}")


def _tiny(kind: str = "mast3r"):
    """The fixtures' tiny architecture with fresh random weights."""
    from feat2gs.init.dust3r import Dust3rNet

    from tests.init.test_dust3r_network import tiny_config

    return Dust3rNet(tiny_config(kind)).eval()


class _Counting(torch.nn.Module):
    """Wraps a network and counts forward calls."""

    def __init__(self, net):
        super().__init__()
        self.net, self.cfg, self.calls = net, net.cfg, 0

    def forward(self, *args, **kwargs):
        self.calls += 1
        return self.net(*args, **kwargs)

    def encoder_features(self, *args, **kwargs):
        return self.net.encoder_features(*args, **kwargs)


def _images(n=3, h=32, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, 3, h, w, generator=g) * 2 - 1 for _ in range(n)]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return _tiny()


@requires_tiny
def test_pair_cache_is_reused_and_keyed_by_images_and_weights(tiny, tmp_path):
    from feat2gs.init.dust3r import make_pairs_complete
    from feat2gs.init.sparse.api import cache_context

    imgs, pairs, cfg = _images(), make_pairs_complete(3), SparseGAConfig()
    net = _Counting(tiny)
    cache = PairCache(tmp_path / "cache", cache_context(tiny, None, cfg))
    first = infer_pairs(net, imgs, pairs, cfg, cache, progress=False)
    assert net.calls == 3 * 2  # each unordered pair runs both passes once
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 3
    assert not list((tmp_path / "cache").glob(".*"))  # atomic writes leave no temporary file
    again = infer_pairs(net, imgs, pairs, cfg, cache, progress=False)
    assert net.calls == 6  # all three pairs served from the cache
    for k, v in first.views.items():
        assert torch.equal(v.pts_self, again.views[k].pts_self) and torch.equal(v.feat_self, again.views[k].feat_self)
    for k, m in first.matches.items():
        assert torch.equal(m.xy1, again.matches[k].xy1) and torch.equal(m.conf, again.matches[k].conf)
    # another image -> two pairs recomputed; other weights -> another key for every pair
    imgs2 = imgs[:2] + _images(1, seed=5)
    infer_pairs(net, imgs2, pairs, cfg, cache, progress=False)
    assert net.calls == 6 + 4
    other = _tiny()
    assert weights_fingerprint(other) != weights_fingerprint(tiny)
    assert PairCache(None, cache_context(other, None, cfg)).key(*imgs[:2]) != cache.key(*imgs[:2])
    # a corrupt entry is a miss, recomputed and rewritten
    victim = next((tmp_path / "cache").glob("*.safetensors"))
    victim.write_bytes(b"garbage")
    infer_pairs(net, imgs, pairs, cfg, cache, progress=False)
    assert net.calls == 10 + 2 and victim.stat().st_size > 100
    # a flipped bit that still parses is caught by the entry's digest
    data = bytearray(victim.read_bytes())
    data[-3] ^= 0x10
    victim.write_bytes(bytes(data))
    infer_pairs(net, imgs, pairs, cfg, cache, progress=False)
    assert net.calls == 12 + 2


@requires_tiny
def test_infer_pairs_rejects_bad_inputs(tiny):
    with pytest.raises(SparseAlignmentError, match="one size"):
        infer_pairs(tiny, [torch.zeros(1, 3, 32, 48), torch.zeros(1, 3, 48, 32)], [(1, 0), (0, 1)], progress=False)
    with pytest.raises(SparseAlignmentError, match="multiple of 8"):
        infer_pairs(tiny, [torch.zeros(1, 3, 36, 48)] * 2, [(1, 0), (0, 1)], progress=False)
    with pytest.raises(SparseAlignmentError, match="bad pair"):
        infer_pairs(tiny, _images(2), [(1, 1)], progress=False)
    with pytest.raises(SparseAlignmentError, match="MASt3R"):
        infer_pairs(_tiny("dust3r"), _images(2), [(1, 0), (0, 1)], progress=False)


def _planar_scene(n=3, h=32, w=48, f=40.0):
    """Three cameras looking at a plane z = 3, pairwise views built from the true geometry (consistent)."""
    c2w = torch.eye(4).repeat(n, 1, 1)
    for k in range(n):
        c2w[k, 0, 3] = 0.3 * k
    depth = torch.full((n, h, w), 3.0)
    K = torch.tensor([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]]).repeat(n, 1, 1)
    return depth, K, c2w


def test_tsdf_refinement_is_seeded_and_pulls_depths_to_the_surface():
    depth, K, c2w = _planar_scene()
    conf = torch.ones_like(depth)
    noisy = depth.clone()
    noisy[0] += 0.05 * torch.randn(depth.shape[1:], generator=torch.Generator().manual_seed(3))
    out1 = tsdf_refine(noisy, K, c2w, conf, thresh=0.1, samples=64, seed=7, progress=False)
    out2 = tsdf_refine(noisy, K, c2w, conf, thresh=0.1, samples=64, seed=7, progress=False)
    assert torch.equal(out1, out2)  # seeded: reproducible
    centre = (slice(8, 24), slice(8, 40))
    assert (out1[0][centre] - 3).abs().mean() < 0.5 * (noisy[0][centre] - 3).abs().mean()
    pts = backproject(out1, K, c2w)
    assert torch.isfinite(pts).all() and pts.shape == (3, 32, 48, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tsdf_refinement_is_the_same_on_cuda():
    depth, K, c2w = _planar_scene()
    noisy = depth + 0.05 * torch.randn(depth.shape, generator=torch.Generator().manual_seed(3))
    conf = torch.ones_like(depth)
    cpu = tsdf_refine(noisy, K, c2w, conf, 0.1, 64, seed=7, progress=False)
    gpu = tsdf_refine(noisy.cuda(), K.cuda(), c2w.cuda(), conf.cuda(), 0.1, 64, seed=7, progress=False)
    assert (gpu.cpu() - cpu).abs().max() < 1e-3


def _consistent_pairs(n=3, h=32, w=48, f=40.0) -> SparsePairs:
    """Pairwise predictions of the plane z = 3 seen by 3 cameras translated along x, exact (no network), with
    matches from the true geometry; confidences 1 + e."""
    from feat2gs.init.sparse.matching import Matches

    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    centres = [torch.tensor([0.25 * k, 0.0, 0.0]) for k in range(n)]
    depth = torch.full((h, w), 3.0)
    cams = [torch.stack([(u - w / 2) / f * depth, (v - h / 2) / f * depth, depth], -1) for _ in range(n)]
    world = [c + centres[k] for k, c in enumerate(cams)]
    conf = torch.full((h, w), 1 + math.e)
    pairs = [(i, j) for i in range(n) for j in range(i)]
    sp = SparsePairs(n, h, w, pairs + [(j, i) for i, j in pairs])
    for a, b in pairs:
        in_a = world[b] - centres[a]  # b's points in a's frame (no rotation)
        in_b = world[a] - centres[b]
        # matches: pixels of a on the seed-like grid and where their points land in b
        ys, xs = torch.meshgrid(torch.arange(4, h, 6), torch.arange(4, w, 6), indexing="ij")
        p = world[a][ys.reshape(-1), xs.reshape(-1)] - centres[b]
        xb = (p[:, 0] / p[:, 2] * f + w / 2).round().long()
        yb = (p[:, 1] / p[:, 2] * f + h / 2).round().long()
        ok = (xb >= 0) & (xb < w) & (yb >= 0) & (yb < h)
        m = Matches(torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)[ok], torch.stack([xb, yb], -1)[ok],
                    torch.full((int(ok.sum()),), 10.0))
        sp.views[(a, b)] = PairView(cams[a], conf, in_a, conf, torch.zeros(2, 3, 4))
        sp.views[(b, a)] = PairView(cams[b], conf, in_b, conf, torch.zeros(2, 3, 4))
        sp.matches[(a, b)], sp.matches[(b, a)] = m, m.swapped()
        sp.scores[(a, b)] = sp.scores[(b, a)] = (1.0, float(m.conf.sum()), len(m))
    return sp


def test_known_focal_is_kept_and_consistent_pairs_align():
    from feat2gs.init.sparse import sparse_align

    sp = _consistent_pairs()
    cfg = SparseGAConfig()
    res = sparse_align(sp, cfg, known_focal=40.0, progress=False)
    assert torch.allclose(res.focals, torch.full((3,), 40.0))
    assert torch.allclose(res.pp, torch.tensor([[24.0, 16.0]] * 3))  # frozen at the centre
    assert res.pairs_with_matches  # confidences 10 > 5: the matching losses run
    centres = res.c2w[:, :3, 3].double().numpy()
    d01, d12 = np.linalg.norm(centres[1] - centres[0]), np.linalg.norm(centres[2] - centres[1])
    assert abs(d01 / d12 - 1) < 0.02  # equally spaced cameras stay equally spaced (up to scale)
    assert res.loss_trace1[-1] < 0.1 * res.loss_trace1[0]  # matches rounded to pixels: a small residual stays
    assert res.masks.float().mean() > 0.5 and torch.isfinite(res.pts3d).all()
    with pytest.raises(SparseAlignmentError, match="known_focal"):
        sparse_align(sp, cfg, known_focal=-1.0, progress=False)


def test_bad_confidences_are_rejected():
    from feat2gs.init.sparse import sparse_align

    sp = _consistent_pairs()
    view = sp.views[(1, 0)]
    sp.views[(1, 0)] = PairView(view.pts_self, torch.full_like(view.conf_self, 0.5), view.pts_other,
                                view.conf_other, view.feat_self)
    with pytest.raises(SparseAlignmentError, match="confidences"):
        sparse_align(sp, SparseGAConfig(niter1=2, niter2=2), progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_alignment_runs_on_cuda_like_on_cpu():
    from feat2gs.init.sparse import sparse_align

    sp = _consistent_pairs()
    cfg = SparseGAConfig(niter1=30, niter2=10)
    cpu = sparse_align(sp, cfg, progress=False)
    gpu = sparse_align(sp, cfg, device="cuda", progress=False)
    assert abs(gpu.loss_trace1[0] - cpu.loss_trace1[0]) <= 1e-5 * abs(cpu.loss_trace1[0])
    assert (gpu.focals - cpu.focals).abs().max() <= 1e-2 * cpu.focals.abs().max()


def test_degenerate_anchors_take_the_anchor_depth():
    """The reference asserts canon2 > 0 at every anchor; we give a degenerate block's pixels offset 1 instead."""
    from feat2gs.init.sparse.canonical import anchor_offsets, degenerate_anchors

    canon2 = 1 + 0.1 * torch.rand(16, 16, generator=torch.Generator().manual_seed(0))
    xy = torch.stack(torch.meshgrid(torch.arange(16), torch.arange(16), indexing="xy"), -1).reshape(-1, 2)
    idx, good = anchor_offsets(canon2, xy)
    assert not degenerate_anchors(canon2).any()
    canon2[4, 12] = -0.5  # the anchor of block (0, 1)
    assert degenerate_anchors(canon2).tolist() == [False, True, False, False]
    idx2, offset = anchor_offsets(canon2, xy)
    assert torch.equal(idx, idx2)
    assert torch.equal(offset[idx == 1], torch.ones(64)) and torch.equal(offset[idx != 1], good[idx != 1])


def test_pointmaps_behind_the_camera_do_not_stop_the_alignment():
    """Random weights can put pixels behind the camera; the run completes with finite cameras and points."""
    from feat2gs.init.sparse import sparse_align

    sp = _consistent_pairs()
    for (u, v), view in list(sp.views.items()):
        if u == 0:
            pts = view.pts_self.clone()
            pts[:8, :8, 2] = torch.linspace(-1e-9, 2e-9, 64).reshape(8, 8)  # around z = 0 near anchor (4, 4)
            sp.views[(u, v)] = PairView(pts, view.conf_self, view.pts_other, view.conf_other, view.feat_self)
    res = sparse_align(sp, SparseGAConfig(niter1=20, niter2=10), progress=False)
    assert torch.isfinite(res.c2w).all() and torch.isfinite(res.pts3d).all() and torch.isfinite(res.focals).all()
