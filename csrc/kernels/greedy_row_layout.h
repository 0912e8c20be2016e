// Where a contiguous row's elements lie for the kernel that reads it: one
// copy of that arithmetic, for contiguous_item_key() (greedy_gpu_item_loops.cuh)
// and for the tests that replay the kernel's reads (tests/cpp).
//
// Torch-free; plain C++, CUDA and HIP.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "greedy_key.h"  // SG_HOST_DEVICE

namespace safe_greedy {
namespace gpu {

struct RowLayout {
  // Elements before the row's first 128-byte boundary, read one at a time, so
  // that the vectors start on a cache line (at most the whole row).
  uint32_t head;
  // Whole 16-byte vectors from there on, dealt out to the row's items.
  uint32_t vectors;
  // The first element after them: the tail, fewer than a vector's, read one
  // at a time.
  uint32_t body_end;
};

// A row of `vocab` elements of kElementBytes bytes each (16 / kElementBytes to
// a vector) whose first element is at `row_address`. Rows are element-aligned.
template <int kElementBytes>
SG_HOST_DEVICE RowLayout row_layout(uintptr_t row_address, uint32_t vocab) {
  constexpr int kElems = 16 / kElementBytes;
  const uint32_t misalignment = static_cast<uint32_t>(row_address & 127u);
  // size_t, as the kernel computed it before this helper (the same SASS).
  uint32_t head = ((128u - misalignment) & 127u) / static_cast<size_t>(kElementBytes);
  head = head < vocab ? head : vocab;
  const uint32_t vectors = (vocab - head) / kElems;
  return RowLayout{head, vectors, head + vectors * kElems};
}

}  // namespace gpu
}  // namespace safe_greedy
