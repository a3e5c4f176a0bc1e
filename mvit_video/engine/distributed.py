"""torch.distributed set-up for runs launched by torchrun (one node or many), and the helpers the loops need.

A plain ``python tools/run_net.py`` is a world of one process; ``torchrun --nproc_per_node N tools/run_net.py`` (with
--nnodes, --node_rank, --master_addr for several nodes) sets the environment this module reads. NCCL is used on
GPUs, gloo on the CPU, through the same code.
"""

import os
from dataclasses import dataclass
from typing import Any, List

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(num_gpus: int) -> DistInfo:
    """Joins the process group torchrun describes (if any) and picks this process's device.

    ``num_gpus == 0`` means the CPU even where CUDA exists; otherwise CUDA is used when available.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = num_gpus > 0 and torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank, world_size, local_rank, device)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_gather_objects(obj: Any) -> List[Any]:
    """Every process's ``obj``, in rank order (just ``[obj]`` in a world of one)."""
    if not is_distributed():
        return [obj]
    out: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(values: List[float], device: torch.device) -> List[float]:
    """Element-wise sum of ``values`` over all processes."""
    if not is_distributed():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
