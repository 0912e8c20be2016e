"""Build safe_greedy's extension.

With a CUDA or ROCm build of torch (and its toolkit present) this builds a
CUDAExtension holding the CPU and GPU kernels; torch hipifies the GPU sources
on ROCm. Otherwise it builds a CppExtension with the CPU kernel only.
SAFE_GREEDY_BUILD=cpu or =gpu forces one or the other.

Without CUDA_HOME (or CUDA_PATH) set, the CUDA toolkit is the one the `nvcc`
on PATH really runs, even when that `nvcc` is a wrapper script outside the
toolkit. Without TORCH_CUDA_ARCH_LIST set and with no GPU visible, the CUDA
build targets DEFAULT_CUDA_ARCH_LIST; without PYTORCH_ROCM_ARCH set, the ROCm
build targets DEFAULT_ROCM_ARCH_LIST and any other GPU visible.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

import torch
from setuptools import find_packages, setup
from torch.utils import cpp_extension

HERE = os.path.dirname(os.path.abspath(__file__))
CPU_SOURCES = [
    "csrc/extension/greedy_ops.cpp",
    "csrc/extension/greedy_cpu_launcher.cpp",
    "csrc/extension/distributed_ops.cpp",
]
GPU_SOURCES = [
    "csrc/extension/greedy_gpu_launcher.cu",
    "csrc/extension/greedy_gpu_workspace.cu",
    "csrc/extension/distributed_cuda.cu",
]

# With no GPU to look at, torch has no architecture to derive the list from
# (2.14 stops with an IndexError on the empty list), and a long list would
# multiply the build time. 8.0 (A100) also runs on the other 8.x parts (A10,
# L4, L40: same major version), 9.0 is H100/H200, and the 9.0 PTX lets newer
# GPUs (Blackwell) JIT-compile the kernels at load time.
DEFAULT_CUDA_ARCH_LIST = "8.0;9.0+PTX"
# ROCm: MI200 (gfx90a), MI300 (gfx942) and MI350/MI355X (gfx950, known to the
# compiler from ROCm 6.4 on). torch's own default is only the GPUs visible at
# build time, and nothing at all on a build machine without one.
DEFAULT_ROCM_ARCH_LIST = ("gfx90a", "gfx942", "gfx950")


def log(message: str) -> None:
    # stderr: pip shows it with -v, and always when the build fails.
    print(f"safe-greedy setup: {message}", file=sys.stderr, flush=True)


def is_cuda_toolkit(path) -> bool:
    return bool(path) and os.path.isfile(os.path.join(path, "include", "cuda_runtime.h"))


def toolkit_of_nvcc(nvcc: str):
    """The toolkit folder the given nvcc really runs from, or None.

    The nvcc driver prints its own install folder as `#$ TOP=...` in a dry
    run, whatever script or link it was started through.
    """
    with tempfile.TemporaryDirectory() as tmp:
        probe = os.path.join(tmp, "probe.cu")
        with open(probe, "w") as f:
            f.write("\n")
        try:
            run = subprocess.run(
                [nvcc, "-v", "--dryrun", "-c", probe, "-o", os.path.join(tmp, "probe.o")],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                universal_newlines=True,
                timeout=120,
            )
        except (OSError, subprocess.SubprocessError):
            return None
    for line in run.stdout.splitlines():
        match = re.match(r"#\$ TOP=(.+)$", line.strip())
        if match:
            return os.path.normpath(match.group(1).strip().strip('"'))
    return None


def resolve_cuda_home():
    """The CUDA toolkit to build with (a CUDA build of torch only), or None.

    torch guesses the toolkit as the folder above the `nvcc` on PATH; when that
    `nvcc` is a wrapper in /usr/local/bin the guess is /usr/local, which holds
    no CUDA headers and no libcudart, and the link fails. Finding the real
    folder here sets it for torch's build steps and for the tools they start.
    """
    guess = cpp_extension.CUDA_HOME
    if torch.version.cuda is None or os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return guess  # not a CUDA torch, or the user's choice stands
    if is_cuda_toolkit(guess):
        return guess
    candidates = []
    nvcc = shutil.which("nvcc")
    if nvcc is not None:
        candidates.append(toolkit_of_nvcc(nvcc))
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    candidates.append("/usr/local/cuda")
    for candidate in candidates:
        if is_cuda_toolkit(candidate) and os.path.isfile(os.path.join(candidate, "bin", "nvcc")):
            if candidate != guess:
                log(f"CUDA_HOME is not set and torch's guess {guess!r} is no CUDA toolkit; "
                    f"using {candidate!r}")
            os.environ["CUDA_HOME"] = candidate
            cpp_extension.CUDA_HOME = candidate
            return candidate
    cpp_extension.CUDA_HOME = None
    return None


CUDA_TOOLKIT = resolve_cuda_home()


def want_gpu_build() -> bool:
    choice = os.environ.get("SAFE_GREEDY_BUILD", "auto").lower()
    if choice not in ("auto", "cpu", "gpu"):
        raise SystemExit(f"SAFE_GREEDY_BUILD must be auto, cpu or gpu, got {choice!r}")
    if choice == "cpu":
        return False
    if torch.version.hip is not None:
        usable = cpp_extension.ROCM_HOME is not None
        missing = "no ROCm install was found (set ROCM_HOME)"
    elif torch.version.cuda is not None:
        usable = CUDA_TOOLKIT is not None
        missing = ("no CUDA toolkit was found (CUDA_HOME is not set, and neither the nvcc on "
                   "PATH nor /usr/local/cuda leads to one)")
    else:
        usable = False
        missing = f"torch {torch.__version__} is a CPU-only build"
    if usable:
        return True
    if choice == "gpu":
        raise SystemExit(f"SAFE_GREEDY_BUILD=gpu, but {missing}")
    if torch.version.cuda is not None or torch.version.hip is not None:
        log(f"WARNING: building the CPU kernel only, without the GPU kernel: {missing}. "
            "Set CUDA_HOME (or ROCM_HOME) to the toolkit's folder to build both.")
    return False


def default_cuda_arch_list() -> None:
    """Pick the CUDA architectures where torch has no GPU to pick them from."""
    if torch.version.hip is not None or os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return
    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        return  # torch builds for the visible GPUs
    os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_CUDA_ARCH_LIST
    log(f"no GPU visible and TORCH_CUDA_ARCH_LIST unset: building for "
        f"TORCH_CUDA_ARCH_LIST={DEFAULT_CUDA_ARCH_LIST!r}")


def default_rocm_arch_list() -> None:
    """Pick the ROCm targets unless PYTORCH_ROCM_ARCH names them: the project's
    list, and any other GPU visible (an RDNA card, say)."""
    if torch.version.hip is None or os.environ.get("PYTORCH_ROCM_ARCH"):
        return
    rocm_version = tuple(int(v) for v in torch.version.hip.split(".")[:2])
    archs = [a for a in DEFAULT_ROCM_ARCH_LIST if a != "gfx950" or rocm_version >= (6, 4)]
    for device in range(torch.cuda.device_count()):
        arch = torch.cuda.get_device_properties(device).gcnArchName.split(":")[0]
        if arch not in archs:
            archs.append(arch)
    os.environ["PYTORCH_ROCM_ARCH"] = ";".join(archs)
    log(f"PYTORCH_ROCM_ARCH unset: building for PYTORCH_ROCM_ARCH={os.environ['PYTORCH_ROCM_ARCH']!r}")


# The oldest torch the extension serves: 2.10 is the first whose stable ABI
# has what the CPU kernel needs (parallel_for, get_num_threads) and the
# tensor accessors the checks use (const_data_ptr, mutable_data_ptr<T>). The
# headers then refuse any later API, so one build serves torch 2.10 and every
# later release.
TORCH_TARGET_VERSION = (2, 10)
# The Python limited API of CPython 3.10, the oldest Python torch 2.10 runs
# on (and the version torch's own extension build declares): one extension
# module for every later CPython 3.
PY_LIMITED_API = 0x030A0000


def extension():
    # The C++ standard is left to torch (its headers need C++20 from 2.10 on).
    # -O3: the CPU kernel's pass-one loop is written to be vectorised at the
    # baseline ISA; no -march flag, so the wheel runs on any x86-64 or arm64.
    # -Wno-psabi: greedy_cpu.h's wide vectors never pass a call between code
    # built for different ISAs, so GCC's note on their ABI is moot.
    major, minor = TORCH_TARGET_VERSION
    defines = [
        f"-DTORCH_TARGET_VERSION=0x{major:02x}{minor:02x}000000000000",
        f"-DPy_LIMITED_API=0x{PY_LIMITED_API:08X}",
    ]
    # -fvisibility=hidden: the module exports PyInit__C alone (torch's stable
    # types are hidden, and so must be what holds them).
    cxx_flags = ["-O3", "-Wno-psabi", "-fvisibility=hidden"] + defines
    # The extension (csrc/extension) names the torch-free headers as kernels/...
    include_dirs = [os.path.join(HERE, "csrc")]
    if want_gpu_build():
        default_cuda_arch_list()
        default_rocm_arch_list()
        # USE_CUDA: torch's C shim declares the current CUDA stream only under
        # it (a ROCm torch serves the same call with its HIP stream).
        gpu_flags = ["-O3", "-DUSE_CUDA"] + defines
        if torch.version.hip is None:
            gpu_flags += ["--expt-relaxed-constexpr", "-lineinfo", "-Xcompiler=-fvisibility=hidden"]
        else:
            gpu_flags += ["-fvisibility=hidden"]
        return cpp_extension.CUDAExtension(
            "safe_greedy._C",
            CPU_SOURCES + GPU_SOURCES,
            include_dirs=include_dirs,
            extra_compile_args={"cxx": cxx_flags, "nvcc": gpu_flags},
            py_limited_api=True,
        )
    return cpp_extension.CppExtension(
        "safe_greedy._C",
        CPU_SOURCES,
        include_dirs=include_dirs,
        extra_compile_args={"cxx": cxx_flags},
        py_limited_api=True,
    )


setup(
    name="safe-greedy",
    version="0.1.0",
    description="Exact, always-in-range greedy sampling (per-row argmax) for LLM servers",
    package_dir={"": "python"},
    packages=find_packages("python"),
    ext_modules=[extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
    python_requires=">=3.10",
    install_requires=[f"torch>={TORCH_TARGET_VERSION[0]}.{TORCH_TARGET_VERSION[1]}"],
    # A wheel tagged cp310-abi3: it installs on every CPython from 3.10 on.
    options={"bdist_wheel": {"py_limited_api": f"cp3{(PY_LIMITED_API >> 16) & 0xFF}"}},
)
