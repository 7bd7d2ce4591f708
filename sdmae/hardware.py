"""What the machine offers for scoring: native bf16, physical cores.

``precision="auto"`` (what :meth:`sdmae.detector.Detector.load` uses) picks
bf16 where the hardware has native bf16 dot products and fp32 elsewhere: bf16
moves predictions by ~1e-2 relative and frame scores by ~1e-3, and left the
demo's AUCs unchanged to 3-4 decimals (``benchmarks/RESULTS.md``); where the
hardware emulates bf16 it is slower than fp32.
"""

from __future__ import annotations

import os

import torch

__all__ = ["PRECISIONS", "native_bf16", "physical_cores", "resolve_precision"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` multiplies bf16 natively (CUDA: Ampere or newer;
    CPU: the ``avx512_bf16`` or ``amx_bf16`` instructions, read from /proc/cpuinfo)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        pass
    return False


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """"auto" -> "bf16" where :func:`native_bf16`, else "fp32"; other names are checked and returned."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def physical_cores() -> int:
    """Physical CPU cores usable by this process (SMT siblings counted once, capped by the
    CPU affinity mask); falls back to the affinity mask or os.cpu_count()."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    try:
        seen = set()
        with open("/proc/cpuinfo") as f:
            phys = core = None
            for line in f:
                if line.startswith("physical id"):
                    phys = line.split(":")[1].strip()
                elif line.startswith("core id"):
                    core = line.split(":")[1].strip()
                elif not line.strip():
                    if core is not None:
                        seen.add((phys, core))
                    phys = core = None
        if seen:
            return max(1, min(len(seen), usable))
    except OSError:
        pass
    return usable

