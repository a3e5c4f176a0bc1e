"""``build_model(cfg)``: the one place where the model reads the configuration."""

from typing import Any, Callable, Dict

from fvcore.common.config import CfgNode
from torch import nn

from .mvit import MViT, mvit_block_specs

_BUILDERS: Dict[str, Callable[[CfgNode], nn.Module]] = {}


def register_model(name: str) -> Callable:
    """Decorator: makes ``builder(cfg)`` available as MODEL.MODEL_NAME = ``name``."""

    def wrap(builder: Callable[[CfgNode], nn.Module]) -> Callable[[CfgNode], nn.Module]:
        _BUILDERS[name] = builder
        return builder

    return wrap


def pos_embed_kind(cfg: CfgNode) -> str:
    """MVIT.POS_EMBED, where "auto" follows PySlowFast's MVIT.SEP_POS_EMBED (separate, else joint)."""
    kind = cfg.MVIT.POS_EMBED
    if kind == "auto":
        return "separate" if cfg.MVIT.SEP_POS_EMBED else "joint"
    return kind


def mvit_kwargs(cfg: CfgNode) -> Dict[str, Any]:
    """The plain keyword arguments of :class:`MViT` that ``cfg`` describes."""
    m = cfg.MVIT
    blocks = mvit_block_specs(
        depth=m.DEPTH,
        embed_dim=m.EMBED_DIM,
        num_heads=m.NUM_HEADS,
        dim_mul=m.DIM_MUL,
        head_mul=m.HEAD_MUL,
        pool_q_stride=m.POOL_Q_STRIDE,
        pool_kv_stride=m.POOL_KV_STRIDE,
        pool_kv_stride_adaptive=m.POOL_KV_STRIDE_ADAPTIVE,
        pool_kvq_kernel=m.POOL_KVQ_KERNEL,
    )
    return dict(
        blocks=blocks,
        num_classes=cfg.MODEL.NUM_CLASSES,
        input_size=(cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TRAIN_CROP_SIZE),
        in_channels=cfg.DATA.INPUT_CHANNEL_NUM[0],
        patch_kernel=m.PATCH_KERNEL,
        patch_stride=m.PATCH_STRIDE,
        patch_padding=m.PATCH_PADDING,
        mlp_ratio=m.MLP_RATIO,
        qkv_bias=m.QKV_BIAS,
        mode=m.MODE,
        cls_embed_on=m.CLS_EMBED_ON,
        pos_embed=pos_embed_kind(cfg),
        norm_stem=m.NORM_STEM,
        drop_path_rate=m.DROPPATH_RATE,
        dropout=m.DROPOUT_RATE,
        head_dropout=cfg.MODEL.DROPOUT_RATE,
        pool_norm_eps=m.POOL_NORM_EPS,
        zero_decay_pos_cls=m.ZERO_DECAY_POS_CLS,
    )


@register_model("MViT")
def build_mvit(cfg: CfgNode) -> MViT:
    return MViT(**mvit_kwargs(cfg))


def build_model(cfg: CfgNode) -> nn.Module:
    """Builds MODEL.MODEL_NAME from ``cfg`` on the CPU, in training mode.

    Raises:
        KeyError: MODEL.MODEL_NAME is not registered (the registered names are listed).
    """
    name = cfg.MODEL.MODEL_NAME
    if name not in _BUILDERS:
        raise KeyError(f"MODEL.MODEL_NAME = {name!r} is not a registered model (registered: {sorted(_BUILDERS)})")
    return _BUILDERS[name](cfg)
