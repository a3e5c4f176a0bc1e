"""The machine line that benchmarks and comparison tools print next to their numbers."""

import platform

import torch

from mvit_video.machine import cpu_name, describe_machine, machine_info


def test_cpu_name_comes_from_cpuinfo_else_platform(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654 96-Core Processor\n"
                       "processor\t: 1\nmodel name\t: AMD EPYC 9654 96-Core Processor\n")
    assert cpu_name(str(cpuinfo)) == "AMD EPYC 9654 96-Core Processor"
    fallback = platform.processor() or platform.machine()
    assert cpu_name(str(tmp_path / "missing")) == fallback
    cpuinfo.write_text("processor\t: 0\nmodel name\t:   \n")  # an empty name is not a name
    assert cpu_name(str(cpuinfo)) == fallback


def test_cpu_description_names_cpu_cores_threads_and_torch():
    info = machine_info(torch.device("cpu"))
    assert info["cuda"] is None and info["torch"] == torch.__version__
    line = describe_machine(torch.device("cpu"))
    assert line == (f"{info['cpu']} ({info['machine']}, {info['cpu_count']} CPUs), torch {torch.__version__}, "
                    f"{torch.get_num_threads()} threads")
    assert not line.startswith(" (")  # never an empty CPU name
