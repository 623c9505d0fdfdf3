"""Time DUSt3R's dense global alignment (feat2gs.init.align): seconds per ``niter`` Adam iterations.

Synthetic pairwise inputs: N cameras around a smooth surface, the complete symmetric pair graph (N·(N-1) edges),
pairwise pointmaps = per-pair scale · (true points in the first view's frame + noise), DUSt3R-like confidences.

    python benchmarks/bench_global_alignment.py --n-images 3 --width 512 --height 384 --threads 2
    python benchmarks/bench_global_alignment.py --n-images 3 --width 64 --height 48
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from benchmarks._common import orbit_views  # noqa: E402
from feat2gs.init.align import DenseAligner, minimum_spanning_tree_init  # noqa: E402


def synthetic_pairs(n: int, height: int, width: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    _, c2w, pts_world = orbit_views(n, height, width, g, spacing=0.8, jitter=0.1, depth_noise=0.05)
    edges = [(i, j) for i in range(n) for j in range(n) if i != j]
    p1, p2, c1, c2 = [], [], [], []
    for i, j in edges:
        w2c_i = torch.linalg.inv(c2w[i])
        s = math.exp(0.3 * torch.randn(1, generator=g).item())
        noise = lambda: 0.005 * torch.randn(height, width, 3, generator=g, dtype=torch.float64)  # noqa: E731
        p1.append(s * (pts_world[i] @ w2c_i[:3, :3].T + w2c_i[:3, 3] + noise()))
        p2.append(s * (pts_world[j] @ w2c_i[:3, :3].T + w2c_i[:3, 3] + noise()))
        c1.append(1 + torch.exp(1.2 + 0.3 * torch.randn(height, width, generator=g)))
        c2.append(1 + torch.exp(1.0 + 0.3 * torch.randn(height, width, generator=g)))
    return edges, torch.stack(p1).float(), torch.stack(p2).float(), torch.stack(c1), torch.stack(c2)


def bench(device: str, n: int, height: int, width: int, niter: int, repeats: int) -> dict:
    edges, p1, p2, c1, c2 = synthetic_pairs(n, height, width)
    times_init, times_loop = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        al = DenseAligner(edges, p1, p2, c1, c2, n, height, width, device=device)
        mst = minimum_spanning_tree_init(edges, al.pred_i.reshape(-1, height, width, 3),
                                         al.pred_j.reshape(-1, height, width, 3), al.conf_i, al.conf_j, al.im_conf)
        al.set_focals([sum(mst.focals) / n] * n)
        al.init_from_pts3d(mst.pts3d, mst.c2w, mst.focals)
        if device == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        with torch.enable_grad():
            trace = al.optimize(niter=niter, progress=False)
        if device == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        times_init.append(t1 - t0)
        times_loop.append(t2 - t1)
    return dict(device=device, n=n, size=f"{width}x{height}", edges=len(edges), init_s=min(times_init),
                loop_s=min(times_loop), loss=(trace[0], trace[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-images", type=int, default=3)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--height", type=int, default=384)
    ap.add_argument("--niter", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--devices", default="cpu,cuda", help="comma list; cuda is skipped when unavailable")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for device in args.devices.split(","):
        if device == "cuda" and not torch.cuda.is_available():
            print("cuda: not available, skipped")
            continue
        r = bench(device, args.n_images, args.height, args.width, args.niter, args.repeats)
        print(f"{r['device']:>4}  N={r['n']} {r['size']} ({r['edges']} edges, threads={args.threads}): "
              f"MST init {r['init_s']:.2f} s, {args.niter} iterations {r['loop_s']:.2f} s "
              f"({1000 * r['loop_s'] / args.niter:.1f} ms/it); loss {r['loss'][0]:.4g} -> {r['loss'][1]:.4g}")


if __name__ == "__main__":
    main()
