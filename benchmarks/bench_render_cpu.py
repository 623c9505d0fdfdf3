"""Time the plain-PyTorch rasteriser: forward and forward+backward on a random scene in front of the camera.

    python benchmarks/bench_render_cpu.py --threads 2 --gaussians 10000 --width 128 --height 96
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # feat2gs and benchmarks._common from the checkout

from benchmarks._common import random_scene, timed
from feat2gs.render import RenderSettings, rasterize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gaussians", type=int, default=10_000)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    gaussians, viewmat, K = random_scene(args.gaussians, args.width, args.height, device)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    settings = RenderSettings(render_mode="RGB+ED")

    def forward():
        with torch.no_grad():
            rasterize(gaussians, viewmat, K, args.width, args.height, settings, backend="torch")

    def forward_backward():
        out = rasterize(gaussians, viewmat, K, args.width, args.height, settings, backend="torch")
        (out.image.sum() + out.depth.sum()).backward()

    timed(forward_backward, args.warmup, device)
    fwd = timed(forward, args.repeats, device)
    fwd_bwd = timed(forward_backward, args.repeats, device)

    out = rasterize(gaussians, viewmat, K, args.width, args.height, settings, backend="torch")
    visible = int((out.radii > 0).sum())
    print(f"{args.gaussians} Gaussians ({visible} visible), {args.width}x{args.height}, RGB+ED, SH degree 3, "
          f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, times in (("forward", fwd), ("forward+backward", fwd_bwd)):
        p90 = statistics.quantiles(times, n=10)[-1] if len(times) > 1 else times[0]
        print(f"{name:>17}: median {1e3 * statistics.median(times):7.1f} ms   p90 {1e3 * p90:7.1f} ms")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MiB ({rss_before:.0f} MiB before rendering: torch and the scene)")


if __name__ == "__main__":
    main()
