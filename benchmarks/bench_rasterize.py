"""Time feat2gs.render.rasterize, forward and forward+backward, per backend and Gaussian count.

    python benchmarks/bench_rasterize.py                                   # CUDA: torch and gsplat, 100k and 600k
    python benchmarks/bench_rasterize.py --backend gsplat --gaussians 100000 600000 1000000 --json raster.json
    python benchmarks/bench_rasterize.py --device cpu --backend torch --gaussians 2000 --width 64 --height 48

The scene is the random one of bench_render_cpu.py (Gaussians of 2..4 px radius filling the frustum, SH degree
3); 600k is about the protocol's count (one Gaussian per pixel of three 512x384 views). The backward pass
includes the camera-pose gradient, as in training. The first call (gsplat compiles its CUDA kernels on first
use) is timed separately and not part of the statistics. Peak memory is torch.cuda.max_memory_allocated
during the timed calls on CUDA (scene included), the process's peak RSS so far on CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # feat2gs and benchmarks._common from the checkout

from benchmarks._common import device_name, random_scene, sync, timed
from feat2gs.render import RenderSettings, has_gsplat, rasterize
from feat2gs.render.api import GSPLAT_INSTALL_HINT
from feat2gs.runinfo import peak_memory_mb, resolve_device, versions


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto", help="auto: CUDA when available")
    ap.add_argument("--backend", choices=["torch", "gsplat", "both"], default="both")
    ap.add_argument("--gaussians", type=int, nargs="+", default=[100_000, 600_000])
    ap.add_argument("--width", type=int, default=512, help="image width (default 512: the protocol's long side)")
    ap.add_argument("--height", type=int, default=384)
    ap.add_argument("--render-mode", choices=["RGB", "ED", "RGB+ED"], default="RGB", help="training renders RGB")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3, help="untimed forward+backward calls after the first one")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    return ap.parse_args()


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is visible to torch (torch.cuda.is_available() is False)")
    return resolve_device(name)


def usable_backends(requested: str, device: torch.device) -> list[str]:
    """The requested backends that can run here; says why gsplat is left out instead of failing inside it."""
    wanted = ["torch", "gsplat"] if requested == "both" else [requested]
    if "gsplat" in wanted and device.type != "cuda":
        print("gsplat skipped: the gsplat backend needs a CUDA device (this run is on the CPU); "
              "use --backend torch on CPU", file=sys.stderr)
        wanted.remove("gsplat")
    elif "gsplat" in wanted and not has_gsplat():
        print(f"gsplat skipped: gsplat is not importable; {GSPLAT_INSTALL_HINT}", file=sys.stderr)
        wanted.remove("gsplat")
    if not wanted:
        sys.exit("nothing to run: no requested backend is usable on this machine")
    return wanted


def spread(times: list[float]) -> dict[str, float]:
    """Median and interquartile range in milliseconds (quartiles need at least two samples)."""
    q1, q2, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else (times[0],) * 3
    return {"median_ms": 1e3 * q2, "iqr_ms": 1e3 * (q3 - q1)}


def bench_one(backend: str, n: int, args: argparse.Namespace, device: torch.device) -> dict:
    """Time one (backend, Gaussian count) configuration on a fresh scene."""
    gaussians, viewmat, K = random_scene(n, args.width, args.height, device)
    viewmat.requires_grad_()
    leaves = [*vars(gaussians).values(), viewmat]
    settings = RenderSettings(render_mode=args.render_mode)

    def render():
        return rasterize(gaussians, viewmat, K, args.width, args.height, settings, backend=backend)

    def forward() -> None:
        with torch.no_grad():
            render()

    def forward_backward() -> None:
        for t in leaves:
            t.grad = None
        out = render()
        sum(x.sum() for x in (out.image, out.depth) if x is not None).backward()

    first = timed(forward_backward, 1, device)[0]
    timed(forward_backward, args.warmup, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    fwd = timed(forward, args.repeats, device)
    fwd_bwd = timed(forward_backward, args.repeats, device)
    with torch.no_grad():
        visible = int((render().radii > 0).sum())
    return {"backend": backend, "gaussians": n, "visible": visible, "first_call_ms": 1e3 * first,
            "forward": spread(fwd), "forward_backward": spread(fwd_bwd), "peak_mib": peak_memory_mb(device)}


def run_one(backend: str, n: int, args: argparse.Namespace, device: torch.device) -> dict:
    """bench_one, with a CUDA out-of-memory turned into a result row so that the other sizes still run."""
    try:
        return bench_one(backend, n, args, device)
    except torch.cuda.OutOfMemoryError:
        return {"backend": backend, "gaussians": n, "error": "CUDA out of memory"}
    finally:
        if device.type == "cuda":
            sync(device)
            torch.cuda.empty_cache()


def print_table(rows: list[dict], header: str) -> None:
    print(header)
    print(f"{'backend':<8} {'Gaussians':>10} {'visible':>10} {'fwd median':>11} {'fwd IQR':>9} "
          f"{'fwd+bwd med':>12} {'fwd+bwd IQR':>12} {'first call':>11} {'peak MiB':>9}")
    for r in rows:
        if "error" in r:
            print(f"{r['backend']:<8} {r['gaussians']:>10} {r['error']}")
            continue
        print(f"{r['backend']:<8} {r['gaussians']:>10} {r['visible']:>10} {r['forward']['median_ms']:>8.2f} ms "
              f"{r['forward']['iqr_ms']:>6.2f} ms {r['forward_backward']['median_ms']:>9.2f} ms "
              f"{r['forward_backward']['iqr_ms']:>9.2f} ms {r['first_call_ms']:>8.1f} ms {r['peak_mib']:>9.0f}")


def main() -> None:
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    backends = usable_backends(args.backend, device)
    env = {"device": device_name(device), "device_type": device.type, "threads": torch.get_num_threads(),
           "versions": versions(), "width": args.width, "height": args.height, "render_mode": args.render_mode,
           "repeats": args.repeats, "peak_memory": "max_memory_allocated" if device.type == "cuda" else "peak RSS"}
    rows = []
    for backend in backends:
        for n in args.gaussians:
            t0 = time.perf_counter()
            rows.append(run_one(backend, n, args, device))
            print(f"  {backend} {n}: done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    gsplat_version = env["versions"].get("gsplat", "not installed")
    print_table(rows, f"rasterize on {env['device']} ({device.type}, {env['threads']} CPU threads), "
                      f"{args.width}x{args.height} {args.render_mode}, SH degree 3, {args.repeats} repeats; "
                      f"torch {torch.__version__}, gsplat {gsplat_version}; peak = {env['peak_memory']}")
    if args.json:
        args.json.write_text(json.dumps({**env, "results": rows}, indent=2) + "\n")
        print(f"written: {args.json}")


if __name__ == "__main__":
    main()
