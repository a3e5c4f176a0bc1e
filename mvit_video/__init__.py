"""mvit_video: Multiscale Vision Transformers for video recognition, with PySlowFast's configs and checkpoints.

For notebooks::

    import mvit_video
    loaded = mvit_video.load_model("mvitv2_s_16x4_k400")     # a registry name, a checkpoint file or a URL
    prediction = mvit_video.predict("video.mp4", loaded, topk=5)   # prediction.labels, prediction.scores
    timeline = mvit_video.predict_timeline("long.mp4", loaded, None, window=2.0, stride=1.0)
    # loaded.model (eval mode), loaded.cfg, loaded.classnames, loaded.transform (the eval transform)
"""

import importlib
from typing import Any

__version__ = "0.1.0"

# Imported on first use: they pull in torch, torchvision and PyAV, which ``import mvit_video.config`` should not.
_LAZY = {
    "Prediction": "inference",
    "Timeline": "inference",
    "predict": "inference",
    "predict_timeline": "inference",
    "annotate_video": "annotate",
    "LoadedModel": "pretrained",
    "load_model": "pretrained",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'mvit_video' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(list(globals()) + __all__)
