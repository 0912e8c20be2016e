// Compile check of the GPU kernel header without torch: every instantiation
// the launcher can dispatch to, so that nvcc (CUDA) and clang -x hip (ROCm,
// through scripts/check_hip_build.sh) build and emit code for each of them.
// Nothing here runs; the objects and assembly are inspected by the checks.
#include <stdint.h>

#include "greedy_gpu.cuh"

namespace safe_greedy {
namespace gpu {

#define SAFE_GREEDY_INSTANTIATE(T, OutT, kContiguous) \
  template __global__ void greedy_sample_kernel<T, OutT, kContiguous>(const Params p);

#define SAFE_GREEDY_INSTANTIATE_T(T)              \
  SAFE_GREEDY_INSTANTIATE(T, int32_t, true)       \
  SAFE_GREEDY_INSTANTIATE(T, int32_t, false)      \
  SAFE_GREEDY_INSTANTIATE(T, int64_t, true)       \
  SAFE_GREEDY_INSTANTIATE(T, int64_t, false)

SAFE_GREEDY_INSTANTIATE_T(float)
SAFE_GREEDY_INSTANTIATE_T(bf16_t)
SAFE_GREEDY_INSTANTIATE_T(fp16_t)

#undef SAFE_GREEDY_INSTANTIATE_T
#undef SAFE_GREEDY_INSTANTIATE

}  // namespace gpu
}  // namespace safe_greedy
