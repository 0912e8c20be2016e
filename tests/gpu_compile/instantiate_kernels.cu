// Compile check of the GPU kernel header without torch: every instantiation
// the launcher can dispatch to, so that nvcc (CUDA) and clang -x hip (ROCm,
// through scripts/check_hip_build.sh) build and emit code for each of them.
// Nothing here runs; the objects and assembly are inspected by the checks.
#include <stdint.h>

#include "greedy_gpu.cuh"
#include "greedy_plan.h"

namespace safe_greedy {
namespace gpu {

// Each kernel plain and with the extra outputs (kStats).
#define SAFE_GREEDY_INSTANTIATE(kThreads, kRowThreads, T, OutT, kContiguous)                    \
  template __global__ void greedy_sample_kernel<kThreads, kRowThreads, T, OutT, kContiguous, false>( \
      const Params p);                                                                          \
  template __global__ void greedy_sample_kernel<kThreads, kRowThreads, T, OutT, kContiguous, true>(  \
      const OutputParams p);

#define SAFE_GREEDY_INSTANTIATE_T(kThreads, T)                   \
  SAFE_GREEDY_INSTANTIATE(kThreads, kThreads, T, int32_t, true)  \
  SAFE_GREEDY_INSTANTIATE(kThreads, kThreads, T, int32_t, false) \
  SAFE_GREEDY_INSTANTIATE(kThreads, kThreads, T, int64_t, true)  \
  SAFE_GREEDY_INSTANTIATE(kThreads, kThreads, T, int64_t, false)

#define SAFE_GREEDY_INSTANTIATE_BLOCK(kThreads) \
  SAFE_GREEDY_INSTANTIATE_T(kThreads, float)      \
  SAFE_GREEDY_INSTANTIATE_T(kThreads, bf16_t)     \
  SAFE_GREEDY_INSTANTIATE_T(kThreads, fp16_t)

SAFE_GREEDY_INSTANTIATE_BLOCK(kNarrowBlockThreads)
SAFE_GREEDY_INSTANTIATE_BLOCK(kStandardBlockThreads)
SAFE_GREEDY_INSTANTIATE_BLOCK(kWideBlockThreads)

// Blocks that read several short rows (contiguous only).
#define SAFE_GREEDY_INSTANTIATE_SHARED_T(T)                                                 \
  SAFE_GREEDY_INSTANTIATE(kStandardBlockThreads, kShortRowThreads, T, int32_t, true) \
  SAFE_GREEDY_INSTANTIATE(kStandardBlockThreads, kShortRowThreads, T, int64_t, true)

SAFE_GREEDY_INSTANTIATE_SHARED_T(float)
SAFE_GREEDY_INSTANTIATE_SHARED_T(bf16_t)
SAFE_GREEDY_INSTANTIATE_SHARED_T(fp16_t)

#undef SAFE_GREEDY_INSTANTIATE_SHARED_T
#undef SAFE_GREEDY_INSTANTIATE_BLOCK
#undef SAFE_GREEDY_INSTANTIATE_T
#undef SAFE_GREEDY_INSTANTIATE

}  // namespace gpu
}  // namespace safe_greedy
