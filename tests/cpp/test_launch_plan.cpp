// safe_greedy::gpu::plan_launch (csrc/kernels/greedy_plan.h) against what the
// GPU kernel (csrc/kernels/greedy_gpu.cuh) and its launcher
// (csrc/extension/greedy_gpu_launcher.cu) assume of a plan, over a grid of
// batch and vocab sizes, element widths, layouts and GPU sizes. Where a row is
// small enough, the kernel's index arithmetic is replayed to show that every
// element is read by exactly one item.
#include <stdint.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <vector>

#include "check.h"
#include "greedy_plan.h"
#include "greedy_row_layout.h"

using safe_greedy::gpu::Combine;
using safe_greedy::gpu::DeviceDescription;
using safe_greedy::gpu::kH100Policy;
using safe_greedy::gpu::kMaxCollectedSplits;
using safe_greedy::gpu::kMaxCollectedStatsSplits;
using safe_greedy::gpu::kMaxGridRows;
using safe_greedy::gpu::kNarrowBlockThreads;
using safe_greedy::gpu::kStandardBlockThreads;
using safe_greedy::gpu::kUnroll;
using safe_greedy::gpu::kWideBlockThreads;
using safe_greedy::gpu::LaunchPlan;
using safe_greedy::gpu::plan_launch;
using safe_greedy::gpu::planned_blocks_per_multiprocessor;
using safe_greedy::gpu::Problem;
using safe_greedy::gpu::ResidentBlocks;
using safe_greedy::gpu::row_layout;
using safe_greedy::gpu::RowLayout;
using safe_greedy::gpu::TuningPolicy;

static_assert(kStandardBlockThreads % safe_greedy::gpu::kShortRowThreads == 0 &&
                  safe_greedy::gpu::kShortRowThreads < kStandardBlockThreads,
              "blocks that share rows hold a whole number of rows, and more than one");

namespace {

// The strips of item `split` of a row of `vectors` whole vectors split
// `splits` ways over `threads` threads an item, as the kernel's
// item_strips<kThreads>() makes them for each width it is built with.
safe_greedy::gpu::ItemStrips strips_of(uint32_t vectors, uint32_t splits, uint32_t split,
                                       int threads) {
  using safe_greedy::gpu::item_strips;
  switch (threads) {
    case 32: return item_strips<32>(vectors, splits, split);
    case 64: return item_strips<64>(vectors, splits, split);
    case kNarrowBlockThreads: return item_strips<kNarrowBlockThreads>(vectors, splits, split);
    case kStandardBlockThreads: return item_strips<kStandardBlockThreads>(vectors, splits, split);
    case kWideBlockThreads: return item_strips<kWideBlockThreads>(vectors, splits, split);
  }
  CHECK(false, "no kernel reads items of %d threads", threads);
  std::abort();
}

// Replays the loop of contiguous_item_key() for thread `tid` of item `split`
// of a row of `vectors` whole vectors split `splits` ways over `threads`
// threads an item, through the kernel's own strips and iteration macros
// (greedy_row_layout.h): whole iterations of kUnroll strips, their loads
// unchecked, then one partial iteration, its loads predicated. Calls
// load(iteration, v) for each vector the thread loads.
template <class Load>
void replay_item_loop(uint32_t vectors, uint32_t splits, uint32_t split, uint32_t tid, int threads,
                      Load load) {
  const safe_greedy::gpu::ItemStrips item = strips_of(vectors, splits, split, threads);
  int64_t iteration = 0;
  uint32_t strip = item.first_strip;
  for (; SG_WHOLE_ITERATION(item, strip); strip += SG_ITERATION_STEP(item), ++iteration) {
    for (int u = 0; u < kUnroll; ++u) load(iteration, SG_STRIP_VECTOR(item, strip, u, tid));
  }
  if (strip < item.vectors) {
    for (int u = 0; u < kUnroll; ++u) {
      const uint32_t v = SG_STRIP_VECTOR(item, strip, u, tid);
      if (v < item.vectors) load(iteration, v);
    }
  }
}

// Replays the contiguous kernel's split of one row (contiguous_item_key) for
// a row whose first element is `row_address` (taken modulo a 128-byte line),
// read by `threads` threads an item, and counts how often each element is
// read. The row's head, vectors and tail are the kernel's own row_layout().
bool contiguous_reads_each_once(uint32_t vocab, int elements_per_vector, uintptr_t row_address,
                                int threads, const LaunchPlan& plan) {
  std::vector<uint8_t> reads(vocab, 0);
  const uint32_t kElems = static_cast<uint32_t>(elements_per_vector);
  const uint32_t kThreads = static_cast<uint32_t>(threads);
  const RowLayout layout = elements_per_vector == 4 ? row_layout<4>(row_address, vocab)
                                                    : row_layout<2>(row_address, vocab);
  const uint32_t head = layout.head;
  const uint32_t vectors = layout.vectors;
  const uint32_t body_end = layout.body_end;
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

// splits_without_thin_iteration() keeps `splits` unless that ends on a thin
// last iteration; then it takes a count in (splits, min(1.5 x splits, most)]
// that does not, the smallest such, or keeps `splits` where none exists.
void check_thin_iteration_rule(int64_t units, int64_t splits, int threads, int64_t most) {
  using safe_greedy::gpu::ends_on_thin_iteration;
  const int64_t chosen = safe_greedy::gpu::splits_without_thin_iteration(units, splits, threads, most);
  const int64_t limit = std::min(splits + splits / 2, most);
  bool ok = chosen == splits || (chosen > splits && chosen <= limit &&
                                 !ends_on_thin_iteration(units, chosen, threads));
  // Every count it passed over, or (keeping `splits` that is thin) every count
  // it could have taken, ends on a thin iteration.
  const int64_t passed_over = chosen == splits && ends_on_thin_iteration(units, splits, threads)
                                  ? limit
                                  : chosen - 1;
  for (int64_t s = splits + 1; s <= passed_over; ++s) ok = ok && ends_on_thin_iteration(units, s, threads);
  if (!ends_on_thin_iteration(units, splits, threads)) ok = ok && chosen == splits;
  CHECK(ok, "units=%lld splits=%lld threads=%d most=%lld: chose %lld",
        static_cast<long long>(units), static_cast<long long>(splits), threads,
        static_cast<long long>(most), static_cast<long long>(chosen));
}

uint64_t g_plans = 0;
uint64_t g_replayed = 0;

// A device of `multiprocessors` multiprocessors where `standard_fit` blocks of
// 256 threads fit one (twice as many of 128, half as many of 512).
DeviceDescription device(int64_t multiprocessors, int64_t standard_fit, int wave_width = 32,
                         bool amd = false, int compute_capability = 90) {
  DeviceDescription d{};
  d.multiprocessors = multiprocessors;
  d.wave_width = wave_width;
  d.amd = amd;
  d.compute_capability = compute_capability;
  d.fit.narrow = 2 * standard_fit;
  d.fit.standard = standard_fit;
  d.fit.wide = standard_fit / 2;
  return d;
}

// One decision of plan_launch() against what the kernel and the launcher
// assume of it.
// What the kernel and launcher assume of `p`, a plan for `problem` on `dev`
// under `policy`; and, for a plan the rules made (`planned`), what the rules
// promise beyond that.
void check_plan_holds(const LaunchPlan& p, const Problem& problem, const DeviceDescription& dev,
                      const TuningPolicy& policy, bool planned = true) {
  ++g_plans;
  const int64_t batch = problem.batch;
  const uint32_t vocab = problem.vocab;
  const bool contiguous = problem.contiguous;
  const int epv = problem.elements_per_vector;
  const int threads = p.block_threads;
  const uint64_t splits = p.splits;
  const uint64_t per = p.units_per_split;
  const uint64_t units = contiguous ? vocab / epv : vocab;
  const ResidentBlocks resident = safe_greedy::gpu::resident_blocks(dev, policy);
  // The fewest units a row of this length can have: a contiguous row starting
  // just past a 128-byte boundary reads its first 8 * epv - 1 elements one at
  // a time, outside its whole vectors.
  const uint64_t most_head = contiguous ? static_cast<uint64_t>(8 * epv - 1) : 0;
  const uint64_t fewest_units = contiguous ? (vocab > most_head ? (vocab - most_head) / epv : 0) : units;
#define CTX                                                                                    \
  "batch=%lld vocab=%u %s epv=%d wave=%d sms=%lld fit=%lld (%s): threads=%d/%d splits=%llu " \
  "units_per_split=%llu combine=%d"
#define ARGS                                                                                   \
  static_cast<long long>(batch), vocab, contiguous ? "contiguous" : "strided", epv,            \
      dev.wave_width, static_cast<long long>(dev.multiprocessors),                             \
      static_cast<long long>(dev.fit.standard), policy.name, threads, p.row_threads,           \
      static_cast<unsigned long long>(splits), static_cast<unsigned long long>(per),           \
      static_cast<int>(p.combine)

  CHECK(p.policy == &policy, CTX, ARGS);
  // A block size the kernel is built for, in whole waves; a row's threads
  // are whole waves that tile the block (group_max_key()).
  CHECK(threads == kNarrowBlockThreads || threads == kStandardBlockThreads ||
            threads == kWideBlockThreads,
        CTX, ARGS);
  CHECK(threads % dev.wave_width == 0 && p.row_threads % dev.wave_width == 0 &&
            p.row_threads >= dev.wave_width && threads % p.row_threads == 0,
        CTX " do not give rows whole waves", ARGS);
  if (p.row_threads != threads) {
    // Blocks that read several rows: short contiguous rows of large batches,
    // never split, at the policy's width raised to a wave.
    CHECK(contiguous && threads == kStandardBlockThreads && splits == 1 &&
              p.combine == Combine::kNone && batch > resident.narrow &&
              units <= static_cast<uint64_t>(policy.short_row_max_units) &&
              p.row_threads == std::max(policy.short_row_threads, dev.wave_width),
          CTX " share blocks between rows where they must not", ARGS);
    const int64_t rows_per_block = threads / p.row_threads;
    CHECK(p.grid_x == (batch + rows_per_block - 1) / rows_per_block && p.grid_y == 1 &&
              p.workspace_slots == 0,
          CTX, ARGS);
    // Each row's group reads it as a whole item of row_threads threads.
    if ((batch + vocab) % 5 == 0) {
      ++g_replayed;
      for (uint32_t start = 0; start < static_cast<uint32_t>(8 * epv); ++start) {
        const uintptr_t address = start * static_cast<uintptr_t>(16 / epv);
        CHECK(contiguous_reads_each_once(vocab, epv, address, p.row_threads, p),
              CTX " starting %u elements into a line: not every element read once", ARGS, start);
      }
    }
    return;
  }
  // Narrow blocks only for a batch that a wave of standard ones would not
  // hold; wide blocks only where they read whole rows.
  if (threads == kNarrowBlockThreads) CHECK(batch > resident.standard, CTX, ARGS);
  if (threads == kWideBlockThreads) CHECK(splits == 1, CTX " split rows over wide blocks", ARGS);

  CHECK(splits >= 1 && per >= 1, CTX, ARGS);
  // The combine is the plan's: none for whole rows, collection for rows of
  // few splits, fenced atomics beyond.
  // The kernels with the extra outputs collect at most kMaxCollectedStatsSplits.
  const uint64_t collected = problem.stats ? std::min(policy.max_collected_splits, kMaxCollectedStatsSplits)
                                           : policy.max_collected_splits;
  CHECK(safe_greedy::gpu::collected_split_limit(problem, policy) == collected, CTX, ARGS);
  const Combine expected_combine = splits == 1          ? Combine::kNone
                                   : splits <= collected ? Combine::kCollected
                                                         : Combine::kFenced;
  CHECK(p.combine == expected_combine, CTX " combine the wrong way", ARGS);
  CHECK(policy.max_collected_splits <= kMaxCollectedSplits, CTX, ARGS);
  // The grid: (splits, rows) for split rows, one block a row otherwise; the
  // workspace: a slot per item of a split launch, none otherwise.
  if (splits > 1) {
    CHECK(p.grid_x == static_cast<int64_t>(splits) && p.grid_y == batch, CTX, ARGS);
    CHECK(batch <= kMaxGridRows, CTX " split more rows than a grid's y holds", ARGS);
    CHECK(p.workspace_slots >= batch * static_cast<int64_t>(splits),
          CTX " split into more items than the workspace has key slots", ARGS);
  } else {
    CHECK(p.grid_x == batch && p.grid_y == 1 && p.workspace_slots == 0, CTX, ARGS);
  }
  // Every unit of the row belongs to some item.
  CHECK(splits * per >= units, CTX " do not cover %llu units", ARGS,
        static_cast<unsigned long long>(units));
  // No item starts past the data (a row starting on a 128-byte boundary): no
  // block is launched for nothing. Another contiguous row has up to 8 whole
  // vectors fewer (its elements before the boundary are read one at a time);
  // its items interleave, and each still has a strip to read (checked below).
  CHECK(units == 0 ? splits == 1 : (splits - 1) * per < units, CTX " leave an empty item", ARGS);
  // Rows combined by collection get no empty item, even when they start
  // just past a 128-byte boundary and so have the fewest whole vectors (the
  // kernel copes with one anyway: published_key() in greedy_gpu_combines.cuh).
  if (p.combine == Combine::kCollected) {
    CHECK((splits - 1) * per < fewest_units, CTX " give a collected row an empty item", ARGS);
  }
  // Rows that max_collected_splits blocks read in one iteration each are
  // combined by collection, never by the fenced atomics.
  if (planned && contiguous && p.combine == Combine::kFenced) {
    CHECK(units > collected * threads * kUnroll,
          CTX " give the fenced combine a row collection could take", ARGS);
  }
  // The launcher refuses grids past int32; the plan must never be the reason.
  CHECK(static_cast<uint64_t>(batch) * splits <= static_cast<uint64_t>(std::numeric_limits<int32_t>::max()),
        CTX " need too many blocks", ARGS);
  if (splits > 1) {
    // Every item of a split row has its minimum of work per thread: a
    // contiguous one at least a vector, a strided one min_elements_per_thread.
    const uint64_t min_units =
        static_cast<uint64_t>(threads) * (contiguous ? 1 : policy.min_elements_per_thread);
    CHECK(per >= min_units, CTX " give an item less than %llu units", ARGS,
          static_cast<unsigned long long>(min_units));
  }
  // A contiguous row is split no finer than one iteration an item.
  if (planned && contiguous) {
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
      for (uint32_t start = 0; start < static_cast<uint32_t>(8 * epv); ++start) {
        const uintptr_t address = start * static_cast<uintptr_t>(16 / epv);
        CHECK(contiguous_reads_each_once(vocab, epv, address, threads, p),
              CTX " starting %u elements into a line: not every element read once", ARGS, start);
      }
    } else {
      CHECK(strided_reads_each_once(vocab, threads, p), CTX ": not every element read once", ARGS);
    }
  }
#undef ARGS
#undef CTX
}

void check_plan(const Problem& problem, const DeviceDescription& dev, const TuningPolicy& policy) {
  check_plan_holds(plan_launch(problem, dev, policy), problem, dev, policy);
}

// The tuning build's forced split counts: every forced plan holds what the
// kernel and launcher assume; a plan of standard blocks, one row each, gets
// `forced` splits where the kernel allows that many (fewer only where items
// would be empty), at most finest_splits() where not; any other plan is
// unchanged.
void check_forced_splits(const Problem& problem, const DeviceDescription& dev,
                         const TuningPolicy& policy) {
  const LaunchPlan planned = plan_launch(problem, dev, policy);
  const int64_t units = safe_greedy::gpu::row_units(problem.vocab, problem.contiguous,
                                                    problem.elements_per_vector);
  const int64_t most = std::max<int64_t>(
      1, safe_greedy::gpu::finest_splits(problem, units, kStandardBlockThreads, policy));
  for (int64_t forced : {1, 2, 24, 65, 129, 1000}) {
    const LaunchPlan p = safe_greedy::gpu::with_forced_splits(planned, problem, forced);
    check_plan_holds(p, problem, dev, policy, /*planned=*/false);
    const bool forceable = planned.block_threads == kStandardBlockThreads &&
                           planned.row_threads == planned.block_threads &&
                           problem.batch <= kMaxGridRows;
    if (!forceable) {
      CHECK(p.splits == planned.splits && p.block_threads == planned.block_threads &&
                p.grid_x == planned.grid_x && p.combine == planned.combine,
            "batch=%lld vocab=%u: forcing %lld splits changed a plan it must leave",
            static_cast<long long>(problem.batch), problem.vocab, static_cast<long long>(forced));
      continue;
    }
    const int64_t asked = std::min(forced, most);
    CHECK(p.splits <= asked && (p.splits == asked || (units + p.splits - 1) / p.splits ==
                                                         (units + asked - 1) / asked),
          "batch=%lld vocab=%u %s: forced %lld splits (at most %lld), got %u",
          static_cast<long long>(problem.batch), problem.vocab,
          problem.contiguous ? "contiguous" : "strided", static_cast<long long>(forced),
          static_cast<long long>(most), p.splits);
  }
}

}  // namespace

int main() {
  // The blocks a multiprocessor is counted as holding: at least one, and
  // otherwise the most that both fit and stay within the policy's threads.
  for (int threads : {32, 64, 128, 256, 512, 1024, 2048}) {
    for (int64_t fit = 0; fit <= 64; ++fit) {
      const int64_t counted = planned_blocks_per_multiprocessor(fit, threads, kH100Policy);
      const auto allowed = [&](int64_t blocks) {
        return blocks <= fit && blocks * threads <= kH100Policy.planned_threads_per_multiprocessor;
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

  // Cells measured on an H100 (132 multiprocessors, 792 resident blocks of
  // 256 threads as the plan counts them), where the thin-iteration rule
  // changed the split count or, for fp32 64x262144, kept it (whose items end
  // on an iteration three quarters full).
  struct MeasuredCell {
    int64_t batch;
    uint32_t vocab;
    int elements_per_vector;
    uint32_t splits;
  };
  const DeviceDescription h100 = device(132, 8);
  CHECK(&safe_greedy::gpu::tuning_policy_for(h100) == &kH100Policy);
  CHECK(&safe_greedy::gpu::tuning_policy_for(h100, true) == &safe_greedy::gpu::kH100StatsPolicy);
  for (const MeasuredCell& c : {MeasuredCell{64, 151666, 8, 7}, MeasuredCell{64, 151936, 4, 8},
                                MeasuredCell{32, 151666, 4, 13}, MeasuredCell{32, 128256, 8, 16},
                                MeasuredCell{64, 262144, 8, 7}, MeasuredCell{64, 262144, 4, 6},
                                MeasuredCell{16, 128256, 4, 32}}) {
    const LaunchPlan p = plan_launch(Problem{c.batch, c.vocab, true, c.elements_per_vector}, h100);
    CHECK(p.splits == c.splits && p.block_threads == kStandardBlockThreads &&
              p.combine == Combine::kCollected,
          "%lldx%u, %d elements a vector: %u splits of %d threads, expected %u of 256",
          static_cast<long long>(c.batch), c.vocab, c.elements_per_vector, p.splits,
          p.block_threads, c.splits);
  }
  // A tuning sweep reaches past the plan's finest split: bf16 16x151936 with
  // every output is planned at one iteration an item (19 splits), and may be
  // forced to 64, still combined by collection, or to 75, the kernel's finest.
  const Problem bf16_16_outputs{16, 151936, true, 8, true};
  const LaunchPlan planned16 = plan_launch(bf16_16_outputs, h100);
  CHECK(planned16.splits == 19, "planned %u splits", planned16.splits);
  const LaunchPlan forced64 = safe_greedy::gpu::with_forced_splits(planned16, bf16_16_outputs, 64);
  CHECK(forced64.splits == 64 && forced64.combine == Combine::kCollected &&
            forced64.workspace_slots >= 16 * 64,
        "forced 64: %u splits, combine %d", forced64.splits, static_cast<int>(forced64.combine));
  const LaunchPlan forced_finest =
      safe_greedy::gpu::with_forced_splits(planned16, bf16_16_outputs, 500);
  CHECK(forced_finest.splits == 75 && forced_finest.combine == Combine::kFenced,
        "forced 500: %u splits", forced_finest.splits);

  // Short rows at batch 4096 on an H100 share blocks, a warp a row; on a
  // 64-wide AMD device, a wave a row; a 64-wide device under the H100's
  // policy still gets whole waves.
  const Problem short_rows{4096, 3072, true, 8};
  CHECK(plan_launch(short_rows, h100).row_threads == 32);
  const DeviceDescription cdna = device(304, 8, 64, true, 0);
  CHECK(&safe_greedy::gpu::tuning_policy_for(cdna) == &safe_greedy::gpu::kDefaultAmdPolicy);
  CHECK(plan_launch(short_rows, cdna).row_threads == 64);
  CHECK(plan_launch(short_rows, device(132, 8, 64), kH100Policy).row_threads == 64);
  CHECK(&safe_greedy::gpu::tuning_policy_for(device(108, 8, 32, false, 80)) ==
        &safe_greedy::gpu::kDefaultNvidiaPolicy);

  // The grid: devices of 17 to 87382 multiprocessors (the last holds more
  // split rows than a grid's y dimension), at full and reduced occupancy, 32
  // and 64 threads a wave, under every policy.
  std::vector<DeviceDescription> devices;
  for (int64_t sms : {int64_t{17}, int64_t{132}, int64_t{304}, int64_t{87382}}) {
    for (int64_t fit : {int64_t{8}, int64_t{3}}) {
      devices.push_back(device(sms, fit));
      devices.push_back(device(sms, fit, 64, true, 0));
    }
  }
  std::vector<int64_t> batches = {1,    2,    3,    4,    7,    8,     15,    16,    31,   32,
                                  63,   64,   100,  127,  128,  255,   256,   399,   400,  401,
                                  1000, 1024, 1055, 1056, 2048, 4095,  4096,  4224,  7999, 8000,
                                  8001, 8192, 16384, 32768, 65535, 65536, 99999, 100000};
  for (const DeviceDescription& d : devices) {
    const ResidentBlocks r = safe_greedy::gpu::resident_blocks(d, kH100Policy);
    for (int64_t delta = -1; delta <= 1; ++delta) {
      for (int64_t edge : {r.narrow, r.standard, r.wide, r.standard / 2, r.wide / 2, r.wide / 4,
                           3 * r.wide / 4}) {
        if (edge + delta >= 1) batches.push_back(edge + delta);
      }
    }
  }
  std::vector<uint32_t> vocabs = {1,     2,     3,     4,     5,     7,     8,     9,     15,
                                  16,    17,    31,    32,    33,    100,   255,   256,   257,
                                  511,   512,   513,   1000,  1023,  1024,  1025,  2047,  2048,
                                  2049,  3072,  4096,  8191,  8192,  8193,  16384, 32000, 32768,
                                  50257, 65536, 128000, 128256, 131072, 151646, 151936, 152064,
                                  200000, 256000, 262144, 299999, 300000};
  test::Rng rng(0x91A4ull);
  for (int k = 0; k < 24; ++k) vocabs.push_back(1 + static_cast<uint32_t>(rng.below(300000)));
  for (int k = 0; k < 8; ++k) batches.push_back(1 + static_cast<int64_t>(rng.below(100000)));

  const TuningPolicy* policies[] = {&kH100Policy, &safe_greedy::gpu::kH100StatsPolicy,
                                    &safe_greedy::gpu::kDefaultNvidiaPolicy,
                                    &safe_greedy::gpu::kDefaultAmdPolicy};
  for (const DeviceDescription& d : devices) {
    for (int64_t batch : batches) {
      for (uint32_t vocab : vocabs) {
        for (int epv : {4, 8}) {
          for (bool contiguous : {true, false}) {
            const Problem problem{batch, vocab, contiguous, epv};
            check_plan(problem, d, safe_greedy::gpu::tuning_policy_for(d));
            // The kernels with the extra outputs, where rows are split.
            if (batch <= 4096) {
              const Problem stats{batch, vocab, contiguous, epv, true};
              check_plan(stats, d, safe_greedy::gpu::tuning_policy_for(d, true));
              // Forced split counts, for a fifteenth of these rows.
              if (vocab % 15 == 0) {
                check_forced_splits(stats, d, safe_greedy::gpu::tuning_policy_for(d, true));
              }
            }
            // The other policies on the same device, for a third of the rows.
            if (vocab % 3 == 0) {
              for (const TuningPolicy* policy : policies) {
                if (policy != &safe_greedy::gpu::tuning_policy_for(d)) check_plan(problem, d, *policy);
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
