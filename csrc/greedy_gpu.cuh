// The GPU kernel of greedy_sample, one source for CUDA (nvcc) and ROCm (hip).
//
// Torch-free: raw pointers, templated on the block size, the logits' storage
// type and the output's index type. greedy_cuda.cu launches it;
// tests/gpu_compile compiles it for AMD targets without torch.
//
// Work decomposition (CUB-style layering: thread -> warp -> block -> grid):
//   * A block reads one item: a whole row, or one of `splits` interleaved
//     parts of it, so that a short batch still fills the GPU. Unsplit rows are
//     a 1-D grid, which holds any batch; split rows (only short batches are
//     split) a (splits, rows) grid. Short rows at large batch go the other
//     way: each block reads several whole rows, kRowThreads threads to a row.
//   * Each thread keeps the first of its 16-byte vectors that holds its
//     greatest element so far (BestVector), comparing only each vector's
//     greatest value; which element of the kept vector that is, and its
//     key, are found once per thread, when reducing.
//   * A block reduces its threads' keys; with one item per row that block
//     writes the answer. With several, either (rows of many splits) each
//     block atomically maxes its key into a per-row slot and bumps a per-row
//     counter, and the last block to arrive writes the answer; or (rows of at
//     most kMaxCollectedSplits) each block takes a ticket as it starts, the
//     others publish their keys in slots of their own, and the block that
//     started last collects them. Either way the last block returns what it
//     used to zero, so the workspace never needs a memset between calls.
//   * Loads are 16 bytes wide (load_vector()) and start on a 128-byte line.
//     The head of a row before its first 128-byte boundary and the tail after
//     the last whole vector are read one element at a time, selected by
//     index, so no lane past the row ever takes part.
#pragma once

#include <stdint.h>

#if defined(__HIPCC__)
#include <hip/hip_runtime.h>
#include <hip/hip_fp16.h>
#else
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif

#include "greedy_key.h"
#include "greedy_plan.h"  // kUnroll, kMaxCollectedSplits

namespace safe_greedy {
namespace gpu {

// The hardware's warp width, as a compile-time constant: ROCm's warpSize is not
// constexpr, AMD CDNA (gfx9) runs 64-wide waves, RDNA and NVIDIA 32-wide.
// Chosen by target, not by clang's __AMDGCN_WAVEFRONT_SIZE__ macros, which
// clang 21 deprecates and clang 22 removes.
#if defined(__HIP_DEVICE_COMPILE__) && defined(__GFX9__)
constexpr int kWarpSize = 64;
#else
constexpr int kWarpSize = 32;
#endif

// Butterfly exchange across the whole warp. HIP takes no lane mask (and its
// newer _sync forms reject 32-bit ones); CUDA needs the full-warp mask.
__device__ __forceinline__ Key shuffle_xor(Key v, int lane_mask) {
#if defined(__HIPCC__)
  return __shfl_xor(v, lane_mask, kWarpSize);
#else
  return __shfl_xor_sync(0xFFFFFFFFu, v, lane_mask);
#endif
}

// Lane `src_lane`'s value, in every lane of the warp.
__device__ __forceinline__ uint32_t shuffle_index(uint32_t v, int src_lane) {
#if defined(__HIPCC__)
  return __shfl(v, src_lane, kWarpSize);
#else
  return __shfl_sync(0xFFFFFFFFu, v, src_lane);
#endif
}

// Whether `p` holds in any lane of the warp.
__device__ __forceinline__ bool any_in_warp(bool p) {
#if defined(__HIPCC__)
  return __any(p);
#else
  return __any_sync(0xFFFFFFFFu, p);
#endif
}

// Maximum key over the warp, in every lane.
__device__ __forceinline__ Key warp_max_key(Key k) {
#if !defined(__HIPCC__) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  // Keys order by their high half, then their low half: two 32-bit warp
  // reductions (REDUX) instead of five 64-bit shuffle rounds. 0.08-0.17 us
  // less per launch at batch 1-128 on an H100, where each block's serial path
  // is the latency.
  const uint32_t high = __reduce_max_sync(0xFFFFFFFFu, static_cast<uint32_t>(k >> 32));
  const uint32_t low_of_high = static_cast<uint32_t>(k >> 32) == high ? static_cast<uint32_t>(k) : 0u;
  const uint32_t low = __reduce_max_sync(0xFFFFFFFFu, low_of_high);
  return (static_cast<Key>(high) << 32) | low;
#else
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    k = max_key(k, shuffle_xor(k, offset));
  }
  return k;
#endif
}

// Maximum key over the block; valid in thread 0.
template <int kThreads>
__device__ __forceinline__ Key block_max_key(Key k) {
  static_assert(kThreads % 64 == 0, "blocks must be whole waves at width 32 and 64");
  constexpr int kWarps = kThreads / kWarpSize;
  __shared__ Key warp_keys[kWarps];
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  k = warp_max_key(k);
  if (lane == 0) warp_keys[warp] = k;
  __syncthreads();
  if (warp == 0) {
    k = lane < kWarps ? warp_keys[lane] : kEmptyKey;
    k = warp_max_key(k);
  }
  return k;
}

// Maximum key over each group of kGroupThreads consecutive threads of a block
// of kThreads; valid in the group's first thread. Every thread of the block
// must call it: a group wider than a warp synchronises the block.
template <int kThreads, int kGroupThreads>
__device__ __forceinline__ Key group_max_key(Key k) {
  static_assert(kGroupThreads < kThreads, "a group of the whole block is block_max_key");
  if constexpr (kGroupThreads == kWarpSize) {
    return warp_max_key(k);
  } else {
    static_assert(kGroupThreads % kWarpSize == 0 && kThreads % kGroupThreads == 0,
                  "groups must be whole warps that tile the block");
    __shared__ Key warp_keys[kThreads / kWarpSize];
    const int warp = threadIdx.x / kWarpSize;
    k = warp_max_key(k);
    if (threadIdx.x % kWarpSize == 0) warp_keys[warp] = k;
    __syncthreads();
    if (threadIdx.x % kGroupThreads == 0) {
#pragma unroll
      for (int w = 1; w < kGroupThreads / kWarpSize; ++w) k = max_key(k, warp_keys[warp + w]);
    }
    return k;
  }
}

// greater_of() (greedy_key.h) on the GPU: one instruction (FMNMX.NAN) from
// sm_80 on. The max.NaN statements here are volatile only because that is
// the form measured (docs/PERFORMANCE.md): without it ptxas emits the same
// instructions in another order, not measured.
__device__ __forceinline__ float greater(float a, float b) {
#if !defined(__HIPCC__) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  float r;
  asm volatile("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
#else
  return greater_of(a, b);
#endif
}

// The greatest of a vector's elements, widened one at a time and reduced by
// pairs.
template <class V>
__device__ __forceinline__ float greatest_element(const uint4& v) {
  float value[V::kElements];
#pragma unroll
  for (int e = 0; e < V::kElements; ++e) value[e] = V::get(v, e);
#pragma unroll
  for (int width = 1; width < V::kElements; width *= 2) {
#pragma unroll
    for (int e = 0; e < V::kElements; e += 2 * width) value[e] = greater(value[e], value[e + width]);
  }
  return value[0];
}

// How a 16-byte vector of each storage type widens to floats, what its
// greatest element is (any NaN gives a NaN), and the word of -inf elements.
template <class T>
struct Vector;

template <>
struct Vector<float> {
  static constexpr int kElements = 4;
  static constexpr uint32_t kNegativeInfinityWord = 0xFF800000u;
  __device__ __forceinline__ static float get(const uint4& v, int k) {
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
    return __uint_as_float(w[k]);
  }
  __device__ __forceinline__ static float greatest(const uint4& v) {
    return greatest_element<Vector>(v);
  }
  __device__ __forceinline__ static float scalar(const float* p) { return *p; }
};

// The 16-bit vectors are first reduced two elements at a time (max.NaN on
// bf16x2 and f16x2, sm_80 and later), then the two halves of the last word
// widened and compared: 5 instructions for 8 elements on sm_90, where ptxas
// fuses two of the pair maxima into one three-input VHMNMX.
#if !defined(__HIPCC__) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define SAFE_GREEDY_PAIRED_MAX 1
__device__ __forceinline__ uint32_t greater_bf16_pairs(uint32_t a, uint32_t b) {
  uint32_t r;
  asm volatile("max.NaN.bf16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
__device__ __forceinline__ uint32_t greater_f16_pairs(uint32_t a, uint32_t b) {
  uint32_t r;
  asm volatile("max.NaN.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
#endif

template <>
struct Vector<bf16_t> {
  static constexpr int kElements = 8;
  static constexpr uint32_t kNegativeInfinityWord = 0xFF80FF80u;
  __device__ __forceinline__ static float get(const uint4& v, int k) {
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
    // Little-endian: the even element is the low half of each word.
    return __uint_as_float((k & 1) ? (w[k / 2] & 0xFFFF0000u) : (w[k / 2] << 16));
  }
  __device__ __forceinline__ static float greatest(const uint4& v) {
#if defined(SAFE_GREEDY_PAIRED_MAX)
    const uint32_t w = greater_bf16_pairs(greater_bf16_pairs(v.x, v.y), greater_bf16_pairs(v.z, v.w));
    return greater(__uint_as_float(w << 16), __uint_as_float(w & 0xFFFF0000u));
#else
    return greatest_element<Vector>(v);
#endif
  }
  __device__ __forceinline__ static float scalar(const bf16_t* p) {
    return bf16_bits_to_float(p->bits);
  }
};

template <>
struct Vector<fp16_t> {
  static constexpr int kElements = 8;
  static constexpr uint32_t kNegativeInfinityWord = 0xFC00FC00u;
  __device__ __forceinline__ static float half_bits(uint16_t b) {
    return __half2float(__ushort_as_half(b));
  }
  __device__ __forceinline__ static float get(const uint4& v, int k) {
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
    return half_bits(static_cast<uint16_t>((k & 1) ? (w[k / 2] >> 16) : (w[k / 2] & 0xFFFFu)));
  }
  __device__ __forceinline__ static float greatest(const uint4& v) {
#if defined(SAFE_GREEDY_PAIRED_MAX)
    const uint32_t w = greater_f16_pairs(greater_f16_pairs(v.x, v.y), greater_f16_pairs(v.z, v.w));
    return greater(half_bits(static_cast<uint16_t>(w & 0xFFFFu)),
                   half_bits(static_cast<uint16_t>(w >> 16)));
#else
    return greatest_element<Vector>(v);
#endif
  }
  __device__ __forceinline__ static float scalar(const fp16_t* p) { return half_bits(p->bits); }
};

// Asks for the line holding `p` to be brought into L2, without waiting for
// it or holding a register. AMD targets have no such instruction; there the
// later load simply goes to memory.
__device__ __forceinline__ void prefetch_l2(const void* p) {
#if defined(__HIPCC__)
  (void)p;
#else
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
#endif
}

// One 16-byte vector of logits. On CUDA without allocating in L1, as each
// vector is read once. Side by side on an H100 this took 0.04-0.13 us off
// batch 1 against a plain load and changed little elsewhere; the
// non-coherent path (ld.global.nc) and the 256-byte L2 fetch hint gained
// nothing beside it, so the load stays coherent. The qualifier needs sm_70;
// HIP gets a plain load.
__device__ __forceinline__ uint4 load_vector(const uint4* p) {
#if !defined(__HIPCC__) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  uint4 v;
  // volatile: kept after the wait for the previous grid, whose asm is volatile too.
  asm volatile("ld.global.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
#else
  return *p;
#endif
}

// load_vector() where `wanted`, else zeros, as one predicated load on CUDA.
// Written as such because the partial iteration's loads, left to the
// compiler, can come out one branch each, or be issued one at a time.
__device__ __forceinline__ uint4 load_vector_if(const uint4* p, bool wanted) {
#if !defined(__HIPCC__) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  uint4 v = make_uint4(0u, 0u, 0u, 0u);
  asm volatile(
      "{\n .reg .pred q;\n setp.ne.u32 q, %5, 0;\n"
      " @q ld.global.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n}"
      : "+r"(v.x), "+r"(v.y), "+r"(v.z), "+r"(v.w)
      : "l"(p), "r"(static_cast<uint32_t>(wanted)));
  return v;
#else
  return wanted ? *p : make_uint4(0u, 0u, 0u, 0u);
#endif
}

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
// kElements, in no more instructions (fewer for sm_90): that chain is on the
// latency path of the block whose loads return last. When this ran on every
// vector, against visiting the elements in order (H100, side by side): fp32
// from 1.1% less time to 0.2% more; bf16 from 1.4% less to 0.9% more (see
// docs/PERFORMANCE.md). Contiguous rows now run it once per thread, on the
// vector BestVector kept; strided rows never.
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
// element, once, in key(). One iteration of the body's loop (kUnroll = 4
// vectors) compiles for sm_90 to 74-77 instructions for 16-bit elements and
// 66-71 for fp32, against 187-191 and 98-101 when every vector went through
// visit_vector(). Side by side with that on an H100, under the same launch
// plan (219 cells of batch 1-4096, graph replay, L2-cold, median of 3 runs):
// 0.960x the time, faster in 214 cells (see docs/PERFORMANCE.md).
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
  // (fenced combine) or a slot per item (collected combine): see read_item().
  Key* row_keys;               // [rows * splits]
  uint32_t* row_arrivals;      // [rows]
  int64_t rows;                // the batch
};

// The key of thread `tid` of the kThreads that read item `split` of the
// `splits` of a row whose vocab dimension is contiguous, over its share of
// the row. (`splits` is an argument, not p.splits, so that groups that read
// whole rows pass a constant 1: with their stride known only at run time,
// nvcc 13 put comparisons between the group kernels' loads of one
// iteration, which the SASS check of scripts/check_cuda_build.sh rejects.)
//
// The row's items interleave: the row's vectors are dealt out in strips of
// kThreads, strip j to item j % splits, and a thread reads its own place in
// each of its item's strips. Against each item reading one consecutive range,
// side by side on an H100 (graph replay, L2-cold, 219 cells of batch 1-4096,
// 3 runs alternating): 0.979x the time overall, 1.5-3.6% less at batch 1-64
// and 0.1-1.6% less from batch 128 on (see docs/PERFORMANCE.md).
template <int kThreads, class T>
__device__ __forceinline__ Key contiguous_item_key(const T* __restrict__ row, const Params& p,
                                                   uint32_t splits, uint32_t split, int tid) {
  constexpr int kElems = Vector<T>::kElements;
  static_assert(kThreads >= kElems, "the tail takes one thread per element");
  static_assert(2 * kThreads * sizeof(T) >= 128, "the head takes at most two elements a thread");
  // Elements before the first 128-byte boundary, read one at a time, so that
  // the vectors start on a cache line and each warp's loads cover whole lines
  // (rows starting mid-line took 3-5% longer at batch 256-4096 on an H100;
  // see docs/PERFORMANCE.md). Rows are element-aligned.
  const uint32_t misalignment = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(row) & 127u);
  uint32_t head = ((128u - misalignment) & 127u) / sizeof(T);
  head = head < p.vocab ? head : p.vocab;
  const uint32_t vectors = (p.vocab - head) / kElems;
  const uint32_t body_end = head + vectors * kElems;  // first tail element
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

  // Vectors between one of this item's strips and its next. An iteration
  // reads kUnroll strips, and visits their vectors in increasing index order.
  const uint32_t stride = splits * kThreads;
  const uint32_t first = split * kThreads + tid;
  BestVector<T> best;
  best.start(head + first * kElems);
  // Whole iterations, tested on the block's first strip so that the test is
  // the same in every thread: every load in range, no checks.
  uint32_t strip = split * kThreads;
  for (; strip + (kUnroll - 1) * stride + kThreads <= vectors; strip += kUnroll * stride) {
    uint4 loaded[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) loaded[u] = load_vector(vec + strip + u * stride + tid);
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
      at[u] = head + (strip + u * stride + tid) * kElems;
    }
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
  if (strip < vectors) {
    uint4 loaded[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const uint32_t v = strip + u * stride + tid;
      loaded[u] = load_vector_if(vec + v, v < vectors);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const uint32_t v = strip + u * stride + tid;
      if (v < vectors) best.visit(loaded[u], head + v * kElems);
    }
  }
  Key k = best.key(first < vectors);

  if (has_head) k = max_key(k, make_key(Vector<T>::scalar(row + tid), tid));
  // Groups of 32 threads reading 16-bit rows: up to 63 head elements.
  if constexpr (kThreads < 128 / sizeof(T)) {
    const uint32_t second = tid + kThreads;
    if (first_item && second < head) k = max_key(k, make_key(Vector<T>::scalar(row + second), second));
  }
  if (has_tail) k = max_key(k, make_key(Vector<T>::scalar(row + tail_index), tail_index));
  return k;
}

// The same for a row whose vocab dimension has a stride other than 1: one
// element at a time.
template <int kThreads, class T>
__device__ __forceinline__ Key strided_item_key(const T* __restrict__ row, const Params& p,
                                                uint32_t split, int tid) {
  const uint64_t begin64 = static_cast<uint64_t>(split) * p.units_per_split;
  const uint64_t end64 = begin64 + p.units_per_split;
  const uint32_t end = static_cast<uint32_t>(end64 < p.vocab ? end64 : p.vocab);
  const uint32_t first = static_cast<uint32_t>(begin64) + tid;
  RunningMax acc;
  acc.start(first);
  for (uint32_t i = first; i < end; i += kThreads) {
    acc.visit(Vector<T>::scalar(row + static_cast<int64_t>(i) * p.column_stride), i);
  }
  return acc.key(first < end);
}

// atomicAdd(counter, 1) with acquire-release ordering at device scope. On
// CUDA one acq_rel atomic (MEMBAR.ALL.GPU) replaces two sequentially
// consistent __threadfence()s (MEMBAR.SC.GPU): 0.1-0.2 us less per launch on
// an H100 at batch 1-64. HIP keeps the portable fences.
__device__ __forceinline__ uint32_t arrive_acq_rel(uint32_t* counter) {
#if defined(__HIPCC__)
  __threadfence();
  const uint32_t old = atomicAdd(counter, 1u);
  __threadfence();
  return old;
#else
  uint32_t old;
  asm volatile("atom.add.acq_rel.gpu.global.u32 %0, [%1], 1;"
               : "=r"(old)
               : "l"(counter)
               : "memory");
  return old;
#endif
}

// A split's key slot, read and written as single 64-bit accesses that other
// blocks observe whole (relaxed, device scope): the key is the only datum
// passed between blocks, so no fence is needed. Every poll must reach the
// coherence point, never a stale L1 line.
__device__ __forceinline__ Key load_slot(const Key* slot) {
#if defined(__HIPCC__)
  return __hip_atomic_load(slot, __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_AGENT);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  Key v;
  asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(slot) : "memory");
  return v;
#else
  return *static_cast<const volatile Key*>(slot);
#endif
}

__device__ __forceinline__ void store_slot(Key* slot, Key key) {
#if defined(__HIPCC__)
  __hip_atomic_store(slot, key, __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_AGENT);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  asm volatile("st.relaxed.gpu.global.u64 [%0], %1;" ::"l"(slot), "l"(key) : "memory");
#else
  *static_cast<volatile Key*>(slot) = key;
#endif
}

// The row's next ticket, 0 to splits - 1; the counter wraps to zero as the
// last ticket is taken, ready for the next launch. (atomicInc, unlike
// atomicAdd, is not turned into a warp-aggregated form whose result shuffle
// would hold up the warp's loads until the atomic returned.)
__device__ __forceinline__ uint32_t take_ticket(uint32_t* counter, uint32_t splits) {
#if defined(__HIPCC__)
  return __builtin_amdgcn_atomic_inc32(counter, splits - 1, __ATOMIC_RELAXED, "agent");
#else
  return atomicInc(counter, splits - 1);
#endif
}

// A zero slot means "not yet published", but the empty key (a split with
// nothing to read) is zero too: it is published as 1, still below every
// element's key. The plan gives collected rows no empty split today
// (tests/cpp/test_launch_plan.cpp checks it), so this only keeps a future
// plan from making the collector wait for a key that never comes.
__device__ __forceinline__ Key published_key(Key k) { return k == kEmptyKey ? Key{1} : k; }

// Slots each lane of the collecting warp loads at once: one round trip for
// rows of up to kWarpSize * kCollectUnroll splits.
constexpr int kCollectUnroll = (kMaxCollectedSplits + kWarpSize - 1) / kWarpSize;

// Polling rounds after which a collector stops waiting (each round is one
// L2 round trip, so this is a fraction of a second). A correct launch never
// comes near it: see collect_row_key().
constexpr uint32_t kMaxCollectRounds = 1u << 20;

// Run by warp 0 of the block that started last among a row's `splits`
// blocks; `own` is that block's split and `own_key` its key (lane 0). Waits
// for every other split's key, returns the row's maximum key in every lane,
// and leaves the row's slots zero. A launch that has its workspace to itself
// cannot wait forever: every other block of the row took its ticket earlier,
// so it is running, and it publishes its key without waiting for anything.
// Two launches sharing a workspace at once (greedy_gpu_workspace.h leaves
// that possible only for executable graphs made from one capture and
// replayed at the same time) take each other's tickets and zero each other's
// slots: rows get wrong answers or none, and the workspace can stay dirty for
// later launches, as with the fenced combine. kMaxCollectRounds only keeps
// that from hanging; an index the kernel writes is still inside the row
// (row_answer()).
__device__ __forceinline__ Key collect_row_key(Key* row_slots, uint32_t splits, uint32_t own,
                                               Key own_key) {
  const uint32_t lane = threadIdx.x % kWarpSize;
  // Lane `lane` looks after slots lane, lane + 32, ...; theirs[u]: slot
  // u * 32 + lane belongs to another split of this row.
  bool theirs[kCollectUnroll];
  Key got[kCollectUnroll];
#pragma unroll
  for (int u = 0; u < kCollectUnroll; ++u) {
    const uint32_t s = u * kWarpSize + lane;
    theirs[u] = s < splits && s != own;
    got[u] = kEmptyKey;
  }
  bool waiting;
  uint32_t rounds = 0;
  do {
    // Each round reloads every slot still unpublished, all at once, so that
    // waiting for several late blocks costs one round trip after the last.
#pragma unroll
    for (int u = 0; u < kCollectUnroll; ++u) {
      if (theirs[u] && got[u] == kEmptyKey) got[u] = load_slot(&row_slots[u * kWarpSize + lane]);
    }
    waiting = false;
#pragma unroll
    for (int u = 0; u < kCollectUnroll; ++u) waiting |= theirs[u] && got[u] == kEmptyKey;
  } while (any_in_warp(waiting) && ++rounds < kMaxCollectRounds);
  Key best = lane == 0 ? own_key : kEmptyKey;
#pragma unroll
  for (int u = 0; u < kCollectUnroll; ++u) {
    if (theirs[u]) store_slot(&row_slots[u * kWarpSize + lane], kEmptyKey);
    best = max_key(best, got[u]);
  }
  return warp_max_key(best);
}

// Programmatic dependent launch (sm_90 and later). Where the launcher asks for
// it (launch_kernel() in greedy_cuda.cu), this grid's blocks start while the
// kernel before it in the stream is still finishing, so the launch latency
// hides behind that kernel's tail; elsewhere this is a no-op. Nothing may touch
// memory before it returns: the logits are usually that kernel's output, and
// the workspace may still be in use by the previous greedy_sample on the stream.
__device__ __forceinline__ void wait_for_previous_grid() {
#if !defined(__HIPCC__) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// The index a split row's combined key names. Launches that use their
// workspace alone always combine a real key of this row; launches sharing one
// (see collect_row_key()) may combine the empty key or another launch's key,
// and get index 0 rather than one past the row.
__device__ __forceinline__ uint32_t row_answer(Key combined, uint32_t vocab) {
  const uint32_t index = key_index(combined);
  return index < vocab ? index : 0u;
}

// Writes row `row`'s token id into the output (any integer dtype, any row
// stride): the one place every kernel path stores its answer.
template <class OutT>
__device__ __forceinline__ void write_answer(const Params& p, int64_t row, uint32_t index) {
  static_cast<OutT*>(p.out)[row * p.out_stride] = static_cast<OutT>(index);
}

// One item of a row per block: the whole row, or one split of it, which the
// last of the row's blocks to finish combines with the others.
template <int kThreads, class T, class OutT, bool kContiguous>
__device__ __forceinline__ void read_item(const Params& p) {
  // Split rows are launched as a (splits, rows) grid, which needs no division
  // to find an item's row (the plan splits fewer rows than the y dimension
  // allows); unsplit rows as a 1-D grid, whose x dimension holds any batch.
  const bool split_rows = p.splits > 1;
  const uint32_t row = split_rows ? blockIdx.y : blockIdx.x;
  const uint32_t split = split_rows ? blockIdx.x : 0u;
  // 64-bit: rows * row_stride passes 2^31 in real serving.
  const T* row_ptr = static_cast<const T*>(p.logits) + static_cast<int64_t>(row) * p.row_stride;
  // Rows of few splits are collected by the block that starts last: its
  // ticket is taken before the loads, so the round trip overlaps them.
  const bool collected = split_rows && p.splits <= kMaxCollectedSplits;
  uint32_t ticket = 0;
  if (collected && threadIdx.x == 0) ticket = take_ticket(&p.row_arrivals[row], p.splits);

  Key k = kContiguous ? contiguous_item_key<kThreads, T>(row_ptr, p, p.splits, split, threadIdx.x)
                      : strided_item_key<kThreads, T>(row_ptr, p, split, threadIdx.x);
  k = block_max_key<kThreads>(k);
  if (collected) {
    // Warp 0 holds the block's key (lane 0) and ticket.
    if (threadIdx.x >= kWarpSize) return;
    Key* row_slots = p.row_keys + static_cast<int64_t>(row) * p.splits;
    if (shuffle_index(ticket, 0) != p.splits - 1) {
      if (threadIdx.x == 0) store_slot(&row_slots[split], published_key(k));
      return;
    }
    const Key final_key = collect_row_key(row_slots, p.splits, split, k);
    if (threadIdx.x == 0) write_answer<OutT>(p, row, row_answer(final_key, p.vocab));
    return;
  }
  if (threadIdx.x != 0) return;
  if (!split_rows) {
    write_answer<OutT>(p, row, key_index(k));
    return;
  }
  // Publish this block's key, then count it in. The count is a release (this
  // block's key is visible before its arrival is) and, for the last block, an
  // acquire (every other block's key is visible after it).
  atomicMax(reinterpret_cast<unsigned long long*>(&p.row_keys[row]),
            static_cast<unsigned long long>(k));
  const uint32_t arrived = arrive_acq_rel(&p.row_arrivals[row]);
  if (arrived != p.splits - 1) return;
  const Key final_key = atomicExch(reinterpret_cast<unsigned long long*>(&p.row_keys[row]), 0ull);
  p.row_arrivals[row] = 0;
  write_answer<OutT>(p, row, row_answer(final_key, p.vocab));
}

// Several whole, contiguous rows per block, kRowThreads threads to a row. The
// last block's groups past the batch read nothing but still take part in the
// reduction, which may synchronise the block.
template <int kThreads, int kRowThreads, class T, class OutT>
__device__ __forceinline__ void read_whole_rows(const Params& p) {
  constexpr int kRowsPerBlock = kThreads / kRowThreads;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kRowThreads;
  const int tid = threadIdx.x % kRowThreads;
  const bool in_batch = row < p.rows;
  Key k = kEmptyKey;
  if (in_batch) {
    const T* row_ptr = static_cast<const T*>(p.logits) + row * p.row_stride;
    k = contiguous_item_key<kRowThreads, T>(row_ptr, p, 1, 0, tid);
  }
  k = group_max_key<kThreads, kRowThreads>(k);
  if (tid == 0 && in_batch) write_answer<OutT>(p, row, key_index(k));
}

// Resident blocks per multiprocessor that the compiler must leave registers
// for: none asked of the kernels of one item a block (nvcc 13 gives them 32
// registers on sm_90), 5 of those that share a block between rows. Left to
// choose, ptxas fitted the fp32 kernel of 32-thread rows into 40 registers by
// issuing an iteration's third load only once the first had returned (the
// SASS check of scripts/check_cuda_build.sh rejects that); with room for 5
// blocks of 256 threads it takes 47 and issues all four together, the 5
// blocks a multiprocessor these kernels had before. HIP keeps its default,
// and so do targets before sm_80: a Turing multiprocessor holds 1024
// threads, fewer than 5 such blocks (ptxas warns and ignores the request).
#if defined(__HIPCC__) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800)
#define SAFE_GREEDY_LAUNCH_BOUNDS(threads, min_blocks) __launch_bounds__(threads)
#else
#define SAFE_GREEDY_LAUNCH_BOUNDS(threads, min_blocks) __launch_bounds__(threads, min_blocks)
#endif

template <int kThreads, int kRowThreads, class T, class OutT, bool kContiguous>
__global__ void SAFE_GREEDY_LAUNCH_BOUNDS(kThreads, kRowThreads == kThreads ? 0 : 5)
    greedy_sample_kernel(const Params p) {
  static_assert(kRowThreads == kThreads || kContiguous, "only contiguous rows share a block");
  // No explicit trigger for the next grid: it starts as this one's blocks
  // exit. Triggering at the start cost 2-9% at batch 256-1024 on an H100 (the
  // next grid's waiting blocks hold slots); after the loads it was no faster.
  wait_for_previous_grid();
  if constexpr (kRowThreads == kThreads) {
    read_item<kThreads, T, OutT, kContiguous>(p);
  } else {
    read_whole_rows<kThreads, kRowThreads, T, OutT>(p);
  }
}

}  // namespace gpu
}  // namespace safe_greedy
