"""A small synthetic video dataset whose classes need time to tell apart (the project's embedded default).

Each clip shows one shape on a background. Ten classes are five pairs that differ only in the direction of time:
the second class of a pair is rendered as the first one and played backwards, so the two have the same
distribution of single frames, and only motion separates them. Two more classes are static and differ by
appearance alone. Background colour and gradient, shape, colour, size, position, speed and pixel noise are drawn
per clip from a generator seeded by ``(seed, split, clip index)``: a seed gives the same files whatever the number
of worker processes.

The clips are real H.264 .mp4 files (PyAV, libx264, yuv420p, a keyframe every 16 frames, with encoder settings
that make the bytes reproducible), listed in Kinetics-style ``train.csv`` / ``val.csv`` / ``test.csv`` files with
paths relative to the dataset folder, next to a ``classnames.txt``.
"""

import json
import math
import os
from dataclasses import dataclass
from multiprocessing import Pool
from typing import Dict, List, Optional, Tuple

import av
import numpy as np
from tqdm import tqdm

CLASSNAMES = (
    "move_left",
    "move_right",
    "move_up",
    "move_down",
    "rotate_clockwise",
    "rotate_anticlockwise",
    "grow",
    "shrink",
    "appear",
    "disappear",
    "static_red_circle",
    "static_blue_square",
)
# Class -> the class it is rendered from, played backwards.
TIME_REVERSED = {
    "move_left": "move_right",
    "move_up": "move_down",
    "rotate_anticlockwise": "rotate_clockwise",
    "shrink": "grow",
    "disappear": "appear",
}
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
# Bumped whenever the rendering changes, so that a dataset written by an older generator is regenerated rather than
# silently trained on. 2: dark backgrounds, larger shapes, 32 frames (version 1 had bright backgrounds, 64 frames).
# 3: a keyframe every KEYFRAME_INTERVAL frames (version 2 had x264's default of 250, one keyframe per clip).
GENERATOR_VERSION = 3
# As tools/prepare_videos.py writes: a clip starting anywhere decodes from at most 15 frames before it.
KEYFRAME_INTERVAL = 16
# Written last by make_synthetic_dataset: its presence means the set is complete, its content how it was made.
MANIFEST = "dataset.json"


@dataclass(frozen=True)
class Trajectory:
    """Per-frame shape parameters, each an array of ``num_frames`` values (positions and sizes in pixels)."""

    x: np.ndarray
    y: np.ndarray
    radius: np.ndarray
    angle: np.ndarray
    opacity: np.ndarray


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """float ``(size, size, 3)``: a random dark colour with a random linear gradient.

    Dark, so that every shape stands out by its brightness as well as its colour: with backgrounds of any brightness
    the tiny demo model did not learn within its budget (README, "The demo, measured").
    """
    base = rng.uniform(20, 70, size=3)
    slope = rng.uniform(-15, 15, size=(2, 3))
    ramp = np.linspace(-0.5, 0.5, size)
    image = base + ramp[:, None, None] * slope[0] + ramp[None, :, None] * slope[1]
    return np.clip(image, 0, 255)


def _colour_distance(colour: np.ndarray, background: np.ndarray) -> float:
    return float(np.linalg.norm(colour - background.reshape(-1, 3).mean(axis=0)))


def _contrasting_colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A random RGB colour far enough from the background's mean to be seen (and segmented) easily."""
    while True:
        colour = rng.uniform(0, 255, size=3)
        if _colour_distance(colour, background) > 150:
            return colour


def _static_look(classname: str, rng: np.random.Generator) -> Tuple[str, np.ndarray]:
    """Shape and colour of a static class: a reddish circle or a bluish square."""
    if classname == "static_red_circle":
        return "circle", np.array([rng.uniform(190, 255), rng.uniform(0, 50), rng.uniform(0, 50)])
    return "square", np.array([rng.uniform(0, 50), rng.uniform(0, 70), rng.uniform(190, 255)])


def _static(n: int, value: float) -> np.ndarray:
    return np.full(n, float(value))


def _trajectory(kind: str, rng: np.random.Generator, size: int, n: int) -> Trajectory:
    """The motion of a forward class (or a static one) over ``n`` frames."""
    radius = rng.uniform(0.11, 0.16) * size
    # Keep every shape (a bar reaches 1.58 radii from its centre) inside the frame.
    margin = 1.6 * radius + 1
    t = np.linspace(0.0, 1.0, n)
    x, y = rng.uniform(margin, size - margin, size=2)
    angle, opacity = _static(n, rng.uniform(0, 2 * math.pi)), _static(n, 1.0)
    radii = _static(n, radius)
    if kind in ("move_right", "move_down"):
        travel = rng.uniform(0.28, 0.37) * size
        start = rng.uniform(margin, size - margin - travel)
        moving = start + travel * t
        xs, ys = (moving, _static(n, y)) if kind == "move_right" else (_static(n, x), moving)
        return Trajectory(xs, ys, radii, angle, opacity)
    if kind == "rotate_clockwise":
        # Image rows grow downwards, so a growing angle turns clockwise on screen.
        angle = angle + rng.uniform(0.8, 1.6) * math.pi * t
    elif kind == "grow":
        small, large = rng.uniform(0.064, 0.096) * size, rng.uniform(0.19, 0.25) * size
        x, y = rng.uniform(1.6 * large + 1, size - 1.6 * large - 1, size=2)
        radii = small + (large - small) * t
    elif kind == "appear":
        opacity = t
    return Trajectory(_static(n, x), _static(n, y), radii, angle, opacity)


def _polygon_distance(u: np.ndarray, v: np.ndarray, vertices: List[Tuple[float, float]]) -> np.ndarray:
    """Signed distance (exact inside, approximate outside) to a convex polygon with counter-clockwise vertices."""
    distance = None
    for (x0, y0), (x1, y1) in zip(vertices, vertices[1:] + vertices[:1]):
        length = math.hypot(x1 - x0, y1 - y0)
        # Outward normal of a counter-clockwise edge is (dy, -dx) / length.
        edge = ((u - x0) * (y1 - y0) - (v - y0) * (x1 - x0)) / length
        distance = edge if distance is None else np.maximum(distance, edge)
    return distance


def _shape_distance(shape: str, u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Signed distance in pixels to a shape of radius ``r`` in its own frame ``(u, v)`` (negative inside)."""
    if shape == "circle":
        return np.hypot(u, v) - r
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) - 0.886 * r  # same area as the circle
    if shape == "bar":
        return np.maximum(np.abs(u) - 1.5 * r, np.abs(v) - 0.5 * r)
    # An isosceles triangle pointing along +u, so that its orientation is visible.
    return _polygon_distance(u / r, v / r, [(1.4, 0.0), (-0.8, 0.9), (-0.8, -0.9)]) * r


def _per_frame(values: np.ndarray) -> np.ndarray:
    """Per-frame values ``(n,)`` as float32 ``(n, 1, 1)``, to broadcast over the pixels of each frame."""
    return values.astype(np.float32)[:, None, None]


def _render(shape: str, colour: np.ndarray, background: np.ndarray, path: Trajectory, noise: float,
            rng: np.random.Generator) -> np.ndarray:
    """uint8 ``(n, size, size, 3)`` frames of the shape following ``path`` over the background, plus noise."""
    size = background.shape[0]
    grid = np.arange(size, dtype=np.float32) + 0.5
    dx = grid[None, None, :] - _per_frame(path.x)
    dy = grid[None, :, None] - _per_frame(path.y)
    cos, sin = _per_frame(np.cos(path.angle)), _per_frame(np.sin(path.angle))
    distance = _shape_distance(shape, cos * dx + sin * dy, cos * dy - sin * dx, _per_frame(path.radius))
    # One pixel of antialiasing at the edge; the opacity fades the whole shape.
    alpha = (np.clip(0.5 - distance, 0, 1) * _per_frame(path.opacity))[..., None]
    frames = background.astype(np.float32) + alpha * (colour - background).astype(np.float32)
    # Uniform noise with standard deviation ``noise`` (cheaper to draw than Gaussian noise).
    frames += (rng.random(frames.shape, dtype=np.float32) - 0.5) * np.float32(noise * math.sqrt(12))
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def render_clip(classname: str, rng: np.random.Generator, size: int = 112, num_frames: int = 32) -> np.ndarray:
    """Renders one clip of ``classname``.

    Returns:
        uint8 ``(num_frames, size, size, 3)`` RGB frames.
    Raises:
        ValueError: unknown class name.
    """
    if classname not in CLASSNAMES:
        raise ValueError(f"unknown synthetic class {classname!r}; classes: {', '.join(CLASSNAMES)}")
    forward = TIME_REVERSED.get(classname, classname)
    background = _background(rng, size)
    if forward in ("static_red_circle", "static_blue_square"):
        shape, colour = _static_look(forward, rng)
        while _colour_distance(colour, background) < 150:
            background = _background(rng, size)
    else:
        shapes = ("triangle", "bar") if forward == "rotate_clockwise" else ("circle", "square", "triangle")
        shape, colour = shapes[rng.integers(len(shapes))], _contrasting_colour(rng, background)
    path = _trajectory(forward, rng, size, num_frames)
    frames = _render(shape, colour, background, path, rng.uniform(2, 6), rng)
    return frames[::-1].copy() if classname in TIME_REVERSED else frames


def write_video(path: str, frames: np.ndarray, fps: int = 30, crf: int = 18, keyint: int = KEYFRAME_INTERVAL) -> None:
    """Encodes uint8 ``(T, H, W, 3)`` RGB frames (even H and W) as H.264 yuv420p in an .mp4 file, with a keyframe
    at least every ``keyint`` frames."""
    # x264 output is reproducible only with one thread and without macroblock-tree rate control, whose optimised
    # code was seen to give different bytes from run to run on the same frames.
    options = {"crf": str(crf), "preset": "veryfast", "threads": "1", "x264-params": "mbtree=0", "g": str(keyint)}
    with av.open(path, mode="w") as container:
        stream = container.add_stream("libx264", rate=fps, options=options)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))


@dataclass(frozen=True)
class ClipJob:
    """One clip to render and write: where, which class, and from which seed."""

    out_dir: str
    relative_path: str
    classname: str
    seed: Tuple[int, int, int]
    size: int
    num_frames: int
    fps: int


def _write_clip(job: ClipJob) -> str:
    path = os.path.join(job.out_dir, job.relative_path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    frames = render_clip(job.classname, np.random.default_rng(job.seed), job.size, job.num_frames)
    write_video(path, frames, job.fps)
    return path


def split_jobs(out_dir: str, split: str, count: int, seed: int, size: int, num_frames: int, fps: int) -> List[ClipJob]:
    """The clips of one split: classes in turn (balanced), each clip seeded by ``(seed, split, index)``."""
    jobs = []
    for index in range(count):
        classname = CLASSNAMES[index % len(CLASSNAMES)]
        relative = f"{split}/{classname}/{split}_{index:05d}.mp4"
        jobs.append(ClipJob(out_dir, relative, classname, (seed, SPLIT_IDS[split], index), size, num_frames, fps))
    return jobs


def _write_csv(out_dir: str, split: str, jobs: List[ClipJob]) -> str:
    csv_path = os.path.join(out_dir, f"{split}.csv")
    with open(csv_path, "w", encoding="utf-8") as csv:
        csv.writelines(f"{job.relative_path} {CLASSNAMES.index(job.classname)}\n" for job in jobs)
    return csv_path


def make_synthetic_dataset(
    out_dir: str,
    seed: int = 0,
    num_train: int = 840,
    num_val: int = 120,
    num_test: int = 120,
    size: int = 112,
    num_frames: int = 32,
    fps: int = 30,
    workers: int = 2,
    progress: bool = True,
) -> Dict[str, str]:
    """Writes the synthetic dataset under ``out_dir``: ``{split}/{class}/*.mp4``, ``{split}.csv``, ``classnames.txt``.

    Returns:
        The path of each split's CSV file.
    Raises:
        ValueError: odd ``size`` (yuv420p needs even sides) or fewer than 2 frames.
    """
    if size % 2 or size < 16 or num_frames < 2:
        raise ValueError(f"need an even size >= 16 and at least 2 frames, got size={size}, num_frames={num_frames}")
    os.makedirs(out_dir, exist_ok=True)
    manifest_path = os.path.join(out_dir, MANIFEST)
    if os.path.exists(manifest_path):
        os.remove(manifest_path)  # an interrupted rewrite must not look complete
    spec = dataset_spec(seed, num_train, num_val, num_test, size, num_frames, fps)
    counts = {"train": num_train, "val": num_val, "test": num_test}
    jobs = {split: split_jobs(out_dir, split, n, seed, size, num_frames, fps) for split, n in counts.items()}
    _run_jobs([job for split_list in jobs.values() for job in split_list], workers, progress)
    with open(os.path.join(out_dir, "classnames.txt"), "w", encoding="utf-8") as names:
        names.write("\n".join(CLASSNAMES) + "\n")
    csv_paths = {split: _write_csv(out_dir, split, split_list) for split, split_list in jobs.items()}
    with open(manifest_path, "w", encoding="utf-8") as manifest:
        json.dump(spec, manifest, indent=2)
    return csv_paths


def dataset_spec(seed: int = 0, num_train: int = 840, num_val: int = 120, num_test: int = 120, size: int = 112,
                 num_frames: int = 32, fps: int = 30) -> Dict[str, int]:
    """What determines the bytes of a synthetic dataset (the worker count does not), as written to its manifest."""
    return {"generator_version": GENERATOR_VERSION, "seed": seed, "num_train": num_train, "num_val": num_val,
            "num_test": num_test, "size": size, "num_frames": num_frames, "fps": fps}


def stale_reason(out_dir: str, spec: Dict[str, int]) -> Optional[str]:
    """Why the dataset in ``out_dir`` is not the one ``spec`` (from :func:`dataset_spec`) would write; None if it is.

    A folder without a manifest is stale: it is incomplete, or was written before manifests existed (generator
    version 1).
    """
    manifest_path = os.path.join(out_dir, MANIFEST)
    if not os.path.exists(manifest_path):
        if os.path.exists(os.path.join(out_dir, "test.csv")):
            return (f"{manifest_path} is missing: the set is incomplete or was written before generator version "
                    f"{GENERATOR_VERSION} added manifests")
        return f"{out_dir} holds no complete synthetic dataset (no {MANIFEST})"
    try:
        with open(manifest_path, encoding="utf-8") as manifest:
            found = json.load(manifest)
    except (OSError, ValueError) as error:
        return f"{manifest_path} is unreadable ({error})"
    if not isinstance(found, dict):
        return f"{manifest_path} does not hold a JSON object"
    differences = [f"{key} {found.get(key)} -> {value}" for key, value in spec.items() if found.get(key) != value]
    if differences:
        return f"{manifest_path} differs from what was asked: " + ", ".join(differences)
    return None


def _run_jobs(jobs: List[ClipJob], workers: int, progress: bool) -> None:
    """Writes the clips, in ``workers`` processes when more than one, with a progress bar."""
    bar = tqdm(total=len(jobs), unit="clip", disable=not progress)
    if workers <= 1:
        for job in jobs:
            _write_clip(job)
            bar.update()
    else:
        with Pool(workers) as pool:
            for _ in pool.imap_unordered(_write_clip, jobs, chunksize=4):
                bar.update()
    bar.close()
