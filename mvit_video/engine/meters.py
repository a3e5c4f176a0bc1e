"""The multi-view test meter: per-view softmax scores aggregated per video, and accuracy over every video.

A video that could not be read counts as a miss (it stays in the denominator) and is listed with its reason.
"""

import csv
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import simplejson
import torch


@dataclass
class VideoResult:
    index: int
    path: str
    label: int
    scores: Optional[torch.Tensor]  # (K,) aggregated softmax; None when the video failed
    view_correct: int = 0
    num_views: int = 0
    failed: str = ""


def check_ensemble_method(method: str) -> None:
    """Raises ValueError naming DATA.ENSEMBLE_METHOD unless ``method`` is "sum" or "max"."""
    if method not in ("sum", "max"):
        raise ValueError(f"DATA.ENSEMBLE_METHOD = {method!r}: expected sum or max")


@dataclass
class TestMeter:
    """Collects per-view logits of each video and computes video-level and clip-level accuracy.

    ``ensemble``: "sum" adds the views' softmax scores, "max" takes their element-wise maximum.
    """

    __test__ = False  # a name pytest would otherwise collect

    num_classes: int
    ensemble: str = "sum"
    classnames: Optional[Sequence[str]] = None
    videos: Dict[int, VideoResult] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_ensemble_method(self.ensemble)

    def add(self, indices, paths, labels, view_logits: torch.Tensor, failed: Sequence[str]) -> None:
        """Adds a batch: ``view_logits`` (B, V, K); ``failed[i]`` is "" or the reason video i was not read."""
        probs = view_logits.float().softmax(dim=-1)
        for i, index in enumerate(indices):
            index, label = int(index), int(labels[i])
            if failed[i]:
                self.videos[index] = VideoResult(index, paths[i], label, None, failed=failed[i])
                continue
            scores = probs[i].sum(0) if self.ensemble == "sum" else probs[i].max(0).values
            view_correct = int((probs[i].argmax(-1) == label).sum())
            self.videos[index] = VideoResult(index, paths[i], label, scores.cpu(), view_correct, probs.shape[1])

    def merge(self, others: Sequence["TestMeter"]) -> None:
        """Adds the videos of meters from other processes (a video seen twice by padding keeps one entry)."""
        for other in others:
            self.videos.update(other.videos)

    def _topk_hit(self, result: VideoResult, k: int) -> bool:
        if result.scores is None:
            return False
        k = min(k, self.num_classes)
        return result.label in result.scores.topk(k).indices.tolist()

    def _name(self, label: int) -> str:
        """The class name of ``label``, or the label number when the meter has no names."""
        return self.classnames[label] if self.classnames else str(label)

    def summary(self) -> dict:
        """top1/top5 over all videos (failed ones as misses), clip-level top-1, per-class accuracy, failures."""
        results = sorted(self.videos.values(), key=lambda r: r.index)
        n = len(results)
        ok = [r for r in results if r.scores is not None]
        views = sum(r.num_views for r in ok)
        per_class = {}
        for label in sorted({r.label for r in results}):
            members = [r for r in results if r.label == label]
            per_class[self._name(label)] = 100.0 * sum(self._topk_hit(r, 1) for r in members) / len(members)
        return {
            "top1": 100.0 * sum(self._topk_hit(r, 1) for r in results) / max(n, 1),
            "top5": 100.0 * sum(self._topk_hit(r, 5) for r in results) / max(n, 1),
            "clip_top1": 100.0 * sum(r.view_correct for r in ok) / max(views, 1),
            "num_videos": n,
            "num_views": ok[0].num_views if ok else 0,
            "per_class_top1": per_class,
            "failed_videos": [{"path": r.path, "reason": r.failed} for r in results if r.scores is None],
        }

    def video_scores(self) -> torch.Tensor:
        """float32 ``(num_videos, K)``, one row per video in index order: the mean of its views' softmax ("sum") or
        their maximum ("max"); a row of NaN for a video that could not be read."""
        rows = []
        for r in sorted(self.videos.values(), key=lambda r: r.index):
            if r.scores is None:
                rows.append(torch.full((self.num_classes,), float("nan")))
            else:
                rows.append(r.scores / (r.num_views if self.ensemble == "sum" else 1))
        return torch.stack(rows) if rows else torch.zeros(0, self.num_classes)

    def write(self, output_dir: str, name: str = "test") -> dict:
        """Writes ``{name}_results.json``, ``{name}_predictions.csv`` and ``{name}_scores.npy`` (the
        :meth:`video_scores`, rows in the order of the CSV) into ``output_dir``; returns the summary."""
        os.makedirs(output_dir, exist_ok=True)
        np.save(os.path.join(output_dir, f"{name}_scores.npy"), self.video_scores().numpy())
        summary = self.summary()
        with open(os.path.join(output_dir, f"{name}_results.json"), "w") as f:
            simplejson.dump(summary, f, indent=2)
        with open(os.path.join(output_dir, f"{name}_predictions.csv"), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["index", "path", "label", "prediction", "score", "failed", "label_name",
                             "prediction_name"])
            for r in sorted(self.videos.values(), key=lambda r: r.index):
                if r.scores is None:
                    writer.writerow([r.index, r.path, r.label, "", "", r.failed, self._name(r.label), ""])
                    continue
                score, pred = r.scores.max(0)
                views = r.num_views if self.ensemble == "sum" else 1  # the mean probability for "sum"
                writer.writerow([r.index, r.path, r.label, int(pred), f"{float(score) / views:.4f}", "",
                                 self._name(r.label), self._name(int(pred))])
        return summary


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> int:
    """Number of rows whose label is among the ``k`` highest logits."""
    k = min(k, logits.shape[-1])
    return int((logits.topk(k, dim=-1).indices == labels[:, None]).any(-1).sum())


__all__: List[str] = ["TestMeter", "VideoResult", "topk_correct"]
