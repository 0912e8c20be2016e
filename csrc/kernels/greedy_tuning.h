// The tuned numbers of the GPU launch plan (greedy_plan.h), one policy per
// architecture, in the spirit of CUB's tuning policies: the rules live in the
// plan, the numbers they use here.
//
// Only the H100 has been measured; its policy serves sm_90 (H100, H200), and
// the kernels with the extra outputs there have a policy of their own.
// Every other device (older NVIDIA, AMD CDNA and RDNA) visibly gets a default
// policy: the H100's numbers where nothing better is known, and for AMD the
// group width its build compiles. Each number keeps one line of why; the
// measurements are in docs/PERFORMANCE.md, in the section named after "see".
//
// Host-only and torch-free.
#pragma once

#include <stdint.h>

namespace safe_greedy {
namespace gpu {

struct TuningPolicy {
  const char* name;
  // The plan counts at most this many threads of resident blocks a
  // multiprocessor, whatever more the kernel's registers allow: its rules were
  // fitted when 1536 fitted. See "de9fdba and 37772eb".
  int64_t planned_threads_per_multiprocessor;
  // A short batch is split to 1 / split_target_divisor of the resident
  // blocks: every block starts at once and the combine's latency is paid once
  // a launch. See "f71b002" and "Forced plans".
  int64_t split_target_divisor;
  // An item of a strided row reads at least this many elements a thread. Not
  // measured.
  int64_t min_elements_per_thread;
  // Split rows of at most this many splits combine by collection, longer
  // ones by fenced atomics. See "da7b81e..dd1ffd7" and "18cdde0".
  uint32_t max_collected_splits;
  // Whether a contiguous row's split count is raised so that its items do not
  // end on a thin last iteration. See "44d0686".
  bool avoid_thin_last_iteration;
  // Wide blocks only where their wave is at most wide_wave_fill_quarters / 4
  // full and every thread has wide_min_units_per_thread units to read. See
  // "f65bbc2 and 2d65f6f".
  int64_t wide_wave_fill_quarters;
  int64_t wide_min_units_per_thread;
  // Rows of at most short_row_max_units vectors, at batches past a wave of
  // narrow blocks, share blocks, short_row_threads threads a row (raised to a
  // whole wave). See "ce43125".
  int short_row_threads;
  int64_t short_row_max_units;
};

// Fitted on an H100 80GB HBM3 (graph replay, L2-cold); see
// docs/PERFORMANCE.md for every number.
constexpr TuningPolicy kH100Policy{
    "H100 (measured)",
    /*planned_threads_per_multiprocessor=*/1536,
    /*split_target_divisor=*/2,
    /*min_elements_per_thread=*/8,
    /*max_collected_splits=*/128,
    /*avoid_thin_last_iteration=*/true,
    /*wide_wave_fill_quarters=*/3,
    /*wide_min_units_per_thread=*/2,
    /*short_row_threads=*/32,
    /*short_row_max_units=*/512,
};

// The kernels with the extra outputs on sm_90: a policy of their own, so that
// their numbers can be tuned apart from the plain kernels' (they run a longer
// chain of work an element, and their registers fit fewer blocks). The H100's
// numbers: no forced split count was faster where they miss the plain call's
// time target. See "2026-12-06, on one H100".
constexpr TuningPolicy kH100StatsPolicy = [] {
  TuningPolicy p = kH100Policy;
  p.name = "H100, extra outputs (measured: the H100's numbers)";
  return p;
}();

// NVIDIA devices other than sm_90 (not measured): the H100's numbers.
constexpr TuningPolicy kDefaultNvidiaPolicy = [] {
  TuningPolicy p = kH100Policy;
  p.name = "default for NVIDIA (not measured; the H100's numbers)";
  return p;
}();

// AMD CDNA and RDNA (not measured): the H100's numbers, but rows that share a
// block get 64 threads, the one group width a ROCm build compiles (a CDNA
// wave; two RDNA waves).
constexpr TuningPolicy kDefaultAmdPolicy = [] {
  TuningPolicy p = kH100Policy;
  p.name = "default for AMD (not measured; the H100's numbers, 64-thread short rows)";
  p.short_row_threads = 64;
  return p;
}();

}  // namespace gpu
}  // namespace safe_greedy
