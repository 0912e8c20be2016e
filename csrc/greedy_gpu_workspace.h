// The GPU kernel's per-row combine slots, created once and reused forever.
#pragma once

#include <cuda_runtime.h>

#include <stdint.h>

#include "greedy_key.h"

namespace safe_greedy {
namespace gpu {

struct Workspace {
  Key* row_keys;            // [rows], all zero between launches: a key per split row,
                            // or a slot per item of rows combined by collection
  uint32_t* row_arrivals;   // [rows], all zero between launches
};

// The workspace of (device, stream), with room for at least `rows` rows.
//
// Created zeroed on first use and never freed; the kernel returns every slot
// it touches to zero, so no call needs a memset. One per stream, so launches
// on different streams never share slots. Works during CUDA graph capture:
// the first use allocates outside the capture. (Two replays of graphs
// captured on the same stream must not run concurrently.)
Workspace workspace_for(int device, cudaStream_t stream, int64_t rows);

}  // namespace gpu
}  // namespace safe_greedy
