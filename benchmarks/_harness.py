"""What the benchmarks share: timing (warm-up, synchronise, median and range) and
the machine they ran on, for their header lines."""

from __future__ import annotations

import platform
import statistics
import time
from typing import Any, Callable, NamedTuple


class Timing(NamedTuple):
    median: float  # seconds
    spread: tuple[float, float]  # (min, max) seconds
    times: list[float]


def synchronizer(device: Any) -> Callable[[], None]:
    """What makes a timing end when the device's work does (CUDA runs asynchronously)."""
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def device_and_threads(device: str, threads: int | None):
    """The torch device of ``--device`` (refused where CUDA is asked for and absent), with
    torch's CPU threads set to ``--threads``, by default one per physical core."""
    import torch

    from sdmae.hardware import physical_cores

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible to torch")
    torch.set_num_threads(threads or physical_cores())
    return dev


def _timing(times: list[float]) -> Timing:
    return Timing(statistics.median(times), (min(times), max(times)), times)


def timeit(fn: Callable[[], object], repeats: int, warmup: int = 1,
           sync: Callable[[], None] = lambda: None) -> Timing:
    """``warmup`` untimed calls, then ``repeats`` timed ones, each synchronised."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return _timing(times)


def timeit_interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int,
                       sync: Callable[[], None] = lambda: None) -> dict[str, Timing]:
    """{name: fn} -> {name: Timing}. The variants are timed round-robin (one call of each
    per repeat), so load from other processes on a shared machine hits all of them alike
    and their ratios stay meaningful."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[k].append(time.perf_counter() - start)
    return {k: _timing(t) for k, t in times.items()}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_features() -> str:
    """The CPU flags that decide sdmae's speed: vector width and native bf16."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return "flags unknown"
    have = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return " ".join(have) or "no avx2"


def device_name(device: Any) -> str:
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(device)
    return cpu_name()
