"""Kinetics-style annotations: PySlowFast's ``path label`` CSV files, folder-per-class trees and class-name lists.

A CSV file (``train.csv``, ``val.csv``, ``test.csv``) has one video per line, ``<path><separator><label>``, with an
integer label in ``[0, num_classes)`` and no header. A path is joined to the prefix (``DATA.PATH_PREFIX``) as in
PySlowFast; a path that is still relative is then taken relative to the CSV file's folder, so that a dataset folder
can be moved as a whole. The label is the last field, so paths may contain the separator.
"""

import os
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")
CLASSNAMES_DIR = Path(__file__).with_name("classnames")


@dataclass(frozen=True)
class VideoRecord:
    """One annotated video: its file and its label id."""

    path: str
    label: int


class AnnotationError(ValueError):
    """An annotation file or folder cannot be used; the message names the file and every bad line."""


def resolve_video_path(path: str, prefix: str, base_dir: str) -> str:
    """``prefix/path``, taken relative to ``base_dir`` when it is not absolute."""
    joined = os.path.join(prefix, path) if prefix else path
    return joined if os.path.isabs(joined) else os.path.join(base_dir, joined)


def _parse_line(line: str, separator: str, num_classes: Optional[int]) -> Tuple[str, int]:
    """``(path, label)`` of one CSV line; raises ValueError with the reason when the line is malformed."""
    if separator not in line:
        raise ValueError("no label")
    path, label_text = line.rsplit(separator, 1)
    if not path.strip():
        raise ValueError("no path")
    try:
        label = int(label_text)
    except ValueError:
        raise ValueError("label is not an integer") from None
    if label < 0 or (num_classes is not None and label >= num_classes):
        raise ValueError(f"label out of range [0, {num_classes})" if num_classes else "negative label")
    return path.strip(), label


def _line_ranges(numbers: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"``: every line number, compactly."""
    parts = []
    for _, run in groupby(enumerate(numbers), key=lambda pair: pair[1] - pair[0]):
        run = [number for _, number in run]
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ", ".join(parts)


def _malformed_message(csv_path: str, separator: str, errors: Dict[str, List[int]]) -> str:
    total = sum(len(lines) for lines in errors.values())
    details = "; ".join(
        f"{reason}: {'lines' if len(lines) > 1 else 'line'} {_line_ranges(lines)}" for reason, lines in errors.items()
    )
    return (
        f"{csv_path}: {total} malformed line{'s' if total > 1 else ''} (expected 'path{separator}label' with an "
        f"integer label; check DATA.PATH_LABEL_SEPARATOR = {separator!r} and MODEL.NUM_CLASSES) -- {details}"
    )


def read_csv_annotations(
    csv_path: str, separator: str = " ", prefix: str = "", num_classes: Optional[int] = None
) -> List[VideoRecord]:
    """Reads a Kinetics-style ``path label`` CSV file. Blank lines are skipped.

    Returns:
        One record per line, in file order, with resolved paths.
    Raises:
        FileNotFoundError: the file does not exist.
        AnnotationError: some lines are malformed (every one is named with its line number and reason: no label,
            no path, a label that is not an integer or is outside ``[0, num_classes)``), or no video is listed.
    """
    if not os.path.isfile(csv_path):
        raise FileNotFoundError(f"annotation file not found: {csv_path}")
    base_dir = os.path.dirname(os.path.abspath(csv_path))
    records, errors = [], {}
    with open(csv_path, "r", encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                path, label = _parse_line(line, separator, num_classes)
            except ValueError as err:
                errors.setdefault(str(err), []).append(number)
                continue
            records.append(VideoRecord(resolve_video_path(path, prefix, base_dir), label))
    if errors:
        raise AnnotationError(_malformed_message(csv_path, separator, errors))
    if not records:
        raise AnnotationError(f"{csv_path}: no videos listed")
    return records


def list_class_folders(root: str) -> List[str]:
    """Sorted names of the sub-folders of ``root`` (hidden ones excluded); label id = position in this list."""
    return sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))


def scan_class_folders(root: str, classnames: Optional[Sequence[str]] = None) -> Tuple[List[VideoRecord], List[str]]:
    """Reads a folder-per-class tree ``root/<class name>/**/<video>``.

    Args:
        root: the split's folder.
        classnames: the label order to use (e.g. that of the training split); by default the sorted sub-folders.
    Returns:
        The records (sorted by path within each class) and the class names (label id = index).
    Raises:
        FileNotFoundError: ``root`` is not a folder.
        AnnotationError: a sub-folder is not one of ``classnames``, or no video file is found.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset folder not found: {root}")
    folders = list_class_folders(root)
    classnames = list(classnames) if classnames is not None else folders
    unknown = [name for name in folders if name not in classnames]
    if unknown:
        raise AnnotationError(f"{root}: class folders not in the training classes: {', '.join(unknown)}")
    records = []
    for label, name in enumerate(classnames):
        class_dir = Path(root, name)
        if class_dir.is_dir():
            videos = sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
            records += [VideoRecord(str(video), label) for video in videos]
    if not records:
        raise AnnotationError(f"{root}: no video files ({', '.join(VIDEO_EXTENSIONS)}) in its class folders")
    return records, classnames


def load_classnames(name_or_path: str) -> List[str]:
    """Class names, one per line (line i = label i): ``"kinetics400"``, ``"kinetics600"`` (shipped) or a file path.

    Raises:
        FileNotFoundError: neither a shipped list nor an existing file.
    """
    shipped = CLASSNAMES_DIR / f"{name_or_path}.txt"
    path = shipped if shipped.is_file() else Path(name_or_path)
    if not path.is_file():
        available = sorted(p.stem for p in CLASSNAMES_DIR.glob("*.txt"))
        raise FileNotFoundError(f"class names {name_or_path!r}: no such file, and not one of {available}")
    return path.read_text(encoding="utf-8").rstrip("\n").split("\n")


CLASSNAMES_FILE = "classnames.txt"


def find_classnames(data_dir: str, layout: str, classnames: str = "") -> Tuple[Optional[List[str]], str]:
    """The class names of a dataset and where they came from, in this order:

    ``classnames`` (DATA.CLASSNAMES: a file or a shipped list) when set; else ``data_dir/classnames.txt``; else, for
    the folder layout, the class folders of ``data_dir/train``; else ``(None, "label indices")``.

    Raises:
        FileNotFoundError: ``classnames`` is set but is neither a file nor a shipped list.
    """
    if classnames:
        return load_classnames(classnames), f"DATA.CLASSNAMES {classnames}"
    in_data = os.path.join(data_dir, CLASSNAMES_FILE)
    if os.path.isfile(in_data):
        return load_classnames(in_data), in_data
    train_dir = os.path.join(data_dir, "train")
    if layout == "folders" and os.path.isdir(train_dir):
        folders = list_class_folders(train_dir)
        if folders:
            return folders, f"the class folders of {train_dir}"
    return None, "label indices"
