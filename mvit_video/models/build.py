"""``build_model(cfg)``: the one place where the model reads the configuration, and the one table from config names
to the layers at MViT's seams (the config's allowed values come from it)."""

import dataclasses
import functools
from typing import Any, Callable, Dict, List, Optional, Sequence

from fvcore.common.config import CfgNode
from torch import nn

from .conv_ffn import ConvFFN
from .layers import Mlp
from .lca import LCA
from .leff import LeFF
from .mvit import BlockSpec, LayerFactory, MViT, mvit_block_specs, stage_indices
from .patch_embed import OverlapPatchEmbed3d, PatchEmbed3d
from .peg import PEG
from .pooling_attention import MultiScaleAttention
from .pos_embed import JointPosEmbed, NoPosEmbed, SeparatePosEmbed
from .variants import VariantOptions, elsa_attention, i2t_stem, linear_sra_attention

_BUILDERS: Dict[str, Callable[[CfgNode], nn.Module]] = {}

# Config name -> layer, per seam. Entries that need settings take the VariantOptions.
STEMS: Dict[str, Callable[[VariantOptions], LayerFactory]] = {
    "cube": lambda o: PatchEmbed3d,
    "i2t": lambda o: functools.partial(i2t_stem, channels=o.i2t_channels),
    "overlap": lambda o: OverlapPatchEmbed3d,
}
# MVIT.POS_EMBED; "peg" puts no table after the stem and a PEG (CPVT) after the blocks of MVIT.PEG_PLACEMENT.
POS_EMBEDS: Dict[str, LayerFactory] = {
    "separate": SeparatePosEmbed,
    "joint": JointPosEmbed,
    "none": NoPosEmbed,
    "peg": NoPosEmbed,
}
AFTER_BLOCK_POS: Dict[str, LayerFactory] = {"peg": PEG}
ATTENTIONS: Dict[str, Callable[[VariantOptions], LayerFactory]] = {
    "mhpa": lambda o: MultiScaleAttention,
    "linear_sra": lambda o: functools.partial(linear_sra_attention, options=o),
}
# MVIT.ELSA_STAGES replaces the attention of the non-pooling blocks of those stages with this one.
STAGE_ATTENTION: Callable[[VariantOptions], LayerFactory] = lambda o: functools.partial(elsa_attention, options=o)
MLPS: Dict[str, Callable[[VariantOptions], LayerFactory]] = {
    "mlp": lambda o: Mlp,
    "leff": lambda o: LeFF,
    "convffn": lambda o: functools.partial(ConvFFN, linear=o.pvt_linear),
}
# MVIT.HEAD: what reads the blocks' output before the final norm and the classifier.
READOUTS: Dict[str, Optional[Callable[[int, bool], LayerFactory]]] = {
    "linear": None,
    "lca": lambda heads, qkv_bias: lambda widths: LCA(widths, widths[-1], heads, qkv_bias=qkv_bias),
}
PEG_PLACEMENTS = ("stage", "first")

SEAM_VALUES = {
    "MVIT.STEM": tuple(STEMS),
    "MVIT.POS_EMBED": ("auto", *POS_EMBEDS),
    "MVIT.PEG_PLACEMENT": PEG_PLACEMENTS,
    "MVIT.ATTENTION": tuple(ATTENTIONS),
    "MVIT.MLP": tuple(MLPS),
    "MVIT.HEAD": tuple(READOUTS),
}


def register_model(name: str) -> Callable:
    """Decorator: makes ``builder(cfg)`` available as MODEL.MODEL_NAME = ``name``."""

    def wrap(builder: Callable[[CfgNode], nn.Module]) -> Callable[[CfgNode], nn.Module]:
        _BUILDERS[name] = builder
        return builder

    return wrap


def pos_embed_kind(cfg: CfgNode) -> str:
    """MVIT.POS_EMBED, where "auto" follows PySlowFast's MVIT.USE_ABS_POS (none when off) and MVIT.SEP_POS_EMBED
    (separate, else joint)."""
    kind = cfg.MVIT.POS_EMBED
    if kind == "auto":
        if not cfg.MVIT.USE_ABS_POS:
            return "none"
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
    raise ValueError(f"MVIT.PEG_PLACEMENT = {placement!r} is not supported ({', '.join(PEG_PLACEMENTS)})")


def with_stage_attention(
    blocks: Sequence[BlockSpec], stages_with: Sequence[int], attn_layer: LayerFactory
) -> List[BlockSpec]:
    """Gives the blocks of ``stages_with`` that do not pool the query ``attn_layer`` (ELSA).

    Raises:
        ValueError: a stage that the network does not have, naming MVIT.ELSA_STAGES.
    """
    stages = stage_indices(blocks)
    missing = sorted(set(stages_with) - set(stages))
    if missing:
        raise ValueError(f"MVIT.ELSA_STAGES names stages {missing}, but the network has stages 0..{max(stages)}")
    return [
        dataclasses.replace(spec, attn_layer=attn_layer) if stage in stages_with and not _query_pools(spec) else spec
        for spec, stage in zip(blocks, stages)
    ]


def with_pos_after(blocks: Sequence[BlockSpec], indices: Sequence[int], pos_layer: LayerFactory) -> List[BlockSpec]:
    """Puts ``pos_layer`` after the blocks of ``indices``."""
    return [dataclasses.replace(s, pos_layer=pos_layer) if i in indices else s for i, s in enumerate(blocks)]


def _variant_options(m: CfgNode) -> VariantOptions:
    return VariantOptions(
        i2t_channels=m.I2T_CHANNELS,
        elsa_kernel=tuple(int(k) for k in m.ELSA_KERNEL),
        elsa_lam=float(m.ELSA_LAM),
        elsa_gamma=float(m.ELSA_GAMMA),
        elsa_group_width=m.ELSA_GROUP_WIDTH,
        sra_pool_size=tuple(int(p) for p in m.SRA_POOL_SIZE),
        pvt_linear=m.ATTENTION == "linear_sra",
    )


def _lookup(table: Dict[str, Any], key: str, value: str) -> Any:
    if value not in table:
        raise ValueError(f"{key} = {value!r} is not supported ({', '.join(table)})")
    return table[value]


def _attention(m: CfgNode, options: VariantOptions) -> LayerFactory:
    layer = _lookup(ATTENTIONS, "MVIT.ATTENTION", m.ATTENTION)(options)
    if layer is MultiScaleAttention:
        # MViTv2's options of MHPA
        return functools.partial(
            MultiScaleAttention,
            rel_pos_spatial=m.REL_POS_SPATIAL,
            rel_pos_temporal=m.REL_POS_TEMPORAL,
            rel_pos_zero_init=m.REL_POS_ZERO_INIT,
            residual_pooling=m.RESIDUAL_POOLING,
            separate_qkv=m.SEPARATE_QKV,
        )
    return layer


def mvit_kwargs(cfg: CfgNode) -> Dict[str, Any]:
    """The keyword arguments of :class:`MViT` that ``cfg`` describes, layers included.

    Raises:
        ValueError: a seam value that the table does not have, naming the key.
    """
    m = cfg.MVIT
    options = _variant_options(m)
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
        dim_mul_in_att=m.DIM_MUL_IN_ATT,
    )
    blocks = with_stage_attention(blocks, [int(s) for s in m.ELSA_STAGES], STAGE_ATTENTION(options))
    pos_embed = pos_embed_kind(cfg)
    if pos_embed in AFTER_BLOCK_POS:
        blocks = with_pos_after(blocks, peg_blocks(blocks, m.PEG_PLACEMENT), AFTER_BLOCK_POS[pos_embed])
    readout = _lookup(READOUTS, "MVIT.HEAD", m.HEAD)
    if readout is not None and not m.CLS_EMBED_ON:
        raise ValueError(f"MVIT.HEAD = {m.HEAD!r} reads the class tokens of every block: it needs MVIT.CLS_EMBED_ON")
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
        norm_stem=m.NORM_STEM,
        drop_path_rate=m.DROPPATH_RATE,
        dropout=m.DROPOUT_RATE,
        head_dropout=cfg.MODEL.DROPOUT_RATE,
        pool_norm_eps=m.POOL_NORM_EPS,
        zero_decay_pos_cls=m.ZERO_DECAY_POS_CLS,
        dim_mul_in_att=m.DIM_MUL_IN_ATT,
        use_mean_pooling=m.USE_MEAN_POOLING,
        stem_layer=_lookup(STEMS, "MVIT.STEM", m.STEM)(options),
        pos_layer=_lookup(POS_EMBEDS, "MVIT.POS_EMBED", pos_embed),
        attn_layer=_attention(m, options),
        mlp_layer=_lookup(MLPS, "MVIT.MLP", m.MLP)(options),
        readout_layer=readout(blocks[-1].num_heads, m.QKV_BIAS) if readout is not None else None,
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
