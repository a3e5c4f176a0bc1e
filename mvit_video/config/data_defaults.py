"""Configuration keys of the data pipeline: datasets, decoding, clip sampling, transforms, multi-view test."""

from fvcore.common.config import CfgNode

DATA_SUPPORTED_VALUES = {
    "DATA.INPUT_CHANNEL_NUM": ([3],),
    "DATA.ENSEMBLE_METHOD": ("sum", "max"),
    "DATA.DECODING_BACKEND": ("decord", "pyav", "torchvision"),
    "DATA.LAYOUT": ("csv", "folders"),
    "TEST.NUM_SPATIAL_CROPS": (1, 3),
    # The augmentation keys live in defaults.py; these are the values the data pipeline implements.
    "AUG.RE_MODE": ("pixel", "const"),
    "AUG.RE_COUNT": (1,),
    "AUG.RE_SPLIT": (False,),
    "AUG.INTERPOLATION": ("bicubic", "bilinear"),
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
    # "csv": PATH_TO_DATA_DIR/{train,val,test}.csv with "path label" lines (PySlowFast's format); a path is joined
    # to PATH_PREFIX and, if still relative, taken relative to the CSV's folder. "folders": PATH_TO_DATA_DIR/{split}/
    # <class name>/<video>, label ids in the sorted order of the train split's class folders.
    cfg.DATA.LAYOUT = "csv"
    cfg.DATA.PATH_TO_DATA_DIR = ""
    cfg.DATA.PATH_PREFIX = ""
    cfg.DATA.PATH_LABEL_SEPARATOR = " "
    # pyav | decord | torchvision (= pyav); frame-exact whichever is chosen, pyav the fastest (DATASET.md, Speed).
    cfg.DATA.DECODING_BACKEND = "pyav"
    # T frames sampled with stride tau, tau counted in frames at TARGET_FPS.
    cfg.DATA.NUM_FRAMES = 16
    cfg.DATA.SAMPLING_RATE = 4
    cfg.DATA.TARGET_FPS = 30
    # Test clips: True spreads them from the first to the last frame (PySlowFast's offset sampling); False starts
    # clip i at i / n of the free range, so that the last clip stops short of the end.
    cfg.DATA.USE_OFFSET_SAMPLING = True
    # Training: random short side in [min, max] then a TRAIN_CROP_SIZE crop; or, when the relative scales are set,
    # an Inception-style random resized crop of that area fraction and aspect ratio (default 3/4..4/3).
    cfg.DATA.TRAIN_JITTER_SCALES = [256, 320]
    cfg.DATA.TRAIN_JITTER_SCALES_RELATIVE = []
    cfg.DATA.TRAIN_JITTER_ASPECT_RELATIVE = []
    cfg.DATA.TRAIN_CROP_SIZE = 224
    cfg.DATA.RANDOM_FLIP = True
    # Test: 3 crops -> short side TEST_CROP_SIZE, crops at the start, centre and end of the long side;
    # 1 crop -> short side TRAIN_JITTER_SCALES[0], centre crop (PySlowFast's recipes). The val split uses one
    # temporal clip and one centre crop.
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

