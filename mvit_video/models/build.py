"""``build_model(cfg)``: the one place where the model reads the configuration."""

import dataclasses
from typing import Any, Callable, Dict, List, Sequence

from fvcore.common.config import CfgNode
from torch import nn

from .mvit import BlockSpec, MViT, mvit_block_specs, stage_indices
from .variants import VariantOptions

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


def _query_pools(spec: BlockSpec) -> bool:
    return any(s > 1 for s in spec.stride_q)


def peg_blocks(blocks: Sequence[BlockSpec], placement: str) -> List[int]:
    """The blocks after which a PEG goes: the first block of every stage ("stage", as Twins) or block 0 ("first").

    Raises:
        ValueError: unknown placement, naming MVIT.PEG_PLACEMENT.
    """
    if placement == "first":
        return [0]
    if placement == "stage":
        stages = stage_indices(blocks)
        return [i for i, stage in enumerate(stages) if i == 0 or stage != stages[i - 1]]
    raise ValueError(f"MVIT.PEG_PLACEMENT = {placement!r} is not supported (stage, first)")


def with_variant_layers(
    blocks: Sequence[BlockSpec], attention: str, mlp: str, elsa_stages: Sequence[int]
) -> List[BlockSpec]:
    """Names each block's attention and MLP: ``attention`` and ``mlp`` everywhere, ELSA in the blocks of
    ``elsa_stages`` that do not pool the query.

    Raises:
        ValueError: a stage in ``elsa_stages`` that the network does not have, naming MVIT.ELSA_STAGES.
    """
    stages = stage_indices(blocks)
    missing = sorted(set(elsa_stages) - set(stages))
    if missing:
        raise ValueError(f"MVIT.ELSA_STAGES names stages {missing}, but the network has stages 0..{max(stages)}")
    out = []
    for spec, stage in zip(blocks, stages):
        name = "elsa" if stage in elsa_stages and not _query_pools(spec) else attention
        out.append(dataclasses.replace(spec, attention=name, mlp=mlp))
    return out


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
    blocks = with_variant_layers(blocks, m.ATTENTION, m.MLP, [int(s) for s in m.ELSA_STAGES])
    pos_embed = pos_embed_kind(cfg)
    options = VariantOptions(
        i2t_channels=m.I2T_CHANNELS,
        elsa_kernel=tuple(int(k) for k in m.ELSA_KERNEL),
        elsa_lam=float(m.ELSA_LAM),
        elsa_gamma=float(m.ELSA_GAMMA),
        elsa_group_width=m.ELSA_GROUP_WIDTH,
        sra_pool_size=tuple(int(p) for p in m.SRA_POOL_SIZE),
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
        pos_embed="none" if pos_embed == "peg" else pos_embed,
        norm_stem=m.NORM_STEM,
        drop_path_rate=m.DROPPATH_RATE,
        dropout=m.DROPOUT_RATE,
        head_dropout=cfg.MODEL.DROPOUT_RATE,
        pool_norm_eps=m.POOL_NORM_EPS,
        zero_decay_pos_cls=m.ZERO_DECAY_POS_CLS,
        stem=m.STEM,
        peg_blocks=peg_blocks(blocks, m.PEG_PLACEMENT) if pos_embed == "peg" else [],
        head=m.HEAD,
        variant_options=options,
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
