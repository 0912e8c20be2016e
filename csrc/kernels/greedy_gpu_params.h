// What the launcher passes the GPU kernel: host and device see one layout.
#pragma once

#include <stdint.h>

#include <type_traits>

#include "greedy_key.h"
#include "greedy_stats.h"

namespace safe_greedy {
namespace gpu {

// How the blocks of a split row combine their keys (greedy_gpu_combines.cuh):
// the plan decides (plan_launch() in greedy_plan.h), the kernel follows.
enum class Combine : uint32_t {
  kNone,       // one block a row
  kCollected,  // the block that starts last gathers the others' keys from slots
  kFenced,     // fenced atomics; the block that finishes last writes the answer
};

struct Params {
  const void* logits;
  void* out;
  int64_t out_stride;     // elements between outputs
  int64_t row_stride;     // elements between rows
  int64_t column_stride;  // elements between columns (1 for the fast path)
  uint32_t vocab;
  uint32_t splits;             // items per row
  uint32_t units_per_split;    // elements per item of a strided row (contiguous ones interleave)
  // Zero between calls; used when splits > 1. row_keys holds a key per row
  // (fenced combine) or a slot per item (collected combine): see read_item()
  // in greedy_gpu.cuh.
  Key* row_keys;               // [slots]: a key per row or per item
  uint32_t* row_arrivals;      // [rows]
  int64_t rows;                // the batch
  Combine combine;             // kNone exactly where splits == 1
};

// What the kernels compiled with the extra outputs (kStats) get: the same,
// and more after it. (A Params of that size changed the plain kernels' sm_90
// code, which must stay as it is.)
struct OutputParams : Params {
  ExtraOutputs outputs;
  // [slots]: a pair per item of a split row (slot row * splits + split,
  // whatever the combine), packed by pack_stats() (greedy_gpu_stats.cuh);
  // written before the item is counted in, so it needs no zeroing.
  uint64_t* row_stats;
};

template <bool kStats>
using KernelParams = typename std::conditional<kStats, OutputParams, Params>::type;

}  // namespace gpu
}  // namespace safe_greedy
