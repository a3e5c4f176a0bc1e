"""Multi-view aggregation on hand-made scores, failed videos, and the files written."""

import csv
import json

import numpy as np
import torch

from mvit_video.engine.meters import TestMeter


def _logits(*rows):
    # rows of probabilities -> logits whose softmax is exactly those probabilities
    return torch.tensor(rows).log()


def test_views_are_summed_per_video_and_failures_are_misses(tmp_path):
    meter = TestMeter(num_classes=3, classnames=["a", "b", "c"])
    views = torch.stack([
        _logits([0.6, 0.3, 0.1], [0.1, 0.5, 0.4]),  # video 0, label 1: views disagree, sum -> class 1 (0.8)
        _logits([0.2, 0.7, 0.1], [0.3, 0.3, 0.4]),  # video 1, label 2: sum -> class 1 (1.0) vs 2 (0.5): miss
    ])
    meter.add([0, 1], ["v0.mp4", "v1.mp4"], [1, 2], views, ["", ""])
    meter.add([2], ["v2.mp4"], [0], torch.zeros(1, 2, 3), ["truncated or corrupt video"])
    s = meter.write(str(tmp_path))
    assert s["num_videos"] == 3 and s["num_views"] == 2
    assert s["top1"] == 100.0 / 3  # one hit out of three videos: the failed one counts as a miss
    assert s["clip_top1"] == 100.0 * 2 / 4  # each read video has one of its two views right
    assert s["failed_videos"] == [{"path": "v2.mp4", "reason": "truncated or corrupt video"}]
    assert s["per_class_top1"] == {"a": 0.0, "b": 100.0, "c": 0.0}
    assert json.loads((tmp_path / "test_results.json").read_text())["top1"] == s["top1"]
    rows = list(csv.DictReader(open(tmp_path / "test_predictions.csv")))
    assert [r["prediction"] for r in rows] == ["1", "1", ""] and rows[2]["failed"] == "truncated or corrupt video"
    scores = np.load(tmp_path / "test_scores.npy")  # the views' mean softmax, one row per video
    assert scores.shape == (3, 3) and np.isnan(scores[2]).all()
    np.testing.assert_allclose(scores[:2], [[0.35, 0.4, 0.25], [0.25, 0.5, 0.25]], rtol=1e-6)


def test_max_ensemble_differs_from_sum():
    views = _logits([0.9, 0.1], [0.25, 0.75], [0.25, 0.75]).unsqueeze(0)
    total, peak = TestMeter(2, "sum"), TestMeter(2, "max")
    for meter in (total, peak):
        meter.add([0], ["v"], [0], views, [""])
    assert total.summary()["top1"] == 0.0  # sum: 1.4 vs 1.6 -> class 1
    assert peak.summary()["top1"] == 100.0  # max: 0.9 vs 0.75 -> class 0


def test_merge_keeps_one_entry_per_video():
    a, b = TestMeter(2), TestMeter(2)
    a.add([0, 1], ["x", "y"], [0, 1], _logits([0.9, 0.1], [0.2, 0.8]).view(2, 1, 2), ["", ""])
    b.add([1], ["y"], [1], _logits([0.2, 0.8]).view(1, 1, 2), [""])
    a.merge([b])
    assert a.summary()["num_videos"] == 2 and a.summary()["top1"] == 100.0
