"""Time MASt3R's sparse global alignment (feat2gs.init.sparse) at the protocol size: matching, canonical views,
the two optimisation stages (500 + 200 iterations) and the dense read-out.

Synthetic pair outputs stand in for the network: N cameras around a smooth surface, every head output = the true
points in the right frame (times a per-pass scale, plus noise), MASt3R-like confidences, and 24-d descriptors that
are a fixed random function of the world point (plus noise), so the reciprocal matcher finds true correspondences.
``--with-network`` also times the full-size MASt3R (random weights) on the same number of pairs.

    python benchmarks/bench_sparse_ga.py --n-images 3 --width 512 --height 384 --threads 2
    python benchmarks/bench_sparse_ga.py --devices cuda
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from benchmarks._common import device_name, orbit_views, sync  # noqa: E402
from feat2gs.init.sparse import SparseGAConfig, sparse_align  # noqa: E402
from feat2gs.init.sparse.pairs import SparsePairs, match_pair  # noqa: E402


def synthetic_outputs(n: int, height: int, width: int, seed: int = 0, desc_dim: int = 24):
    """{(a, b): (res11, res21, res22, res12)} for a > b, each a dict of pts3d/conf/desc/desc_conf/feat."""
    g = torch.Generator().manual_seed(seed)
    _, c2w, world = orbit_views(n, height, width, g, spacing=0.6)
    proj = torch.randn(3 * 16, desc_dim, generator=g, dtype=torch.float64)
    freqs = torch.randn(3, 3 * 16, generator=g, dtype=torch.float64) * 6

    def desc(pts):
        feat = torch.cat([torch.sin(pts @ freqs), torch.cos(pts @ freqs)], -1)[..., :3 * 16]
        d = feat @ proj + 0.05 * torch.randn(*pts.shape[:-1], desc_dim, generator=g, dtype=torch.float64)
        return torch.nn.functional.normalize(d, dim=-1).float()

    def head(k, frame, scale):
        w2c = torch.linalg.inv(c2w[frame])
        pts = scale * (world[k] @ w2c[:3, :3].T + w2c[:3, 3])
        pts = pts + 0.003 * torch.randn(pts.shape, generator=g, dtype=torch.float64)
        return {"pts3d": pts.float(), "conf": 1 + torch.exp(1.5 + 0.5 * torch.randn(height, width, generator=g)),
                "desc": desc(world[k]), "desc_conf": torch.exp(2 + 0.3 * torch.randn(height, width, generator=g)),
                "feat": torch.zeros(height // 16, width // 16, 8)}

    out = {}
    for a in range(n):
        for b in range(a):
            s1, s2 = (math.exp(0.2 * torch.randn(1, generator=g).item()) for _ in range(2))
            out[(a, b)] = (head(a, a, s1), head(b, a, s1), head(b, b, s2), head(a, b, s2))
    return out


def bench(device: str, n: int, height: int, width: int, with_network: bool) -> dict:
    outputs = synthetic_outputs(n, height, width)
    pairs = [(i, j) for i in range(n) for j in range(i)]
    pairs += [(j, i) for i, j in pairs]
    sp = SparsePairs(n, height, width, pairs)
    dev = torch.device(device)
    sync(dev)
    t0 = time.perf_counter()
    for (a, b), (r11, r21, r22, r12) in outputs.items():
        r11, r21, r22, r12 = ({k: t.to(dev) for k, t in r.items()} for r in (r11, r21, r22, r12))
        m, score = match_pair(r11, r21, r22, r12)
        sp.add(a, b, {"X11": r11["pts3d"], "C11": r11["conf"], "X21": r21["pts3d"], "C21": r21["conf"],
                      "X22": r22["pts3d"], "C22": r22["conf"], "X12": r12["pts3d"], "C12": r12["conf"],
                      "F1": r11["feat"], "F2": r22["feat"]}, m, score)
    sync(dev)
    timings = {"matching": time.perf_counter() - t0}
    t0 = time.perf_counter()
    res = sparse_align(sp, SparseGAConfig(), device=dev, progress=False)
    timings.update(res.timings)
    timings["alignment (all but matching)"] = time.perf_counter() - t0
    out = dict(device=device, name=device_name(dev), n=n, size=f"{width}x{height}", timings=timings,
               matches={ij: c for ij, c in res.n_matches.items()}, matched_pairs=len(res.pairs_with_matches),
               loss=(res.loss_trace1[0], res.loss_trace2[-1]))
    if with_network:
        from feat2gs.init.dust3r import load_dust3r, run_pairs

        model = load_dust3r(kind="mast3r", device=dev, random_weights=True).model
        imgs = [torch.rand(1, 3, height, width) * 2 - 1 for _ in range(2)]
        sync(dev)
        t0 = time.perf_counter()
        run_pairs(model, imgs, [(0, 1), (1, 0)], device=dev, progress=False)
        sync(dev)
        out["network per pair (2 passes)"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-images", type=int, default=3)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--height", type=int, default=384)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--devices", default="cpu,cuda", help="comma list; cuda is skipped when unavailable")
    ap.add_argument("--with-network", action="store_true", help="also time MASt3R (random weights) on one pair")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for device in args.devices.split(","):
        if device == "cuda" and not torch.cuda.is_available():
            print("cuda: not available, skipped")
            continue
        r = bench(device, args.n_images, args.height, args.width, args.with_network)
        t = r["timings"]
        print(f"{r['device']} ({r['name']}), N={r['n']} {r['size']}, threads={args.threads}: "
              f"matches {r['matches']}, {r['matched_pairs']} ordered pairs use their matches")
        for name in ("matching", "canonical", "optimise1", "optimise2", "readout", "alignment (all but matching)"):
            print(f"  {name:<30} {t[name]:8.2f} s")
        if "network per pair (2 passes)" in r:
            print(f"  {'network per pair (2 passes)':<30} {r['network per pair (2 passes)']:8.2f} s")
        print(f"  loss {r['loss'][0]:.4g} (start) -> {r['loss'][1]:.4g} (end of stage 2)")


if __name__ == "__main__":
    main()
