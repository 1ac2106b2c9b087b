import json
import re
from pathlib import Path

import pytest
import torch

from wsfusion._measure import machine, machine_label


def test_machine_names_the_cpu_threads_and_torch_build():
    record = machine(torch.device("cpu"))
    assert record["device"] == "cpu" and record["torch"] == torch.__version__
    assert record["threads"] == torch.get_num_threads()
    assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        assert record["processor"] == re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)[1].strip()
    assert isinstance(record["processor"], str) and record["processor"]
    json.dumps(record)


def test_machine_follows_the_thread_count_it_is_called_under():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert machine(torch.device("cpu"))["threads"] == 1
    finally:
        torch.set_num_threads(threads)


def test_machine_names_the_cuda_device_it_timed(monkeypatch):
    seen = []
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: seen.append(device) or "Some GPU")
    record = machine(torch.device("cuda", 1))
    assert record["processor"] == "Some GPU" and record["device"] == "cuda" and seen == [torch.device("cuda", 1)]


@pytest.mark.parametrize("cpuinfo", [None, "processor\t: 0\nflags\t: fpu\n"])
def test_machine_falls_back_to_platform_without_a_model_name(monkeypatch, cpuinfo):
    import builtins
    import platform

    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        if path == "/proc/cpuinfo":
            if cpuinfo is None:
                raise FileNotFoundError(path)
            import io
            return io.StringIO(cpuinfo)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(platform, "processor", lambda: "")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert machine(torch.device("cpu"))["processor"] == "x86_64"


def test_machine_label_names_the_record_or_says_it_is_missing():
    record = {"processor": "AMD EPYC", "cpu_capability": "AVX512", "threads": 2, "torch": "2.13.0+cpu", "device": "cpu"}
    assert machine_label(record) == "AMD EPYC (AVX512), 2 threads, torch 2.13.0+cpu"
    assert machine_label(None) == "not recorded"
