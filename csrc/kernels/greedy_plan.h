// How the GPU kernel divides a [batch, vocab] problem into blocks.
//
// Host-only and torch-free, so the C++ tests can check the plan's invariants
// (every vector of every row is covered by exactly one item) without a GPU.
#pragma once

#include <stdint.h>

namespace safe_greedy {
namespace gpu {

// What a row is measured in for planning: 16-byte vectors when contiguous
// (elements_per_vector = 16 / sizeof(element)), elements when strided.
inline int64_t row_units(int64_t vocab, bool contiguous, int elements_per_vector) {
  return contiguous ? vocab / elements_per_vector : vocab;
}

// 16-byte loads in flight per thread per iteration of the kernel. Overridable
// at build time for tuning sweeps.
#ifndef SAFE_GREEDY_UNROLL
#define SAFE_GREEDY_UNROLL 4
#endif
constexpr int kUnroll = SAFE_GREEDY_UNROLL;

struct LaunchPlan {
  uint32_t splits;           // blocks per row
  // Strided rows: the elements of each item, which reads them consecutively.
  // Contiguous rows: the vectors of each item to within one strip of
  // threads_per_block vectors, as their items interleave strip by strip
  // (contiguous_item_key() in greedy_gpu_item_loops.cuh).
  uint32_t units_per_split;
};

// An item of a strided row reads at least this many elements a thread.
constexpr int64_t kMinElementsPerThread = 8;

// The fewest items that read a contiguous row of `units` vectors in one
// iteration each (kUnroll vectors a thread in flight at once), and the most
// a contiguous row is split into. A row one block reads in one iteration is
// never split: splitting it cannot shorten its one memory round trip, and the
// combine would add 0.7 us (H100: 2.0 us unsplit against 2.76 us split at
// 1 x 32000). Longer rows get no more items than it takes to read them in one
// iteration an item. Side by side on an H100 (graph replay, L2-cold, 210
// cells of batch 1-32 and vocab 32000-262144, median of 3 runs) against
// splitting to a half wave of items of at least one vector a thread: 0.964x
// the time, 0.954x in the 164 cells whose split count changed; 0.94-0.95x at
// batch 1-4 (fp32 3x128256: 3.10 -> 2.69 us, 125 -> 32 splits), 0.97-0.99x at
// 12-32; at most 0.06 us more in any cell (why fewer, fuller items win was
// not profiled). Rows that 128 blocks read in one iteration each thus have at
// most kMaxCollectedSplits splits and combine by collection.
inline int64_t one_iteration_items(int64_t units, int threads) {
  const int64_t per_item = static_cast<int64_t>(threads) * kUnroll;
  return (units + per_item - 1) / per_item;
}

// The plan counts at most this many threads of resident blocks a
// multiprocessor, whatever more the kernel's registers would allow. Its
// rules were measured on an H100 where the kernels of one item a block held
// 1536 threads a multiprocessor (40 registers); since they keep one best
// vector a thread (greedy_gpu.cuh) they take 32 and 2048 fit. Planned with
// all 2048, side by side with the same kernels planned with 1536 (H100,
// graph replay, L2-cold, 219 cells of batch 1-4096, median of 3 runs):
// 1.002x the time, faster in 104 cells; 0.991-0.994x at batch 1-2, 1.034x at
// batch 128 (where rows lost their 512-thread blocks to 4 splits of 256),
// 1.019x at batch 2048; time target met in 201 cells against 205.
constexpr int64_t kPlannedThreadsPerMultiprocessor = 1536;

// Resident blocks of `threads` threads a multiprocessor, as the plan counts
// them: `fit` of them fit (the occupancy calculator's answer).
inline int64_t planned_blocks_per_multiprocessor(int64_t fit, int threads) {
  const int64_t most = kPlannedThreadsPerMultiprocessor / threads;
  const int64_t counted = fit < most ? fit : most;
  return counted > 1 ? counted : 1;
}

// How many blocks a short batch is split into: half of those resident at
// once, unless a row's items would then read less than one iteration each
// (one_iteration_items()). Measured on an H100 (graph replay, L2-cold, 6
// resident blocks of 256 threads per multiprocessor) by forcing every split
// count, before items interleaved: at batch 1-16 the most blocks a row
// allowed came within 0.2 us of the best (no longer so: see
// one_iteration_items()); from batch 16 on the best launch had 1-4 blocks
// per multiprocessor, and a full wave lost 0.15-2.0 us (bf16 256 x 32000:
// 8.94 us unsplit against 10.34 us in three splits).
inline int64_t split_target_blocks(int64_t resident_blocks) {
  return resident_blocks / 2 > 1 ? resident_blocks / 2 : 1;
}

// How the blocks of a split row combine their keys (greedy_gpu.cuh): rows
// of at most this many splits by collection (the block that starts last
// waits for the others' keys in slots of their own), longer ones by fenced
// atomics (the block that finishes last writes the answer). Measured on an
// H100 (graph replay, L2-cold, 50 cells of batch 1-4096, median of 4 runs):
// collecting rows of up to 128 splits took 0.944x the time of the fenced
// combine alone, less in 46 cells (0.16-0.44 us at batch 4-64, 1.13 us for
// transposed bf16 64x32000), at most 0.06 us more; up to 64 splits, 0.952x.
// Collecting every split row was up to 0.39 us slower where rows have more
// than about 100 splits (fp32 1x262144, 256 splits; measured earlier).
// Contiguous rows are split no finer than one iteration an item
// (one_iteration_items()), so of those only rows longer than this many
// blocks read in one iteration each take the fenced combine.
#ifndef SAFE_GREEDY_MAX_COLLECTED_SPLITS
#define SAFE_GREEDY_MAX_COLLECTED_SPLITS 128
#endif
constexpr uint32_t kMaxCollectedSplits = SAFE_GREEDY_MAX_COLLECTED_SPLITS;
static_assert(kMaxCollectedSplits >= 1, "set SAFE_GREEDY_MAX_COLLECTED_SPLITS to 1 or more");

// An item's iterations over a contiguous row of `units` vectors split
// `splits` ways, in blocks of `threads` threads: each thread reads one vector
// of each of the item's strips (contiguous_item_key() in greedy_gpu_item_loops.cuh),
// kUnroll strips an iteration. The first items of the row get the most
// strips, and `last_strips` (1 to kUnroll) is what their last iteration reads.
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
// one and fills at most half of its loads. That iteration still costs a whole
// memory round trip for a fraction of the bytes, with no other iteration's
// loads to hide behind.
inline bool ends_on_thin_iteration(int64_t units, int64_t splits, int threads) {
  const ItemIterations it = item_iterations(units, splits, threads);
  return it.count > 1 && 2 * it.last_strips <= kUnroll;
}

// The split count for a contiguous row planned `splits` ways: where that ends
// on a thin iteration, the fewest more splits, up to `most` and half as many
// again, that do not; otherwise `splits`. Fitted on an H100 (graph replay,
// L2-cold, median of 2 runs) over 75 cells of batch 4-64, each timed at the
// plan's split count and at one fewer, one or two more, a third, half and
// twice as many again: the 18 cells this changes took 0.07-0.37 us less,
// none more (bf16 64x151666: 9.87 -> 9.59 us, 6 -> 7 splits, 13 strips an
// item in four iterations -> 11 in three); other split counts lost up to
// 0.8 us (fp32 64x262144 in 8 splits, not 6). Then side by side with the
// plan without it, on 153 cells of batch 8-128 (vocab 32000-262144, 5
// runs): the 129 whose split count changed took 0.969x the time, less in
// 128, 0.04 us more in one (fp32 56x262144). Both before one_iteration_items()
// bounded the split count; the cells this changes are the same since, as it
// only applies where the plan's items take more than one iteration.
inline int64_t splits_without_thin_iteration(int64_t units, int64_t splits, int threads,
                                             int64_t most) {
  if (!ends_on_thin_iteration(units, splits, threads)) return splits;
  const int64_t limit = splits + splits / 2 < most ? splits + splits / 2 : most;
  for (int64_t more = splits + 1; more <= limit; ++more) {
    if (!ends_on_thin_iteration(units, more, threads)) return more;
  }
  return splits;
}

// Split rows are launched as a (splits, rows) grid, whose y dimension holds at
// most this many rows.
constexpr int64_t kMaxGridRows = 65535;

// Rows that can be split across blocks: sizes the per-row workspace. Batches
// at least this large get one block per row and use no workspace.
inline int64_t max_split_rows(int64_t resident_blocks) {
  const int64_t rows = split_target_blocks(resident_blocks);
  return rows < kMaxGridRows ? rows : kMaxGridRows;
}

// The most items a split launch has: split_target_blocks(), and half as many
// again where splits_without_thin_iteration() adds splits. Sizes the
// workspace's key slots (one per item of a row combined by collection).
inline int64_t max_split_items(int64_t resident_blocks) {
  const int64_t target = split_target_blocks(resident_blocks);
  return target + target / 2;
}

// Block sizes the kernel is built for, and which one a batch gets.
//
// Short batches split their rows over standard blocks (plan_launch). Longer
// ones get one block per row: wide blocks while a wave of them holds the
// batch with room to spare, narrow ones for a batch that only a wave of
// narrow blocks holds (so that no thin last wave runs alone), and standard
// ones otherwise, including batches of several waves. Measured on an H100
// (graph replay, L2-cold; 396 resident blocks of 512 threads, 792 of 256,
// 1584 of 128):
//   * batch 128-256: 512-thread blocks, unsplit, took 0.09-1.5 us less than
//     256-thread ones (bf16 128 x 32000: 5.90 against 6.87 us); at batch 48-64,
//     where they would still split rows, 0.03-0.5 us more; at batch 384, a
//     nearly full wave of them, 0.4-0.55 us more in three cells of four; and
//     for rows of under two vectors per thread (fp32 3072), up to 0.1 us more;
//   * batch 512: 256-thread blocks, 0.6-2.8% less than 128-thread ones;
//   * batch 1024: 128-thread blocks, 0.6-7% less than 256-thread ones (fp32
//     1024 x 262144: 339.8 against 346.5 us);
//   * batch 2048 and 4096 (several waves at any size): 256-thread blocks,
//     0.5-4% less than 128-thread ones.
constexpr int kStandardBlockThreads = 256;
constexpr int kNarrowBlockThreads = 128;
constexpr int kWideBlockThreads = 512;

// Blocks of each size the GPU holds at once (multiprocessors x occupancy).
struct ResidentBlocks {
  int64_t narrow;
  int64_t standard;
  int64_t wide;
};

// units: the row's length in row_units.
inline int block_threads_for(int64_t batch, int64_t units, const ResidentBlocks& resident) {
  if (batch > resident.narrow) return kStandardBlockThreads;
  if (batch > resident.standard) return kNarrowBlockThreads;
  // Wide blocks only where their plan leaves rows unsplit (fewer than two
  // splits per row), the wave is at most three quarters full, and every
  // thread has two units of the row to read.
  const bool unsplit = 2 * batch > split_target_blocks(resident.wide);
  const bool roomy_wave = 4 * batch <= 3 * resident.wide;
  const bool long_rows = units >= 2 * kWideBlockThreads;
  return unsplit && roomy_wave && long_rows ? kWideBlockThreads : kStandardBlockThreads;
}

// Short rows at large batch: each block of kStandardBlockThreads reads
// several whole rows, kShortRowThreads threads to a row (a warp on NVIDIA, a
// CDNA wave on AMD), instead of one row a block. Measured on an H100 (graph
// replay, L2-cold): bf16 and fp16 rows of 3072 (384 vectors) took 12.6 ->
// 10.9 us at batch 4096 and 7.3 -> 6.4 us at batch 2048, 32 threads a row
// beating 64 and 128; fp32 rows of 3072 (768 vectors) took the same time
// either way. At batch 512 and 1024 the fewer blocks do not fill the GPU:
// 0.16-0.58 us more. So only batches larger than a wave of narrow blocks
// (1584 rows on an H100), and only rows of at most kShortRowUnits vectors (16
// per thread of a 32-thread group). The AMD width is not measured.
#if defined(__HIPCC__) || defined(USE_ROCM)
constexpr int kShortRowThreads = 64;
#else
constexpr int kShortRowThreads = 32;
#endif
constexpr int64_t kShortRowUnits = 512;

// units: the row's length in row_units. Strided rows are never shared.
inline bool shares_blocks_between_rows(int64_t batch, int64_t units, bool contiguous,
                                       const ResidentBlocks& resident) {
  return contiguous && batch > resident.narrow && units <= kShortRowUnits;
}

// resident_blocks: blocks of the kernel resident on the whole GPU at once
// (multiprocessors x occupancy). elements_per_vector: 16 / sizeof(element).
//
// A short batch is split so that the launch is at most half a wave (three
// quarters where that avoids a thin last iteration): every block starts at
// once, each ends with one combine, and the combine's latency is paid once
// per launch rather than once per wave. A contiguous row is split no finer
// than one iteration an item (one_iteration_items()). A batch of at least
// split_target_blocks rows needs no split.
inline LaunchPlan plan_launch(int64_t batch, uint32_t vocab, bool contiguous,
                              int elements_per_vector, int threads_per_block,
                              int64_t resident_blocks) {
  const int64_t units = row_units(vocab, contiguous, elements_per_vector);
  int64_t splits = 1;
  if (batch < max_split_rows(resident_blocks)) {
    const int64_t wanted = split_target_blocks(resident_blocks) / batch;
    const int64_t most = contiguous ? one_iteration_items(units, threads_per_block)
                                    : units / (threads_per_block * kMinElementsPerThread);
    splits = wanted < most ? wanted : most;
    if (splits < 1) splits = 1;
    // Only rows combined by collection: the search stays short (at most
    // kMaxCollectedSplits / 2 candidates a call), and rows of more splits
    // were not measured.
    if (contiguous && splits > 1 && splits <= static_cast<int64_t>(kMaxCollectedSplits)) {
      const int64_t limit = most < static_cast<int64_t>(kMaxCollectedSplits) ? most : kMaxCollectedSplits;
      splits = splits_without_thin_iteration(units, splits, threads_per_block, limit);
    }
  }
  const int64_t per_split = (units + splits - 1) / splits;
  // Rounding the share up can leave the last items with nothing to read
  // (32064 units in 250 splits of 129): launch only those that have work.
  if (per_split > 0) splits = (units + per_split - 1) / per_split;
  return LaunchPlan{static_cast<uint32_t>(splits),
                    static_cast<uint32_t>(per_split > 0 ? per_split : 1)};
}

}  // namespace gpu
}  // namespace safe_greedy
