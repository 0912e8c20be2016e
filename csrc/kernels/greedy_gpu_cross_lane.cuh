// Exchanges and key reductions across the lanes of a warp, the warps of a
// block, and groups of warps within a block.
#pragma once

#include <stdint.h>

#include "greedy_gpu_platform.cuh"
#include "greedy_key.h"

namespace safe_greedy {
namespace gpu {

// Butterfly exchange across the whole warp (of keys, and of the floats of
// greedy_gpu_stats.cuh). HIP takes no lane mask (and its newer _sync forms
// reject 32-bit ones); CUDA needs the full-warp mask.
template <class V>
__device__ __forceinline__ V shuffle_xor(V v, int lane_mask) {
#if defined(__HIPCC__)
  return __shfl_xor(v, lane_mask, kWarpSize);
#else
  return __shfl_xor_sync(0xFFFFFFFFu, v, lane_mask);
#endif
}

// Lane `src_lane`'s value, in every lane of the warp.
__device__ __forceinline__ uint32_t shuffle_index(uint32_t v, int src_lane) {
#if defined(__HIPCC__)
  return __shfl(v, src_lane, kWarpSize);
#else
  return __shfl_sync(0xFFFFFFFFu, v, src_lane);
#endif
}

// Whether `p` holds in any lane of the warp.
__device__ __forceinline__ bool any_in_warp(bool p) {
#if defined(__HIPCC__)
  return __any(p);
#else
  return __any_sync(0xFFFFFFFFu, p);
#endif
}

// A barrier of the warp's lanes that also orders their memory accesses: what
// one lane acquired before it, every lane sees after it.
__device__ __forceinline__ void warp_memory_barrier() {
#if defined(__HIPCC__)
  // A wave's lanes run as one instruction stream; the fence keeps the
  // compiler and the caches from serving later loads from before it.
  __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "agent");
#else
  __syncwarp();
#endif
}

// Maximum key over the warp, in every lane.
__device__ __forceinline__ Key warp_max_key(Key k) {
#if !defined(__HIPCC__) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  // Keys order by their high half, then their low half: two 32-bit warp
  // reductions (REDUX) instead of five 64-bit shuffle rounds, a shorter
  // serial path for each block (see "6ee1a55: warp maximum with REDUX" in
  // docs/PERFORMANCE.md).
  const uint32_t high = __reduce_max_sync(0xFFFFFFFFu, static_cast<uint32_t>(k >> 32));
  const uint32_t low_of_high = static_cast<uint32_t>(k >> 32) == high ? static_cast<uint32_t>(k) : 0u;
  const uint32_t low = __reduce_max_sync(0xFFFFFFFFu, low_of_high);
  return (static_cast<Key>(high) << 32) | low;
#else
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    k = max_key(k, shuffle_xor(k, offset));
  }
  return k;
#endif
}

// Maximum key over the block; valid in thread 0.
template <int kThreads>
__device__ __forceinline__ Key block_max_key(Key k) {
  static_assert(kThreads % 64 == 0, "blocks must be whole waves at width 32 and 64");
  constexpr int kWarps = kThreads / kWarpSize;
  __shared__ Key warp_keys[kWarps];
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  k = warp_max_key(k);
  if (lane == 0) warp_keys[warp] = k;
  __syncthreads();
  if (warp == 0) {
    k = lane < kWarps ? warp_keys[lane] : kEmptyKey;
    k = warp_max_key(k);
  }
  return k;
}

// Maximum key over each row's kRowThreads consecutive threads of a block of
// kThreads that reads several rows; valid in the row's first thread. Every
// thread of the block must call it: a row wider than a warp synchronises the
// block.
template <int kThreads, int kRowThreads>
__device__ __forceinline__ Key group_max_key(Key k) {
  static_assert(kRowThreads < kThreads, "a row of the whole block is block_max_key");
  if constexpr (kRowThreads == kWarpSize) {
    return warp_max_key(k);
  } else {
    static_assert(kRowThreads % kWarpSize == 0 && kThreads % kRowThreads == 0,
                  "rows must be whole warps that tile the block");
    __shared__ Key warp_keys[kThreads / kWarpSize];
    const int warp = threadIdx.x / kWarpSize;
    k = warp_max_key(k);
    if (threadIdx.x % kWarpSize == 0) warp_keys[warp] = k;
    __syncthreads();
    if (threadIdx.x % kRowThreads == 0) {
#pragma unroll
      for (int w = 1; w < kRowThreads / kWarpSize; ++w) k = max_key(k, warp_keys[warp + w]);
    }
    return k;
  }
}

}  // namespace gpu
}  // namespace safe_greedy
