// The GPU launch decision: plan_launch() takes a problem and a description of
// the device and returns everything the launcher needs (block size, threads a
// row, splits, how split rows combine, grid, workspace slots). The launcher
// switches on it once; the kernel reads the combine from its parameters; the
// C++ tests call this same function.
//
// Host-only and torch-free. The tuned numbers are in greedy_tuning.h; the
// rules that use them are here.
#pragma once

#include <stdint.h>

#include "greedy_gpu_params.h"  // Combine
#include "greedy_tuning.h"

namespace safe_greedy {
namespace gpu {

// What the kernel is built with: shapes the plan must follow, not tuning.

// 16-byte loads in flight per thread per iteration of the kernel. Overridable
// at build time for tuning sweeps.
#ifndef SAFE_GREEDY_UNROLL
#define SAFE_GREEDY_UNROLL 4
#endif
constexpr int kUnroll = SAFE_GREEDY_UNROLL;

// The most splits the kernel's collected combine can gather (its collecting
// warp loads ceil(this / warp width) slots a lane). A policy's
// max_collected_splits may not exceed it.
#ifndef SAFE_GREEDY_MAX_COLLECTED_SPLITS
#define SAFE_GREEDY_MAX_COLLECTED_SPLITS 128
#endif
constexpr uint32_t kMaxCollectedSplits = SAFE_GREEDY_MAX_COLLECTED_SPLITS;
static_assert(kMaxCollectedSplits >= 1, "set SAFE_GREEDY_MAX_COLLECTED_SPLITS to 1 or more");
static_assert(kH100Policy.max_collected_splits <= kMaxCollectedSplits &&
                  kH100StatsPolicy.max_collected_splits <= kMaxCollectedSplits &&
                  kDefaultNvidiaPolicy.max_collected_splits <= kMaxCollectedSplits &&
                  kDefaultAmdPolicy.max_collected_splits <= kMaxCollectedSplits,
              "a policy collects more splits than the kernel can gather");

// The most splits the kernels with the extra outputs collect: their
// collecting warp holds each split's pair beside its key, and at 64 (two
// slots a lane at warp width 32) it needs no more registers than those
// kernels' loops, so their occupancy is kept (see "the extra outputs' fixed
// cost" in docs/PERFORMANCE.md). Their rows of more splits are fenced.
constexpr uint32_t kMaxCollectedStatsSplits = kMaxCollectedSplits < 64 ? kMaxCollectedSplits : 64;

// Block sizes the kernel is built for (see "f65bbc2 and 2d65f6f" and
// "8b10318 and 678eb12" in docs/PERFORMANCE.md for why these three).
constexpr int kNarrowBlockThreads = 128;
constexpr int kStandardBlockThreads = 256;
constexpr int kWideBlockThreads = 512;

// The kRowThreads of the blocks that read several short rows, as this build
// instantiates them: the widest wave among its targets (a ROCm build serves
// 64-wide CDNA and 32-wide RDNA with one set of kernels). The plan asks for
// it through the policy (short_row_threads, raised to a whole wave).
#if defined(__HIPCC__) || defined(USE_ROCM)
constexpr int kShortRowThreads = 64;
#else
constexpr int kShortRowThreads = 32;
#endif

// Split rows are launched as a (splits, rows) grid, whose y dimension holds at
// most this many rows.
constexpr int64_t kMaxGridRows = 65535;

// The device and the kernels of one call (element type, index type, layout)
// on it. The launcher asks the runtime once per device and kernel set.
struct DeviceDescription {
  int64_t multiprocessors;
  int wave_width;          // cudaDevAttrWarpSize / hipDeviceAttributeWarpSize
  bool amd;                // a ROCm device
  int compute_capability;  // NVIDIA: 10 * major + minor
  // Blocks of each kernel that fit a multiprocessor (the occupancy calculator).
  struct {
    int64_t narrow;
    int64_t standard;
    int64_t wide;
  } fit;
};

// The policy a device's kernels get: on sm_90 the H100's, for the kernels
// with the extra outputs (`stats`) their own; a visible default elsewhere.
inline const TuningPolicy& tuning_policy_for(const DeviceDescription& device, bool stats = false) {
  if (device.amd) return kDefaultAmdPolicy;
  if (device.compute_capability == 90) return stats ? kH100StatsPolicy : kH100Policy;
  return kDefaultNvidiaPolicy;
}

// One call's problem. elements_per_vector = 16 / sizeof(element).
struct Problem {
  int64_t batch;
  uint32_t vocab;
  bool contiguous;
  int elements_per_vector;
  bool stats = false;  // the kernels with the extra outputs
};

struct LaunchPlan {
  int block_threads;
  int row_threads;   // block_threads, or fewer where a block reads several rows
  uint32_t splits;   // blocks per row
  // Strided rows: the elements of each item, which reads them consecutively.
  // Contiguous rows: the vectors of each item to within one strip of
  // block_threads vectors, as their items interleave strip by strip
  // (contiguous_item_key() in greedy_gpu_item_loops.cuh).
  uint32_t units_per_split;
  Combine combine;
  // Split rows: (splits, batch); otherwise (blocks, 1). grid_x may pass what
  // one launch allows at huge batches: the launcher refuses those.
  int64_t grid_x;
  uint32_t grid_y;
  // Key slots (and row counters) the workspace must hold: one per item of a
  // split launch, sized for the largest split launch the device can get so
  // that it is made once; 0 where no row is split.
  int64_t workspace_slots;
  const TuningPolicy* policy;
};

// What a row is measured in for planning: 16-byte vectors when contiguous,
// elements when strided.
inline int64_t row_units(int64_t vocab, bool contiguous, int elements_per_vector) {
  return contiguous ? vocab / elements_per_vector : vocab;
}

// The fewest items that read a contiguous row of `units` vectors in one
// iteration each, and the most a contiguous row is split into: a row one block
// reads in one iteration is never split. See "f09920b" in docs/PERFORMANCE.md.
inline int64_t one_iteration_items(int64_t units, int threads) {
  const int64_t per_item = static_cast<int64_t>(threads) * kUnroll;
  return (units + per_item - 1) / per_item;
}

// Resident blocks of `threads` threads a multiprocessor, as the plan counts
// them: `fit` of them fit, at most policy.planned_threads_per_multiprocessor.
inline int64_t planned_blocks_per_multiprocessor(int64_t fit, int threads,
                                                 const TuningPolicy& policy) {
  const int64_t most = policy.planned_threads_per_multiprocessor / threads;
  const int64_t counted = fit < most ? fit : most;
  return counted > 1 ? counted : 1;
}

// Blocks of each size the GPU holds at once (multiprocessors x occupancy).
struct ResidentBlocks {
  int64_t narrow;
  int64_t standard;
  int64_t wide;
};

inline ResidentBlocks resident_blocks(const DeviceDescription& device,
                                      const TuningPolicy& policy) {
  const auto on_device = [&](int64_t fit, int threads) {
    return device.multiprocessors * planned_blocks_per_multiprocessor(fit, threads, policy);
  };
  return ResidentBlocks{on_device(device.fit.narrow, kNarrowBlockThreads),
                        on_device(device.fit.standard, kStandardBlockThreads),
                        on_device(device.fit.wide, kWideBlockThreads)};
}

// How many blocks a short batch is split into.
inline int64_t split_target_blocks(int64_t resident_blocks, const TuningPolicy& policy) {
  const int64_t target = resident_blocks / policy.split_target_divisor;
  return target > 1 ? target : 1;
}

// An item's iterations over a contiguous row of `units` vectors split
// `splits` ways, in blocks of `threads` threads: each thread reads one vector
// of each of the item's strips, kUnroll strips an iteration. The first items
// of the row get the most strips, and `last_strips` (1 to kUnroll) is what
// their last iteration reads.
struct ItemIterations {
  int64_t count;
  int64_t last_strips;
};

inline ItemIterations item_iterations(int64_t units, int64_t splits, int threads) {
  const int64_t strips = (units + threads - 1) / threads;
  const int64_t strips_per_item = (strips + splits - 1) / splits;
  const int64_t count = (strips_per_item + kUnroll - 1) / kUnroll;
  return ItemIterations{count, strips_per_item - (count - 1) * kUnroll};
}

// Whether the items' last iteration is thin: it comes after at least one full
// one and fills at most half of its loads, so it costs a whole memory round
// trip for a fraction of the bytes.
inline bool ends_on_thin_iteration(int64_t units, int64_t splits, int threads) {
  const ItemIterations it = item_iterations(units, splits, threads);
  return it.count > 1 && 2 * it.last_strips <= kUnroll;
}

// The split count for a contiguous row planned `splits` ways: where that ends
// on a thin iteration, the fewest more splits, up to `most` and half as many
// again, that do not; otherwise `splits`. See "44d0686".
inline int64_t splits_without_thin_iteration(int64_t units, int64_t splits, int threads,
                                             int64_t most) {
  if (!ends_on_thin_iteration(units, splits, threads)) return splits;
  const int64_t limit = splits + splits / 2 < most ? splits + splits / 2 : most;
  for (int64_t more = splits + 1; more <= limit; ++more) {
    if (!ends_on_thin_iteration(units, more, threads)) return more;
  }
  return splits;
}

// Rows that can be split across blocks. Batches at least this large get one
// block per row and use no workspace.
inline int64_t max_split_rows(int64_t resident_blocks, const TuningPolicy& policy) {
  const int64_t rows = split_target_blocks(resident_blocks, policy);
  return rows < kMaxGridRows ? rows : kMaxGridRows;
}

// The most items a split launch has: split_target_blocks(), and half as many
// again where splits_without_thin_iteration() adds splits.
inline int64_t max_split_items(int64_t resident_blocks, const TuningPolicy& policy) {
  const int64_t target = split_target_blocks(resident_blocks, policy);
  return target + target / 2;
}

// Which block size a batch gets. Short batches split their rows over standard
// blocks. Longer ones get one block per row: wide blocks while a wave of them
// holds the batch with room to spare and rows stay unsplit, narrow ones for a
// batch that only a wave of narrow blocks holds (so that no thin last wave
// runs alone), and standard ones otherwise, including batches of several
// waves. See "f65bbc2 and 2d65f6f" and "8b10318 and 678eb12".
inline int block_threads_for(int64_t batch, int64_t units, const ResidentBlocks& resident,
                             const TuningPolicy& policy) {
  if (batch > resident.narrow) return kStandardBlockThreads;
  if (batch > resident.standard) return kNarrowBlockThreads;
  const bool unsplit = 2 * batch > split_target_blocks(resident.wide, policy);
  const bool roomy_wave = 4 * batch <= policy.wide_wave_fill_quarters * resident.wide;
  const bool long_rows = units >= policy.wide_min_units_per_thread * kWideBlockThreads;
  return unsplit && roomy_wave && long_rows ? kWideBlockThreads : kStandardBlockThreads;
}

// Whether short contiguous rows at large batch share blocks, several rows a
// block (strided rows never do). See "ce43125".
inline bool shares_blocks_between_rows(int64_t batch, int64_t units, bool contiguous,
                                       const ResidentBlocks& resident,
                                       const TuningPolicy& policy) {
  return contiguous && batch > resident.narrow && units <= policy.short_row_max_units;
}

// The most splits of a row that the problem's kernels combine by collection.
inline uint32_t collected_split_limit(const Problem& problem, const TuningPolicy& policy) {
  const uint32_t limit = policy.max_collected_splits;
  return problem.stats && limit > kMaxCollectedStatsSplits ? kMaxCollectedStatsSplits : limit;
}

// The most items a row read by blocks of `threads` threads is split into: a
// contiguous row no finer than one iteration an item, a strided one into
// items of at least min_elements_per_thread a thread.
inline int64_t most_splits(const Problem& problem, int64_t units, int threads,
                           const TuningPolicy& policy) {
  return problem.contiguous ? one_iteration_items(units, threads)
                            : units / (threads * policy.min_elements_per_thread);
}

// Sets the plan's split count (at least 1) and each item's share of a row of
// `units` units. Rounding the share up can leave the last items with nothing
// to read (32064 units in 250 splits of 129): only those that have work are
// launched.
inline void set_split_count(int64_t units, int64_t splits, LaunchPlan& plan) {
  if (splits < 1) splits = 1;
  const int64_t per_split = (units + splits - 1) / splits;
  if (per_split > 0) splits = (units + per_split - 1) / per_split;
  plan.splits = static_cast<uint32_t>(splits);
  plan.units_per_split = static_cast<uint32_t>(per_split > 0 ? per_split : 1);
}

// The split count and share for a row read by blocks of `threads` threads, of
// which `resident` fit the GPU at once. A short batch is split so that the
// launch is at most split_target_blocks() (more where that avoids a thin last
// iteration): every block starts at once, each ends with one combine, and the
// combine's latency is paid once per launch. A contiguous row is split no
// finer than one iteration an item.
inline void plan_splits(const Problem& problem, int threads, int64_t resident,
                        const TuningPolicy& policy, LaunchPlan& plan) {
  const int64_t units = row_units(problem.vocab, problem.contiguous, problem.elements_per_vector);
  int64_t splits = 1;
  if (problem.batch < max_split_rows(resident, policy)) {
    const int64_t wanted = split_target_blocks(resident, policy) / problem.batch;
    const int64_t most = most_splits(problem, units, threads, policy);
    splits = wanted < most ? wanted : most;
    if (splits < 1) splits = 1;
    // Only rows combined by collection: the search stays short, and rows of
    // more splits were not measured.
    const int64_t collected = collected_split_limit(problem, policy);
    if (policy.avoid_thin_last_iteration && problem.contiguous && splits > 1 &&
        splits <= collected) {
      const int64_t limit = most < collected ? most : collected;
      splits = splits_without_thin_iteration(units, splits, threads, limit);
    }
  }
  set_split_count(units, splits, plan);
}

// The grid, combine and workspace of a plan whose split count is set: one
// block a row for whole rows; a (splits, rows) grid for split rows, combined
// by collection up to the kernels' limit and by fenced atomics beyond, with
// at least `workspace_slots` slots and one per item.
inline void set_split_grid(const Problem& problem, const TuningPolicy& policy,
                           int64_t workspace_slots, LaunchPlan& plan) {
  if (plan.splits == 1) {
    plan.combine = Combine::kNone;
    plan.grid_x = problem.batch;
    plan.grid_y = 1;
    plan.workspace_slots = 0;
    return;
  }
  plan.combine = plan.splits <= collected_split_limit(problem, policy) ? Combine::kCollected
                                                                       : Combine::kFenced;
  plan.grid_x = plan.splits;
  plan.grid_y = static_cast<uint32_t>(problem.batch);
  const int64_t items = problem.batch * static_cast<int64_t>(plan.splits);
  plan.workspace_slots = workspace_slots > items ? workspace_slots : items;
}

// The whole decision for one call, under the given policy.
inline LaunchPlan plan_launch(const Problem& problem, const DeviceDescription& device,
                              const TuningPolicy& policy) {
  const ResidentBlocks resident = resident_blocks(device, policy);
  const int64_t units = row_units(problem.vocab, problem.contiguous, problem.elements_per_vector);
  LaunchPlan plan{};
  plan.policy = &policy;
  plan.combine = Combine::kNone;
  plan.grid_y = 1;
  plan.workspace_slots = 0;
  if (shares_blocks_between_rows(problem.batch, units, problem.contiguous, resident, policy)) {
    // A row's threads are whole waves (group_max_key() in greedy_gpu_cross_lane.cuh).
    const int wave = device.wave_width;
    plan.block_threads = kStandardBlockThreads;
    plan.row_threads = policy.short_row_threads > wave ? policy.short_row_threads : wave;
    plan.splits = 1;
    plan.units_per_split = static_cast<uint32_t>(units > 0 ? units : 1);
    const int64_t rows_per_block = plan.block_threads / plan.row_threads;
    plan.grid_x = (problem.batch + rows_per_block - 1) / rows_per_block;
    return plan;
  }
  plan.block_threads = block_threads_for(problem.batch, units, resident, policy);
  plan.row_threads = plan.block_threads;
  const int64_t resident_of_size = plan.block_threads == kNarrowBlockThreads ? resident.narrow
                                   : plan.block_threads == kWideBlockThreads ? resident.wide
                                                                             : resident.standard;
  plan_splits(problem, plan.block_threads, resident_of_size, policy, plan);
  set_split_grid(problem, policy, max_split_items(resident_of_size, policy), plan);
  return plan;
}

// The whole decision for one call, under the policy of the device's kernels.
inline LaunchPlan plan_launch(const Problem& problem, const DeviceDescription& device) {
  return plan_launch(problem, device, tuning_policy_for(device, problem.stats));
}

// The most items the kernel can split a row into: a contiguous row's
// interleaved items each need a strip (a vector a thread) to read even where
// the row starts just past a 128-byte boundary, with up to 8 whole vectors
// fewer; a strided row's items min_elements_per_thread a thread. Finer than
// the plan ever splits (most_splits()); for tuning sweeps.
inline int64_t finest_splits(const Problem& problem, int64_t units, int threads,
                             const TuningPolicy& policy) {
  if (!problem.contiguous) return units / (threads * policy.min_elements_per_thread);
  const int64_t fewest_units = units - 8;
  return fewest_units > 0 ? (fewest_units - 1) / threads + 1 : 1;
}

// For tuning sweeps only (the tuning build's SAFE_GREEDY_TUNING_SPLITS, see
// benchmarks/tune_splits.py): `plan` with its rows split `forced` ways
// instead, as far as the kernel allows (finest_splits(), no empty item), so
// finer than the plan's rules where asked. Only plans of standard blocks that
// read one row each, at batches a grid's y holds, change; the combine, grid
// and workspace follow the split count.
inline LaunchPlan with_forced_splits(LaunchPlan plan, const Problem& problem, int64_t forced) {
  if (forced < 1 || plan.block_threads != kStandardBlockThreads ||
      plan.row_threads != plan.block_threads || problem.batch > kMaxGridRows) {
    return plan;
  }
  const TuningPolicy& policy = *plan.policy;
  const int64_t units = row_units(problem.vocab, problem.contiguous, problem.elements_per_vector);
  const int64_t most = finest_splits(problem, units, plan.block_threads, policy);
  set_split_count(units, forced < most ? forced : most, plan);
  set_split_grid(problem, policy, plan.workspace_slots, plan);
  return plan;
}

}  // namespace gpu
}  // namespace safe_greedy
