import re
from pathlib import Path

from setuptools import find_packages, setup

README = Path(__file__).with_name("README.md")
# One version, mvit_video.__version__, read without importing the package (its dependencies may not be installed yet).
VERSION = re.search(r'^__version__ = "([^"]+)"', Path(__file__).with_name("mvit_video").joinpath("__init__.py")
                    .read_text(), re.M).group(1)
# mvit_video.export writes ONNX opset 17, which these versions read and run.
ONNX = ["onnx>=1.14", "onnxruntime>=1.16"]

setup(
    name="mvit_video",
    version=VERSION,
    description="Multiscale Vision Transformers for video recognition: paper-exact models, exact checkpoint loading, "
    "frame-exact data loading.",
    long_description=README.read_text() if README.exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(exclude=("tests", "tests.*", "tools")),
    include_package_data=True,
    package_data={"mvit_video": ["data/classnames/*.txt"]},
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "pytorchvideo>=0.1.5",
        "decord>=0.6; platform_system == 'Linux' and platform_machine == 'x86_64'",
        "av>=10",
        "fvcore>=0.1.5",
        "iopath>=0.1.9",
        "simplejson",
        "tqdm",
        "matplotlib",
        "numpy",
        "PyYAML",
    ],
    extras_require={
        # tools/export.py --format onnx: onnx to write the file, onnxruntime to check it against the eager model.
        # torch's TorchScript-based exporter is used, so onnxscript (the new exporter's dependency) is not needed.
        "onnx": ONNX,
        # TENSORBOARD.ENABLE: scalars of stats.jsonl mirrored to OUTPUT_DIR/tensorboard.
        "tensorboard": ["tensorboard>=2.10"],
        "test": ["pytest>=7", "scikit-video", "scipy", *ONNX],
        # tools/benchmark.py data --against torchcodec; needs FFmpeg's shared libraries (Debian: apt-get install ffmpeg).
        "torchcodec": ["torchcodec"],
    },
)
