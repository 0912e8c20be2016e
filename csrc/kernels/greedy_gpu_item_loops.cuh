// The loops in which a block's threads read one item (a whole row or one
// split of it) and keep their best element: contiguous rows 16 bytes at a
// time, strided rows one element at a time. Compiled with kStats, they also
// keep each thread's pair of greedy_stats.h for the extra outputs.
#pragma once

#include <stdint.h>

#include "greedy_gpu_memory.cuh"
#include "greedy_gpu_params.h"
#include "greedy_gpu_vector.cuh"
#include "greedy_key.h"
#include "greedy_plan.h"  // kUnroll
#include "greedy_row_layout.h"
#include "greedy_stats.h"

namespace safe_greedy {
namespace gpu {

// A running maximum over elements visited in increasing index order, in the
// float domain. `index` starts at the first index the owner will visit, so an
// owner whose first element is -inf still reports it; owners that visit
// nothing report kEmptyKey (see key()).
struct RunningMax {
  float value;
  uint32_t index;

  __device__ __forceinline__ void start(uint32_t first_index) {
    value = -__int_as_float(0x7F800000);  // -inf
    index = first_index;
  }

  __device__ __forceinline__ void visit(float v, uint32_t i) {
    if (replaces(v, value)) {
      value = v;
      index = i;
    }
  }

  // `visited` says whether the first index was actually read.
  __device__ __forceinline__ Key key(bool visited) const {
    return visited ? make_key(value, index) : kEmptyKey;
  }
};

// Folds one 16-byte vector, whose first element has index `first`, into a
// running maximum. The vector's best element is found by a pairwise tree, the
// lower index of each pair on the left, so replaces() keeps the ordering rule;
// the dependent chain is then log2(kElements) + 1 comparisons long instead of
// kElements, in no more instructions: that chain is on the latency path of
// the block whose loads return last (see "f509384 and 45e7ba0" in
// docs/PERFORMANCE.md). Contiguous rows run it once per thread, on the vector
// BestVector kept; strided rows never.
template <class T>
__device__ __forceinline__ void visit_vector(RunningMax& acc, const uint4& loaded, uint32_t first) {
  constexpr int kElems = Vector<T>::kElements;
  float value[kElems];
  uint32_t offset[kElems];
#pragma unroll
  for (int e = 0; e < kElems; ++e) {
    value[e] = Vector<T>::get(loaded, e);
    offset[e] = e;
  }
#pragma unroll
  for (int width = 1; width < kElems; width *= 2) {
#pragma unroll
    for (int e = 0; e < kElems; e += 2 * width) {
      if (replaces(value[e + width], value[e])) {
        value[e] = value[e + width];
        offset[e] = offset[e + width];
      }
    }
  }
  acc.visit(value[0], first + offset[0]);
}

// The first, in index order, of the vectors a thread visits that holds the
// greatest element among them. Each vector is compared by its greatest value
// alone (Vector<T>::greatest()), and only the kept one is searched for the
// element, once, in key(): about half the instructions an iteration of
// passing every vector through visit_vector(), and less time (see "de9fdba
// and 37772eb" in docs/PERFORMANCE.md).
template <class T>
struct BestVector {
  float value;     // the kept vector's greatest element
  uint32_t first;  // the index of its first element
  uint4 data;

  // Until a vector replaces it, a vector of -inf at `first_index`: a thread
  // whose elements are all -inf reports the first of them.
  __device__ __forceinline__ void start(uint32_t first_index) {
    value = -__int_as_float(0x7F800000);  // -inf
    first = first_index;
    constexpr uint32_t w = Vector<T>::kNegativeInfinityWord;
    data = make_uint4(w, w, w, w);
  }

  // Vectors must come in increasing index order: a tie keeps the earlier.
  // The second form is given the vector's greatest value.
  __device__ __forceinline__ void visit(const uint4& loaded, uint32_t first_index) {
    visit(loaded, Vector<T>::greatest(loaded), first_index);
  }
  __device__ __forceinline__ void visit(const uint4& loaded, float greatest, uint32_t first_index) {
    if (replaces(greatest, value)) {
      value = greatest;
      first = first_index;
      data = loaded;
    }
  }

  // `visited` says whether the thread read any vector.
  __device__ __forceinline__ Key key(bool visited) const {
    RunningMax best;
    best.start(first);
    visit_vector<T>(best, data, first);
    return best.key(visited);
  }
};

// `stats` with the elements of kCount loaded vectors added, given each
// vector's greatest value: one rescale for them all, then one exponential an
// element, summed a vector at a time.
template <class T, int kCount>
__device__ __forceinline__ void add_vectors(RowStats& stats, const uint4 (&loaded)[kCount],
                                            const float (&greatest)[kCount]) {
  float top = greatest[0];
#pragma unroll
  for (int u = 1; u < kCount; ++u) top = greater(top, greatest[u]);
  stats = raise_max(stats, top);
  const float shift = exp_shift(stats.max);
  float sum = 0.0f;
#pragma unroll
  for (int u = 0; u < kCount; ++u) {
    float vector_sum = term(Vector<T>::get(loaded[u], 0), shift);
#pragma unroll
    for (int e = 1; e < Vector<T>::kElements; ++e) {
      vector_sum += term(Vector<T>::get(loaded[u], e), shift);
    }
    sum += vector_sum;
  }
  stats.sum += sum;
}

// The key of thread `tid` of the kThreads that read item `split` of the
// `splits` of a row whose vocab dimension is contiguous, over its share of
// the row. (`splits` is an argument, not p.splits, so that groups that read
// whole rows pass a constant 1: with their stride known only at run time,
// nvcc 13 put comparisons between the group kernels' loads of one
// iteration, which the SASS check of scripts/check_cuda_build.sh rejects.)
//
// The row's items interleave strip by strip (ItemStrips, greedy_row_layout.h):
// less time than each item reading one consecutive range (see "3becd4c" in
// docs/PERFORMANCE.md).
//
// With kStats, `*stats` gets the pair of the same elements (the caller
// starts it empty); the plain kernels pass nullptr.
template <int kThreads, class T, bool kStats>
__device__ __forceinline__ Key contiguous_item_key(const T* __restrict__ row, const Params& p,
                                                   uint32_t splits, uint32_t split, int tid,
                                                   RowStats* stats) {
  constexpr int kElems = Vector<T>::kElements;
  static_assert(kThreads >= kElems, "the tail takes one thread per element");
  static_assert(2 * kThreads * sizeof(T) >= 128, "the head takes at most two elements a thread");
  // Elements before the first 128-byte boundary, read one at a time, so that
  // the vectors start on a cache line and each warp's loads cover whole lines
  // (rows starting mid-line took longer; see "1cc6f91" in
  // docs/PERFORMANCE.md). Rows are element-aligned.
  const RowLayout layout = row_layout<sizeof(T)>(reinterpret_cast<uintptr_t>(row), p.vocab);
  const uint32_t head = layout.head;
  const uint32_t vectors = layout.vectors;
  const uint32_t body_end = layout.body_end;  // first tail element
  const uint4* __restrict__ vec = reinterpret_cast<const uint4*>(row + head);

  // The scalar head (under 128 bytes) and tail (fewer than kElems elements)
  // belong to the first item and are read after the body. Prefetched into L2
  // first, so that a row that is not a whole number of aligned vectors does
  // not pay one more DRAM round trip after the body's (holding the values in
  // registers instead cost the fp32 kernel 8 registers and a block per
  // multiprocessor).
  const bool first_item = split == 0;
  const bool has_head = first_item && static_cast<uint32_t>(tid) < head;
  const uint32_t tail_index = body_end + tid;
  const bool has_tail = first_item && tid < kElems && tail_index < p.vocab;
  if (has_head) prefetch_l2(row + tid);
  if (has_tail) prefetch_l2(row + tail_index);

  // The item's strips and iterations (greedy_row_layout.h). An iteration
  // visits its vectors in increasing index order.
  const ItemStrips item = item_strips<kThreads>(vectors, splits, split);
  const uint32_t first = SG_STRIP_VECTOR(item, item.first_strip, 0, tid);
  BestVector<T> best;
  best.start(head + first * kElems);
  // Whole iterations: every load in range, no checks.
  uint32_t strip = item.first_strip;
  for (; SG_WHOLE_ITERATION(item, strip); strip += SG_ITERATION_STEP(item)) {
    uint4 loaded[kUnroll];
    // Vector SG_STRIP_VECTOR(item, strip, u, tid), added to the pointer a
    // term at a time (summed in 32 bits first, it compiles differently).
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) loaded[u] = load_vector(vec + strip + u * item.stride + tid);
    // The iteration's best vector by a pairwise tree, the lower index of each
    // pair on the left, then one comparison with the kept vector. Visited
    // one by one instead, the kernels of one item a block took 40 registers
    // on sm_90 rather than 32, and the fp32 kernel of 32-thread rows stopped
    // issuing an iteration's loads together.
    float greatest[kUnroll];
    uint32_t at[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      greatest[u] = Vector<T>::greatest(loaded[u]);
      at[u] = head + SG_STRIP_VECTOR(item, strip, u, tid) * kElems;
    }
    // Before the tree below, which overwrites the vectors it passes over.
    if constexpr (kStats) add_vectors<T>(*stats, loaded, greatest);
#pragma unroll
    for (int width = 1; width < kUnroll; width *= 2) {
#pragma unroll
      for (int u = 0; u < kUnroll; u += 2 * width) {
        if (replaces(greatest[u + width], greatest[u])) {
          greatest[u] = greatest[u + width];
          at[u] = at[u + width];
          loaded[u] = loaded[u + width];
        }
      }
    }
    best.visit(loaded[0], greatest[0], at[0]);
  }
  // The last, partial iteration: each load predicated on its index.
  if (strip < item.vectors) {
    uint4 loaded[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const uint32_t v = SG_STRIP_VECTOR(item, strip, u, tid);
      loaded[u] = load_vector_if(vec + v, v < item.vectors);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const uint32_t v = SG_STRIP_VECTOR(item, strip, u, tid);
      if (v < item.vectors) {
        best.visit(loaded[u], head + v * kElems);
        if constexpr (kStats) {
          const uint4 one[1] = {loaded[u]};
          const float greatest[1] = {Vector<T>::greatest(loaded[u])};
          add_vectors<T>(*stats, one, greatest);
        }
      }
    }
  }
  Key k = best.key(first < vectors);

  if (has_head) k = max_key(k, make_key(Vector<T>::scalar(row + tid), tid));
  if constexpr (kStats) {
    if (has_head) *stats = add_element(*stats, Vector<T>::scalar(row + tid));
  }
  // Groups of 32 threads reading 16-bit rows: up to 63 head elements.
  if constexpr (kThreads < 128 / sizeof(T)) {
    const uint32_t second = tid + kThreads;
    if (first_item && second < head) k = max_key(k, make_key(Vector<T>::scalar(row + second), second));
    if constexpr (kStats) {
      if (first_item && second < head) {
        *stats = add_element(*stats, Vector<T>::scalar(row + second));
      }
    }
  }
  if (has_tail) k = max_key(k, make_key(Vector<T>::scalar(row + tail_index), tail_index));
  if constexpr (kStats) {
    if (has_tail) *stats = add_element(*stats, Vector<T>::scalar(row + tail_index));
  }
  return k;
}

// The same for a row whose vocab dimension has a stride other than 1: one
// element at a time.
template <int kThreads, class T, bool kStats>
__device__ __forceinline__ Key strided_item_key(const T* __restrict__ row, const Params& p,
                                                uint32_t split, int tid, RowStats* stats) {
  const uint64_t begin64 = static_cast<uint64_t>(split) * p.units_per_split;
  const uint64_t end64 = begin64 + p.units_per_split;
  const uint32_t end = static_cast<uint32_t>(end64 < p.vocab ? end64 : p.vocab);
  const uint32_t first = static_cast<uint32_t>(begin64) + tid;
  RunningMax acc;
  acc.start(first);
  for (uint32_t i = first; i < end; i += kThreads) {
    const float v = Vector<T>::scalar(row + static_cast<int64_t>(i) * p.column_stride);
    acc.visit(v, i);
    if constexpr (kStats) *stats = add_element(*stats, v);
  }
  return acc.key(first < end);
}

}  // namespace gpu
}  // namespace safe_greedy
