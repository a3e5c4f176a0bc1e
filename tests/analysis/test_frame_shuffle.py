"""The frame-shuffle probe: true permutations, blind to time-averaging models, seen by order-reading ones."""

import json
import os

import pytest
import torch
from torch import nn

from mvit_video.analysis import FrameShuffle, non_identity_permutation
from mvit_video.analysis.shuffle_probe import probe
from mvit_video.engine.distributed import DistInfo
from mvit_video.engine.loops import evaluate
from mvit_video.engine.meters import TestMeter
from mvit_video.models import build_model
from mvit_video.weight_files import CheckpointError, save_checkpoint

from ..engine.conftest import tiny_dataset  # noqa: F401  (session fixture shared with the engine tests)
from ..engine.conftest import tiny_cfg  # noqa: F401

CPU = DistInfo(0, 1, 0, torch.device("cpu"))


def _frames_carrying_their_index(n_views=5, t=8):
    # frame t of every view is filled with the value t, so the output order can be read back
    return torch.arange(t, dtype=torch.float32).view(1, 1, t, 1, 1).expand(n_views, 3, t, 4, 4).clone()


def test_each_view_gets_a_true_non_identity_permutation():
    views = _frames_carrying_their_index()
    out = FrameShuffle("shuffle", seed=0)(views)
    orders = out[:, 0, :, 0, 0].long()
    for order in orders:
        assert sorted(order.tolist()) == list(range(8))  # same multiset of frames
        assert order.tolist() != list(range(8))  # never the identity for T > 1
    assert len({tuple(o.tolist()) for o in orders}) > 1  # independent per view


def test_reproducible_for_a_seed_and_different_across_seeds():
    views = _frames_carrying_their_index(20)
    a, b, c = (FrameShuffle("shuffle", seed=s)(views) for s in (3, 3, 4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_two_frames_always_swap_and_one_frame_stays():
    g = torch.Generator().manual_seed(0)
    assert non_identity_permutation(2, 1, g).tolist() == [1, 0]
    assert non_identity_permutation(1, 1, g).tolist() == [0]


def test_token_chunks_move_frames_in_pairs():
    g = torch.Generator().manual_seed(1)
    order = non_identity_permutation(8, 2, g).tolist()
    pairs = [order[i : i + 2] for i in range(0, 8, 2)]
    assert all(p[1] == p[0] + 1 and p[0] % 2 == 0 for p in pairs)
    assert order != list(range(8))


def test_reverse():
    out = FrameShuffle("reverse")(_frames_carrying_their_index(1))
    assert out[0, 0, :, 0, 0].tolist() == list(range(7, -1, -1))


class _TimeAverage(nn.Module):
    """Scores from the mean over time: blind to frame order."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3, 4)))


class _FirstMinusLast(nn.Module):
    """Scores from a fixed linear function of (first frame - last frame): reads order."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)

    def forward(self, x):
        return self.fc((x[:, :, 0] - x[:, :, -1]).mean(dim=(2, 3)))


def _loader(n_videos=12, views=2, t=8):
    torch.manual_seed(5)
    batches = []
    for start in range(0, n_videos, 4):
        batches.append({
            "views": torch.randn(4, views, 3, t, 6, 6),
            "labels": torch.randint(4, (4,)),
            "indices": torch.arange(start, start + 4),
            "paths": [f"v{i}.mp4" for i in range(start, start + 4)],
            "failed": [""] * 4,
        })
    return batches


def _run(model, transform):
    meter = TestMeter(4)
    evaluate(model, _loader(), meter, CPU, view_transform=transform)
    return meter


def test_time_averaging_model_is_unmoved_and_order_reading_model_is_not():
    torch.manual_seed(0)
    average, ordered = _TimeAverage(), _FirstMinusLast()
    a0, a1 = _run(average, None), _run(average, FrameShuffle("shuffle", 0))
    assert a0.summary()["top1"] == a1.summary()["top1"]
    for i in a0.videos:
        assert torch.allclose(a0.videos[i].scores, a1.videos[i].scores, atol=1e-5)
    o0, o1 = _run(ordered, None), _run(ordered, FrameShuffle("shuffle", 0))
    assert any(not torch.allclose(o0.videos[i].scores, o1.videos[i].scores, atol=1e-3) for i in o0.videos)


def test_probe_writes_consistent_json_and_chart(tiny_cfg, tmp_path):  # noqa: F811
    cfg = tiny_cfg("TEST.NUM_ENSEMBLE_VIEWS", "1")
    save_checkpoint(os.path.join(cfg.OUTPUT_DIR, "checkpoints", "checkpoint_epoch_00001.pyth"),
                    build_model(cfg).state_dict(), epoch=0)
    report = probe(cfg, repeats=2, reverse=True)
    saved = json.loads(open(os.path.join(cfg.OUTPUT_DIR, "frame_shuffle.json")).read())
    assert saved["drop"] == pytest.approx(saved["ordered_top1"] - saved["shuffled_top1"]["mean"])
    per_seed = list(saved["shuffled_top1"]["per_seed"].values())
    assert len(per_seed) == 2 and saved["shuffled_top1"]["mean"] == pytest.approx(sum(per_seed) / 2)
    assert saved["num_videos"] == 8 and saved["reversed_top1"] is not None
    names = open(cfg.DATA.CLASSNAMES).read().splitlines()
    assert list(saved["per_class"]) == names[:8]  # the 8 test videos are one each of the first 8 classes
    assert all(set(v) == {"ordered", "shuffled"} for v in saved["per_class"].values())
    assert report["num_videos"] == 8
    assert os.path.getsize(os.path.join(cfg.OUTPUT_DIR, "frame_shuffle.png")) > 5_000


def test_probe_refuses_a_checkpoint_that_does_not_fit(tiny_cfg):  # noqa: F811
    cfg = tiny_cfg("TEST.CHECKPOINT_FILE_PATH", "")
    state = build_model(tiny_cfg("MODEL.NUM_CLASSES", "5")).state_dict()
    save_checkpoint(os.path.join(cfg.OUTPUT_DIR, "checkpoints", "checkpoint_epoch_00001.pyth"), state, epoch=0)
    with pytest.raises(CheckpointError, match="head.projection.weight"):
        probe(cfg, repeats=1)
