"""Build sdmae._C (C++17, OpenMP where the compiler has it) and, when CUDA is
found, sdmae._C_cuda from csrc/cuda/*.cu. Neither needs torch at build time.

SDMAE_CUDA=0 skips the CUDA module; SDMAE_CUDA=1 makes a missing CUDA an error.
CUDA_HOME (or nvcc on PATH) says where CUDA is; SDMAE_CUDA_ARCHS overrides the
default architectures "80;90" (PTX for the last one is embedded too).
"""

import os
import re
import shutil
import subprocess
import sys
from glob import glob
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension, build_ext, has_flag
from setuptools import setup

ROOT = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (ROOT / "sdmae" / "__init__.py").read_text()).group(1)
MACROS = [("SDMAE_VERSION", f'"{VERSION}"')]


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
        include = base / "include"
        cudart = next((p for p in (base / "lib64" / "libcudart_static.a", base / "lib" / "libcudart_static.a",
                                   base / "targets" / "x86_64-linux" / "lib" / "libcudart_static.a") if p.exists()), None)
        if nvcc and Path(nvcc).exists() and (include / "cuda_runtime.h").exists() and cudart is not None:
            found = (nvcc, str(include), str(cudart))
            break
    if found is None and wanted == "1":
        raise RuntimeError("SDMAE_CUDA=1 but no usable CUDA (nvcc, cuda_runtime.h, libcudart_static.a) was found; "
                           "set CUDA_HOME")
    return found


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
            archs = os.environ.get("SDMAE_CUDA_ARCHS", "80;90").split(";")
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
