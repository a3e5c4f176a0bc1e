"""Run statistics: OUTPUT_DIR/stats.jsonl (one JSON object per line), optional TensorBoard, and a PNG of the curves."""

import os
from typing import Dict, Iterable, List, Optional

import simplejson

from ..errors import import_optional


class StatsWriter:
    """Appends records to ``stats.jsonl`` and mirrors scalars to TensorBoard.

    A resumed run continues the same file: the records of its first ``keep_epochs`` epochs stay, and those of later
    epochs, written by the interrupted run that this one repeats, are removed, so each epoch is reported once.

    Raises:
        MissingPackageError: ``tensorboard_dir`` is given and tensorboard is not installed.
    """

    def __init__(self, output_dir: str, tensorboard_dir: Optional[str] = None, keep_epochs: int = 0) -> None:
        os.makedirs(output_dir, exist_ok=True)
        self.path = os.path.join(output_dir, "stats.jsonl")
        if os.path.exists(self.path):
            self._keep_epochs(keep_epochs)
        self.tb = None
        if tensorboard_dir:
            import_optional("tensorboard", "tensorboard", "TENSORBOARD.ENABLE")
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(tensorboard_dir)

    def _keep_epochs(self, epochs: int) -> None:
        kept = [r for r in read_stats(self.path) if r.get("epoch", 0) <= epochs]
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            f.writelines(simplejson.dumps(r) + "\n" for r in kept)
        os.replace(tmp, self.path)

    def write(self, record: Dict, step: Optional[int] = None) -> None:
        with open(self.path, "a") as f:
            f.write(simplejson.dumps(record) + "\n")
        if self.tb is not None and step is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("epoch", "iter", "step"):
                    self.tb.add_scalar(f"{record.get('type', 'stats')}/{key}", value, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_stats(path: str) -> List[Dict]:
    """The records of a stats.jsonl file, skipping a partly written last line."""
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(simplejson.loads(line))
            except simplejson.JSONDecodeError:
                continue
    return records


def _series(records: Iterable[Dict], kind: str, key: str):
    rows = [r for r in records if r.get("type") == kind and r.get(key) is not None]
    return [r["epoch"] for r in rows], [r[key] for r in rows]


def plot_curves(runs: Dict[str, str], png_path: str) -> str:
    """Draws training loss, training top-1 and validation top-1 per epoch of one or more runs into ``png_path``.

    ``runs`` maps a label to a stats.jsonl path. Returns ``png_path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    panels = [("train_epoch", "loss", "training loss"), ("train_epoch", "top1", "training top-1 (%)"),
              ("val", "top1", "validation top-1 (%)")]
    for label, path in runs.items():
        records = read_stats(path)
        for ax, (kind, key, title) in zip(axes, panels):
            x, y = _series(records, kind, key)
            if x:
                ax.plot(x, y, marker="o", label=label)
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
