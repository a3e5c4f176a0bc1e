"""Configuration keys of the seed variants swapped into MViT: PEG, ELSA, CeiT and PVT v2 blocks."""

from fvcore.common.config import CfgNode

VARIANT_SUPPORTED_VALUES = {}


def add_variant_config(cfg: CfgNode) -> None:
    """Adds the variant keys to ``cfg`` in place. Their defaults build plain MViT, bit for bit."""
