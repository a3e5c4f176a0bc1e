"""tools/benchmark.py's ``gpu`` and ``train --with-data`` subcommands, run on the CPU with a tiny config."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from mvit_video.data.synthetic import make_synthetic_dataset

from .tool_modules import load_tool

TINY = ["--cfg", "configs/synthetic/MVIT_TINY.yaml", "--batch", "2", "--steps", "1", "--warmup", "1"]
SMALL_CLIPS = ["DATA.NUM_FRAMES", "4", "DATA.TRAIN_CROP_SIZE", "64", "DATA.TEST_CROP_SIZE", "64"]


@pytest.fixture(scope="module")
def benchmark():
    return load_tool("benchmark")


def test_sdpa_kernels_are_named_from_the_profiler(benchmark):
    q = torch.randn(1, 2, 8, 4)

    def attention():
        with sdpa_kernel([SDPBackend.MATH]):
            torch.nn.functional.scaled_dot_product_attention(q, q, q)

    cpu = torch.device("cpu")
    assert benchmark.sdpa_kernels(attention, cpu) == "math x1"
    assert benchmark.sdpa_kernels(lambda: torch.softmax(q @ q.transpose(-1, -2), -1), cpu).startswith("none")


def test_gpu_benchmark_runs_on_the_cpu_against_torchvision(benchmark, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    # torch.compile itself is torch's to test (and takes a minute here); what is checked is that both models go
    # through it with the backend asked and are timed again
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model, backend: compiled.append((type(model).__name__, backend))
                        or model)
    benchmark.main(["gpu", *TINY, "--device", "cpu", "--compile", "--compile-backend", "eager",
                    "--opts", *SMALL_CLIPS])
    assert compiled == [("MViT", "eager"), ("MViT", "eager")]
    out = capsys.readouterr().out
    assert "bf16" in out and "params: mvit_video 1,709,244, torchvision 1,709,244" in out
    eager, compiled = out.split("torch.compile (backend eager)")
    for section in (eager, compiled):
        rows = re.findall(r"^\| (mvit_video|torchvision MViT \(v1 layout\)) \| ([\d.]+) \| n/a \(CPU\) \| ([\d.]+) \|$",
                          section, re.MULTILINE)
        assert [name for name, *_ in rows] == ["mvit_video", "torchvision MViT (v1 layout)"]
        assert all(float(train) > 0 and float(infer) > 0 for _, train, infer in rows)
    assert "SDPA kernels, mvit_video: training flash (CPU) x6; inference flash (CPU) x6" in eager
    assert "SDPA kernels, torchvision MViT (v1 layout): training none" in eager


def test_train_with_data_compares_loader_and_model_with_model_only(benchmark, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    make_synthetic_dataset(str(tmp_path), num_train=4, num_val=0, num_test=0, size=64, num_frames=16, workers=1,
                           progress=False)
    benchmark.main(["train", "--with-data", *TINY, "--device", "cpu", "--opts", *SMALL_CLIPS,
                    "DATA.PATH_TO_DATA_DIR", str(tmp_path), "DATA.TRAIN_JITTER_SCALES", "[64, 80]",
                    "DATA_LOADER.NUM_WORKERS", "1"])
    out = capsys.readouterr().out
    rates = re.search(r"model only: ([\d.]+) clips/s   loader \+ model: ([\d.]+) clips/s   ratio ([\d.]+)", out)
    assert rates and all(float(value) > 0 for value in rates.groups())
    cpu = re.search(r"CPU ms per clip: data \(decode \+ transform\) ([\d.]+), model step ([\d.]+)", out)
    assert cpu and float(cpu.group(1)) > 0 and float(cpu.group(2)) > 0


@pytest.mark.parametrize("config, builder", [("MVIT_B_16x4", "mvit_v1_b"), ("MVITv2_S_16x4", "mvit_v2_s")])
def test_gpu_benchmark_peers_are_torchvisions_mvit_v1_b_and_mvit_v2_s(benchmark, config, builder):
    import torchvision.models.video as video

    from mvit_video.config import load_config

    cfg = load_config(str(Path(__file__).resolve().parents[1] / f"configs/K400/{config}.yaml"))
    assert benchmark._is_mvit_v2(cfg) == (builder == "mvit_v2_s")
    shapes = {name: tuple(t.shape) for name, t in benchmark.torchvision_peer(cfg).state_dict().items()}
    assert shapes == {name: tuple(t.shape) for name, t in getattr(video, builder)().state_dict().items()}


V2_TINY = ["--cfg", "configs/synthetic/MVITv2_TINY.yaml", "--batch", "2", "--warmup", "1", "--device", "cpu"]


def test_model_and_train_compare_with_torchvisions_mvitv2(benchmark, capsys, monkeypatch):
    """The forward ratio and the training ratio with resident memory the MViTv2 docs quote, on the tiny MViTv2."""
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    benchmark.main(["model", *V2_TINY, "--runs", "1", "--opts", *SMALL_CLIPS])
    out = capsys.readouterr().out
    forward = re.search(r"\[fp32\] mvit_video: ([\d.]+) ms   torchvision MViT: ([\d.]+) ms   speed-up: ([\d.]+)x   "
                        r"max \|logit diff\|: ([\d.e+-]+)", out)
    assert forward and float(forward.group(3)) > 0
    assert float(forward.group(4)) < 1e-4  # the same weights in both: the same logits
    # as its own process: the memory is measured in spawned children, which import the tool by its path
    done = subprocess.run([sys.executable, "tools/benchmark.py", "train", *V2_TINY, "--steps", "1", "--opts",
                           *SMALL_CLIPS], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "configs/synthetic/MVITv2_TINY.yaml; batch 2; fp32; 1 steps each" in out
    rates = re.search(r"mvit_video: ([\d.]+) clips/s .*torchvision MViT: ([\d.]+) clips/s .*speed-up: ([\d.]+)x", out)
    assert rates and all(float(v) > 0 for v in rates.groups())
    assert re.search(r"peak resident-size rise during training steps: mvit_video (\d+) MiB   torchvision (\d+) MiB",
                     out)
