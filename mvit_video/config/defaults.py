"""Default configuration.

Key names follow PySlowFast wherever the concept is the same, so that its MViT YAML files load after only their
dataset paths are changed. A key that is not defined here is rejected when a YAML file or ``--opts`` names it.
"""

from fvcore.common.config import CfgNode

from .data_defaults import DATA_SUPPORTED_VALUES, add_data_config
from .variant_defaults import VARIANT_SUPPORTED_VALUES, add_variant_config

_C = CfgNode()

# ---------------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------------
_C.TRAIN = CfgNode()
_C.TRAIN.ENABLE = True
# Kinetics-style datasets (DATA.LAYOUT csv or folders) are the only ones: locked in SUPPORTED_VALUES.
_C.TRAIN.DATASET = "kinetics"
_C.TRAIN.BATCH_SIZE = 64
_C.TRAIN.EVAL_PERIOD = 10
_C.TRAIN.CHECKPOINT_PERIOD = 10
_C.TRAIN.AUTO_RESUME = True
_C.TRAIN.CHECKPOINT_FILE_PATH = ""
# TRAIN.CHECKPOINT_FILE_PATH gives weights only: training starts at epoch 1 with a fresh optimiser (PySlowFast's
# True). To continue a run, restart it in its OUTPUT_DIR with TRAIN.AUTO_RESUME. Locked in SUPPORTED_VALUES.
_C.TRAIN.CHECKPOINT_EPOCH_RESET = True
# Leave the classifier of TRAIN.CHECKPOINT_FILE_PATH out, to fine-tune to another number of classes.
_C.TRAIN.CHECKPOINT_DROP_HEAD = False
# Autocast on CUDA (ignored on the CPU): bfloat16 by default; float16 adds a gradient scaler.
_C.TRAIN.MIXED_PRECISION = True
_C.TRAIN.AMP_DTYPE = "bfloat16"

add_data_config(_C)
# Test with the frames of every view in a seeded random order (the frame-shuffle probe's shuffled condition).
_C.TEST.SHUFFLE_FRAMES = False
# Class names for reports: "" (label numbers), "kinetics400", "kinetics600" or a file with one name per line.
_C.DATA.CLASSNAMES = ""

# ---------------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------------
_C.MODEL = CfgNode()
# "mvit" builds the multiscale model; "vit" is accepted for the single-scale baseline, which is the same network with
# no pooling and no channel expansion (see configs/K400/VIT_B_16x4.yaml).
_C.MODEL.ARCH = "mvit"
_C.MODEL.MODEL_NAME = "MViT"
_C.MODEL.NUM_CLASSES = 400
_C.MODEL.LOSS_FUNC = "soft_cross_entropy"
# Dropout before the classification layer.
_C.MODEL.DROPOUT_RATE = 0.5
# Recompute each block's activations in the backward pass (less memory, about a third more compute).
_C.MODEL.ACT_CHECKPOINT = False

# ---------------------------------------------------------------------------------------------------------------------
# Multiscale Vision Transformer
# ---------------------------------------------------------------------------------------------------------------------
_C.MVIT = CfgNode()
_C.MVIT.MODE = "conv"  # pooling function: conv | max | avg
_C.MVIT.CLS_EMBED_ON = True
_C.MVIT.PATCH_KERNEL = [3, 7, 7]
_C.MVIT.PATCH_STRIDE = [2, 4, 4]
_C.MVIT.PATCH_PADDING = [1, 3, 3]
_C.MVIT.PATCH_2D = False
_C.MVIT.EMBED_DIM = 96
_C.MVIT.NUM_HEADS = 1
_C.MVIT.MLP_RATIO = 4.0
_C.MVIT.QKV_BIAS = True
_C.MVIT.DROPPATH_RATE = 0.1
_C.MVIT.DEPTH = 16
_C.MVIT.NORM = "layernorm"
# [block index, multiplier]: the width (heads) is multiplied from that block on.
_C.MVIT.DIM_MUL = []
_C.MVIT.HEAD_MUL = []
# [block index, stride_t, stride_h, stride_w]: query pooling stride of that block.
_C.MVIT.POOL_Q_STRIDE = []
# [block index, stride_t, stride_h, stride_w]: explicit key/value pooling strides (used when ADAPTIVE is None).
_C.MVIT.POOL_KV_STRIDE = []
# Key/value stride of block 0, divided by the query stride at every query-pooling block.
_C.MVIT.POOL_KV_STRIDE_ADAPTIVE = None
_C.MVIT.POOL_KVQ_KERNEL = None
_C.MVIT.ZERO_DECAY_POS_CLS = True
_C.MVIT.NORM_STEM = False
_C.MVIT.SEP_POS_EMBED = False
# Positional embedding: "auto" follows SEP_POS_EMBED (separate, else joint); or "separate" | "joint" | "none".
_C.MVIT.POS_EMBED = "auto"
# LayerNorm eps after Q/K/V conv pooling: 1e-6 in PySlowFast and torchvision; pytorchvideo's MViT uses 1e-5.
_C.MVIT.POOL_NORM_EPS = 1e-6
# Dropout on the attention output projection.
_C.MVIT.DROPOUT_RATE = 0.0
# MViTv2 (Li et al., CVPR 2022). USE_ABS_POS False: no absolute table (MVIT.POS_EMBED "auto" then means none).
_C.MVIT.USE_ABS_POS = True
# Decomposed relative positions in every attention: spatial (rel_pos_h, rel_pos_w) and temporal (rel_pos_t) tables,
# truncated-normal at init unless REL_POS_ZERO_INIT.
_C.MVIT.REL_POS_SPATIAL = False
_C.MVIT.REL_POS_TEMPORAL = False
_C.MVIT.REL_POS_ZERO_INIT = False
# Add the pooled query to the attention output (residual pooling).
_C.MVIT.RESIDUAL_POOLING = False
# Widen in the attention of the block named in DIM_MUL (its skip path projected from the first norm's output).
_C.MVIT.DIM_MUL_IN_ATT = False
# Classify from the mean of the grid tokens (normalised after pooling) instead of the class token.
_C.MVIT.USE_MEAN_POOLING = False
# Three Q, K, V projections instead of one fused qkv.
_C.MVIT.SEPARATE_QKV = False
# PySlowFast keys of features this project does not implement; only their "off" value is accepted.
_C.MVIT.POOL_FIRST = False
_C.MVIT.LAYER_SCALE_INIT_VALUE = 0.0
_C.MVIT.HEAD_INIT_SCALE = 1.0
_C.MVIT.USE_FIXED_SINCOS_POS = False
_C.MVIT.REV = CfgNode()
_C.MVIT.REV.ENABLE = False
add_variant_config(_C)

# ---------------------------------------------------------------------------------------------------------------------
# Augmentation (consumed by the training pipeline)
# ---------------------------------------------------------------------------------------------------------------------
# With AUG.ENABLE: RandAugment (AA_TYPE) whose geometric operations resample with INTERPOLATION, as PySlowFast;
# COLOR_JITTER (brightness, contrast and saturation, one draw per clip) only when AA_TYPE is "", as timm; random
# erasing (RE_*). Resizing and crops are bilinear, as PySlowFast's spatial sampling.
_C.AUG = CfgNode()
_C.AUG.ENABLE = False
_C.AUG.NUM_SAMPLE = 1
_C.AUG.COLOR_JITTER = 0.4
_C.AUG.AA_TYPE = "rand-m9-mstd0.5-inc1"
_C.AUG.INTERPOLATION = "bicubic"
_C.AUG.RE_PROB = 0.25
_C.AUG.RE_MODE = "pixel"
_C.AUG.RE_COUNT = 1
_C.AUG.RE_SPLIT = False

_C.MIXUP = CfgNode()
_C.MIXUP.ENABLE = False
_C.MIXUP.ALPHA = 0.8
_C.MIXUP.CUTMIX_ALPHA = 1.0
_C.MIXUP.PROB = 1.0
_C.MIXUP.SWITCH_PROB = 0.5
_C.MIXUP.LABEL_SMOOTH_VALUE = 0.1

# MViT has no batch norm; the keys exist so that PySlowFast files load, locked to precise BN statistics off.
_C.BN = CfgNode()
_C.BN.USE_PRECISE_STATS = False
_C.BN.NUM_BATCHES_PRECISE = 200

# ---------------------------------------------------------------------------------------------------------------------
# Optimiser and schedule
# ---------------------------------------------------------------------------------------------------------------------
_C.SOLVER = CfgNode()
_C.SOLVER.OPTIMIZING_METHOD = "adamw"
_C.SOLVER.BASE_LR = 1e-4
_C.SOLVER.BASE_LR_SCALE_NUM_SHARDS = False
_C.SOLVER.LR_POLICY = "cosine"
_C.SOLVER.COSINE_AFTER_WARMUP = True
_C.SOLVER.COSINE_END_LR = 1e-6
_C.SOLVER.WARMUP_START_LR = 1e-6
_C.SOLVER.WARMUP_EPOCHS = 30.0
_C.SOLVER.MAX_EPOCH = 200
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.NESTEROV = True
_C.SOLVER.BETAS = [0.9, 0.999]
_C.SOLVER.WEIGHT_DECAY = 0.05
_C.SOLVER.ZERO_WD_1D_PARAM = True
_C.SOLVER.CLIP_GRAD_L2NORM = None
# Layer-wise lr decay for fine-tuning (PySlowFast's MViTv2 recipes: 0.75 for S): layer l (0 stem, class token and
# positions; i + 1 block i; depth + 1 the head) learns at the scheduled lr * LAYER_DECAY ** (depth + 1 - l). 1.0: off.
_C.SOLVER.LAYER_DECAY = 1.0

# ---------------------------------------------------------------------------------------------------------------------
# Misc
# ---------------------------------------------------------------------------------------------------------------------
_C.NUM_GPUS = 1
_C.NUM_SHARDS = 1
_C.SHARD_ID = 0
_C.RNG_SEED = 0
_C.OUTPUT_DIR = "./output"
_C.LOG_PERIOD = 10

_C.TENSORBOARD = CfgNode()
# Scalars of stats.jsonl mirrored to OUTPUT_DIR/tensorboard; needs pip install mvit_video[tensorboard].
_C.TENSORBOARD.ENABLE = False

# PySlowFast features this project does not have: accepted at "off" only (locked in SUPPORTED_VALUES), so that
# PySlowFast files load; any other value, or any other key of these sections, is refused by name.
_C.TRAIN.CHECKPOINT_TYPE = "pytorch"
_C.TEST.CHECKPOINT_TYPE = "pytorch"
_C.DEMO = CfgNode()
_C.DEMO.ENABLE = False
_C.DETECTION = CfgNode()
_C.DETECTION.ENABLE = False

# Values that PySlowFast accepts but this project does not implement: refused with the key named, never ignored.
SUPPORTED_VALUES = {
    # "vit" is MViT with no pooling and no channel expansion; config.validate checks that it is.
    "MODEL.ARCH": ("mvit", "vit"),
    "MODEL.MODEL_NAME": ("MViT",),
    "MVIT.MODE": ("conv", "max", "avg"),
    "MVIT.NORM": ("layernorm",),
    "MVIT.POS_EMBED": ("auto", "separate", "joint", "none"),
    "MVIT.PATCH_2D": (False,),
    "MVIT.POOL_FIRST": (False,),
    "MVIT.LAYER_SCALE_INIT_VALUE": (0.0,),
    "MVIT.HEAD_INIT_SCALE": (1.0,),
    "MVIT.USE_FIXED_SINCOS_POS": (False,),
    "MVIT.REV.ENABLE": (False,),
    "BN.USE_PRECISE_STATS": (False,),
    "BN.NUM_BATCHES_PRECISE": (200,),
    "TRAIN.DATASET": ("kinetics",),
    "TEST.DATASET": ("kinetics",),
    "TRAIN.CHECKPOINT_EPOCH_RESET": (True,),
    "TRAIN.CHECKPOINT_TYPE": ("pytorch",),
    "TEST.CHECKPOINT_TYPE": ("pytorch",),
    "DEMO.ENABLE": (False,),
    "DETECTION.ENABLE": (False,),
    "TRAIN.AMP_DTYPE": ("bfloat16", "float16"),
    "MODEL.LOSS_FUNC": ("soft_cross_entropy", "cross_entropy"),
    "SOLVER.OPTIMIZING_METHOD": ("adamw", "sgd"),
    "SOLVER.LR_POLICY": ("cosine", "constant"),
    **DATA_SUPPORTED_VALUES,
    **VARIANT_SUPPORTED_VALUES,
}


def get_default_cfg() -> CfgNode:
    """A fresh copy of the defaults."""
    return _C.clone()
