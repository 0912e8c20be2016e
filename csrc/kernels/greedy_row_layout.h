// Where a contiguous row's elements lie for the kernel that reads it, and
// which of its vectors each thread of each item reads in which iteration: one
// copy of that arithmetic, for contiguous_item_key() (greedy_gpu_item_loops.cuh)
// and for the tests that replay the kernel's reads (tests/cpp).
//
// Torch-free; plain C++, CUDA and HIP.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "greedy_key.h"   // SG_HOST_DEVICE
#include "greedy_plan.h"  // kUnroll

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

// Item `split` of the `splits` items that read a contiguous row's `vectors`
// whole vectors, kThreads threads an item. The items interleave: the vectors
// are dealt out in strips of kThreads, strip j to item j % splits, and a
// thread reads its own place in each of its item's strips, kUnroll strips an
// iteration. An item's iterations, in index order:
//
//   uint32_t strip = item.first_strip;
//   for (; SG_WHOLE_ITERATION(item, strip); strip += SG_ITERATION_STEP(item)) ...
//   if (strip < item.vectors) ...  // the last, partial iteration
//
// where thread `tid` reads vector SG_STRIP_VECTOR(item, strip, u, tid) in
// strip u of the iteration. A whole iteration is tested on the block's first
// strip, so that the test is the same in every thread: all its kUnroll strips
// in the row, every load in range, no checks; the partial iteration
// predicates each load on the vector being below item.vectors.
struct ItemStrips {
  uint32_t vectors;
  uint32_t threads;
  // Vectors between one of the item's strips and its next.
  uint32_t stride;
  // The item's first strip: the first vector of it.
  uint32_t first_strip;
};

template <int kThreads>
SG_HOST_DEVICE ItemStrips item_strips(uint32_t vectors, uint32_t splits, uint32_t split) {
  return ItemStrips{vectors, kThreads, splits * kThreads, split * kThreads};
}

}  // namespace gpu
}  // namespace safe_greedy

// Macros, not member functions: as functions, inlined all the same, they
// changed the code nvcc (sm_90) or clang (gfx942, gfx1100) emits for the
// kernels (the same work in other registers and another order).
#define SG_WHOLE_ITERATION(item, strip) \
  ((strip) + (::safe_greedy::gpu::kUnroll - 1) * (item).stride + (item).threads <= (item).vectors)
#define SG_ITERATION_STEP(item) (::safe_greedy::gpu::kUnroll * (item).stride)
#define SG_STRIP_VECTOR(item, strip, u, tid) ((strip) + (u) * (item).stride + (tid))
