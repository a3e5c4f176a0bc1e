#!/usr/bin/env python3
"""Benchmarks, each measured side by side with its peer in the same process and reported as ratios.

    tools/benchmark.py model --cfg configs/K400/MVIT_B_16x4.yaml [--runs 10] [--batch 1] [--device cpu|cuda]
    tools/benchmark.py data [...]          (see tools/bench_data.py)

``model``: forward passes of this MViT and of torchvision's mvit_v1_b, loaded with the same weights, on the same
input, alternating, median of ``--runs`` each; checks the logits agree and prints the achieved GFLOP/s beside the peak
of a large matmul on the same device. On CUDA it also measures bf16 autocast and peak memory.
"""

import argparse
import platform
import statistics
import sys
import time
from typing import Callable, List

import _paths  # noqa: F401
import torch

from mvit_video.checkpoint import load_checkpoint
from mvit_video.config import load_config
from mvit_video.flops import count_model
from mvit_video.models import build_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_once(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def alternate(fns: List[Callable[[], object]], runs: int, warmup: int, device: torch.device) -> List[float]:
    """Median seconds of each function, timed in turn (a, b, a, b, ...) so that machine noise hits both alike."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: List[List[float]] = [[] for _ in fns]
    for _ in range(runs):
        for i, fn in enumerate(fns):
            times[i].append(_time_once(fn, device))
    return [statistics.median(t) for t in times]


def matmul_peak_gflops(device: torch.device, dtype: torch.dtype, n: int = 2048, runs: int = 5) -> float:
    """GFLOP/s (2 flops per multiply-add) of the fastest of ``runs`` n x n matmuls: what the machine can do at best."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    seconds = min(_time_once(lambda: a @ b, device) for _ in range(runs))
    return 2 * n**3 / seconds / 1e9


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def _models(cfg, device: torch.device):
    from torchvision.models.video import mvit_v1_b

    reference = mvit_v1_b().eval()
    ours = build_model(cfg).eval()
    load_checkpoint(reference.state_dict(), ours)
    return ours.to(device), reference.to(device)


def bench_model(args: argparse.Namespace) -> None:
    cfg = load_config(args.cfg, args.opts)
    device = torch.device(args.device)
    size = (3, cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TRAIN_CROP_SIZE)
    if size != (3, 16, 224, 224):
        sys.exit(f"the peer, torchvision's mvit_v1_b, only takes 16x224x224 clips; {args.cfg} uses {size[1:]}")
    gmacs = count_model(build_model(cfg), size, activations=False).gflops
    ours, reference = _models(cfg, device)
    x = torch.randn(args.batch, *size, device=device)
    print(f"machine: {machine(device)}; torch {torch.__version__}; batch {args.batch}; {args.runs} runs each")
    precisions = [("fp32", None)] + ([("bf16", torch.bfloat16)] if device.type == "cuda" else [])
    for name, dtype in precisions:
        _report(name, dtype, ours, reference, x, gmacs, args, device)


def _report(name, dtype, ours, reference, x, gmacs, args, device) -> None:
    def run(model):
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            return model(x)

    with torch.inference_mode():
        diff = (run(ours).float() - run(reference).float()).abs().max().item()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t_ours, t_ref = alternate([lambda: run(ours), lambda: run(reference)], args.runs, args.warmup, device)
    peak = matmul_peak_gflops(device, dtype or torch.float32)
    achieved = 2 * gmacs * args.batch / t_ours
    print(f"[{name}] mvit_video: {t_ours * 1e3:.1f} ms   torchvision mvit_v1_b: {t_ref * 1e3:.1f} ms   "
          f"speed-up: {t_ref / t_ours:.2f}x   max |logit diff|: {diff:.2e}")
    print(f"[{name}] mvit_video achieves {achieved:.0f} GFLOP/s ({gmacs:.2f} GMACs per clip); "
          f"large-matmul peak {peak:.0f} GFLOP/s ({achieved / peak:.0%} of peak)")
    if device.type == "cuda":
        print(f"[{name}] peak memory (both models' runs): {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    model = sub.add_parser("model", help="this MViT vs torchvision's mvit_v1_b, forward pass")
    model.add_argument("--cfg", default="configs/K400/MVIT_B_16x4.yaml")
    model.add_argument("--runs", type=int, default=10)
    model.add_argument("--warmup", type=int, default=2)
    model.add_argument("--batch", type=int, default=1)
    model.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    model.add_argument("--opts", nargs=argparse.REMAINDER, default=[])
    model.set_defaults(func=bench_model)
    try:
        import bench_data
    except ImportError as err:
        bench_data = None
        data_error = str(err)
    data = sub.add_parser("data", help="this loader vs pytorchvideo's EncodedVideo and per-view decoding")
    if bench_data is not None:
        bench_data.add_arguments(data)
        data.set_defaults(func=bench_data.run)
    else:
        data.set_defaults(func=lambda _: sys.exit(f"the data benchmark is unavailable: {data_error}"))
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
