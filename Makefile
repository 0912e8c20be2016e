# Developer and CI entry points. None needs a GPU.
#
#   make install     build the extension in place (CUDA/ROCm build when torch and a toolkit allow)
#   make test        the Python test suite
#   make cpp-test    the torch-free C++ tests, through CMake and ctest
#   make check-cuda  compile the GPU kernels for sm_90 with nvcc and check the SASS (and for sm_75, sm_80)
#   make check-hip   compile the GPU kernels for MI200/MI300 and RDNA3 with clang and check the assembly
#   make check-rocm  build the whole extension as on a ROCm torch (torch's hipify and flags, Debian
#                    unstable's ROCm in a chroot under build/) for gfx90a, gfx942 and gfx950, up to
#                    the link, and check the objects (needs root; the chroot is kept for the next run)
#   make check-wheels  build the wheels against the installed torch and install them in a venv with
#                    torch 2.13.0 (CPU): the CPU-only wheel passes the tests there, the CUDA wheel's
#                    import says why it cannot load (the venv is kept for the next run)
#   make check       all of the above but install and check-wheels

PYTHON ?= python3
NVCC ?= nvcc
CMAKE ?= cmake
CTEST ?= ctest
CMAKE_BUILD_DIR ?= build/cmake
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
GPU_COMPILE_SOURCE := tests/gpu_compile/instantiate_kernels.cu

.PHONY: install test cpp-test check-cuda check-hip check-rocm check-wheels check

install:
	$(PYTHON) -m pip install --no-build-isolation -e .

test:
	$(PYTHON) -m pytest tests

cpp-test:
	$(CMAKE) -S . -B $(CMAKE_BUILD_DIR)
	$(CMAKE) --build $(CMAKE_BUILD_DIR) -j $(JOBS)
	cd $(CMAKE_BUILD_DIR) && $(CTEST) --output-on-failure

check-cuda:
	NVCC=$(NVCC) PYTHON=$(PYTHON) bash scripts/check_cuda_build.sh $(GPU_COMPILE_SOURCE) build/check-cuda

check-hip:
	bash scripts/check_hip_build.sh $(GPU_COMPILE_SOURCE) build/check-hip

check-rocm:
	PYTHON=$(PYTHON) JOBS=$(JOBS) bash scripts/check_rocm_build.sh build/check-rocm

check-wheels:
	PYTHON=$(PYTHON) bash scripts/check_wheels.sh build/check-wheels

check: cpp-test check-cuda check-hip check-rocm test
