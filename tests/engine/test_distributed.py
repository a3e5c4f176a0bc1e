"""Process set-up: NUM_GPUS checked against the machine, NUM_SHARDS and SHARD_ID against the launch, and PySlowFast's
launch (spawned processes joined through an init method) on the CPU with gloo."""

import logging

import pytest
import torch
import torch.distributed as dist

from mvit_video.config import ConfigError
from mvit_video.engine import distributed
from mvit_video.engine.distributed import ShardLaunch, init_distributed, launch, plan_launch, use_cuda

TORCHRUN_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK")


@pytest.fixture
def no_torchrun(monkeypatch):
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def gpus(monkeypatch):
    """Pretends the machine has ``n`` GPUs."""

    def set_count(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)

    return set_count


def test_more_gpus_than_the_machine_has_is_one_line(gpus):
    gpus(0)
    with pytest.raises(ConfigError, match=r"^NUM_GPUS = 8 but no GPU is visible on this machine; set NUM_GPUS 0"):
        use_cuda(8)
    gpus(2)
    with pytest.raises(ConfigError, match=r"^NUM_GPUS = 4 but only 2 GPUs are visible on this machine; set NUM_GPUS 2"):
        use_cuda(4)
    assert use_cuda(2) is True and use_cuda(0) is False


def test_the_default_of_one_gpu_runs_on_the_cpu_with_a_warning(gpus, caplog):
    gpus(0)
    distributed._warn_cpu_fallback.cache_clear()
    with caplog.at_level(logging.WARNING):
        assert use_cuda(1) is False
    assert "NUM_GPUS is 1 but no GPU is visible: running on the CPU" in caplog.text


def test_several_shards_need_an_init_method(no_torchrun, gpus):
    gpus(0)
    with pytest.raises(ConfigError, match="NUM_SHARDS = 2: give --init_method tcp://HOST:PORT"):
        plan_launch(0, 2, 0, None)
    with pytest.raises(ConfigError, match="SHARD_ID = 2 with NUM_SHARDS = 2"):
        plan_launch(0, 2, 2, "tcp://127.0.0.1:1")
    spec = plan_launch(0, 2, 1, "tcp://127.0.0.1:1")
    # on the CPU one process per shard; world = NUM_SHARDS x processes per shard, ranks counted shard by shard
    assert (spec.world_size, spec.procs_per_shard, spec.rank(0), spec.backend) == (2, 1, 1, "gloo")
    assert plan_launch(0, 1, 0, None) is None  # a world of one needs no launch


def test_gpus_per_shard_as_pyslowfast(no_torchrun, gpus):
    gpus(4)
    spec = plan_launch(4, 3, 2, "tcp://10.0.0.1:9999")
    assert (spec.world_size, spec.procs_per_shard, spec.rank(0), spec.rank(3), spec.backend) == (12, 4, 8, 11, "nccl")
    one_machine = plan_launch(4, 1, 0, None)  # PySlowFast's default: spawn NUM_GPUS processes on a local port
    assert one_machine.world_size == 4 and one_machine.init_method.startswith("tcp://127.0.0.1:")


def test_torchrun_and_init_method_are_exclusive(monkeypatch, gpus):
    gpus(0)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="--init_method and torchrun"):
        plan_launch(0, 1, 0, "tcp://127.0.0.1:1")
    assert plan_launch(0, 1, 0, None) is None


def test_shards_must_match_torchrun_nodes(monkeypatch, gpus):
    gpus(0)
    for name, value in {"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2",
                        "GROUP_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="torchrun started 2 node.* this is node 1: pass NUM_SHARDS 2 SHARD_ID 1"):
        init_distributed(0, 1, 0)
    assert not dist.is_initialized()


def _rank_sum(scale: int) -> tuple:
    value = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(value)
    return dist.get_rank(), dist.get_world_size(), scale * value.item()


def _fails_on_rank_one() -> None:
    if dist.get_rank() == 1:
        raise ConfigError("rank 1 found a bad key")
    dist.barrier()


def test_spawned_processes_join_through_the_init_method(no_torchrun):
    port = distributed._free_port()
    spec = ShardLaunch(f"tcp://127.0.0.1:{port}", num_shards=1, shard_id=0, procs_per_shard=2, backend="gloo")
    # the first process's result comes back; the all-reduce saw both ranks (1 + 2)
    assert launch(_rank_sum, (10,), spec) == (0, 2, 30.0)
    assert not dist.is_initialized()


def test_an_error_in_a_spawned_process_is_raised_as_itself(no_torchrun):
    spec = ShardLaunch(f"tcp://127.0.0.1:{distributed._free_port()}", 1, 0, 2, "gloo")
    with pytest.raises(ConfigError, match="rank 1 found a bad key"):
        launch(_fails_on_rank_one, (), spec)
