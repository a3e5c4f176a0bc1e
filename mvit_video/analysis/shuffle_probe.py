"""Runs the frame-shuffle probe on a config's test set and writes OUTPUT_DIR/frame_shuffle.{json,png}."""

import os
import statistics
from typing import Dict, List

import simplejson
from fvcore.common.config import CfgNode

from ..engine.trainer import test
from ..data.frame_order import FrameShuffle


def probe(cfg: CfgNode, repeats: int = 3, reverse: bool = True, token_chunks: bool = False) -> Dict:
    """Tests ``cfg``'s checkpoint in order, shuffled ``repeats`` times (seeds RNG_SEED, RNG_SEED + 1, ...) and, with
    ``reverse``, reversed. ``token_chunks`` moves whole temporal tokens (MVIT.PATCH_STRIDE[0] frames) instead of
    single frames.

    Returns:
        The report written to OUTPUT_DIR/frame_shuffle.json (also drawn in frame_shuffle.png).
    Raises:
        FileNotFoundError, CheckpointError: no checkpoint, or one that does not fit the config (before any decoding).
    """
    chunk = cfg.MVIT.PATCH_STRIDE[0] if token_chunks else 1
    ordered = test(cfg, name="ordered")
    shuffled = [
        test(cfg, FrameShuffle("shuffle", cfg.RNG_SEED + i, chunk), name=f"shuffled_seed{cfg.RNG_SEED + i}")
        for i in range(repeats)
    ]
    reversed_ = test(cfg, FrameShuffle("reverse"), name="reversed") if reverse else None
    report = build_report(ordered, shuffled, reversed_, [cfg.RNG_SEED + i for i in range(repeats)], chunk)
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    with open(os.path.join(cfg.OUTPUT_DIR, "frame_shuffle.json"), "w") as f:
        simplejson.dump(report, f, indent=2)
    plot_drop(report, os.path.join(cfg.OUTPUT_DIR, "frame_shuffle.png"))
    return report


def build_report(ordered: Dict, shuffled: List[Dict], reversed_, seeds: List[int], chunk: int) -> Dict:
    """The probe's numbers from the test summaries of each condition."""
    tops = [s["top1"] for s in shuffled]
    mean = statistics.fmean(tops)
    per_class = {
        name: {"ordered": acc, "shuffled": statistics.fmean(s["per_class_top1"][name] for s in shuffled)}
        for name, acc in ordered["per_class_top1"].items()
    }
    return {
        "ordered_top1": ordered["top1"],
        "shuffled_top1": {
            "mean": mean,
            "std": statistics.pstdev(tops),
            "per_seed": dict(zip((str(s) for s in seeds), tops)),
        },
        "reversed_top1": reversed_["top1"] if reversed_ else None,
        "drop": ordered["top1"] - mean,
        "num_videos": ordered["num_videos"],
        "num_views": ordered["num_views"],
        "frames_per_chunk": chunk,
        "per_class": per_class,
        "failed_videos": ordered["failed_videos"],
    }


def plot_drop(report: Dict, png_path: str) -> str:
    """Bar chart of the per-class accuracy drop (ordered - shuffled mean), largest first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drops = sorted(((v["ordered"] - v["shuffled"], k) for k, v in report["per_class"].items()), reverse=True)
    fig, ax = plt.subplots(figsize=(max(6, 0.4 * len(drops)), 4))
    ax.bar([k for _, k in drops], [d for d, _ in drops], color=["tab:red" if d > 0 else "tab:blue" for d, _ in drops])
    ax.set_ylabel("top-1 drop when frames are shuffled (points)")
    ax.set_title(f"frame shuffle: {report['ordered_top1']:.1f}% -> {report['shuffled_top1']['mean']:.1f}% "
                 f"on {report['num_videos']} videos")
    ax.tick_params(axis="x", rotation=70)
    ax.axhline(0, color="black", linewidth=0.8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path


def format_table(report: Dict) -> str:
    """The terminal summary."""
    s = report["shuffled_top1"]
    lines = [
        f"videos: {report['num_videos']} ({report['num_views']} views each)",
        f"ordered top-1:  {report['ordered_top1']:6.2f}",
        f"shuffled top-1: {s['mean']:6.2f} +- {s['std']:.2f} over seeds {', '.join(s['per_seed'])}",
    ]
    if report["reversed_top1"] is not None:
        lines.append(f"reversed top-1: {report['reversed_top1']:6.2f}")
    lines.append(f"drop:           {report['drop']:6.2f} points")
    return "\n".join(lines)
