// How the blocks of a split row combine their keys into the row's key:
// collected by the block that started last (collect_row_key()), or through
// fenced atomics by the block that finishes last (read_item() in
// greedy_gpu.cuh, which chooses between them).
#pragma once

#include <stdint.h>

#include "greedy_gpu_cross_lane.cuh"
#include "greedy_gpu_memory.cuh"
#include "greedy_gpu_stats.cuh"
#include "greedy_key.h"
#include "greedy_plan.h"  // kMaxCollectedSplits, kMaxCollectedStatsSplits

namespace safe_greedy {
namespace gpu {

// A zero slot means "not yet published", but the empty key (a split with
// nothing to read) is zero too: it is published as 1, still below every
// element's key. The plan gives collected rows no empty split today
// (tests/cpp/test_launch_plan.cpp checks it), so this only keeps a future
// plan from making the collector wait for a key that never comes.
__device__ __forceinline__ Key published_key(Key k) { return k == kEmptyKey ? Key{1} : k; }

// Polling rounds after which a collector stops waiting (each round is one
// L2 round trip, so this is a fraction of a second). A correct launch never
// comes near it: see collect_row_key().
constexpr uint32_t kMaxCollectRounds = 1u << 20;

// Slots each lane of the collecting warp loads at once: one round trip for
// rows of up to kWarpSize * kCollectUnroll splits. The kernels with the extra
// outputs, whose lanes also hold each split's pair, collect fewer splits.
constexpr int kCollectUnroll = (kMaxCollectedSplits + kWarpSize - 1) / kWarpSize;
constexpr int kStatsCollectUnroll = (kMaxCollectedStatsSplits + kWarpSize - 1) / kWarpSize;

// Run by warp 0 of the block that started last among a row's `splits`
// blocks; `own` is that block's split and `own_key` its key (lane 0). Waits
// for every other split's key, returns the row's maximum key in every lane,
// and leaves the row's slots zero. With kStats, each split has also published
// its pair in `pair_slots` (publish_with_stats()), which is awaited beside its
// key, and `*pair` (the block's own pair, read in lane 0) becomes the row's
// pair in every lane.
//
// A launch that has its workspace to itself cannot wait forever: every other
// block of the row took its ticket earlier, so it is running, and it
// publishes its key without waiting for anything. Two launches sharing a
// workspace at once (greedy_gpu_workspace.h leaves that possible only for
// executable graphs made from one capture and replayed at the same time)
// take each other's tickets and zero each other's slots: rows get wrong
// answers or none, and the workspace can stay dirty for later launches, as
// with the fenced combine. kMaxCollectRounds only keeps that from hanging;
// an index the kernel writes is still inside the row (row_answer()).
template <bool kStats>
__device__ __forceinline__ Key collect_row_key(Key* row_slots, uint32_t splits, uint32_t own,
                                               Key own_key, uint64_t* pair_slots = nullptr,
                                               RowStats* pair = nullptr) {
  constexpr int kSlots = kStats ? kStatsCollectUnroll : kCollectUnroll;
  const uint32_t lane = threadIdx.x % kWarpSize;
  // Lane `lane` looks after slots lane, lane + 32, ...; theirs[u]: slot
  // u * 32 + lane belongs to another split of this row.
  bool theirs[kSlots];
  Key got[kSlots];
  uint64_t got_pair[kSlots];
#pragma unroll
  for (int u = 0; u < kSlots; ++u) {
    const uint32_t s = u * kWarpSize + lane;
    theirs[u] = s < splits && s != own;
    got[u] = kEmptyKey;
    got_pair[u] = 0;
  }
  bool waiting;
  uint32_t rounds = 0;
  do {
    // Each round reloads every slot still unpublished, all at once, so that
    // waiting for several late blocks costs one round trip after the last.
#pragma unroll
    for (int u = 0; u < kSlots; ++u) {
      if (theirs[u] && got[u] == kEmptyKey) got[u] = load_slot(&row_slots[u * kWarpSize + lane]);
      if constexpr (kStats) {
        if (theirs[u] && got_pair[u] == 0) got_pair[u] = load_slot(&pair_slots[u * kWarpSize + lane]);
      }
    }
    waiting = false;
#pragma unroll
    for (int u = 0; u < kSlots; ++u) {
      waiting |= theirs[u] && got[u] == kEmptyKey;
      if constexpr (kStats) waiting |= theirs[u] && got_pair[u] == 0;
    }
  } while (any_in_warp(waiting) && ++rounds < kMaxCollectRounds);
  Key best = lane == 0 ? own_key : kEmptyKey;
#pragma unroll
  for (int u = 0; u < kSlots; ++u) {
    if (theirs[u]) store_slot(&row_slots[u * kWarpSize + lane], kEmptyKey);
    best = max_key(best, got[u]);
  }
  const Key row_key = warp_max_key(best);
  if constexpr (kStats) {
    // Each lane rescales the pairs it holds to the row's maximum, the value
    // of the row's key, as warp_stats_at() does.
    const float max = key_value(row_key);
    const float shift = exp_shift(max);
    float sum = lane == 0 ? sum_at(*pair, shift) : 0.0f;
#pragma unroll
    for (int u = 0; u < kSlots; ++u) {
      if (!theirs[u]) continue;
      store_slot(&pair_slots[u * kWarpSize + lane], 0);
      sum += sum_at(unpack_stats(got_pair[u]), shift);
    }
    *pair = RowStats{max, warp_sum(sum)};
  }
  return row_key;
}

// The fenced combine, run by thread 0 of each block of a split row: publishes
// the block's key `k` in the row's slot, then counts the block in. The count
// is a release (this block's key, and whatever else this thread wrote before,
// is visible before its arrival is) and, for the last block, an acquire
// (every other block's is visible after it). Returns whether this block came
// last; that block gets the row's key in `combined` and leaves the row's slot
// and counter at zero.
__device__ __forceinline__ bool fenced_combine(Key* row_key, uint32_t* row_arrivals,
                                               uint32_t splits, Key k, Key& combined) {
  atomicMax(reinterpret_cast<unsigned long long*>(row_key), static_cast<unsigned long long>(k));
  const uint32_t arrived = arrive_acq_rel(row_arrivals);
  if (arrived != splits - 1) return false;
  combined = atomicExch(reinterpret_cast<unsigned long long*>(row_key), 0ull);
  *row_arrivals = 0;
  return true;
}

// The index a split row's combined key names. Launches that use their
// workspace alone always combine a real key of this row; launches sharing one
// (see collect_row_key()) may combine the empty key or another launch's key,
// and get index 0 rather than one past the row.
__device__ __forceinline__ uint32_t row_answer(Key combined, uint32_t vocab) {
  const uint32_t index = key_index(combined);
  return index < vocab ? index : 0u;
}

}  // namespace gpu
}  // namespace safe_greedy
