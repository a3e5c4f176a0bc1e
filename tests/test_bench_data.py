"""tools/bench_data.py: the wrong-frame count of the torchcodec comparison, and torchcodec staying optional."""

import argparse
import importlib.util

import numpy as np
import pytest

from tests.tool_modules import load_tool


@pytest.fixture(scope="module")
def bench():
    return load_tool("bench_data")


def test_wrong_frames_are_counted(bench):
    base = np.random.default_rng(0).integers(0, 200, size=(8, 8, 3))
    reference = {i: (base + i).astype(np.uint8) for i in range(20)}  # neighbours differ by 1 level: a slow scene
    converted = reference[15].copy()
    converted[0, 0] += 1  # another RGB conversion of the right frame
    returned = np.stack([reference[5], reference[9], reference[12] // 2, converted])
    # frame 9 returned for 10 is only 1/255 off, but it is frame 9; frame 12 halved is far from everything
    assert [bench.is_wrong(f, i, reference) for f, i in zip(returned, [5, 10, 12, 15])] == [False, True, True, False]
    assert bench.count_wrong(returned, [5, 10, 12, 15], reference) == 2


def test_against_torchcodec_says_when_it_is_missing(bench, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchcodec" else
                        real_find_spec(name, *a))
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    with pytest.raises(SystemExit) as err:
        bench.run(parser.parse_args(["--against", "torchcodec"]))
    assert "torchcodec is not installed" in str(err.value)


def test_swscale_comparison_measures_the_difference_from_the_transform(bench, tmp_path):
    """``--against swscale``: one row for the transform (its own reference) and one per swscale flag, each with a
    time and its pixel difference from the transform's output at the same size."""
    from mvit_video.data.synthetic import render_clip, write_video

    path = str(tmp_path / "clip.mp4")
    write_video(path, render_clip("move_right", np.random.default_rng(0), 96, 48), 30)
    rows = bench.swscale_rows(path, short_side=40)
    assert [row["method"] for row in rows][1:] == [f"swscale {flag}" for flag in bench.SWSCALE_FLAGS]
    assert rows[0]["mean"] == 0 and rows[0]["max"] == 0
    assert all(row["ms"] > 0 for row in rows)
    assert all(0 < row["mean"] < 64 and row["max"] >= row["p99"] for row in rows[1:])  # close, never identical
