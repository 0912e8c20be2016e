// safe_greedy::gpu::plan_launch (csrc/kernels/greedy_plan.h) against what the
// GPU kernel (csrc/kernels/greedy_gpu.cuh) and its launcher
// (csrc/extension/greedy_gpu_launcher.cu) assume of a plan, over a grid of
// batch and vocab sizes, element widths, layouts and GPU sizes. Where a row is
// small enough, the kernel's index arithmetic is replayed to show that every
// element is read by exactly one item.
#include <stdint.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <vector>

#include "check.h"
#include "greedy_plan.h"

using safe_greedy::gpu::block_threads_for;
using safe_greedy::gpu::kShortRowThreads;
using safe_greedy::gpu::kShortRowUnits;
using safe_greedy::gpu::kNarrowBlockThreads;
using safe_greedy::gpu::kStandardBlockThreads;
using safe_greedy::gpu::kUnroll;
using safe_greedy::gpu::kPlannedThreadsPerMultiprocessor;
using safe_greedy::gpu::kWideBlockThreads;
using safe_greedy::gpu::ResidentBlocks;
using safe_greedy::gpu::row_units;
using safe_greedy::gpu::split_target_blocks;
using safe_greedy::gpu::LaunchPlan;
using safe_greedy::gpu::max_split_items;
using safe_greedy::gpu::max_split_rows;
using safe_greedy::gpu::plan_launch;
using safe_greedy::gpu::planned_blocks_per_multiprocessor;
using safe_greedy::gpu::shares_blocks_between_rows;

static_assert(kStandardBlockThreads % kShortRowThreads == 0 && kShortRowThreads < kStandardBlockThreads,
              "blocks that share rows hold a whole number of rows, and more than one");

namespace {

// Replays the loop of contiguous_item_key() for thread `tid` of item `split`
// of a row of `vectors` whole vectors split `splits` ways over `threads`
// threads an item, in the kernel's own 32-bit arithmetic: items interleave
// in strips of `threads` vectors; whole iterations of kUnroll strips, their
// loads unchecked, then one partial iteration, its loads predicated. Calls
// load(iteration, v) for each vector the thread loads.
template <class Load>
void replay_item_loop(uint32_t vectors, uint32_t splits, uint32_t split, uint32_t tid, int threads,
                      Load load) {
  const uint32_t kThreads = static_cast<uint32_t>(threads);
  const uint32_t stride = splits * kThreads;
  int64_t iteration = 0;
  uint32_t strip = split * kThreads;
  for (; strip + (kUnroll - 1) * stride + kThreads <= vectors; strip += kUnroll * stride, ++iteration) {
    for (int u = 0; u < kUnroll; ++u) load(iteration, strip + u * stride + tid);
  }
  if (strip < vectors) {
    for (int u = 0; u < kUnroll; ++u) {
      const uint32_t v = strip + u * stride + tid;
      if (v < vectors) load(iteration, v);
    }
  }
}

// Replays the contiguous kernel's split of one row (contiguous_item_key) for
// a row starting `head` elements before a 128-byte boundary, read by
// `threads` threads an item, and counts how often each element is read.
bool contiguous_reads_each_once(uint32_t vocab, int elements_per_vector, uint32_t head,
                                int threads, const LaunchPlan& plan) {
  std::vector<uint8_t> reads(vocab, 0);
  const uint32_t kElems = static_cast<uint32_t>(elements_per_vector);
  const uint32_t kThreads = static_cast<uint32_t>(threads);
  head = head < vocab ? head : vocab;
  const uint32_t vectors = (vocab - head) / kElems;
  const uint32_t body_end = head + vectors * kElems;
  // Counts vector v's elements; a vector past the row's whole vectors is a
  // read out of bounds.
  bool in_bounds = true;
  auto read_vector = [&](uint32_t v) {
    if (v >= vectors) {
      in_bounds = false;
      return;
    }
    for (uint32_t e = 0; e < kElems; ++e) ++reads[head + v * kElems + e];
  };
  for (uint32_t split = 0; split < plan.splits; ++split) {
    for (uint32_t tid = 0; tid < kThreads; ++tid) {
      replay_item_loop(vectors, plan.splits, split, tid, threads,
                       [&](int64_t, uint32_t v) { read_vector(v); });
      if (split == 0) {
        for (uint32_t i = tid; i < head; i += kThreads) ++reads[i];
        if (tid < kElems && body_end + tid < vocab) ++reads[body_end + tid];
      }
    }
  }
  if (!in_bounds) return false;
  for (uint8_t r : reads) {
    if (r != 1) return false;
  }
  return true;
}

// The same for the strided kernel (strided_item_key).
bool strided_reads_each_once(uint32_t vocab, int threads, const LaunchPlan& plan) {
  std::vector<uint8_t> reads(vocab, 0);
  for (uint32_t split = 0; split < plan.splits; ++split) {
    const uint64_t begin64 = static_cast<uint64_t>(split) * plan.units_per_split;
    const uint64_t end64 = begin64 + plan.units_per_split;
    const uint32_t end = static_cast<uint32_t>(end64 < vocab ? end64 : vocab);
    for (uint32_t tid = 0; tid < static_cast<uint32_t>(threads); ++tid) {
      for (uint32_t i = static_cast<uint32_t>(begin64) + tid; i < end; i += threads) ++reads[i];
    }
  }
  for (uint8_t r : reads) {
    if (r != 1) return false;
  }
  return true;
}

// The iterations of the contiguous kernel's loop for item `split` of a row
// of `vectors` whole vectors (no head), as thread 0 runs them: how many, and
// how many strips (its loads) the last one reads.
safe_greedy::gpu::ItemIterations replayed_iterations(uint32_t vectors, uint32_t splits,
                                                     uint32_t split, int threads) {
  safe_greedy::gpu::ItemIterations it{0, 0};
  replay_item_loop(vectors, splits, split, 0, threads, [&](int64_t iteration, uint32_t) {
    if (iteration + 1 > it.count) {
      it.count = iteration + 1;
      it.last_strips = 0;
    }
    ++it.last_strips;
  });
  return it;
}

// item_iterations() describes the kernel's loop: its count is the most
// iterations any item of the row takes, and its last_strips what the last
// iteration of such an item reads.
void check_item_iterations(uint32_t vectors, uint32_t splits, int threads) {
  const safe_greedy::gpu::ItemIterations model =
      safe_greedy::gpu::item_iterations(vectors, splits, threads);
  int64_t most = 0;
  int64_t last_of_most = 0;
  for (uint32_t split = 0; split < splits; ++split) {
    const safe_greedy::gpu::ItemIterations it = replayed_iterations(vectors, splits, split, threads);
    if (it.count > most) {
      most = it.count;
      last_of_most = it.last_strips;
    } else if (it.count == most && it.last_strips > last_of_most) {
      last_of_most = it.last_strips;
    }
  }
  CHECK(model.count == most && model.last_strips == last_of_most,
        "vectors=%u splits=%u threads=%d: item_iterations says %lld iterations, the last of %lld "
        "strips; the kernel's loop takes %lld, the last of %lld",
        vectors, splits, threads, static_cast<long long>(model.count),
        static_cast<long long>(model.last_strips), static_cast<long long>(most),
        static_cast<long long>(last_of_most));
}

// splits_without_thin_iteration() adds the fewest splits, up to half as many
// again and `most`, that leave no thin last iteration, and none where no such
// count exists or the plan's has none.
void check_thin_iteration_rule(int64_t units, int64_t splits, int threads, int64_t most) {
  using safe_greedy::gpu::ends_on_thin_iteration;
  const int64_t chosen = safe_greedy::gpu::splits_without_thin_iteration(units, splits, threads, most);
  const int64_t limit = std::min(splits + splits / 2, most);
  int64_t expected = splits;
  if (ends_on_thin_iteration(units, splits, threads)) {
    for (int64_t s = splits + 1; s <= limit; ++s) {
      if (!ends_on_thin_iteration(units, s, threads)) {
        expected = s;
        break;
      }
    }
  }
  CHECK(chosen == expected, "units=%lld splits=%lld threads=%d most=%lld: chose %lld, expected %lld",
        static_cast<long long>(units), static_cast<long long>(splits), threads,
        static_cast<long long>(most), static_cast<long long>(chosen),
        static_cast<long long>(expected));
}

uint64_t g_plans = 0;
uint64_t g_replayed = 0;

void check_plan(int64_t batch, uint32_t vocab, bool contiguous, int epv, int threads,
                int64_t resident) {
  const LaunchPlan p = plan_launch(batch, vocab, contiguous, epv, threads, resident);
  ++g_plans;
  const uint64_t splits = p.splits;
  const uint64_t per = p.units_per_split;
  const uint64_t units = contiguous ? vocab / epv : vocab;
  // The fewest units a row of this length can have: a contiguous row starting
  // just past a 128-byte boundary reads its first 8 * epv - 1 elements one at
  // a time, outside its whole vectors.
  const uint64_t most_head = contiguous ? static_cast<uint64_t>(8 * epv - 1) : 0;
  const uint64_t fewest_units = contiguous ? (vocab > most_head ? (vocab - most_head) / epv : 0) : units;
#define CTX "batch=%lld vocab=%u %s epv=%d threads=%d resident=%lld: splits=%llu units_per_split=%llu"
#define ARGS                                                                              \
  static_cast<long long>(batch), vocab, contiguous ? "contiguous" : "strided", epv,       \
      threads, static_cast<long long>(resident), static_cast<unsigned long long>(splits),          \
      static_cast<unsigned long long>(per)

  CHECK(splits >= 1 && per >= 1, CTX, ARGS);
  // Every unit of the row belongs to some item.
  CHECK(splits * per >= units, CTX " do not cover %llu units", ARGS,
        static_cast<unsigned long long>(units));
  // No item starts past the data (a row starting on a 128-byte boundary): no
  // block is launched for nothing. Another contiguous row has up to 8 whole
  // vectors fewer (its elements before the boundary are read one at a time);
  // its items interleave, and each still has a strip to read (checked below).
  CHECK(units == 0 ? splits == 1 : (splits - 1) * per < units, CTX " leave an empty item", ARGS);
  // Splitting needs a workspace slot per row, and the workspace has
  // max_split_rows(resident) of them.
  CHECK(splits == 1 || batch < max_split_rows(resident), CTX " split a batch the workspace can't hold",
        ARGS);
  if (batch >= max_split_rows(resident)) CHECK(splits == 1, CTX, ARGS);
  // Rows combined by collection need a key slot per item; the workspace has
  // max_split_items(resident) of them.
  CHECK(splits == 1 || batch * static_cast<int64_t>(splits) <= max_split_items(resident),
        CTX " split into more items than the workspace has key slots", ARGS);
  // Rows combined by collection get no empty item, even when they start
  // just past a 128-byte boundary and so have the fewest whole vectors (the
  // kernel copes with one anyway: published_key() in greedy_gpu_combines.cuh).
  if (splits > 1 && splits <= safe_greedy::gpu::kMaxCollectedSplits) {
    CHECK((splits - 1) * per < fewest_units, CTX " give a collected row an empty item", ARGS);
  }
  // Rows that kMaxCollectedSplits blocks read in one iteration each are
  // combined by collection, never by the fenced atomics.
  if (contiguous && splits > safe_greedy::gpu::kMaxCollectedSplits) {
    CHECK(units > static_cast<uint64_t>(safe_greedy::gpu::kMaxCollectedSplits) * threads * kUnroll,
          CTX " give the fenced combine a row collection could take", ARGS);
  }
  // Split rows are launched as a (splits, rows) grid: the rows must fit its y
  // dimension, the splits its x dimension.
  if (splits > 1) {
    CHECK(batch <= safe_greedy::gpu::kMaxGridRows, CTX " split more rows than a grid's y holds", ARGS);
    CHECK(splits <= static_cast<uint64_t>(std::numeric_limits<int32_t>::max()), CTX, ARGS);
  }
  // The launcher refuses grids past int32; the plan must never be the reason.
  const uint64_t items = static_cast<uint64_t>(batch) * splits;
  CHECK(items <= static_cast<uint64_t>(std::numeric_limits<int32_t>::max()),
        CTX " need %llu blocks", ARGS, static_cast<unsigned long long>(items));
  if (splits > 1) {
    // Every item of a split row has its minimum of work per thread: a
    // contiguous one at least a vector, a strided one kMinElementsPerThread.
    const uint64_t min_units =
        static_cast<uint64_t>(threads) * (contiguous ? 1 : safe_greedy::gpu::kMinElementsPerThread);
    CHECK(per >= min_units, CTX " give an item less than %llu units", ARGS,
          static_cast<unsigned long long>(min_units));
  }
  // A contiguous row is split no finer than one iteration an item.
  if (contiguous) {
    const uint64_t fewest = static_cast<uint64_t>(safe_greedy::gpu::one_iteration_items(units, threads));
    CHECK(splits <= (fewest > 1 ? fewest : 1), CTX " split finer than one iteration an item (%llu)",
          ARGS, static_cast<unsigned long long>(fewest));
  }
  // The kernel computes indices in 32 bits: a contiguous item's vector
  // indices reach under kUnroll strides (splits * threads vectors) past the
  // row's last vector; a strided item's, its first index plus a thread id.
  if (contiguous) {
    CHECK(units + (kUnroll + 1) * splits * threads <= 0xFFFFFFFFull,
          CTX " overflow the kernel's vector indices", ARGS);
    // Every contiguous item has a strip to read, even in a row starting just
    // past a 128-byte boundary (the fewest whole vectors).
    CHECK(splits == 1 || (splits - 1) * threads < fewest_units,
          CTX " give an interleaved item no strip", ARGS);
  } else {
    CHECK((splits - 1) * per + threads <= 0xFFFFFFFFull, CTX " overflow the first index", ARGS);
  }
  // Replay the kernel's reads where that is cheap.
  if (vocab <= 20000 && (batch % 7 == 1 || batch < 64)) {
    ++g_replayed;
    if (contiguous) {
      // Every start within a 128-byte line: 128 / (16 / epv) elements.
      for (uint32_t head = 0; head < static_cast<uint32_t>(8 * epv); ++head) {
        CHECK(contiguous_reads_each_once(vocab, epv, head, threads, p),
              CTX " head=%u: not every element read once", ARGS, head);
      }
    } else {
      CHECK(strided_reads_each_once(vocab, threads, p), CTX ": not every element read once", ARGS);
    }
  }
#undef ARGS
#undef CTX
}

}  // namespace

int main() {
  // The blocks a multiprocessor is counted as holding: at least one, and
  // otherwise the most that both fit and stay within
  // kPlannedThreadsPerMultiprocessor threads.
  for (int threads : {32, 64, 128, 256, 512, 1024, 2048}) {
    for (int64_t fit = 0; fit <= 64; ++fit) {
      const int64_t counted = planned_blocks_per_multiprocessor(fit, threads);
      const auto allowed = [&](int64_t blocks) {
        return blocks <= fit && blocks * threads <= kPlannedThreadsPerMultiprocessor;
      };
      CHECK(counted >= 1 && (counted == 1 || allowed(counted)) && !allowed(counted + 1),
            "threads=%d fit=%lld: counted %lld", threads, static_cast<long long>(fit),
            static_cast<long long>(counted));
    }
  }

  // The iteration model against the kernel's loop, at the block sizes of
  // split rows, for rows of one strip to several iterations of many items.
  for (int threads : {kNarrowBlockThreads, kStandardBlockThreads, kWideBlockThreads}) {
    for (uint32_t vectors : {1u, 100u, 255u, 256u, 257u, 1000u, 4095u, 4096u, 4097u, 8000u, 18958u,
                             19000u, 37984u, 65536u}) {
      for (uint32_t splits = 1; splits <= 40; ++splits) {
        if ((splits - 1) * static_cast<uint32_t>(threads) >= vectors) break;  // no empty items
        check_item_iterations(vectors, splits, threads);
      }
    }
  }
  for (int64_t units : {2000, 4000, 8000, 16000, 18958, 32064, 37916, 37984, 65536, 262144}) {
    for (int64_t splits = 1; splits <= 128; ++splits) {
      for (int64_t most : {int64_t{1}, splits, splits + 1, int64_t{128}, units / 256}) {
        check_thin_iteration_rule(units, splits, kStandardBlockThreads, most);
      }
    }
  }

  // Cells measured on an H100 (792 resident blocks of 256 threads as the plan
  // counts them), where the rule above changed the split count or, for fp32
  // 64x262144, kept it (whose items end on an iteration three quarters full).
  struct MeasuredCell {
    int64_t batch;
    uint32_t vocab;
    int elements_per_vector;
    uint32_t splits;
  };
  for (const MeasuredCell& c : {MeasuredCell{64, 151666, 8, 7}, MeasuredCell{64, 151936, 4, 8},
                                MeasuredCell{32, 151666, 4, 13}, MeasuredCell{32, 128256, 8, 16},
                                MeasuredCell{64, 262144, 8, 7}, MeasuredCell{64, 262144, 4, 6},
                                MeasuredCell{16, 128256, 4, 32}}) {
    const LaunchPlan p = plan_launch(c.batch, c.vocab, true, c.elements_per_vector,
                                     kStandardBlockThreads, 792);
    CHECK(p.splits == c.splits, "%lldx%u, %d elements a vector: %u splits, expected %u",
          static_cast<long long>(c.batch), c.vocab, c.elements_per_vector, p.splits, c.splits);
  }

  // The last: a GPU that would hold more split rows than a grid's y dimension.
  const int64_t residents[] = {100, 1056, 2000, 8 * safe_greedy::gpu::kMaxGridRows};
  std::vector<int64_t> batches = {1,    2,    3,    4,    7,    8,     15,    16,    31,   32,
                                  63,   64,   100,  127,  128,  255,   256,   399,   400,  401,
                                  1000, 1024, 1055, 1056, 2048, 4095,  4096,  4224,  7999, 8000,
                                  8001, 8192, 16384, 32768, 65535, 65536, 99999, 100000};
  for (int64_t r : residents) {
    for (int64_t d = -1; d <= 1; ++d) {
      batches.push_back(max_split_rows(r) + d);
      batches.push_back(r + d);
      batches.push_back(2 * r + d);
      batches.push_back(r / 2 + d);
      batches.push_back(split_target_blocks(r / 2) / 2 + d);
      batches.push_back(3 * (r / 2) / 4 + d);
    }
  }
  std::vector<uint32_t> vocabs = {1,     2,     3,     4,     5,     7,     8,     9,     15,
                                  16,    17,    31,    32,    33,    100,   255,   256,   257,
                                  511,   512,   513,   1000,  1023,  1024,  1025,  2047,  2048,
                                  2049,  4096,  8191,  8192,  8193,  16384, 32000, 32768, 50257,
                                  65536, 128000, 128256, 131072, 151646, 151936, 152064, 200000,
                                  256000, 262144, 299999, 300000};
  test::Rng rng(0x91A4ull);
  for (int k = 0; k < 24; ++k) vocabs.push_back(1 + static_cast<uint32_t>(rng.below(300000)));
  for (int k = 0; k < 8; ++k) batches.push_back(1 + static_cast<int64_t>(rng.below(100000)));

  for (int64_t resident : residents) {
    for (int64_t batch : batches) {
      for (uint32_t vocab : vocabs) {
        for (int epv : {4, 8}) {
          for (bool contiguous : {true, false}) {
            // The launcher's choice of block size, for a GPU holding
            // `resident` standard blocks (twice as many narrow, half as many
            // wide), checked against the rule written out longhand.
            const ResidentBlocks held{2 * resident, resident, resident / 2};
            const int64_t units = row_units(vocab, contiguous, epv);
            // Blocks that read several whole rows: only contiguous short rows,
            // only at batches of several waves of narrow blocks; and those rows
            // are never split (the launcher asserts it), at any occupancy up to
            // that of narrow blocks.
            const bool shared = shares_blocks_between_rows(batch, units, contiguous, held);
            const bool expected_shared =
                contiguous && batch > held.narrow && units <= kShortRowUnits;
            CHECK(shared == expected_shared, "batch=%lld units=%lld resident=%lld: shared=%d",
                  static_cast<long long>(batch), static_cast<long long>(units),
                  static_cast<long long>(resident), static_cast<int>(shared));
            if (shared) {
              for (int64_t r : {held.standard, held.narrow}) {
                const LaunchPlan whole =
                    plan_launch(batch, vocab, contiguous, epv, kStandardBlockThreads, r);
                CHECK(whole.splits == 1, "batch=%lld vocab=%u: shared rows split %u ways",
                      static_cast<long long>(batch), vocab, whole.splits);
              }
            }
            const int threads = block_threads_for(batch, units, held);
            int expected = kStandardBlockThreads;
            if (batch > held.standard && batch <= held.narrow) {
              expected = kNarrowBlockThreads;
            } else if (4 * batch <= 3 * held.wide && 2 * batch > split_target_blocks(held.wide) &&
                       units >= 2 * kWideBlockThreads) {
              expected = kWideBlockThreads;
            }
            CHECK(threads == expected, "batch=%lld units=%lld resident=%lld: %d threads, expected %d",
                  static_cast<long long>(batch), static_cast<long long>(units),
                  static_cast<long long>(resident), threads, expected);
            const int64_t held_of_size = threads == kNarrowBlockThreads ? held.narrow
                                         : threads == kWideBlockThreads ? held.wide
                                                                        : held.standard;
            check_plan(batch, vocab, contiguous, epv, threads, held_of_size);
            if (threads == kWideBlockThreads) {
              // Wide blocks are chosen only where they read whole rows.
              const LaunchPlan wide = plan_launch(batch, vocab, contiguous, epv, threads, held.wide);
              CHECK(wide.splits == 1, "batch=%lld vocab=%u: wide blocks split rows %u ways",
                    static_cast<long long>(batch), vocab, wide.splits);
            }
            // Every plan is valid at any block size, whatever the occupancy.
            if (vocab % 3 == 0) {
              for (int other : {kNarrowBlockThreads, kStandardBlockThreads, kWideBlockThreads}) {
                if (other != threads) check_plan(batch, vocab, contiguous, epv, other, resident);
              }
            }
          }
        }
      }
    }
  }
  std::printf("test_launch_plan: %llu plans checked, %llu replayed element by element\n",
              static_cast<unsigned long long>(g_plans), static_cast<unsigned long long>(g_replayed));
  return test::finish("test_launch_plan");
}
