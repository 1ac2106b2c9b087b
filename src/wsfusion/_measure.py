"""Timing and peak-memory helpers (interleaved reps, medians), shared by the benchmarks and by ``compare``'s
latency column: one way to time a model in the whole package."""

from __future__ import annotations

import ctypes
import gc
import platform
import re
import statistics
import time
from collections.abc import Callable, Mapping

import torch


def sync(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a no-op on CPU), so that a timer measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine(device: torch.device) -> dict[str, object]:
    """What a timing was taken on: the processor (CPU model, or the CUDA device's name), the CPU threads and
    the torch build. Kernels' speed differs between machines far more than between runs, so every saved
    timing carries this record."""
    if device.type == "cuda":
        processor = torch.cuda.get_device_name(device)
    else:
        processor = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as f:
                found = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.MULTILINE)
            processor = found.group(1).strip() if found else processor
        except OSError:
            pass
    return {"device": device.type, "processor": processor, "threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__}


def machine_label(record: Mapping[str, object] | None) -> str:
    """One line naming a :func:`machine` record; ``"not recorded"`` for timings saved without one."""
    if record is None:
        return "not recorded"
    return f"{record['processor']} ({record['cpu_capability']}), {record['threads']} threads, torch {record['torch']}"


def interleaved_medians(
    cases: Mapping[str, Callable[[], object]], reps: int, device: torch.device, warmup: int = 2
) -> dict[str, float]:
    """Median milliseconds per case; each repetition runs every case once, in turn.

    Interleaving spreads the machine's noise (other processes, frequency
    changes) over all cases instead of penalising whichever ran during a bad
    spell.
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(reps):
        for name, fn in cases.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def _read_status(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def peak_memory_bytes(fn: Callable[[], object], device: torch.device) -> int | None:
    """Extra memory one call of ``fn`` needs at its peak (bytes), or None where unmeasurable.

    CUDA: ``torch.cuda.max_memory_allocated`` above the memory in use before
    the call. CPU (Linux): the process's peak resident set (``VmHWM``, reset
    through ``/proc/self/clear_refs``) above its resident set before the call,
    after returning freed heap memory to the OS so that reused pages do not
    hide new allocations. Approximate to a few MB.
    """
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    base = _read_status("VmRSS")
    fn()
    peak = _read_status("VmHWM")
    if base is None or peak is None:
        return None
    return max(peak - base, 0)


def peak_memory_mb(cases: Mapping[str, Callable[[], object]], device: torch.device) -> dict[str, float | None]:
    """:func:`peak_memory_bytes` of each case, in MB rounded to 0.1 (``None`` where unmeasurable)."""
    return {name: None if (b := peak_memory_bytes(fn, device)) is None else round(b / 2**20, 1)
            for name, fn in cases.items()}
