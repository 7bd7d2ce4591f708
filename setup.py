"""Build sdmae._C (C++17, OpenMP where the compiler has it) and, when CUDA is
found, sdmae._C_cuda from csrc/cuda/*.cu. Neither needs torch at build time.

SDMAE_CUDA=0 skips the CUDA module; SDMAE_CUDA=1 makes a missing CUDA an error.
CUDA_HOME (or nvcc on PATH) says where CUDA is. The CUDA architectures are those
of the GPUs nvidia-smi sees, else "80;90"; SDMAE_CUDA_ARCHS="75;86" overrides them.
PTX of the highest is embedded too, and architectures this nvcc cannot target are
skipped (detected) or an error (asked for).
"""

from __future__ import annotations  # "str | None" annotations on Python 3.9

import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
from glob import glob
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension, build_ext, has_flag
from setuptools import setup

ROOT = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (ROOT / "sdmae" / "__init__.py").read_text()).group(1)
MACROS = [("SDMAE_VERSION", f'"{VERSION}"')]


# CUDA's per-platform folders under targets/: Arm servers (Grace, GH200) are
# sbsa-linux, Jetson is aarch64-linux.
CUDA_TARGETS = {"x86_64": ["x86_64-linux"], "amd64": ["x86_64-linux"], "aarch64": ["sbsa-linux", "aarch64-linux"],
                "arm64": ["sbsa-linux", "aarch64-linux"], "ppc64le": ["ppc64le-linux"]}
DEFAULT_ARCHS = ["80", "90"]  # without a visible GPU: A100 and H100/H200, short to build on few cores


def cuda_dirs(base: Path, kind: str) -> list[Path]:
    """Where a CUDA install under ``base`` may keep its ``kind`` ("include" or "lib") files:
    the toolkit's lib64/lib, targets/<platform>/, and Debian's lib/<multiarch> (base /usr)."""
    targets = [base / "targets" / t / kind for t in CUDA_TARGETS.get(platform.machine().lower(), [])]
    if kind == "include":
        return [base / "include", *targets]
    multiarch = sysconfig.get_config_var("MULTIARCH")
    return [base / "lib64", base / "lib", *targets] + ([base / "lib" / multiarch] if multiarch else [])


def find_cuda():
    """Return (nvcc, include dir, static cudart) or None when CUDA is not usable."""
    wanted = os.environ.get("SDMAE_CUDA", "auto")
    if wanted == "0":
        return None
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    nvcc = str(Path(home) / "bin" / "nvcc") if home else shutil.which("nvcc")
    # nvcc on PATH may be a wrapper script, so also try the conventional install prefix.
    bases = [Path(home)] if home else []
    if nvcc:
        bases.append(Path(nvcc).resolve().parent.parent)
    bases.append(Path("/usr/local/cuda"))
    found = None
    for base in bases:
        include = next((d for d in cuda_dirs(base, "include") if (d / "cuda_runtime.h").exists()), None)
        cudart = next((d / "libcudart_static.a" for d in cuda_dirs(base, "lib")
                       if (d / "libcudart_static.a").exists()), None)
        if nvcc and Path(nvcc).exists() and include is not None and cudart is not None:
            found = (nvcc, str(include), str(cudart))
            break
    if found is None and wanted == "1":
        raise RuntimeError("SDMAE_CUDA=1 but no usable CUDA (nvcc, cuda_runtime.h, libcudart_static.a) was found; "
                           "set CUDA_HOME")
    return found


def _arch_key(arch: str) -> tuple[int, str]:
    digits = re.match(r"\d+", arch).group()
    return int(digits), arch[len(digits):]


def parse_archs(text: str) -> list[str]:
    """"80;90", "8.6, 9.0" or "sm_90a" -> sorted unique ["80", "90"] style names."""
    archs = set()
    for item in re.split(r"[;,\s]+", text.strip()):
        if not item:
            continue
        name = re.sub(r"^(sm_|compute_)", "", item.lower())
        dotted = re.fullmatch(r"(\d+)\.(\d)([af]?)", name)
        if dotted:
            name = dotted.group(1) + dotted.group(2) + dotted.group(3)
        if not re.fullmatch(r"\d{2,3}[af]?", name):
            raise ValueError(f"bad CUDA architecture {item!r}: write it like 80, 8.0, sm_90 or 90a")
        archs.add(name)
    return sorted(archs, key=_arch_key)


def run_quiet(cmd: list[str]) -> str | None:
    """stdout of an argument list (never a shell string), None when it cannot run or fails."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def visible_gpu_archs() -> list[str]:
    """Compute capabilities of the GPUs nvidia-smi sees ([] without nvidia-smi, a driver or a GPU)."""
    smi = shutil.which("nvidia-smi")
    out = run_quiet([smi, "--query-gpu=compute_cap", "--format=csv,noheader"]) if smi else None
    lines = [line.strip() for line in (out or "").splitlines()]
    return parse_archs(";".join(line for line in lines if re.fullmatch(r"\d+\.\d", line)))


def nvcc_archs(nvcc: str) -> set[str] | None:
    """The architectures this nvcc can target (nvcc 13 dropped sm_70 and older), None if it cannot say."""
    out = run_quiet([nvcc, "--list-gpu-arch"])
    found = set(re.findall(r"compute_(\d+)", out or ""))
    return found or None


def cuda_archs(nvcc: str) -> list[str]:
    """Architectures to build for: SDMAE_CUDA_ARCHS, else the visible GPUs', else DEFAULT_ARCHS,
    less those nvcc cannot target (an error only when SDMAE_CUDA_ARCHS asked for them)."""
    supported = nvcc_archs(nvcc)
    asked = os.environ.get("SDMAE_CUDA_ARCHS", "").strip()
    if asked:
        archs, source = parse_archs(asked), "SDMAE_CUDA_ARCHS"
    else:
        archs, source = visible_gpu_archs(), "the visible GPUs (nvidia-smi)"
        if not archs:
            archs, source = DEFAULT_ARCHS, "the default: no GPU visible"
    unsupported = [a for a in archs if supported is not None and str(_arch_key(a)[0]) not in supported]
    if unsupported:
        problem = (f"{nvcc} cannot target sm_{', sm_'.join(unsupported)} (it supports sm_"
                   f"{', sm_'.join(sorted(supported, key=int))})")
        if asked:
            raise RuntimeError(f"SDMAE_CUDA_ARCHS: {problem}; drop them, or build with an older CUDA")
        # An older GPU then falls back to sdmae's C++ kernels (sdmae.kernels probes a launch);
        # a newer one JIT-compiles the PTX embedded for the highest architecture.
        print(f"sdmae: {problem}: skipped", file=sys.stderr)
        archs = [a for a in archs if a not in unsupported]
        if not archs:
            archs, source = [a for a in DEFAULT_ARCHS if a in supported], "the default"
        if not archs:
            raise RuntimeError(f"sdmae: {problem}; set SDMAE_CUDA_ARCHS, or SDMAE_CUDA=0 to skip the CUDA module")
    print(f"sdmae: CUDA architectures sm_{', sm_'.join(archs)} + PTX compute_{archs[-1]} (from {source})",
          flush=True)
    return archs


class BuildExt(build_ext):
    """Adds OpenMP when the compiler accepts it, and compiles .cu files with nvcc."""

    def build_extensions(self):
        if has_flag(self.compiler, "-fopenmp"):
            for ext in self.extensions:
                ext.extra_compile_args.append("-fopenmp")
                ext.extra_link_args.append("-fopenmp")
        super().build_extensions()

    def build_extension(self, ext):
        cuda_sources = getattr(ext, "cuda_sources", None)
        if cuda_sources:
            nvcc, include, _ = CUDA
            archs = cuda_archs(nvcc)
            gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
            gencode.append(f"-gencode=arch=compute_{archs[-1]},code=compute_{archs[-1]}")
            out_dir = Path(self.build_temp) / "cuda"
            out_dir.mkdir(parents=True, exist_ok=True)
            for src in cuda_sources:
                obj = out_dir / (Path(src).stem + ".o")
                cmd = [nvcc, "-c", src, "-o", str(obj), "-O3", "-std=c++17", "-Xcompiler", "-fPIC",
                       f"-I{include}", *gencode]
                print(" ".join(cmd), flush=True)
                subprocess.run(cmd, check=True)  # an argument list: no shell, paths are never interpolated
                ext.extra_objects.append(str(obj))
        super().build_extension(ext)


extensions = [
    Pybind11Extension(
        "sdmae._C",
        sorted(glob("csrc/*.cpp")),
        include_dirs=["csrc"],
        define_macros=MACROS,
        cxx_std=17,
        extra_compile_args=["-O3"],
    )
]

CUDA = find_cuda()
if CUDA is not None:
    cuda_ext = Pybind11Extension(
        "sdmae._C_cuda",
        ["csrc/cuda/module.cpp"],
        include_dirs=["csrc/cuda", CUDA[1]],
        define_macros=MACROS,
        cxx_std=17,
        extra_compile_args=["-O3"],
        extra_link_args=[CUDA[2], "-lrt", "-lpthread", "-ldl"],  # cudart linked statically
    )
    cuda_ext.cuda_sources = sorted(glob("csrc/cuda/*.cu"))
    extensions.append(cuda_ext)
elif os.environ.get("SDMAE_CUDA", "auto") != "0":
    print("sdmae: CUDA not found, building the CPU extension only", file=sys.stderr)

setup(version=VERSION, ext_modules=extensions, cmdclass={"build_ext": BuildExt})
