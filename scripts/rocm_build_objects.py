"""Run setup.py's ROCm build with a CUDA torch, up to the objects.

A ROCm build of torch cannot be installed without AMD's runtime, but the two
things it adds to an extension build can be reproduced from a CUDA torch:

* its c10/hip and ATen/hip headers, which PyTorch's own ROCm build makes by
  running torch.utils.hipify over the CUDA headers (the `includes` and
  `ignores` below are those of pytorch's tools/amd_build/build_amd.py, on the
  installed include/ laid out as the source tree it expects), and
* the ROCm code path of torch.utils.cpp_extension, taken when torch reports a
  HIP version and a ROCm install (torch.version.hip, ROCM_HOME,
  IS_HIP_EXTENSION), so hipify, hipcc flags and the ninja build are torch's.

Everything up to the objects is torch's and setup.py's own; the link (against
libtorch_hip, which does not exist here) is replaced by writing the list of
objects to a JSON file for the checks that follow.

  usage: rocm_build_objects.py SOURCE_TREE WORK_DIR ROCM_HOME HIP_VERSION
SOURCE_TREE is a scratch copy of the project (hipify writes beside its sources),
ROCM_HOME holds bin/hipcc and bin/c++ (they compile in the ROCm chroot) and an
include/ folder, HIP_VERSION is the HIP version of the headers there.
"""

import json
import os
import shutil
import sys

import torch

# The parts of torch's CUDA headers that PyTorch's ROCm build hipifies, as
# source-tree paths (pytorch tools/amd_build/build_amd.py): installed
# include/ folder -> source-tree folder.
SOURCE_LAYOUT = {"c10": "c10", "ATen": "aten/src/ATen", "torch": "torch"}
HIPIFY_INCLUDES = [
    "c10/cuda/*",
    "aten/src/ATen/cuda/*",
    "aten/src/ATen/native/cuda/*",
    "aten/src/ATen/native/nested/cuda/*",
    "aten/src/ATen/native/sparse/cuda/*",
    "aten/src/ATen/native/quantized/cuda/*",
    "aten/src/ATen/native/transformers/cuda/*",
    "torch/*",
]
HIPIFY_IGNORES = [
    "*/hip/*",
    "aten/src/ATen/core/*",
    "aten/src/ATen/cuda/CUDAConfig.h",
    "torch/include/*",
]


def hipified_torch_headers(work_dir: str) -> str:
    """A copy of torch's include/ with ROCm torch's hipified headers added.

    Kept across runs for the same torch (hipify takes about a minute).
    """
    torch_root = os.path.join(work_dir, f"torch-{torch.__version__}")
    include = os.path.join(torch_root, "include")
    done = os.path.join(torch_root, ".hipified")
    if os.path.exists(done):
        return torch_root
    shutil.rmtree(torch_root, ignore_errors=True)
    from torch.utils.hipify import hipify_python

    installed = os.path.join(os.path.dirname(torch.__file__), "include")
    tree = os.path.join(work_dir, "torch-source-layout")
    shutil.rmtree(tree, ignore_errors=True)
    for top, source_path in SOURCE_LAYOUT.items():
        shutil.copytree(os.path.join(installed, top), os.path.join(tree, source_path), symlinks=True)
    hipify_python.hipify(
        project_directory=tree,
        output_directory=tree,
        includes=[os.path.join(tree, p) for p in HIPIFY_INCLUDES],
        ignores=[os.path.join(tree, p) for p in HIPIFY_IGNORES],
        show_detailed=False,
        show_progress=False,
        hip_clang_launch=True,
    )
    shutil.copytree(installed, include, symlinks=True,
                    ignore=lambda folder, names: SOURCE_LAYOUT if folder == installed else [])
    for top, source_path in SOURCE_LAYOUT.items():
        shutil.move(os.path.join(tree, source_path), os.path.join(include, top))
    shutil.rmtree(tree)
    for needed in ("c10/hip/HIPStream.h", "c10/hip/HIPGuard.h", "c10/hip/HIPException.h"):
        if not os.path.isfile(os.path.join(include, needed)):
            raise SystemExit(f"hipify made no {needed} under {include}")
    open(done, "w").close()
    return torch_root


def take_rocm_code_path(rocm_home: str, hip_version: str, torch_root: str) -> None:
    """Make torch, and its extension builder, report a ROCm build."""
    torch.version.hip = hip_version
    torch.version.cuda = None
    from torch.utils import cpp_extension

    cpp_extension.ROCM_HOME = rocm_home
    cpp_extension.HIP_HOME = None
    cpp_extension.IS_HIP_EXTENSION = True
    cpp_extension.ROCM_VERSION = tuple(int(v) for v in hip_version.split(".")[:2])
    cpp_extension.CUDA_HOME = None
    cpp_extension._TORCH_PATH = torch_root


def record_objects_instead_of_linking(objects_file: str) -> None:
    from setuptools._distutils import ccompiler

    def record(self, objects, output_filename, *args, **kwargs):
        with open(objects_file, "w") as f:
            json.dump({"extension": output_filename,
                       "objects": [os.path.abspath(o) for o in objects],
                       "offload_archs": os.environ.get("PYTORCH_ROCM_ARCH", "")}, f, indent=1)

    compiler_classes = [ccompiler.CCompiler]
    try:  # setuptools 78 on: the compilers' base class moved
        from setuptools._distutils.compilers.C import base
        compiler_classes.append(base.Compiler)
    except ImportError:
        pass
    for compiler_class in compiler_classes:
        compiler_class.link_shared_object = record


def main() -> None:
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    source_tree, work_dir, rocm_home = (os.path.abspath(a) for a in sys.argv[1:4])
    hip_version = sys.argv[4]
    torch_root = hipified_torch_headers(work_dir)
    take_rocm_code_path(rocm_home, hip_version, torch_root)
    objects_file = os.path.join(work_dir, "objects.json")
    if os.path.exists(objects_file):
        os.remove(objects_file)
    record_objects_instead_of_linking(objects_file)
    # Warnings are errors. Debian's rocPRIM (6.4) predates gfx950 and says so
    # with a #warning from torch's thrust includes: shown, not fatal.
    from torch.utils import cpp_extension

    plain_extension = cpp_extension.CUDAExtension

    def strict_extension(name, sources, *args, **kwargs):
        flags = kwargs.setdefault("extra_compile_args", {})
        flags.setdefault("cxx", []).extend(["-Wall", "-Werror"])
        flags.setdefault("nvcc", []).extend(["-Wall", "-Werror", "-Wno-error=#warnings"])
        return plain_extension(name, sources, *args, **kwargs)

    cpp_extension.CUDAExtension = strict_extension
    os.chdir(source_tree)
    sys.path.insert(0, source_tree)
    sys.argv = ["setup.py", "build_ext", "--build-temp", os.path.join(work_dir, "objects"),
                "--build-lib", os.path.join(work_dir, "lib")]
    os.environ["SAFE_GREEDY_BUILD"] = "gpu"
    with open("setup.py") as f:
        code = compile(f.read(), "setup.py", "exec")
    exec(code, {"__name__": "__main__", "__file__": os.path.join(source_tree, "setup.py")})
    if not os.path.exists(objects_file):
        raise SystemExit("the build ended without reaching the link: no objects recorded")


if __name__ == "__main__":
    main()
