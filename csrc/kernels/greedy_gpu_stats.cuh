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

// The sum over each aligned group of kLanes lanes of the warp, in every lane
// of the group (the same bits in each: every step adds the same two values).
template <int kLanes>
__device__ __forceinline__ float lanes_sum(float x) {
  static_assert(kLanes >= 1 && kLanes <= kWarpSize && (kLanes & (kLanes - 1)) == 0,
                "groups are a power of two lanes");
#pragma unroll
  for (int offset = kLanes / 2; offset > 0; offset /= 2) x += shuffle_xor(x, offset);
  return x;
}

// The sum over the warp, in every lane.
__device__ __forceinline__ float warp_sum(float x) { return lanes_sum<kWarpSize>(x); }

// The pair of the whole warp, in every lane, given the warp's best key `k`
// (warp_max_key(), in every lane). The key's value is the warp's maximum, so
// each lane rescales its sum to it once and the sums are added: combining
// pairs along the butterfly instead put two exponentials on every step of the
// block's serial path (see "the extra outputs' fixed cost" in
// docs/PERFORMANCE.md). Where the maximum is a NaN or +-inf the sum is
// meaningless, as greedy_stats.h allows.
// With kLanes below the warp, the same over each aligned group of kLanes
// lanes, given the group's best key.
template <int kLanes = kWarpSize>
__device__ __forceinline__ RowStats warp_stats_at(RowStats s, Key k) {
  const float max = key_value(k);
  return RowStats{max, lanes_sum<kLanes>(sum_at(s, exp_shift(max)))};
}

// block_max_key() (greedy_gpu_cross_lane.cuh) and the block's pair, through
// one barrier; both valid in thread 0, and in every lane of warp 0.
template <int kThreads>
__device__ __forceinline__ void block_reduce_with_stats(Key& k, RowStats& s) {
  static_assert(kThreads % 64 == 0, "blocks must be whole waves at width 32 and 64");
  constexpr int kWarps = kThreads / kWarpSize;
  __shared__ Key warp_keys[kWarps];
  __shared__ RowStats warp_stats[kWarps];
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  k = warp_max_key(k);
  s = warp_stats_at(s, k);
  if (lane == 0) {
    warp_keys[warp] = k;
    warp_stats[warp] = s;
  }
  __syncthreads();
  if (warp == 0) {
    // Each group of kWarps lanes holds every warp's pair once, so that
    // log2(kWarps) rounds of shuffles give each lane the block's sum, not
    // log2(kWarpSize): they are on the serial path of every block (see "the
    // block's sum in fewer rounds" in docs/PERFORMANCE.md).
    static_assert((kWarps & (kWarps - 1)) == 0, "a power of two warps");
    k = warp_max_key(warp_keys[lane % kWarps]);
    s = warp_stats_at<kWarps>(warp_stats[lane % kWarps], k);
  }
}

// group_max_key() (greedy_gpu_cross_lane.cuh) and each group's pair; valid
// in the group's first thread. Every thread of the block must call it.
template <int kThreads, int kGroupThreads>
__device__ __forceinline__ void group_reduce_with_stats(Key& k, RowStats& s) {
  static_assert(kGroupThreads < kThreads, "a group of the whole block is block_reduce_with_stats");
  k = warp_max_key(k);
  s = warp_stats_at(s, k);
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

// An item of a row combined by collection publishes its pair and its key, in
// either order and with no fence between them: the collector waits until
// both of the item's slots are non-zero (collect_row_key()). No published
// pair is zero: a pair whose maximum is +0.0 holds exp(0) = 1 in its sum.
__device__ __forceinline__ void publish_with_stats(Key* key_slot, Key key, uint64_t* stats_slot,
                                                   RowStats s) {
  store_slot(stats_slot, pack_stats(s));
  store_slot(key_slot, key);
}

// Run by warp 0 of the block that finished last among a row's `splits` (the
// fenced combine), once lane 0's acquiring arrival has been passed to every
// lane (warp_memory_barrier()): the row's pair, in every lane, given the row's
// maximum `max` (its combined key's value). Each lane reads a share of the
// splits' pairs, kInFlight loads at a time, and leaves their slots zero, as
// collected rows expect to find them.
__device__ __forceinline__ RowStats gather_row_stats(uint64_t* item_stats, uint32_t splits,
                                                     float max) {
  constexpr uint32_t kInFlight = 4;
  const uint32_t lane = threadIdx.x % kWarpSize;
  const float shift = exp_shift(max);
  float sum = 0.0f;
  for (uint32_t first = lane; first < splits; first += kInFlight * kWarpSize) {
    uint64_t got[kInFlight];
#pragma unroll
    for (uint32_t u = 0; u < kInFlight; ++u) {
      const uint32_t split = first + u * kWarpSize;
      got[u] = split < splits ? load_slot(&item_stats[split]) : 0;
    }
#pragma unroll
    for (uint32_t u = 0; u < kInFlight; ++u) {
      const uint32_t split = first + u * kWarpSize;
      if (split < splits) {
        store_slot(&item_stats[split], 0);
        sum += sum_at(unpack_stats(got[u]), shift);
      }
    }
  }
  return RowStats{max, warp_sum(sum)};
}

}  // namespace gpu
}  // namespace safe_greedy
