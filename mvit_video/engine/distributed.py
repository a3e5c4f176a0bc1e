"""torch.distributed set-up: PySlowFast's launch (NUM_SHARDS machines, NUM_GPUS processes each, joined through
``--init_method``) or torchrun's environment, and the helpers the loops need.

A plain ``python tools/run_net.py`` with NUM_SHARDS 1 and at most one GPU is a world of one process. Otherwise the
processes find each other in one of two ways:
- PySlowFast's: ``tools/run_net.py --init_method tcp://HOST:PORT --num_shards N --shard_id I`` on each machine starts
  NUM_GPUS processes there (one on the CPU, NUM_GPUS 0) and joins them to a world of NUM_SHARDS x that many
  (:func:`plan_launch`, :func:`launch`).
- torchrun's: ``torchrun --nproc_per_node P tools/run_net.py ...`` sets WORLD_SIZE, RANK, LOCAL_RANK and
  LOCAL_WORLD_SIZE, which :func:`init_distributed` reads; NUM_SHARDS and SHARD_ID must then name torchrun's nodes.
NCCL is used on GPUs, gloo on the CPU, through the same code.
"""

import functools
import logging
import os
import socket
import traceback
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ..config import ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class ShardLaunch:
    """PySlowFast's launch: ``num_shards`` machines of ``procs_per_shard`` processes; this machine is ``shard_id``."""

    init_method: str
    num_shards: int
    shard_id: int
    procs_per_shard: int
    backend: str

    @property
    def world_size(self) -> int:
        return self.num_shards * self.procs_per_shard

    def rank(self, local_rank: int) -> int:
        return self.shard_id * self.procs_per_shard + local_rank


@functools.lru_cache(maxsize=None)
def _warn_cpu_fallback() -> None:
    # once per process: the launch and every init_distributed ask again
    logger.warning("NUM_GPUS is 1 but no GPU is visible: running on the CPU (NUM_GPUS 0 says so)")


def use_cuda(num_gpus: int) -> bool:
    """Whether NUM_GPUS asks for GPUs that this machine has.

    NUM_GPUS 0 is the CPU. NUM_GPUS 1, the default, falls back to the CPU with a warning where no GPU is visible, so
    that the default config runs anywhere; more GPUs than are visible is an error.

    Raises:
        ConfigError: NUM_GPUS is negative or larger than the number of visible GPUs.
    """
    if num_gpus < 0:
        raise ConfigError(f"NUM_GPUS = {num_gpus}: expected 0 (the CPU) or a number of GPUs")
    if num_gpus == 0:
        return False
    available = torch.cuda.device_count()
    if available == 0 and num_gpus == 1:
        _warn_cpu_fallback()
        return False
    if num_gpus > available:
        seen = "no GPU is" if available == 0 else f"only {available} GPU{'s are' if available > 1 else ' is'}"
        raise ConfigError(f"NUM_GPUS = {num_gpus} but {seen} visible on this machine; set NUM_GPUS {available} "
                          f"(0 runs on the CPU)")
    return True


def _check_shards(num_shards: int, shard_id: int) -> None:
    if num_shards < 1 or not 0 <= shard_id < num_shards:
        raise ConfigError(f"SHARD_ID = {shard_id} with NUM_SHARDS = {num_shards}: expected NUM_SHARDS >= 1 and "
                          f"0 <= SHARD_ID < NUM_SHARDS")


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plan_launch(num_gpus: int, num_shards: int, shard_id: int, init_method: Optional[str]) -> Optional[ShardLaunch]:
    """How this machine's processes start: None for one process or under torchrun, else PySlowFast's launch.

    Without ``init_method``, one machine with several GPUs uses a free local port, as PySlowFast's default
    ``tcp://localhost:9999`` does; several machines need it.

    Raises:
        ConfigError: a bad NUM_GPUS (see :func:`use_cuda`) or SHARD_ID, several shards without ``init_method``, or
            ``init_method`` under torchrun.
    """
    _check_shards(num_shards, shard_id)
    cuda = use_cuda(num_gpus)
    if launched_by_torchrun():
        if init_method:
            raise ConfigError("--init_method and torchrun's environment (WORLD_SIZE) both set up the processes; "
                              "give one of them")
        return None
    procs = num_gpus if cuda else 1
    if num_shards * procs == 1:
        return None
    if not init_method:
        if num_shards > 1:
            raise ConfigError(f"NUM_SHARDS = {num_shards}: give --init_method tcp://HOST:PORT (the same on every "
                              f"shard, HOST being shard 0), or launch with torchrun")
        init_method = f"tcp://127.0.0.1:{_free_port()}"
    return ShardLaunch(init_method, num_shards, shard_id, procs, "nccl" if cuda else "gloo")


def _join(spec: ShardLaunch, local_rank: int) -> None:
    dist.init_process_group(spec.backend, init_method=spec.init_method, world_size=spec.world_size,
                            rank=spec.rank(local_rank))


def _worker(local_rank: int, spec: ShardLaunch, job: Callable, args: Sequence, outcomes) -> None:
    # The exception itself goes back to the parent, so that an error in a child is reported as the same error; it is
    # queued before the process group closes, so that it comes before the errors of the processes waiting on this one.
    try:
        _join(spec, local_rank)
        outcome = ("ok", job(*args))
    except Exception as err:  # noqa: BLE001 (handed to the parent, which raises it)
        outcome = ("error", err, traceback.format_exc())
    try:
        if local_rank == 0 or outcome[0] == "error":
            outcomes.put((local_rank, outcome))
    finally:
        shutdown()


def launch(job: Callable, args: Sequence, spec: ShardLaunch) -> Any:
    """Runs ``job(*args)`` in each of this machine's ``spec.procs_per_shard`` processes, each joined to the process
    group first: in this process when there is one, else in spawned ones.

    Returns:
        What ``job`` returned in this machine's first process.
    Raises:
        What ``job`` raised in any process (the first one reported), after every process has ended.
    """
    if spec.procs_per_shard == 1:
        _join(spec, 0)
        try:
            return job(*args)
        finally:
            shutdown()
    outcomes = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_worker, args=(spec, job, args, outcomes), nprocs=spec.procs_per_shard)
    result = None
    while not outcomes.empty():
        _, outcome = outcomes.get()
        if outcome[0] == "error":
            raise outcome[1] from RuntimeError(f"in a spawned process:\n{outcome[2]}")
        result = outcome[1]
    return result


def _check_torchrun_shards(world_size: int, per_node: int, rank: int, num_shards: int, shard_id: int) -> None:
    nodes, node = world_size // per_node, int(os.environ.get("GROUP_RANK", rank // per_node))
    if (nodes, node) != (num_shards, shard_id):
        raise ConfigError(f"NUM_SHARDS = {num_shards}, SHARD_ID = {shard_id} but torchrun started {nodes} node(s) of "
                          f"{per_node} processes and this is node {node}: pass NUM_SHARDS {nodes} SHARD_ID {node}")


def torchrun_world(num_gpus: int, num_shards: int, shard_id: int) -> tuple[int, int, int]:
    """(world size, rank, processes per node) from torchrun's environment (a world of one without torchrun), checked
    against the config before any process group is joined.

    Raises:
        ConfigError: see :func:`use_cuda`; NUM_SHARDS or SHARD_ID disagree with torchrun's nodes; on GPUs, NUM_GPUS
            is not the number of processes on this node.
    """
    _check_shards(num_shards, shard_id)
    cuda = use_cuda(num_gpus)
    world_size, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    _check_torchrun_shards(world_size, per_node, rank, num_shards, shard_id)
    _check_gpus_per_node(cuda, num_gpus, per_node)
    return world_size, rank, per_node


def _check_gpus_per_node(cuda: bool, num_gpus: int, per_node: int) -> None:
    if cuda and per_node != num_gpus:
        raise ConfigError(f"NUM_GPUS = {num_gpus} but {per_node} processes run on this machine; one process per GPU "
                          f"(torchrun --nproc_per_node {num_gpus})")


def init_distributed(num_gpus: int, num_shards: int = 1, shard_id: int = 0) -> DistInfo:
    """Joins the process group (torchrun's, unless :func:`launch` already joined one) and picks this process's device:
    ``cuda:<local rank>`` when :func:`use_cuda`, else the CPU.

    Raises:
        ConfigError: see :func:`use_cuda`; NUM_SHARDS or SHARD_ID disagree with torchrun's nodes; on GPUs, NUM_GPUS
            is not the number of processes on this machine.
    """
    if dist.is_available() and dist.is_initialized():
        _check_shards(num_shards, shard_id)
        cuda = use_cuda(num_gpus)
        world_size, rank = dist.get_world_size(), dist.get_rank()
        per_node = world_size // num_shards
        _check_gpus_per_node(cuda, num_gpus, per_node)
    else:
        world_size, rank, per_node = torchrun_world(num_gpus, num_shards, shard_id)
        cuda = use_cuda(num_gpus)
        if world_size > 1:
            dist.init_process_group(backend="nccl" if cuda else "gloo")
    local_rank = rank % per_node
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
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
