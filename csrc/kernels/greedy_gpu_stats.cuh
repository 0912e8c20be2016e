// The GPU side of the extra outputs' statistics (greedy_stats.h): pairs
// reduced across the lanes of a warp, the warps of a block and groups of
// warps, together with the keys; and passed between the blocks of a split
// row. Only the kernels compiled with the extra outputs (kStats) use it.
#pragma once

#include <stdint.h>

#include "greedy_gpu_cross_lane.cuh"
#include "greedy_gpu_memory.cuh"
#include "greedy_gpu_platform.cuh"
#include "greedy_key.h"
#include "greedy_stats.h"

namespace safe_greedy {
namespace gpu {

// The pair of the whole warp, in every lane.
__device__ __forceinline__ RowStats warp_combine_stats(RowStats s) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    s = combine_stats(s, RowStats{shuffle_xor(s.max, offset), shuffle_xor(s.sum, offset)});
  }
  return s;
}

// block_max_key() (greedy_gpu_cross_lane.cuh) and the block's pair, through
// one barrier; both valid in thread 0.
template <int kThreads>
__device__ __forceinline__ void block_reduce_with_stats(Key& k, RowStats& s) {
  static_assert(kThreads % 64 == 0, "blocks must be whole waves at width 32 and 64");
  constexpr int kWarps = kThreads / kWarpSize;
  __shared__ Key warp_keys[kWarps];
  __shared__ RowStats warp_stats[kWarps];
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  k = warp_max_key(k);
  s = warp_combine_stats(s);
  if (lane == 0) {
    warp_keys[warp] = k;
    warp_stats[warp] = s;
  }
  __syncthreads();
  if (warp == 0) {
    k = warp_max_key(lane < kWarps ? warp_keys[lane] : kEmptyKey);
    s = warp_combine_stats(lane < kWarps ? warp_stats[lane] : empty_stats());
  }
}

// group_max_key() (greedy_gpu_cross_lane.cuh) and each group's pair; valid
// in the group's first thread. Every thread of the block must call it.
template <int kThreads, int kGroupThreads>
__device__ __forceinline__ void group_reduce_with_stats(Key& k, RowStats& s) {
  static_assert(kGroupThreads < kThreads, "a group of the whole block is block_reduce_with_stats");
  k = warp_max_key(k);
  s = warp_combine_stats(s);
  if constexpr (kGroupThreads != kWarpSize) {
    static_assert(kGroupThreads % kWarpSize == 0 && kThreads % kGroupThreads == 0,
                  "groups must be whole warps that tile the block");
    __shared__ Key warp_keys[kThreads / kWarpSize];
    __shared__ RowStats warp_stats[kThreads / kWarpSize];
    const int warp = threadIdx.x / kWarpSize;
    if (threadIdx.x % kWarpSize == 0) {
      warp_keys[warp] = k;
      warp_stats[warp] = s;
    }
    __syncthreads();
    if (threadIdx.x % kGroupThreads == 0) {
#pragma unroll
      for (int w = 1; w < kGroupThreads / kWarpSize; ++w) {
        k = max_key(k, warp_keys[warp + w]);
        s = combine_stats(s, warp_stats[warp + w]);
      }
    }
  }
}

// A pair as one 64-bit word, so that it passes between blocks through the
// same whole 64-bit slot accesses as the keys (load_slot(), store_slot()).
__device__ __forceinline__ uint64_t pack_stats(RowStats s) {
  return (static_cast<uint64_t>(__float_as_uint(s.sum)) << 32) | __float_as_uint(s.max);
}

__device__ __forceinline__ RowStats unpack_stats(uint64_t packed) {
  return RowStats{__uint_as_float(static_cast<uint32_t>(packed)),
                  __uint_as_float(static_cast<uint32_t>(packed >> 32))};
}

// An item of a row combined by collection publishes its pair, then (after a
// fence, so that a collector that sees the key sees the pair) its key.
__device__ __forceinline__ void publish_with_stats(Key* key_slot, Key key, uint64_t* stats_slot,
                                                   RowStats s) {
  store_slot(stats_slot, pack_stats(s));
  __threadfence();
  store_slot(key_slot, key);
}

// Run by warp 0 of the collecting block once collect_row_key() has seen every
// other split's key: the row's pair, in every lane. Each lane reads the pairs
// of the splits whose keys it polled (u * kWarpSize + lane), after a fence
// that pairs with publish_with_stats()'s.
__device__ __forceinline__ RowStats collect_row_stats(const uint64_t* item_stats, uint32_t splits,
                                                      uint32_t own, RowStats own_stats) {
  __threadfence();
  const uint32_t lane = threadIdx.x % kWarpSize;
  RowStats s = lane == 0 ? own_stats : empty_stats();
  for (uint32_t split = lane; split < splits; split += kWarpSize) {
    if (split != own) s = combine_stats(s, unpack_stats(load_slot(&item_stats[split])));
  }
  return warp_combine_stats(s);
}

// Run by thread 0 of the block that finished last among a row's `splits`
// (the fenced combine, after its acquiring arrival): the pairs of every
// split. One thread reads them all, four loads in flight at a time; rows
// combined so have more than kMaxCollectedSplits splits, whose reads take far
// longer than these loads.
__device__ __forceinline__ RowStats gather_row_stats(const uint64_t* item_stats, uint32_t splits) {
  RowStats s = empty_stats();
  constexpr uint32_t kInFlight = 4;
  uint32_t split = 0;
  for (; split + kInFlight <= splits; split += kInFlight) {
    uint64_t got[kInFlight];
#pragma unroll
    for (uint32_t u = 0; u < kInFlight; ++u) got[u] = load_slot(&item_stats[split + u]);
#pragma unroll
    for (uint32_t u = 0; u < kInFlight; ++u) s = combine_stats(s, unpack_stats(got[u]));
  }
  for (; split < splits; ++split) s = combine_stats(s, unpack_stats(load_slot(&item_stats[split])));
  return s;
}

}  // namespace gpu
}  // namespace safe_greedy
