"""Training and multi-view evaluation: ``train(cfg)`` and ``test(cfg)``, used by tools/run_net.py."""

from .trainer import test, train

__all__ = ["test", "train"]
