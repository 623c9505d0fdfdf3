"""Time the full-size DUSt3R / MASt3R network (random weights) on pairs of images: pairs per second.

    python benchmarks/bench_dust3r.py                                  # 512x384 (WxH), batch 1 and 2, CPU (+CUDA)
    python benchmarks/bench_dust3r.py --device cpu --size 128x96 --threads 2 --repeats 2
    python benchmarks/bench_dust3r.py --device cuda --kind mast3r --autocast bf16

On CPU the default 512x384 takes a while (tens of seconds per pair on 2 cores, plus ~10 s to build the 571M/689M
parameter model); use --size for a quicker look. The numbers are network forward time only (random weights give the
same cost as the real ones). Each result is printed as soon as it is measured.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from feat2gs.init.dust3r import load_dust3r

DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--size must be WxH, got {text!r}") from exc
    if w % 16 or h % 16:
        raise argparse.ArgumentTypeError(f"--size {text}: both sides must be multiples of 16")
    return w, h


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def bench(model, device: torch.device, size: tuple[int, int], batch: int, repeats: int, autocast) -> list[float]:
    w, h = size
    g = torch.Generator().manual_seed(0)
    views = []
    for _ in range(2):
        img = (torch.rand(batch, 3, h, w, generator=g) * 2 - 1).to(device)
        views.append({"img": img, "true_shape": torch.tensor([[h, w]] * batch, device=device)})
    model(views[0], views[1], autocast=autocast)  # warm-up (allocations, kernels)
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(views[0], views[1], autocast=autocast)
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", choices=["dust3r", "mast3r", "both"], default="dust3r")
    ap.add_argument("--device", choices=["cpu", "cuda", "all"], default="all",
                    help="'all' = CPU, and CUDA when available")
    ap.add_argument("--size", type=parse_size, default=(512, 384), help="image size WxH (default 512x384)")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--autocast", choices=list(DTYPES), default="bf16", help="autocast dtype on CUDA (CPU: fp32)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    devices = [torch.device("cpu")] if args.device in ("cpu", "all") else []
    if args.device in ("cuda", "all"):
        if torch.cuda.is_available():
            devices.append(torch.device("cuda"))
        elif args.device == "cuda":
            sys.exit("--device cuda: CUDA is not available")
    kinds = ["dust3r", "mast3r"] if args.kind == "both" else [args.kind]
    w, h = args.size
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, size {w}x{h} (WxH), "
          f"batch sizes {args.batch_sizes}, {args.repeats} timed runs each (after 1 warm-up)", flush=True)
    for device in devices:
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False  # fp32 parts stay fp32; autocast does the speed-up
            name = torch.cuda.get_device_name(device)
        else:
            name = "cpu"
        autocast = DTYPES[args.autocast] if device.type == "cuda" else None
        for kind in kinds:
            t0 = time.perf_counter()
            loaded = load_dust3r(kind=kind, device=device, random_weights=True)
            n_params = sum(p.numel() for p in loaded.model.parameters())
            print(f"[{name}] {kind}: built {n_params / 1e6:.0f}M params (random weights) in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
            for batch in args.batch_sizes:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                times = bench(loaded.model, device, args.size, batch, args.repeats, autocast)
                med = statistics.median(times)
                mem = (f"peak {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB" if device.type == "cuda"
                       else f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
                print(f"[{name}] {kind} {w}x{h} batch {batch} autocast={args.autocast if autocast else 'fp32'}: "
                      f"{med:.3f} s/batch (median of {[round(t, 3) for t in times]}) -> {batch / med:.3f} pairs/s, "
                      f"{mem}", flush=True)
            del loaded
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
