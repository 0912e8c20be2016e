// The GPU kernel of greedy_sample, one source for CUDA (nvcc) and ROCm (hip).
//
// Torch-free: raw pointers, templated on the block size, the logits' storage
// type and the output's index type. extension/greedy_gpu_launcher.cu launches
// it; tests/gpu_compile compiles it for AMD targets without torch.
//
// This file is the kernel's entry: which item a block reads, and how its
// answer is combined and written. Its parts, each in a header of its own:
//   greedy_gpu_platform.cuh    CUDA or HIP runtime, warp width
//   greedy_gpu_cross_lane.cuh  shuffles and key reductions over warps and blocks
//   greedy_gpu_vector.cuh      what a 16-byte vector of each storage type holds
//   greedy_gpu_memory.cuh      loads, prefetches, the grid wait, slots and atomics
//   greedy_gpu_params.h        what the launcher passes the kernel
//   greedy_gpu_item_loops.cuh  the loops that read an item and keep its best element
//   greedy_gpu_combines.cuh    how the blocks of a split row combine their keys
//   greedy_gpu_stats.cuh       the extra outputs' pairs across lanes, warps and blocks
//
// Each kernel is compiled twice: plain (kStats false), writing the token ids
// only, and with the extra outputs of greedy_stats.h (kStats), which also
// keeps each thread's (max, sum of exp) pair, reduces the pairs alongside the
// keys, passes a split row's pairs between its blocks in slots of their own,
// and writes logprobs, logsumexp, valid and the fallback token.
//
// Work decomposition (CUB-style layering: thread -> warp -> block -> grid):
//   * A block reads one item: a whole row, or one of `splits` interleaved
//     parts of it, so that a short batch still fills the GPU. Unsplit rows are
//     a 1-D grid, which holds any batch; split rows (only short batches are
//     split) a (splits, rows) grid. Short rows at large batch go the other
//     way: each block reads several whole rows, kRowThreads threads to a row.
//   * Each thread keeps the first of its 16-byte vectors that holds its
//     greatest element so far (BestVector), comparing only each vector's
//     greatest value; which element of the kept vector that is, and its
//     key, are found once per thread, when reducing.
//   * A block reduces its threads' keys; with one item per row that block
//     writes the answer. With several, as the plan's Combine says, either
//     (fenced; rows of many splits) each block atomically maxes its key into
//     a per-row slot and bumps a per-row counter, and the last block to
//     arrive writes the answer; or (collected; rows of few splits) each block
//     takes a ticket as it starts, the others publish their keys in slots of
//     their own, and the block that started last collects them. Either way the last block returns what it
//     used to zero, so the workspace never needs a memset between calls.
//   * Loads are 16 bytes wide (load_vector()) and start on a 128-byte line.
//     The head of a row before its first 128-byte boundary and the tail after
//     the last whole vector are read one element at a time, selected by
//     index, so no lane past the row ever takes part.
#pragma once

#include <stdint.h>

#include "greedy_gpu_combines.cuh"
#include "greedy_gpu_cross_lane.cuh"
#include "greedy_gpu_item_loops.cuh"
#include "greedy_gpu_memory.cuh"
#include "greedy_gpu_params.h"
#include "greedy_gpu_platform.cuh"
#include "greedy_gpu_stats.cuh"
#include "greedy_key.h"
#include "greedy_stats.h"

namespace safe_greedy {
namespace gpu {

// Writes row `row`'s token id into the output (any integer dtype, any row
// stride): the one place every kernel path stores its answer.
template <class OutT>
__device__ __forceinline__ void write_answer(const Params& p, int64_t row, uint32_t index) {
  static_cast<OutT*>(p.out)[row * p.out_stride] = static_cast<OutT>(index);
}

// Every output of row `row`, from its key and pair (the kernels with kStats).
// `combined`: the key is a split row's combined key, whose index, as in
// row_answer(), may lie past the row only for launches sharing a workspace;
// such a row gets index 0 (or the fallback) and reads as not valid.
template <class OutT>
__device__ __forceinline__ void write_row_outputs(const OutputParams& p, int64_t row, Key k,
                                                  RowStats s, bool combined) {
  if (combined && key_index(k) >= p.vocab) k = make_key(-INFINITY, 0);
  write_row(static_cast<OutT*>(p.out), p.out_stride, p.outputs, row, k, s);
}

// read_item() of the kernels with kStats, once the block's key and pair are
// reduced (valid in every lane of warp 0): the same
// combines as the keys alone, each split's pair beside its key.
template <class OutT>
__device__ __forceinline__ void read_item_outputs(const OutputParams& p, uint32_t row,
                                                  uint32_t split, bool split_rows, bool collected,
                                                  uint32_t ticket, Key k, RowStats stats) {
  if (!split_rows) {
    if (threadIdx.x == 0) write_row_outputs<OutT>(p, row, k, stats, false);
    return;
  }
  if (threadIdx.x >= kWarpSize) return;
  const int64_t first_slot = static_cast<int64_t>(row) * p.splits;
  uint64_t* stats_slots = p.row_stats + first_slot;
  if (collected) {
    Key* row_slots = p.row_keys + first_slot;
    if (shuffle_index(ticket, 0) != p.splits - 1) {
      if (threadIdx.x == 0) {
        publish_with_stats(&row_slots[split], published_key(k), &stats_slots[split], stats);
      }
      return;
    }
    const Key final_key = collect_row_key<true>(row_slots, p.splits, split, k, stats_slots, &stats);
    if (threadIdx.x == 0) write_row_outputs<OutT>(p, row, final_key, stats, true);
    return;
  }
  // Fenced: the pair goes in its item's slot before the block is counted in,
  // which releases it with the key. The last block's warp reads the pairs.
  Key final_key = kEmptyKey;
  bool last = false;
  if (threadIdx.x == 0) {
    store_slot(&stats_slots[split], pack_stats(stats));
    last = fenced_combine(&p.row_keys[row], &p.row_arrivals[row], p.splits, k, final_key);
  }
  if (shuffle_index(last ? 1u : 0u, 0) == 0) return;
  warp_memory_barrier();
  const float max = __uint_as_float(shuffle_index(__float_as_uint(key_value(final_key)), 0));
  const RowStats row_stats = gather_row_stats(stats_slots, p.splits, max);
  if (threadIdx.x == 0) write_row_outputs<OutT>(p, row, final_key, row_stats, true);
}

// One item of a row per block: the whole row, or one split of it, which the
// last of the row's blocks to finish combines with the others.
template <int kThreads, class T, class OutT, bool kContiguous, bool kStats>
__device__ __forceinline__ void read_item(const KernelParams<kStats>& p) {
  // Split rows are launched as a (splits, rows) grid, which needs no division
  // to find an item's row (the plan splits fewer rows than the y dimension
  // allows); unsplit rows as a 1-D grid, whose x dimension holds any batch.
  const bool split_rows = p.splits > 1;
  const uint32_t row = split_rows ? blockIdx.y : blockIdx.x;
  const uint32_t split = split_rows ? blockIdx.x : 0u;
  // 64-bit: rows * row_stride passes 2^31 in real serving.
  const T* row_ptr = static_cast<const T*>(p.logits) + static_cast<int64_t>(row) * p.row_stride;
  // Rows the plan combines by collection (rows of few splits) are collected
  // by the block that starts last: its ticket is taken before the loads, so
  // the round trip overlaps them.
  const bool collected = p.combine == Combine::kCollected;
  uint32_t ticket = 0;
  if (collected && threadIdx.x == 0) ticket = take_ticket(&p.row_arrivals[row], p.splits);

  if constexpr (kStats) {
    RowStats stats = empty_stats();
    Key k = kContiguous ? contiguous_item_key<kThreads, T, true>(row_ptr, p, p.splits, split,
                                                                 threadIdx.x, &stats)
                        : strided_item_key<kThreads, T, true>(row_ptr, p, split, threadIdx.x,
                                                              &stats);
    block_reduce_with_stats<kThreads>(k, stats);
    read_item_outputs<OutT>(p, row, split, split_rows, collected, ticket, k, stats);
    return;
  }
  Key k = kContiguous ? contiguous_item_key<kThreads, T, false>(row_ptr, p, p.splits, split,
                                                                threadIdx.x, nullptr)
                      : strided_item_key<kThreads, T, false>(row_ptr, p, split, threadIdx.x,
                                                             nullptr);
  k = block_max_key<kThreads>(k);
  if (collected) {
    // Warp 0 holds the block's key (lane 0) and ticket.
    if (threadIdx.x >= kWarpSize) return;
    Key* row_slots = p.row_keys + static_cast<int64_t>(row) * p.splits;
    if (shuffle_index(ticket, 0) != p.splits - 1) {
      if (threadIdx.x == 0) store_slot(&row_slots[split], published_key(k));
      return;
    }
    const Key final_key = collect_row_key<false>(row_slots, p.splits, split, k);
    if (threadIdx.x == 0) write_answer<OutT>(p, row, row_answer(final_key, p.vocab));
    return;
  }
  if (threadIdx.x != 0) return;
  if (!split_rows) {
    write_answer<OutT>(p, row, key_index(k));
    return;
  }
  // Publish this block's key, then count it in. The count is a release (this
  // block's key is visible before its arrival is) and, for the last block, an
  // acquire (every other block's key is visible after it). Written out here
  // rather than through fenced_combine(), which changes this kernel's
  // register allocation (its sm_90 code is kept as it was).
  atomicMax(reinterpret_cast<unsigned long long*>(&p.row_keys[row]),
            static_cast<unsigned long long>(k));
  const uint32_t arrived = arrive_acq_rel(&p.row_arrivals[row]);
  if (arrived != p.splits - 1) return;
  const Key final_key = atomicExch(reinterpret_cast<unsigned long long*>(&p.row_keys[row]), 0ull);
  p.row_arrivals[row] = 0;
  write_answer<OutT>(p, row, row_answer(final_key, p.vocab));
}

// Several whole, contiguous rows per block, kRowThreads threads to a row. The
// last block's groups past the batch read nothing but still take part in the
// reduction, which may synchronise the block.
template <int kThreads, int kRowThreads, class T, class OutT, bool kStats>
__device__ __forceinline__ void read_whole_rows(const KernelParams<kStats>& p) {
  constexpr int kRowsPerBlock = kThreads / kRowThreads;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kRowThreads;
  const int tid = threadIdx.x % kRowThreads;
  const bool in_batch = row < p.rows;
  if constexpr (kStats) {
    Key k = kEmptyKey;
    RowStats stats = empty_stats();
    if (in_batch) {
      const T* row_ptr = static_cast<const T*>(p.logits) + row * p.row_stride;
      k = contiguous_item_key<kRowThreads, T, true>(row_ptr, p, 1, 0, tid, &stats);
    }
    group_reduce_with_stats<kThreads, kRowThreads>(k, stats);
    if (tid == 0 && in_batch) write_row_outputs<OutT>(p, row, k, stats, false);
    return;
  }
  Key k = kEmptyKey;
  if (in_batch) {
    const T* row_ptr = static_cast<const T*>(p.logits) + row * p.row_stride;
    k = contiguous_item_key<kRowThreads, T, false>(row_ptr, p, 1, 0, tid, nullptr);
  }
  k = group_max_key<kThreads, kRowThreads>(k);
  if (tid == 0 && in_batch) write_answer<OutT>(p, row, key_index(k));
}

// Resident blocks per multiprocessor that the compiler must leave registers
// for: none asked of the kernels of one item a block (nvcc 13 gives them 32
// registers on sm_90), 5 of those that share a block between rows. Left to
// choose, ptxas fitted the fp32 kernel of 32-thread rows into 40 registers by
// issuing an iteration's third load only once the first had returned (the
// SASS check of scripts/check_cuda_build.sh rejects that); with room for 5
// blocks of 256 threads it takes 47 and issues all four together, the 5
// blocks a multiprocessor these kernels had before. HIP keeps its default,
// and so do targets before sm_80: a Turing multiprocessor holds 1024
// threads, fewer than 5 such blocks (ptxas warns and ignores the request).
#if defined(__HIPCC__) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800)
#define SAFE_GREEDY_LAUNCH_BOUNDS(threads, min_blocks) __launch_bounds__(threads)
#else
#define SAFE_GREEDY_LAUNCH_BOUNDS(threads, min_blocks) __launch_bounds__(threads, min_blocks)
#endif

template <int kThreads, int kRowThreads, class T, class OutT, bool kContiguous, bool kStats>
__global__ void SAFE_GREEDY_LAUNCH_BOUNDS(kThreads, kRowThreads == kThreads ? 0 : 5)
    greedy_sample_kernel(const KernelParams<kStats> p) {
  static_assert(kRowThreads == kThreads || kContiguous, "only contiguous rows share a block");
  // No explicit trigger for the next grid: it starts as this one's blocks
  // exit. An earlier trigger let the next grid's waiting blocks hold slots
  // (see "276d298" and "Tried with PDL and dropped" in docs/PERFORMANCE.md).
  wait_for_previous_grid();
  if constexpr (kRowThreads == kThreads) {
    read_item<kThreads, T, OutT, kContiguous, kStats>(p);
  } else {
    read_whole_rows<kThreads, kRowThreads, T, OutT, kStats>(p);
  }
}

}  // namespace gpu
}  // namespace safe_greedy
