"""Configuration keys of the data pipeline: datasets, decoding, clip sampling, transforms, multi-view test."""

from fvcore.common.config import CfgNode

DATA_SUPPORTED_VALUES = {
    "DATA.INPUT_CHANNEL_NUM": ([3],),
    "DATA.ENSEMBLE_METHOD": ("sum", "max"),
}


def add_data_config(cfg: CfgNode) -> None:
    """Adds the TEST, DATA and DATA_LOADER sections to ``cfg`` in place."""
    # -----------------------------------------------------------------------------------------------------------------
    # Testing (multi-view)
    # -----------------------------------------------------------------------------------------------------------------
    cfg.TEST = CfgNode()
    cfg.TEST.ENABLE = True
    cfg.TEST.DATASET = "kinetics"
    cfg.TEST.BATCH_SIZE = 8
    cfg.TEST.CHECKPOINT_FILE_PATH = ""
    # Temporal clips per video ("views" in the MViT paper) and spatial crops per clip (1 = centre, 3 = left/centre/right).
    cfg.TEST.NUM_ENSEMBLE_VIEWS = 10
    cfg.TEST.NUM_SPATIAL_CROPS = 3

    # -----------------------------------------------------------------------------------------------------------------
    # Data
    # -----------------------------------------------------------------------------------------------------------------
    cfg.DATA = CfgNode()
    cfg.DATA.PATH_TO_DATA_DIR = ""
    cfg.DATA.PATH_PREFIX = ""
    cfg.DATA.PATH_LABEL_SEPARATOR = " "
    cfg.DATA.DECODING_BACKEND = "decord"
    # T frames sampled with stride tau, tau counted in frames at TARGET_FPS.
    cfg.DATA.NUM_FRAMES = 16
    cfg.DATA.SAMPLING_RATE = 4
    cfg.DATA.TARGET_FPS = 30
    cfg.DATA.USE_OFFSET_SAMPLING = True
    cfg.DATA.TRAIN_JITTER_SCALES = [256, 320]
    cfg.DATA.TRAIN_JITTER_SCALES_RELATIVE = []
    cfg.DATA.TRAIN_JITTER_ASPECT_RELATIVE = []
    cfg.DATA.TRAIN_CROP_SIZE = 224
    cfg.DATA.TEST_CROP_SIZE = 224
    cfg.DATA.INPUT_CHANNEL_NUM = [3]
    cfg.DATA.MEAN = [0.45, 0.45, 0.45]
    cfg.DATA.STD = [0.225, 0.225, 0.225]
    cfg.DATA.ENSEMBLE_METHOD = "sum"

    # -----------------------------------------------------------------------------------------------------------------
    # Data loader
    # -----------------------------------------------------------------------------------------------------------------
    cfg.DATA_LOADER = CfgNode()
    cfg.DATA_LOADER.NUM_WORKERS = 4
    cfg.DATA_LOADER.PIN_MEMORY = True

