// Compile check of the GPU kernel header without torch: every instantiation
// the launcher can dispatch to, so that nvcc (CUDA) and clang -x hip (ROCm,
// through scripts/check_hip_build.sh) build and emit code for each of them.
// Nothing here runs; the objects and assembly are inspected by the checks.
#include <stdint.h>

#include "greedy_gpu.cuh"
#include "greedy_plan.h"

namespace safe_greedy {
namespace gpu {

#define SAFE_GREEDY_INSTANTIATE(kThreads, T, OutT, kContiguous) \
  template __global__ void greedy_sample_kernel<kThreads, T, OutT, kContiguous>(const Params p);

#define SAFE_GREEDY_INSTANTIATE_T(kThreads, T)              \
  SAFE_GREEDY_INSTANTIATE(kThreads, T, int32_t, true)       \
  SAFE_GREEDY_INSTANTIATE(kThreads, T, int32_t, false)      \
  SAFE_GREEDY_INSTANTIATE(kThreads, T, int64_t, true)       \
  SAFE_GREEDY_INSTANTIATE(kThreads, T, int64_t, false)

SAFE_GREEDY_INSTANTIATE_T(kShortBatchThreads, float)
SAFE_GREEDY_INSTANTIATE_T(kShortBatchThreads, bf16_t)
SAFE_GREEDY_INSTANTIATE_T(kShortBatchThreads, fp16_t)
SAFE_GREEDY_INSTANTIATE_T(kLongBatchThreads, float)
SAFE_GREEDY_INSTANTIATE_T(kLongBatchThreads, bf16_t)
SAFE_GREEDY_INSTANTIATE_T(kLongBatchThreads, fp16_t)

#undef SAFE_GREEDY_INSTANTIATE_T
#undef SAFE_GREEDY_INSTANTIATE

}  // namespace gpu
}  // namespace safe_greedy
