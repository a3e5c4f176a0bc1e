#!/usr/bin/env python3
"""Benchmarks, each measured side by side with its peer in the same process and reported as ratios.

    tools/benchmark.py model --cfg configs/K400/MVIT_B_16x4.yaml [--runs 10] [--batch 1] [--device cpu|cuda]
    tools/benchmark.py train --cfg configs/synthetic/MVIT_TINY.yaml [--batch 8] [--steps 10] [--device cpu|cuda]
                             [--with-data]
    tools/benchmark.py gpu [--cfg configs/K400/MVIT_B_16x4.yaml] [--batch 4] [--dtype bf16|fp32] [--compile]
    tools/benchmark.py variants [--cfgs FILE ...] [--runs 7]
    tools/benchmark.py data [...]          (see tools/bench_data.py)

``model``: forward passes of this MViT and of torchvision's MViT built with the same blocks (mvit_v1_b for MViT-B
16x4, mvit_v2_s for MViTv2-S 16x4), loaded with the same weights, on the same input, alternating, median of
``--runs`` each; checks the logits agree and prints the achieved GFLOP/s beside the peak of a large matmul on the same
device. On CUDA it also measures bf16 autocast and peak memory.

``train``: training steps (forward, loss, backward, AdamW step) of this MViT and of torchvision's MViT class built
with the same blocks and loaded with the same weights, alternating, median step time of each -> clips/s; then the
peak memory of a few steps of each (GPU: peak allocated; CPU: growth of the peak resident size, each model in a
fresh process). bf16 autocast on CUDA, fp32 on the CPU. With ``--with-data``: this MViT only, fed by the config's
training loader (DATA_LOADER.NUM_WORKERS workers) against the same steps on one fixed batch: clips/s of each, and
the CPU milliseconds per clip of the data (decode + transform) and of the model step.

``gpu``: training steps (bf16 autocast by default) and inference forwards of this MViT and of torchvision's MViT
with the same blocks (mvit_v1_b for MVIT_B_16x4; the MViTv2 layout, mvit_v2_s for MVITv2_S_16x4), models timed in
turn: clips/s, peak allocated memory over three training steps (CUDA only), and which scaled-dot-product-attention
kernels ran (profiler operator names). ``--compile`` adds the same rows under torch.compile. Runs on the CPU too.

``variants``: one row per config (plain MViT-B and its PEG / ELSA / CeiT / PVT v2 variants by default): params,
fvcore GFLOPs and the median batch-1 forward time, the models timed in turn under inference mode.
"""

import argparse
import functools
import multiprocessing
import resource
import statistics
import sys
import threading
import time
from typing import Callable, List, Optional

import _paths  # noqa: F401
import torch

from mvit_video import cli
from mvit_video.config import load_config
from mvit_video.flops import count_model
from mvit_video.machine import describe_machine
from mvit_video.models import build_model
from mvit_video.weight_layouts import load_checkpoint


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


def torchvision_peer(cfg) -> torch.nn.Module:
    """torchvision's MViT class with the blocks of ``cfg`` (mvit_v1_b itself for MVIT_B_16x4, mvit_v2_s for
    MVITv2_S_16x4). torchvision has one switch for both relative tables."""
    from torchvision.models.video.mvit import MSBlockConfig, MViT

    ours = build_model(cfg)
    blocks = [
        MSBlockConfig(
            num_heads=b.attn.num_heads,
            input_channels=b.norm1.normalized_shape[0],
            output_channels=b.mlp.fc2.out_features,
            kernel_q=list(b.attn.pool_q.pool.kernel_size) if b.attn.pool_q else [],
            kernel_kv=list(b.attn.pool_k.pool.kernel_size) if b.attn.pool_k else [],
            stride_q=list(b.attn.pool_q.pool.stride) if b.attn.pool_q else [],
            stride_kv=list(b.attn.pool_k.pool.stride) if b.attn.pool_k else [],
        )
        for b in ours.blocks
    ]
    proj = ours.patch_embed.proj
    return MViT(
        spatial_size=(cfg.DATA.TRAIN_CROP_SIZE,) * 2,
        temporal_size=cfg.DATA.NUM_FRAMES,
        block_setting=blocks,
        residual_pool=cfg.MVIT.RESIDUAL_POOLING,
        residual_with_cls_embed=False,
        rel_pos_embed=cfg.MVIT.REL_POS_SPATIAL and cfg.MVIT.REL_POS_TEMPORAL,
        proj_after_attn=cfg.MVIT.DIM_MUL_IN_ATT,
        dropout=cfg.MODEL.DROPOUT_RATE,
        stochastic_depth_prob=cfg.MVIT.DROPPATH_RATE,
        num_classes=cfg.MODEL.NUM_CLASSES,
        patch_embed_kernel=proj.kernel_size,
        patch_embed_stride=proj.stride,
        patch_embed_padding=proj.padding,
    )


def _models(cfg, device: torch.device):
    reference = torchvision_peer(cfg).eval()
    ours = build_model(cfg).eval()
    load_checkpoint(reference.state_dict(), ours)
    return ours.to(device), reference.to(device)


def bench_model(args: argparse.Namespace) -> None:
    cfg = load_config(args.cfg, args.opts)
    device = torch.device(args.device)
    size = _clip_size(cfg)
    gmacs = count_model(build_model(cfg), size, activations=False).gflops
    ours, reference = _models(cfg, device)
    x = torch.randn(args.batch, *size, device=device)
    print(f"machine: {describe_machine(device)}; batch {args.batch}; {args.runs} runs each")
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
    print(f"[{name}] mvit_video: {t_ours * 1e3:.1f} ms   torchvision MViT: {t_ref * 1e3:.1f} ms   "
          f"speed-up: {t_ref / t_ours:.2f}x   max |logit diff|: {diff:.2e}")
    print(f"[{name}] mvit_video achieves {achieved:.0f} GFLOP/s ({gmacs:.2f} GMACs per clip); "
          f"large-matmul peak {peak:.0f} GFLOP/s ({achieved / peak:.0%} of peak)")
    if device.type == "cuda":
        print(f"[{name}] peak memory (both models' runs): {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")


def _clip_size(cfg) -> tuple:
    return (3, cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TRAIN_CROP_SIZE)


def _train_step_fn(model, x, labels, device, dtype):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(x).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _resident_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_memory_child(cfg_file, opts, which, batch, steps, queue) -> None:
    """Runs in a fresh process: how far the resident size rises above its level before ``steps`` CPU training
    steps (sampled every millisecond by a thread)."""
    cfg = load_config(cfg_file, opts)
    model = (build_model(cfg) if which == "ours" else torchvision_peer(cfg)).train()
    x = torch.randn(batch, *_clip_size(cfg))
    labels = torch.randint(cfg.MODEL.NUM_CLASSES, (batch,))
    step = _train_step_fn(model, x, labels, torch.device("cpu"), None)
    baseline, peak, running = _resident_mib(), [0.0], [True]

    def sample():
        while running[0]:
            peak[0] = max(peak[0], _resident_mib())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    for _ in range(steps):
        step()
    running[0] = False
    sampler.join()
    queue.put(peak[0] - baseline)


def _peak_memory(args, which: str, device: torch.device, model=None, step=None) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(3):
            step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_peak_memory_child, args=(args.cfg, args.opts, which, args.batch, 3, queue))
    child.start()
    value = queue.get()
    child.join()
    return value


def bench_train(args: argparse.Namespace) -> None:
    cfg = load_config(args.cfg, args.opts)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else None
    ours, reference = (m.train() for m in _models(cfg, device))
    x = torch.randn(args.batch, *_clip_size(cfg), device=device)
    labels = torch.randint(cfg.MODEL.NUM_CLASSES, (args.batch,), device=device)
    steps = [_train_step_fn(m, x, labels, device, dtype) for m in (ours, reference)]
    t_ours, t_ref = alternate(steps, args.steps, args.warmup, device)
    mem = [_peak_memory(args, which, device, step=fn) for which, fn in zip(("ours", "torchvision"), steps)]
    precision = "bf16 autocast" if dtype else "fp32"
    print(f"machine: {describe_machine(device)}; {args.cfg}; batch {args.batch}; {precision}; "
          f"{args.steps} steps each")
    print(f"mvit_video: {args.batch / t_ours:.2f} clips/s ({t_ours * 1e3:.0f} ms/step)   torchvision MViT: "
          f"{args.batch / t_ref:.2f} clips/s ({t_ref * 1e3:.0f} ms/step)   speed-up: {t_ref / t_ours:.2f}x")
    kind = "peak allocated" if device.type == "cuda" else "peak resident-size rise during training steps"
    print(f"{kind}: mvit_video {mem[0]:.0f} MiB   torchvision {mem[1]:.0f} MiB   ratio {mem[0] / mem[1]:.2f}")


def _loader_batches(cfg, batch: int):
    """Endless training batches of ``cfg``'s dataset, from DATA_LOADER.NUM_WORKERS workers as training has them."""
    from torch.utils.data import DataLoader

    from mvit_video.data import build_dataset

    dataset = build_dataset(cfg, "train")
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=cfg.DATA_LOADER.NUM_WORKERS,
                        collate_fn=dataset.collate_fn, drop_last=len(dataset) >= batch)
    while True:
        yield from loader


def _timed_steps(model, batches, steps: int, device: torch.device):
    """Runs ``steps`` training steps on ``batches``; returns (wall s per step, model CPU s per step, data CPU s)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    wall, model_cpu, data_cpu = [], [], 0.0
    for _ in range(steps):
        start = time.perf_counter()
        batch = next(batches)  # waiting for the loader counts: that is what training sees
        cpu = time.process_time()
        loss = torch.nn.functional.cross_entropy(model(batch["frames"].to(device)), batch["labels"].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()
        _sync(device)
        model_cpu.append(time.process_time() - cpu)
        wall.append(time.perf_counter() - start)
        data_cpu += batch.get("data_cpu_s", 0.0)
    return statistics.median(wall), statistics.median(model_cpu), data_cpu / steps


def bench_train_with_data(args: argparse.Namespace) -> None:
    """Training steps fed by the real loader against the same steps on one fixed batch (model only)."""
    cfg = load_config(args.cfg, args.opts)
    device = torch.device(args.device)
    model = build_model(cfg).to(device).train()
    batches = _loader_batches(cfg, args.batch)
    fixed = next(batches)
    fixed = {"frames": fixed["frames"], "labels": fixed["labels"]}
    repeat = iter(lambda: fixed, None)
    _timed_steps(model, repeat, args.warmup, device)
    model_only = _timed_steps(model, repeat, args.steps, device)
    with_data = _timed_steps(model, batches, args.steps, device)
    clips = fixed["labels"].shape[0]
    print(f"machine: {describe_machine(device)}; {args.cfg}; batch {clips}; "
          f"{cfg.DATA_LOADER.NUM_WORKERS} loader workers; {args.steps} steps each, median")
    print(f"model only: {clips / model_only[0]:.2f} clips/s   loader + model: {clips / with_data[0]:.2f} clips/s   "
          f"ratio {model_only[0] / with_data[0]:.2f}")
    print(f"CPU ms per clip: data (decode + transform) {1e3 * with_data[2] / clips:.1f}, "
          f"model step {1e3 * with_data[1] / clips:.1f} (model only: {1e3 * model_only[1] / clips:.1f})")


# aten operators that name the scaled-dot-product-attention kernel they dispatch to.
SDPA_KERNELS = {
    "aten::_scaled_dot_product_flash_attention": "flash",
    "aten::_scaled_dot_product_efficient_attention": "memory-efficient",
    "aten::_scaled_dot_product_cudnn_attention": "cuDNN",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "flash (CPU)",
    "aten::_scaled_dot_product_attention_math": "math",
}


def _is_mvit_v2(cfg) -> bool:
    """Whether ``cfg`` asks for MViTv2's attention (relative positions, residual pooling)."""
    return bool(cfg.MVIT.REL_POS_SPATIAL or cfg.MVIT.RESIDUAL_POOLING)


def sdpa_kernels(fn: Callable[[], object], device: torch.device) -> str:
    """Which scaled-dot-product-attention kernels ran during ``fn()``, from the profiler's operator names."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        _sync(device)
    counts = {}
    for event in prof.key_averages():
        if event.key in SDPA_KERNELS:
            counts[SDPA_KERNELS[event.key]] = counts.get(SDPA_KERNELS[event.key], 0) + event.count
    if not counts:
        return "none (attention as explicit matmul + softmax)"
    return ", ".join(f"{name} x{count}" for name, count in sorted(counts.items()))


def _gpu_phase(model, x, labels, dtype, device):
    """(training step, inference forward) closures of ``model`` under autocast to ``dtype``."""
    step = _train_step_fn(model, x, labels, device, dtype)

    def infer():
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            return model(x)

    return step, infer


def _peak_training_mib(step, device: torch.device) -> Optional[float]:
    """Peak allocated CUDA memory over three training steps (None on the CPU)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    for _ in range(3):
        step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def _gpu_rows(models, x, labels, dtype, device, args) -> list:
    """One row per model: training clips/s, peak training memory, inference clips/s, SDPA kernels seen."""
    phases = [_gpu_phase(model, x, labels, dtype, device) for _, model in models]
    train_times = alternate([step for step, _ in phases], args.steps, args.warmup, device)
    infer_times = alternate([infer for _, infer in phases], args.steps, args.warmup, device)
    rows = []
    for (name, model), (step, infer), t_train, t_infer in zip(models, phases, train_times, infer_times):
        rows.append((name, args.batch / t_train, _peak_training_mib(step, device), args.batch / t_infer,
                     sdpa_kernels(step, device), sdpa_kernels(infer, device)))
    return rows


def _print_gpu_rows(rows, title: str) -> None:
    print(f"\n{title}\n| model | training clips/s | peak training MiB | inference clips/s |\n|---|---|---|---|")
    for name, train_rate, peak, infer_rate, _, _ in rows:
        print(f"| {name} | {train_rate:.2f} | {'n/a (CPU)' if peak is None else f'{peak:.0f}'} | {infer_rate:.2f} |")
    (_, ours_train, ours_peak, ours_infer, *_), (_, ref_train, ref_peak, ref_infer, *_) = rows
    memory = "" if ours_peak is None else f", memory {ours_peak / ref_peak:.2f}x of torchvision's"
    print(f"mvit_video / torchvision: training {ours_train / ref_train:.2f}x, inference {ours_infer / ref_infer:.2f}x"
          f"{memory}")
    for name, *_, train_kernels, infer_kernels in rows:
        print(f"SDPA kernels, {name}: training {train_kernels}; inference {infer_kernels}")


def bench_gpu(args: argparse.Namespace) -> None:
    """bf16 (or fp32) training and inference of this MViT against torchvision's same model, on any device."""
    cfg = load_config(args.cfg, args.opts)
    device = torch.device(args.device)
    dtype = {"bf16": torch.bfloat16, "fp32": None}[args.dtype]
    torch.manual_seed(0)
    peer_name = f"torchvision MViT ({'v2' if _is_mvit_v2(cfg) else 'v1'} layout)"
    models = [("mvit_video", build_model(cfg).to(device).train()), (peer_name, torchvision_peer(cfg).to(device).train())]
    x = torch.randn(args.batch, *_clip_size(cfg), device=device)
    labels = torch.randint(cfg.MODEL.NUM_CLASSES, (args.batch,), device=device)
    params = [sum(p.numel() for p in model.parameters()) for _, model in models]
    print(f"machine: {describe_machine(device)}; {args.cfg}; batch {args.batch}; {args.dtype}; median of "
          f"{args.steps} steps each, models in turn; params: mvit_video {params[0]:,}, torchvision {params[1]:,}")
    _print_gpu_rows(_gpu_rows(models, x, labels, dtype, device, args), "eager")
    if args.compile:
        compiled = [(name, torch.compile(model, backend=args.compile_backend)) for name, model in models]
        _print_gpu_rows(_gpu_rows(compiled, x, labels, dtype, device, args),
                        f"torch.compile (backend {args.compile_backend})")


VARIANT_CFGS = [f"configs/K400/MVIT_B_16x4{suffix}.yaml" for suffix in ("", "_PEG", "_ELSA", "_CEIT", "_PVT")]


def bench_variants(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    rows, models = [], []
    for path in args.cfgs:
        cfg = load_config(path)
        model = build_model(cfg)
        counts = count_model(model, _clip_size(cfg), activations=False)  # also puts the model in eval mode
        models.append((model.to(device), torch.randn(1, *_clip_size(cfg), device=device)))
        rows.append((path, counts.params, counts.gflops))

    def forward(model, x):
        with torch.inference_mode():
            model(x)

    times = alternate([functools.partial(forward, m, x) for m, x in models], args.runs, 1, device)
    print(f"machine: {describe_machine(device)}; batch 1; fp32; median of {args.runs} runs each")
    print("| config | params | GFLOPs (fvcore) | forward ms |\n|---|---|---|---|")
    for (path, params, gflops), seconds in zip(rows, times):
        print(f"| {path} | {params:,} | {gflops:.2f} | {seconds * 1e3:.0f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_debug_flag(parser)
    sub = parser.add_subparsers(dest="what", required=True)
    model = sub.add_parser("model", help="this MViT vs torchvision's same MViT (mvit_v1_b, mvit_v2_s), forward pass")
    model.add_argument("--cfg", default="configs/K400/MVIT_B_16x4.yaml")
    model.add_argument("--runs", type=int, default=10)
    model.add_argument("--warmup", type=int, default=2)
    model.add_argument("--batch", type=int, default=1)
    model.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    model.add_argument("--opts", nargs=argparse.REMAINDER, default=[])
    model.set_defaults(func=bench_model)
    train = sub.add_parser("train", help="this MViT vs torchvision's MViT class, training steps")
    train.add_argument("--cfg", default="configs/synthetic/MVIT_TINY.yaml")
    train.add_argument("--steps", type=int, default=10)
    train.add_argument("--warmup", type=int, default=2)
    train.add_argument("--batch", type=int, default=8)
    train.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    train.add_argument("--with-data", action="store_true",
                       help="loader + model against model only, this MViT on the config's training data")
    train.add_argument("--opts", nargs=argparse.REMAINDER, default=[])
    train.set_defaults(func=lambda args: (bench_train_with_data if args.with_data else bench_train)(args))
    gpu = sub.add_parser("gpu", help="training and inference vs torchvision's same MViT: clips/s, memory, SDPA")
    gpu.add_argument("--cfg", default="configs/K400/MVIT_B_16x4.yaml",
                     help="e.g. configs/K400/MVITv2_S_16x4.yaml (compared with torchvision's v2 layout)")
    gpu.add_argument("--batch", type=int, default=4)
    gpu.add_argument("--steps", type=int, default=10)
    gpu.add_argument("--warmup", type=int, default=3)
    gpu.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16", help="autocast dtype")
    gpu.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    gpu.add_argument("--compile", action="store_true", help="also time both models under torch.compile")
    gpu.add_argument("--compile-backend", default="inductor")
    gpu.add_argument("--opts", nargs=argparse.REMAINDER, default=[])
    gpu.set_defaults(func=bench_gpu)
    variants = sub.add_parser("variants", help="params, GFLOPs and forward time of several configs")
    variants.add_argument("--cfgs", nargs="+", default=VARIANT_CFGS)
    variants.add_argument("--runs", type=int, default=7)
    variants.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    variants.set_defaults(func=bench_variants)
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
    args = parser.parse_args(argv)
    return cli.run(lambda: args.func(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
