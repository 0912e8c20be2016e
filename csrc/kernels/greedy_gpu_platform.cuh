// The GPU platform the kernel is compiled for, CUDA (nvcc) or ROCm (hip): its
// runtime and half-precision headers, and its warp width.
#pragma once

#if defined(__HIPCC__)
#include <hip/hip_runtime.h>
#include <hip/hip_fp16.h>
#else
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif

namespace safe_greedy {
namespace gpu {

// The hardware's warp width, as a compile-time constant: ROCm's warpSize is not
// constexpr, AMD CDNA (gfx9) runs 64-wide waves, RDNA and NVIDIA 32-wide.
// Chosen by target, not by clang's __AMDGCN_WAVEFRONT_SIZE__ macros, which
// clang 21 deprecates and clang 22 removes.
#if defined(__HIP_DEVICE_COMPILE__) && defined(__GFX9__)
constexpr int kWarpSize = 64;
#else
constexpr int kWarpSize = 32;
#endif

}  // namespace gpu
}  // namespace safe_greedy
