"""mvit_video: Multiscale Vision Transformers for video recognition, with PySlowFast's configs and checkpoints.

For notebooks::

    from mvit_video import predict, predict_timeline
    prediction = predict("video.mp4", model, cfg, topk=5)      # prediction.labels, prediction.scores
    timeline = predict_timeline("long.mp4", model, cfg, window=2.0, stride=1.0)
"""

import importlib
from typing import Any

# Imported on first use: they pull in torch, torchvision and PyAV, which ``import mvit_video.config`` should not.
_LAZY = {
    "Prediction": "inference",
    "Timeline": "inference",
    "predict": "inference",
    "predict_timeline": "inference",
    "annotate_video": "annotate",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'mvit_video' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(list(globals()) + __all__)
