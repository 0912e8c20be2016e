// How the GPU kernel divides a [batch, vocab] problem into blocks.
//
// Host-only and torch-free, so the C++ tests can check the plan's invariants
// (every vector of every row is covered by exactly one item) without a GPU.
#pragma once

#include <stdint.h>

namespace safe_greedy {
namespace gpu {

struct LaunchPlan {
  uint32_t splits;           // blocks per row
  uint32_t units_per_split;  // 16-byte vectors (contiguous rows) or elements (strided rows)
};

// Items a launch aims for, in full waves of resident blocks: several waves
// keep the last wave's idle tail small when rows outnumber the SMs.
constexpr int64_t kWavesPerLaunch = 4;

// An item's least work, per thread: enough 16-byte loads in flight to cover
// its share of memory latency, and an atomic combine amortised over them.
constexpr int64_t kMinVectorsPerThread = 2;
constexpr int64_t kMinElementsPerThread = 8;

// Rows that can be split across blocks: sizes the per-row workspace. Batches
// at least this large get one block per row and use no workspace.
inline int64_t max_split_rows(int64_t resident_blocks) {
  return kWavesPerLaunch * resident_blocks;
}

// resident_blocks: blocks of the kernel resident on the whole GPU at once
// (multiprocessors x occupancy). elements_per_vector: 16 / sizeof(element).
inline LaunchPlan plan_launch(int64_t batch, uint32_t vocab, bool contiguous,
                              int elements_per_vector, int threads_per_block,
                              int64_t resident_blocks) {
  const int64_t units = contiguous ? vocab / elements_per_vector : vocab;
  const int64_t min_units =
      threads_per_block * (contiguous ? kMinVectorsPerThread : kMinElementsPerThread);
  const int64_t target_items = kWavesPerLaunch * resident_blocks;
  int64_t splits = 1;
  if (batch < max_split_rows(resident_blocks)) {
    const int64_t wanted = (target_items + batch - 1) / batch;
    const int64_t most = units / min_units > 1 ? units / min_units : 1;
    splits = wanted < most ? wanted : most;
  }
  const int64_t per_split = (units + splits - 1) / splits;
  return LaunchPlan{static_cast<uint32_t>(splits),
                    static_cast<uint32_t>(per_split > 0 ? per_split : 1)};
}

}  // namespace gpu
}  // namespace safe_greedy
