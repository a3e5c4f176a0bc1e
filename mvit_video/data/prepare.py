"""Dataset preparation: re-encode videos so that training decodes them fast, and check every output.

Kinetics as downloaded is slow to train on: full-resolution frames, and often one keyframe every few seconds, so a
clip in the middle of a video decodes from far before its first frame. :func:`prepare_dataset` re-encodes each
video with PyAV (libx264, yuv420p, no audio) so that its short side is ``short_side`` pixels (320 by default, as
PySlowFast's Kinetics preparation) and a keyframe comes at least every ``keyint`` frames (16 by default). The frame
rate is kept unless one is asked for; a video is then retimed to a constant rate, frame i at ``i / fps``.

An output counts only once verified: it decodes to the end, has the source's frame count within one frame (scaled
by the frame-rate change), the source's duration within one frame, and no gap between keyframes longer than
``keyint``. It is written under a temporary name and renamed when verified, and recorded in ``prepared.jsonl`` in
the output folder with the source's size and mtime and the settings, so that a second run skips what is done (and
redoes what changed). A video that cannot be read or fails its check is listed with the reason; it never stops the
run.
"""

import json
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from multiprocessing import Pool
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import av
from tqdm import tqdm

from .clip_sampling import ClipSpec, clip_frame_indices, uniform_clip_starts
from .video import VideoDecodeError, VideoInfo, decode_frames, probe_video
from .kinetics import VIDEO_EXTENSIONS, read_csv_annotations

RECORDS = "prepared.jsonl"
FAILURES = "prepare_failures.txt"


class PrepareError(Exception):
    """One video could not be prepared; the message is the reason."""


@dataclass(frozen=True)
class EncodeSettings:
    """How outputs are encoded: what decides their bytes, and what resuming compares."""

    short_side: int = 320
    keyint: int = 16
    fps: Optional[float] = None  # None: the source's rate
    crf: int = 18
    preset: str = "veryfast"
    upscale: bool = True  # False: a video already no larger than short_side keeps its size

    def check(self) -> None:
        """Raises ValueError for an odd or tiny short side (yuv420p needs even sides), a keyint < 1 or fps <= 0."""
        if self.short_side < 16 or self.short_side % 2:
            raise ValueError(f"short side must be even and >= 16, got {self.short_side}")
        if self.keyint < 1:
            raise ValueError(f"keyframe interval must be >= 1, got {self.keyint}")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")


@dataclass(frozen=True)
class PrepareJob:
    """One video to prepare: absolute source path, absolute output path."""

    source: str
    output: str
    settings: EncodeSettings


@dataclass(frozen=True)
class PrepareResult:
    """What became of one job: ``reason`` is empty when the output is verified."""

    source: str
    output: str
    reason: str = ""
    frames: int = 0
    skipped: bool = False  # already done by an earlier run

    @property
    def ok(self) -> bool:
        return not self.reason


def output_size(width: int, height: int, short_side: int, upscale: bool = True) -> Tuple[int, int]:
    """``(width, height)`` with the short side at ``short_side`` (or kept, if smaller and not ``upscale``) and the
    long one scaled to match, rounded to even."""
    if not upscale:
        short_side = min(short_side, 2 * (min(width, height) // 2))
    scale = short_side / min(width, height)
    long_side = max(2, 2 * round(max(width, height) * scale / 2))
    return (long_side, short_side) if width >= height else (short_side, long_side)


def _frame_rate(info: VideoInfo, settings: EncodeSettings) -> Tuple[Fraction, Fraction]:
    """(source rate, output rate) as fractions; 29.97 fps becomes 30000/1001."""
    source = Fraction(info.fps).limit_denominator(1001)
    return source, (Fraction(settings.fps).limit_denominator(1001) if settings.fps else source)


def _repeats(index: int, ratio: Fraction) -> int:
    """How many output frames show source frame ``index``: those j with ``j / ratio`` in ``[index, index + 1)``."""
    return math.ceil((index + 1) * ratio) - math.ceil(index * ratio)


def _open_output(path: str, size: Tuple[int, int], rate: Fraction, settings: EncodeSettings):
    container = av.open(path, mode="w", format="mp4")
    # One encoder thread: the videos themselves are spread over processes.
    options = {"crf": str(settings.crf), "preset": settings.preset, "threads": "1", "g": str(settings.keyint)}
    stream = container.add_stream("libx264", rate=rate, options=options)
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    return container, stream


def _picture_stream(container):
    """The first video stream that is not cover art (the stream the decoder's frame count is about)."""
    pictures = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    return (pictures or list(container.streams.video))[0]


def encode_video(source: str, output: str, info: VideoInfo, settings: EncodeSettings) -> int:
    """Re-encodes ``source`` (probed as ``info``) into ``output`` (an .mp4); returns the source frames decoded.

    Raises:
        PrepareError: the source does not decode to the end.
    """
    size = output_size(info.width, info.height, settings.short_side, settings.upscale)
    source_rate, rate = _frame_rate(info, settings)
    ratio = rate / source_rate
    decoded = written = 0
    with av.open(source, metadata_errors="ignore") as src:
        stream = _picture_stream(src)
        stream.codec_context.thread_count = 1
        out, out_stream = _open_output(output, size, rate, settings)
        with out:
            try:
                for frame in src.decode(stream):
                    for _ in range(_repeats(decoded, ratio)):
                        image = frame.reformat(width=size[0], height=size[1], format="yuv420p",
                                               interpolation="BICUBIC")
                        image.pts, image.time_base = written, 1 / rate
                        out.mux(out_stream.encode(image))
                        written += 1
                    decoded += 1
            except av.error.FFmpegError as err:
                raise PrepareError(f"source does not decode past frame {decoded} ({err})") from None
            out.mux(out_stream.encode(None))
    return decoded


def _scan_output(path: str) -> Tuple[int, int]:
    """(frames decoded, longest run of packets without a keyframe, counting the first keyframe's packet) of
    ``path``, decoded to the end.

    Raises:
        PrepareError: it does not decode.
    """
    frames, gap, longest = 0, 0, 0
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise PrepareError("output has no video stream")
            for packet in container.demux(container.streams.video[0]):
                if packet.size:
                    gap = 1 if packet.is_keyframe else gap + 1
                    longest = max(longest, gap)
                frames += len(packet.decode())
    except av.error.FFmpegError as err:
        raise PrepareError(f"output does not decode ({err})") from None
    return frames, longest


def verify_output(output: str, source: VideoInfo, settings: EncodeSettings) -> int:
    """Checks a prepared video against its source; returns its frame count.

    Raises:
        PrepareError: it does not decode, or its frame count (within one), duration (within one frame) or
            keyframe spacing is wrong.
    """
    source_rate, rate = _frame_rate(source, settings)
    expected = source.num_frames * rate / source_rate
    frames, longest_gap = _scan_output(output)
    if abs(frames - expected) > 1:
        raise PrepareError(f"output has {frames} frames, expected {float(expected):.1f}")
    try:
        info = probe_video(output)
    except VideoDecodeError as err:
        raise PrepareError(f"output cannot be probed ({err.reason})") from None
    if info.num_frames != frames:
        raise PrepareError(f"output lists {info.num_frames} frames but decodes {frames}")
    if abs(info.duration - source.duration) > 1 / float(rate) + 1e-3:
        raise PrepareError(f"output lasts {info.duration:.3f} s, source {source.duration:.3f} s")
    if longest_gap > settings.keyint:
        raise PrepareError(f"output has {longest_gap} frames between keyframes, more than {settings.keyint}")
    return frames


def _encode_and_verify(job: PrepareJob, partial: str) -> int:
    """Writes ``partial`` and verifies it; returns its frame count. Raises VideoDecodeError, PrepareError."""
    info = probe_video(job.source)
    os.makedirs(os.path.dirname(job.output), exist_ok=True)
    decoded = encode_video(job.source, partial, info, job.settings)
    if abs(decoded - info.num_frames) > 1:
        raise PrepareError(f"source decodes to {decoded} frames but its index lists {info.num_frames}")
    return verify_output(partial, info, job.settings)


def prepare_video(job: PrepareJob) -> PrepareResult:
    """Encodes and verifies one video; ``job.output`` appears only when verified. A bad source is a result with
    its reason, never an exception."""
    partial = job.output + ".part"
    try:
        frames = _encode_and_verify(job, partial)
    except VideoDecodeError as err:
        reason = f"source: {err.reason}"
    except (PrepareError, OSError, av.error.FFmpegError) as err:
        reason = str(err) or type(err).__name__
    else:
        os.replace(partial, job.output)
        return PrepareResult(job.source, job.output, frames=frames)
    if os.path.exists(partial):
        os.remove(partial)
    return PrepareResult(job.source, job.output, reason)


def _folder_videos(folder: str, skip: str) -> List[str]:
    """Video files under ``folder`` (any depth, sorted), leaving out the tree ``skip`` (the output folder)."""
    found = []
    for parent, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if os.path.join(parent, d) != skip and not d.startswith("."))
        found += [os.path.join(parent, f) for f in sorted(files) if f.lower().endswith(VIDEO_EXTENSIONS)]
    return found


@dataclass(frozen=True)
class Sources:
    """What the inputs list: every video once, the CSV files with their ``(source, label)`` lines, and the folder
    that the output tree mirrors."""

    videos: List[str]
    csv_files: Dict[str, List[Tuple[str, int]]]
    root: str


def _under(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def collect_sources(inputs: Sequence[str], out_dir: str, separator: str = " ", prefix: str = "") -> Sources:
    """Reads the inputs: Kinetics-style CSV files (``path label``, paths resolved as training does) or folders of
    videos.

    Raises:
        FileNotFoundError: an input does not exist. AnnotationError: a malformed CSV file (every bad line named).
        ValueError: no videos at all.
    """
    out_dir = os.path.abspath(out_dir)
    videos, csv_files, anchors = [], {}, []
    for given in inputs:
        path = os.path.abspath(given)
        if os.path.isdir(path):
            found = _folder_videos(path, out_dir)
            anchors.append(path)
        else:
            lines = [(os.path.abspath(r.path), r.label) for r in read_csv_annotations(path, separator, prefix)]
            csv_files[path] = lines
            found = [source for source, _ in lines]
            if all(_under(source, os.path.dirname(path)) for source in found):
                anchors.append(os.path.dirname(path))
        videos += found
    if not videos:
        raise ValueError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) in {', '.join(inputs)}")
    videos = list(dict.fromkeys(videos))  # a video listed twice (val.csv and test.csv) is prepared once
    root = os.path.commonpath(anchors + [os.path.dirname(v) for v in videos])
    return Sources(videos, csv_files, root)


def plan_jobs(sources: Sources, out_dir: str, settings: EncodeSettings) -> List[PrepareJob]:
    """One job per video: the output mirrors the source's place under ``sources.root`` with an .mp4 suffix.

    Raises:
        ValueError: two sources would share an output (``a.avi`` and ``a.mp4``), or an output is its own source.
    """
    out_dir = os.path.abspath(out_dir)
    jobs, taken = [], {}
    for source in sources.videos:
        stem = os.path.splitext(os.path.relpath(source, sources.root))[0]
        output = os.path.join(out_dir, stem + ".mp4")
        if output == source:
            raise ValueError(f"{source} would be overwritten by its output: choose another output folder")
        if output in taken:
            raise ValueError(f"{taken[output]} and {source} would both be written to {output}")
        taken[output] = source
        jobs.append(PrepareJob(source, output, settings))
    return jobs


def _record(job: PrepareJob, result: PrepareResult, out_dir: str) -> dict:
    source = os.stat(job.source)
    return {"source": job.source, "source_size": source.st_size, "source_mtime_ns": source.st_mtime_ns,
            "output": os.path.relpath(job.output, out_dir), "output_size": os.path.getsize(job.output),
            "frames": result.frames, "settings": asdict(job.settings)}


def _end_line(log) -> None:
    """Ends a record cut off by an interrupted run, so that the next record starts on a line of its own."""
    if log.tell() > 0:
        log.seek(log.tell() - 1)
        if log.read(1) != "\n":
            log.write("\n")


def read_records(out_dir: str) -> Dict[str, dict]:
    """The verified outputs of earlier runs, by output path relative to ``out_dir`` (a cut-off last line is
    ignored)."""
    records = {}
    path = os.path.join(out_dir, RECORDS)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                records[record["output"]] = record
    return records


def already_done(job: PrepareJob, records: Dict[str, dict], out_dir: str) -> Optional[PrepareResult]:
    """The earlier result of ``job`` if its output was verified from the same source file (size and mtime) with the
    same settings and is still there unchanged; else None."""
    record = records.get(os.path.relpath(job.output, out_dir))
    if record is None or not os.path.exists(job.output) or not os.path.exists(job.source):
        return None
    source = os.stat(job.source)
    same = (record["source"] == job.source and record["source_size"] == source.st_size
            and record["source_mtime_ns"] == source.st_mtime_ns and record["settings"] == asdict(job.settings)
            and record["output_size"] == os.path.getsize(job.output))
    return PrepareResult(job.source, job.output, frames=record["frames"], skipped=True) if same else None


def _run(jobs: List[PrepareJob], workers: int, progress: bool) -> Iterator[PrepareResult]:
    """The results of ``jobs`` as they finish, from ``workers`` processes (in this one when 1), with a progress
    bar."""
    with tqdm(total=len(jobs), unit="video", disable=not progress) as bar:
        if workers <= 1:
            for job in jobs:
                yield prepare_video(job)
                bar.update()
            return
        with Pool(workers) as pool:
            for result in pool.imap_unordered(prepare_video, jobs):
                yield result
                bar.update()


@dataclass
class PrepareReport:
    """The outcome of :func:`prepare_dataset`."""

    results: List[PrepareResult]
    csv_files: Dict[str, str]  # input CSV -> the CSV written for the outputs
    failures_file: Optional[str]
    seconds: float

    @property
    def failed(self) -> List[PrepareResult]:
        return [r for r in self.results if not r.ok]

    @property
    def skipped(self) -> int:
        return sum(r.skipped for r in self.results)


def _write_csvs(sources: Sources, results: Dict[str, PrepareResult], out_dir: str, separator: str) -> Dict[str, str]:
    """``out_dir/<name>.csv`` for each input CSV: the verified outputs (paths relative to ``out_dir``), same labels;
    failed videos are left out.

    Raises:
        ValueError: two input CSV files share a name, or a new CSV would overwrite its input.
    """
    written = {}
    for csv_path, lines in sources.csv_files.items():
        new_path = os.path.join(out_dir, os.path.basename(csv_path))
        if new_path == csv_path or new_path in written.values():
            raise ValueError(f"{csv_path}: its prepared list would overwrite {new_path}")
        with open(new_path, "w", encoding="utf-8") as csv:
            for source, label in lines:
                if results[source].ok:
                    csv.write(f"{os.path.relpath(results[source].output, out_dir)}{separator}{label}\n")
        written[csv_path] = new_path
    return written


def _write_failures(failed: List[PrepareResult], out_dir: str) -> Optional[str]:
    path = os.path.join(out_dir, FAILURES)
    if not failed:
        if os.path.exists(path):
            os.remove(path)  # from an earlier run whose failures are now fixed
        return None
    with open(path, "w", encoding="utf-8") as listing:
        listing.writelines(f"{r.source}\t{r.reason}\n" for r in failed)
    return path


def prepare_dataset(inputs: Sequence[str], out_dir: str, settings: EncodeSettings = EncodeSettings(),
                    workers: int = 1, separator: str = " ", prefix: str = "", progress: bool = True) -> PrepareReport:
    """Prepares every video of ``inputs`` (CSV files or folders) into ``out_dir``, resuming an earlier run.

    Writes the verified outputs (the source tree mirrored), ``prepared.jsonl`` (one line per verified output), one
    CSV per input CSV listing the outputs, and ``prepare_failures.txt`` (``source<TAB>reason``) when some failed.

    Raises:
        FileNotFoundError, AnnotationError, ValueError: unusable inputs or settings (see :func:`collect_sources`,
            :func:`plan_jobs`, :meth:`EncodeSettings.check`). A video that fails never raises.
    """
    start = time.perf_counter()
    settings.check()
    out_dir = os.path.abspath(out_dir)
    sources = collect_sources(inputs, out_dir, separator, prefix)
    jobs = plan_jobs(sources, out_dir, settings)
    os.makedirs(out_dir, exist_ok=True)
    records = read_records(out_dir)
    results, todo = {}, []
    for job in jobs:
        done = already_done(job, records, out_dir)
        if done is None:
            todo.append(job)
        else:
            results[job.source] = done
    by_source = {job.source: job for job in todo}
    with open(os.path.join(out_dir, RECORDS), "a+", encoding="utf-8") as log:
        _end_line(log)
        for result in _run(todo, workers, progress):
            results[result.source] = result
            if result.ok:  # recorded at once, so that an interrupted run keeps what it finished
                log.write(json.dumps(_record(by_source[result.source], result, out_dir)) + "\n")
                log.flush()
    ordered = [results[source] for source in sources.videos]
    csv_files = _write_csvs(sources, results, out_dir, separator)
    failed = [r for r in ordered if not r.ok]
    return PrepareReport(ordered, csv_files, _write_failures(failed, out_dir), time.perf_counter() - start)


@dataclass(frozen=True)
class ClipDecodeTime:
    """Median CPU milliseconds to decode one training clip from a source video and from its prepared output."""

    source: str
    source_size: Tuple[int, int]
    output_size: Tuple[int, int]
    source_ms: float
    output_ms: float


def _clips(path: str, clip: ClipSpec, count: int) -> List[List[int]]:
    """``count`` evenly spaced T x tau clips of ``path``: their frame indices."""
    info = probe_video(path)
    span = clip.span(info.fps)
    starts = uniform_clip_starts(span, info.num_frames, info.fps, count)
    return [clip_frame_indices(start, span, clip.num_frames, info.num_frames) for start in starts]


def time_clip_decoding(pairs: Sequence[Tuple[str, str]], clip: ClipSpec, clips_per_video: int = 6,
                       repeats: int = 3, backend: Optional[str] = None) -> List[ClipDecodeTime]:
    """Times ``decode_frames`` on the same evenly spaced clips of each source and of its output.

    The two files are timed in turn, clip by clip, so that the load of a shared machine hits both alike; the frame
    tables are read first, as an epoch after the first finds them cached. Returns one row per pair.
    """
    rows = []
    for source, output in pairs:
        clips = {path: _clips(path, clip, clips_per_video) for path in (source, output)}
        times = {source: [], output: []}
        for _ in range(repeats):
            for i in range(clips_per_video):
                for path in (source, output):
                    start = time.process_time()
                    decode_frames(path, clips[path][i], backend=backend)
                    times[path].append(time.process_time() - start)
        before, after = probe_video(source), probe_video(output)
        rows.append(ClipDecodeTime(source, (before.width, before.height), (after.width, after.height),
                                   1e3 * statistics.median(times[source]), 1e3 * statistics.median(times[output])))
    return rows
