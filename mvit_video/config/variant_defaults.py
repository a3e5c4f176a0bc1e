"""Configuration keys of the seed variants swapped into MViT: PEG, ELSA, CeiT and PVT v2 blocks.

Each key picks what fills one of MViT's seams (stem, positional encoding, attention, MLP, head) or sets a variant
layer. Their defaults build plain MViT, bit for bit.
"""

from fvcore.common.config import CfgNode

from ..models.build import SEAM_VALUES

# The values of the seam keys are the names in the model builder's table.
VARIANT_SUPPORTED_VALUES = dict(SEAM_VALUES)


def add_variant_config(cfg: CfgNode) -> None:
    """Adds the variant keys to ``cfg`` in place. Their defaults build plain MViT, bit for bit."""
    m = cfg.MVIT
    # Stem: "cube" (MViT's Conv3d), "i2t" (CeiT: Conv3d (3,7,7)/(1,2,2) + BN + MaxPool (1,3,3)/(1,2,2), then a
    # patchify conv onto the cube stem's grid) or "overlap" (PVT v2: the cube conv followed by LayerNorm).
    m.STEM = "cube"
    # Output channels of the I2T stem's first convolution (CeiT: 64).
    m.I2T_CHANNELS = 64
    # With MVIT.POS_EMBED "peg", no absolute table: a PEG (CPVT) after the first block of every "stage", or after
    # block 0 only ("first", as CPVT's ablations).
    m.PEG_PLACEMENT = "stage"
    # Attention of every block: "mhpa" (pooling attention) or "linear_sra" (MHPA whose K/V pooling is replaced by
    # PVT v2's linear spatial reduction to SRA_POOL_SIZE).
    m.ATTENTION = "mhpa"
    # Stages (counted from 0; a stage starts at each query-pooling block) whose blocks use ELSA instead. Query-pooling
    # blocks keep MVIT.ATTENTION: ELSA cannot change the grid.
    m.ELSA_STAGES = []
    # ELSA's neighbourhood (k_t, k, k), ghost-head exponent lam and scale gamma, and the group width of its Hadamard
    # convolution. The paper's defaults; the released ELSA-Swin models use k = 7, lam = 0, gamma = 1.
    m.ELSA_KERNEL = [3, 5, 5]
    m.ELSA_LAM = 1.0
    m.ELSA_GAMMA = 1.0
    m.ELSA_GROUP_WIDTH = 8
    # Linear SRA pools the grid to this (T_p, H_p, W_p) before the K/V projection, enlarging a smaller grid (PVT v2:
    # 7 x 7 in space).
    m.SRA_POOL_SIZE = [8, 7, 7]
    # MLP of every block: "mlp", "leff" (CeiT) or "convffn" (PVT v2).
    m.MLP = "mlp"
    # Head: "linear" (LayerNorm, class token or mean, Linear) or "lca" (CeiT's layer-wise class-token attention over
    # the class tokens of all blocks, then LayerNorm and Linear; needs MVIT.CLS_EMBED_ON).
    m.HEAD = "linear"
