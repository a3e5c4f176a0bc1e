"""A class subset of a CSV dataset: the videos of some of its classes, relabelled 0..k-1, as a dataset of its own.

It is how the fine-tuning example gets two datasets with different classes out of the synthetic one (README,
"Fine-tuning to your own classes"). No video is copied: the new CSV files list the source videos by paths relative
to the new folder (or absolute ones, on request), resolved from the source CSVs exactly as the data loader resolves
them (``DATA.PATH_PREFIX``, then the CSV's folder), so the subset is read with an empty ``DATA.PATH_PREFIX``.
"""

import os
from typing import Dict, List, Optional, Sequence

from .kinetics import VideoRecord, load_classnames, read_csv_annotations

SPLITS = ("train", "val", "test")


def _check_classes(classes: Sequence[str], available: List[str], source: str) -> None:
    if not classes:
        raise ValueError("no classes given")
    repeated = sorted({name for name in classes if list(classes).count(name) > 1})
    if repeated:
        raise ValueError(f"classes given more than once: {', '.join(repeated)}")
    unknown = [name for name in classes if name not in available]
    if unknown:
        raise ValueError(f"classes not in {source}: {', '.join(unknown)}; its classes: {', '.join(available)}")


def _subset(records: List[VideoRecord], available: List[str], classes: Sequence[str]) -> List[VideoRecord]:
    """The records of ``classes``, in file order, labelled by their position in ``classes``."""
    new_label = {available.index(name): label for label, name in enumerate(classes)}
    return [VideoRecord(r.path, new_label[r.label]) for r in records if r.label in new_label]


def write_class_subset(
    src_dir: str,
    classes: Sequence[str],
    out_dir: str,
    classnames: Optional[str] = None,
    prefix: str = "",
    separator: str = " ",
    absolute: bool = False,
) -> Dict[str, int]:
    """Writes ``out_dir/{split}.csv`` with the videos of ``classes`` (label i = ``classes[i]``) and
    ``out_dir/classnames.txt``.

    Args:
        src_dir: the source dataset's folder, with ``{split}.csv`` files.
        classes: the class names to keep, in the order of their new labels.
        classnames: the source's class names (a file, or a shipped list such as "kinetics400"); by default
            ``src_dir/classnames.txt``.
        prefix, separator: the source's ``DATA.PATH_PREFIX`` and ``DATA.PATH_LABEL_SEPARATOR``; the subset is
            written with the same separator.
        absolute: write absolute video paths instead of paths relative to ``out_dir`` (which keep working when the
            source and the subset folders move together).
    Returns:
        The number of videos written per split. A split with no source CSV, or none of the classes, is not written
        (and an older CSV file of it in ``out_dir`` is removed).
    Raises:
        FileNotFoundError: no class names, or no ``train.csv`` in ``src_dir``.
        ValueError: unknown or repeated class names (all named), a class with no training video, or ``out_dir`` is
            ``src_dir``.
        AnnotationError: a malformed source CSV.
    """
    if os.path.realpath(out_dir) == os.path.realpath(src_dir):
        raise ValueError(f"{out_dir}: the subset would overwrite the source's CSV files; choose another folder")
    names_source = classnames or os.path.join(src_dir, "classnames.txt")
    available = load_classnames(names_source)
    _check_classes(classes, available, names_source)
    subsets = {}
    for split in SPLITS:
        csv_path = os.path.join(src_dir, f"{split}.csv")
        if split != "train" and not os.path.isfile(csv_path):
            continue
        records = read_csv_annotations(csv_path, separator, prefix, len(available))
        subsets[split] = _subset(records, available, classes)
    untrained = [name for label, name in enumerate(classes) if all(r.label != label for r in subsets["train"])]
    if untrained:
        raise ValueError(f"{src_dir}/train.csv has no videos of: {', '.join(untrained)}")
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.abspath(out_dir)
    for split in SPLITS:
        csv_path = os.path.join(out_dir, f"{split}.csv")
        records = subsets.get(split)
        if records:
            with open(csv_path, "w", encoding="utf-8") as csv:
                csv.writelines(
                    f"{r.path if absolute else os.path.relpath(r.path, base)}{separator}{r.label}\n" for r in records
                )
        elif os.path.exists(csv_path):
            os.remove(csv_path)
    with open(os.path.join(out_dir, "classnames.txt"), "w", encoding="utf-8") as names:
        names.write("\n".join(classes) + "\n")
    return {split: len(records) for split, records in subsets.items()}
