"""Build safe_greedy's extension.

With a CUDA or ROCm build of torch (and its toolkit present) this builds a
CUDAExtension holding the CPU and GPU kernels; torch hipifies the GPU sources
on ROCm. Otherwise it builds a CppExtension with the CPU kernel only.
SAFE_GREEDY_BUILD=cpu or =gpu forces one or the other.
"""

import os

import torch
from setuptools import find_packages, setup
from torch.utils import cpp_extension

HERE = os.path.dirname(os.path.abspath(__file__))
CPU_SOURCES = ["csrc/greedy_ops.cpp", "csrc/greedy_cpu.cpp"]
GPU_SOURCES = ["csrc/greedy_cuda.cu", "csrc/greedy_gpu_workspace.cu"]


def want_gpu_build() -> bool:
    choice = os.environ.get("SAFE_GREEDY_BUILD", "auto").lower()
    if choice not in ("auto", "cpu", "gpu"):
        raise SystemExit(f"SAFE_GREEDY_BUILD must be auto, cpu or gpu, got {choice!r}")
    if choice != "auto":
        return choice == "gpu"
    if torch.version.hip is not None:
        return cpp_extension.ROCM_HOME is not None
    return torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None


def extension():
    # The C++ standard is left to torch (its headers need C++20 from 2.10 on).
    # -O3: the CPU kernel's pass-one loop is written to be vectorised at the
    # baseline ISA; no -march flag, so the wheel runs on any x86-64 or arm64.
    cxx_flags = ["-O3"]
    include_dirs = [os.path.join(HERE, "csrc")]
    if want_gpu_build():
        gpu_flags = ["-O3"]
        if torch.version.hip is None:
            gpu_flags += ["--expt-relaxed-constexpr", "-lineinfo"]
        return cpp_extension.CUDAExtension(
            "safe_greedy._C",
            CPU_SOURCES + GPU_SOURCES,
            include_dirs=include_dirs,
            extra_compile_args={"cxx": cxx_flags, "nvcc": gpu_flags},
            py_limited_api=False,
        )
    return cpp_extension.CppExtension(
        "safe_greedy._C",
        CPU_SOURCES,
        include_dirs=include_dirs,
        extra_compile_args={"cxx": cxx_flags},
    )


setup(
    name="safe-greedy",
    version="0.1.0",
    description="Exact, always-in-range greedy sampling (per-row argmax) for LLM servers",
    package_dir={"": "python"},
    packages=find_packages("python"),
    ext_modules=[extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
    python_requires=">=3.9",
    install_requires=["torch>=2.4"],
)
