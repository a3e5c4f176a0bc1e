"""The published Kinetics MViT checkpoints, by name: where each lives, how it is laid out, what it scores.

    python -m mvit_video.weights            (or tools/weights.py) lists them
    python -m mvit_video.weights NAME       shows one entry

Any checkpoint argument of the project (TRAIN/TEST.CHECKPOINT_FILE_PATH, ``--checkpoint`` of the tools,
``mvit_video.load_model``) takes one of these names; :mod:`mvit_video.hub` downloads and verifies the file.

Sources, read for this table (December 2026):

* PySlowFast: MODEL_ZOO.md and projects/mvitv2/README.md of facebookresearch/SlowFast (top-1/top-5, views,
  #params of MViTv2, URLs);
* torchvision: ``torchvision/models/video/mvit.py`` 0.29 (``MViT_V1_B_Weights``, ``MViT_V2_S_Weights``);
* pytorchvideo: docs/source/model_zoo.md and ``pytorchvideo/models/hub/vision_transformers.py``.

What could not be confirmed, and is therefore left empty or said in the entry's notes:

* No source publishes a full sha256 for any of these files. torchvision's file names carry the first 8 hex digits of
  the sha256 (torch.hub's ``name-<hex>.ext`` convention), which is verified; the other files are not verified. The
  ``_f302660347``-style suffixes of PySlowFast's and pytorchvideo's names are job ids, not hashes.
* PySlowFast publishes MViT-B 16x4 only as a Google Drive page, which is not a direct download: that entry must be
  downloaded by hand into the cache path that ``tools/weights.py NAME`` prints.
* PySlowFast gives no parameter count for MViT v1; the count shown is the same architecture's from torchvision and
  pytorchvideo (36.6 M for 400 classes). The K600 model's count is not published.
* Which MViT-B the two 32x3 files hold. The zoo pairs both ``k400.pyth`` and ``k600.pyth`` with
  ``Kinetics/MVIT_B_32x3_CONV``, a YAML that sets MVIT.DEPTH twice (16, then 24; PyYAML keeps the last), and its
  dataset column says K600 on the K400 row. The K400 top-1 (80.4) is near the paper's 16-block MViT-B 32x3 (80.2), the
  K600 one (83.9) near its MViT-B-24 32x3 (83.8). The entries name the 16-block configs; if a file holds 24 blocks,
  strict loading refuses it listing ``blocks.16`` to ``blocks.23`` as unexpected, and
  ``configs/K400/MVIT_B_24_32x3.yaml`` (or K600's) is the config to pass with ``--cfg``.
"""

import argparse
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

PYSLOWFAST_ZOO = "https://github.com/facebookresearch/SlowFast/blob/main/MODEL_ZOO.md"
MVITV2_ZOO = "https://github.com/facebookresearch/SlowFast/blob/main/projects/mvitv2/README.md"
TORCHVISION_SRC = "https://github.com/pytorch/vision/blob/main/torchvision/models/video/mvit.py"
PYTORCHVIDEO_ZOO = "https://github.com/facebookresearch/pytorchvideo/blob/main/docs/source/model_zoo.md"
MVITV2_FILES = "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/mvitv2/pysf_video_models/"


@dataclass(frozen=True)
class Weights:
    """One published checkpoint.

    ``layout`` is the key naming of the file ("pyslowfast", "torchvision", "pytorchvideo"), which
    :func:`mvit_video.weight_layouts.load_checkpoint` recognises by itself; ``config`` is the file in configs/ that
    builds the matching model, ``opts`` overrides of it; ``views`` says how top-1/top-5 were measured;
    ``sha256`` is the full digest where the source publishes one; ``direct`` is False when ``url`` is a web page
    rather than the file.
    """

    name: str
    url: str
    layout: str
    config: str
    classnames: str
    top1: float
    top5: float
    views: str
    num_params: Optional[float]
    source: str
    sha256: str = ""
    direct: bool = True
    opts: Tuple[str, ...] = ()
    notes: str = ""

    def describe(self) -> List[str]:
        """The entry as ``key: value`` lines."""
        params = f"{self.num_params:.2f} M" if self.num_params else "not published"
        lines = [
            f"name: {self.name}", f"url: {self.url}", f"layout: {self.layout}", f"config: {self.config}",
            f"classes: {self.classnames}", f"top-1 / top-5: {self.top1} / {self.top5} ({self.views})",
            f"params: {params}", f"source: {self.source}",
            f"checksum: {self.checksum()}",
        ]
        if self.opts:
            lines.append(f"config overrides: {' '.join(self.opts)}")
        if not self.direct:
            lines.append("download: by hand (the URL is a web page, not the file)")
        if self.notes:
            lines.append(f"notes: {self.notes}")
        return lines

    def checksum(self) -> str:
        """What a download of this entry is verified against, in words."""
        from .hub import hash_prefix

        if self.sha256:
            return f"sha256 {self.sha256}"
        prefix = hash_prefix(self.url)
        return f"sha256 starting {prefix} (from the file name)" if prefix else "none published: not verified"


def _pyslowfast(name, url, config, classnames, top1, top5, params, views="1 crop x 5 clips", **kw) -> Weights:
    return Weights(name, url, "pyslowfast", config, classnames, top1, top5, views, params, kw.pop("source",
                   PYSLOWFAST_ZOO), **kw)


_ENTRIES = [
    _pyslowfast(
        "mvit_b_16x4_k400", "https://drive.google.com/file/d/194gJinVejq6A1FmySNKQ8vAN5-FOY-QL/view?usp=sharing",
        "configs/K400/MVIT_B_16x4.yaml", "kinetics400", 78.4, 93.5, 36.61, direct=False,
        notes="published as a Google Drive page; params from torchvision's mvit_v1_b (same architecture)",
    ),
    _pyslowfast(
        "mvit_b_32x3_k400", "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/mvit/k400.pyth",
        "configs/K400/MVIT_B_32x3.yaml", "kinetics400", 80.4, 94.8, 36.61,
        notes="params from pytorchvideo's model zoo (same architecture); 16 or 24 blocks not confirmed (see the "
              "module docstring)",
    ),
    _pyslowfast(
        "mvit_b_32x3_k600", "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/mvit/k600.pyth",
        "configs/K600/MVIT_B_32x3.yaml", "kinetics600", 83.9, 96.5, None,
        notes="16 or 24 blocks not confirmed (see the module docstring)",
    ),
    _pyslowfast(
        "mvitv2_s_16x4_k400",
        MVITV2_FILES + "MViTv2_S_16x4_k400_f302660347.pyth",
        "configs/K400/MVITv2_S_16x4.yaml", "kinetics400", 81.0, 94.6, 34.5, source=MVITV2_ZOO,
    ),
    _pyslowfast(
        "mvitv2_b_32x3_k400",
        MVITV2_FILES + "MViTv2_B_32x3_k400_f304025456.pyth",
        "configs/K400/MVITv2_B_32x3.yaml", "kinetics400", 82.9, 95.7, 51.2, source=MVITV2_ZOO,
    ),
    _pyslowfast(
        "mvitv2_l_40x3_k400",
        MVITV2_FILES + "MViTv2_L_40x3_k400_f306903192.pyth",
        "configs/K400/MVITv2_L_40x3_test.yaml", "kinetics400", 86.1, 97.0, 217.6, views="3 crops x 5 clips",
        source=MVITV2_ZOO, notes="pre-trained on ImageNet-21K before Kinetics-400 (MViTv2 paper)",
    ),
    Weights(
        "torchvision_mvit_v1_b_k400", "https://download.pytorch.org/models/mvit_v1_b-dbeb1030.pth", "torchvision",
        "configs/K400/MVIT_B_16x4.yaml", "kinetics400", 78.477, 93.582,
        "1 crop x 5 clips of 16 frames at 7.5 fps", 36.610672, TORCHVISION_SRC,
        notes="ported by torchvision from PySlowFast's weights",
    ),
    Weights(
        "torchvision_mvit_v2_s_k400", "https://download.pytorch.org/models/mvit_v2_s-ae3be167.pth", "torchvision",
        "configs/K400/MVITv2_S_16x4.yaml", "kinetics400", 80.757, 94.665,
        "1 crop x 5 clips of 16 frames at 7.5 fps", 34.537744, TORCHVISION_SRC,
        notes="ported by torchvision from PySlowFast's weights",
    ),
    Weights(
        "pytorchvideo_mvit_base_16x4_k400",
        "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/MVIT_B_16x4.pyth", "pytorchvideo",
        "configs/K400/MVIT_B_16x4.yaml", "kinetics400", 78.85, 93.85, "1 crop x 5 clips", 36.61, PYTORCHVIDEO_ZOO,
        notes="pytorchvideo's own model normalises pooled Q/K/V with eps 1e-5 (MVIT.POOL_NORM_EPS); the config's "
              "1e-6 is what the weights were trained with",
    ),
]

REGISTRY: Dict[str, Weights] = {entry.name: entry for entry in _ENTRIES}


def get_weights(name: str) -> Optional[Weights]:
    """The registry entry called ``name`` (case-insensitive), or None."""
    return REGISTRY.get(name.lower())


def format_table() -> str:
    """One line per entry: name, classes, top-1/top-5 and views, params, layout, config."""
    rows = [("name", "classes", "top-1", "top-5", "views", "params (M)", "layout", "config")]
    for w in REGISTRY.values():
        params = f"{w.num_params:.1f}" if w.num_params else "-"
        rows.append((w.name, w.classnames, f"{w.top1:g}", f"{w.top5:g}", w.views.split(" of ")[0], params, w.layout,
                     w.config))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="The published Kinetics MViT checkpoints mvit_video knows by name.")
    parser.add_argument("name", nargs="?", help="show this entry, with the cache path of its file")
    args = parser.parse_args(argv)
    if args.name is None:
        print(format_table())
        return 0
    entry = get_weights(args.name)
    if entry is None:
        print(f"error: no checkpoint called {args.name!r}; known: {', '.join(REGISTRY)}", file=sys.stderr)
        return 1  # as every tool answers bad input (mvit_video.cli); 2 stays argparse's usage error
    from .hub import cache_path

    print("\n".join(entry.describe() + [f"cache path: {cache_path(entry.url)}"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
