"""What a measurement ran on, for the benchmarks and comparison tools to print next to their numbers."""

import os
import platform
from typing import Optional

import torch

__all__ = ["cpu_name", "describe_machine", "machine_info"]


def cpu_name(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name ("AMD EPYC ..."), from ``cpuinfo`` on Linux; else what ``platform`` knows, else the
    architecture (``platform.processor()`` is empty on many Linux machines)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: Optional[torch.device] = None) -> dict:
    """The machine as JSON-ready fields; ``cuda`` is the GPU's name when ``device`` (default: any) is a CUDA one."""
    on_cuda = torch.cuda.is_available() if device is None else device.type == "cuda"
    return {
        "cpu": cpu_name(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(device) if on_cuda else None,
    }


def describe_machine(device: Optional[torch.device] = None) -> str:
    """One line: the GPU when ``device`` (default: any) is a CUDA one, else the CPU with its cores and torch's
    threads."""
    info = machine_info(device)
    if info["cuda"]:
        return f"{info['cuda']}, torch {info['torch']}"
    return (f"{info['cpu']} ({info['machine']}, {info['cpu_count']} CPUs), torch {info['torch']}, "
            f"{info['torch_num_threads']} threads")
