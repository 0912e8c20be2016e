// The CPU kernel of greedy_sample: the key of one segment of one row.
//
// Torch-free, so that the C++ tests exercise it directly. The launcher
// (extension/greedy_cpu_launcher.cpp) splits the work into segments across
// threads and combines the segments' keys with max_key.
//
// A contiguous segment is read in chunks that stay in L1. Pass one computes
// the chunk's maximum and whether it holds a NaN, in a loop with no data-
// dependent branch that the compiler vectorises at the baseline ISA (SSE2 on
// x86-64, NEON on arm64). Pass two, which finds the first index of that
// maximum, runs only when the chunk beats everything before it: for typical
// logits that is a handful of chunks per row.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "greedy_key.h"

namespace safe_greedy {
namespace cpu {

// Bytes per chunk: 32 KiB, so pass two re-reads a chunk from cache, not memory.
constexpr uint32_t kChunkBytes = 32768;

template <class T>
constexpr uint32_t chunk_elements() {
  return kChunkBytes / sizeof(T);
}

// An ordered integer image of each element for pass one: sign-magnitude turned
// into two's complement, so -0.0 and +0.0 both become 0 and integer order is
// float order for every non-NaN value. NaN is detected separately, from the
// magnitude bits. Tests check agreement with order_image() on all fp16 and bf16
// values and on special fp32 values, and, in flush-denormal mode, with
// order_image(compared_value<true>()) (greedy_key.h). kWidensToSubnormal: the
// format's subnormals are fp32 subnormals once widened, so that mode flushes them.
template <class T>
struct Lanes;

template <>
struct Lanes<float> {
  using lane_t = int32_t;
  static inline uint32_t bits(float x) { return float_bits(x); }
  static constexpr uint32_t kMagnitude = 0x7FFFFFFFu;
  static constexpr uint32_t kInfBits = 0x7F800000u;
  static constexpr bool kWidensToSubnormal = true;
  static inline float to_float(float x) { return x; }
};

template <>
struct Lanes<bf16_t> {
  using lane_t = int16_t;
  static inline uint16_t bits(bf16_t x) { return x.bits; }
  static constexpr uint16_t kMagnitude = 0x7FFFu;
  static constexpr uint16_t kInfBits = 0x7F80u;
  static constexpr bool kWidensToSubnormal = true;
  static inline float to_float(bf16_t x) { return bf16_bits_to_float(x.bits); }
};

template <>
struct Lanes<fp16_t> {
  using lane_t = int16_t;
  static inline uint16_t bits(fp16_t x) { return x.bits; }
  static constexpr uint16_t kMagnitude = 0x7FFFu;
  static constexpr uint16_t kInfBits = 0x7C00u;
  static constexpr bool kWidensToSubnormal = false;
  static inline float to_float(fp16_t x) { return fp16_bits_to_float(x.bits); }
};

template <class T, bool kFlushSubnormals = false>
inline typename Lanes<T>::lane_t ordered_lane(T x) {
  using L = Lanes<T>;
  using lane_t = typename L::lane_t;
  auto b = L::bits(x);
  if (kFlushSubnormals && L::kWidensToSubnormal) {
    // A zero exponent field reads as zero: b masked with all ones or none,
    // without a select, which the vectoriser handles poorly at 16 bits.
    using bits_t = decltype(b);
    b &= static_cast<bits_t>(0u - static_cast<unsigned>((b & L::kInfBits) != 0));
  }
  const lane_t magnitude = static_cast<lane_t>(b & L::kMagnitude);
  // All ones for negative values, zero otherwise.
  const lane_t sign = static_cast<lane_t>(static_cast<lane_t>(b) >> (8 * sizeof(lane_t) - 1));
  return static_cast<lane_t>((magnitude ^ sign) - sign);
}

template <class T>
inline bool is_nan(T x) {
  using L = Lanes<T>;
  return (L::bits(x) & L::kMagnitude) > L::kInfBits;
}

template <class T>
struct ChunkSummary {
  typename Lanes<T>::lane_t max_lane;
  bool has_nan;
};

// Pass one. n >= 1. Integer max is associative, so the compiler is free to
// vectorise these reductions without any floating-point licence. A NaN is
// found through the largest magnitude (NaNs have the largest magnitudes), one
// more vector max instead of a compare-and-or. The chunk is read as four
// interleaved streams with their own maxima, so that the vector max (several
// instructions at the baseline ISA) is not one long dependency chain.
template <class T, bool kFlushSubnormals = false>
inline ChunkSummary<T> summarise_chunk(const T* __restrict__ p, uint32_t n) {
  using L = Lanes<T>;
  using lane_t = typename L::lane_t;
  constexpr uint32_t kStreams = 4;
  const uint32_t quarter = n / kStreams;
  lane_t best[kStreams];
  lane_t magnitude[kStreams];
  for (uint32_t s = 0; s < kStreams; ++s) {
    best[s] = ordered_lane<T, kFlushSubnormals>(p[0]);
    magnitude[s] = 0;
  }
  for (uint32_t i = 0; i < quarter; ++i) {
    for (uint32_t s = 0; s < kStreams; ++s) {
      const T x = p[s * quarter + i];
      const lane_t v = ordered_lane<T, kFlushSubnormals>(x);
      const lane_t m = static_cast<lane_t>(L::bits(x) & L::kMagnitude);
      best[s] = v > best[s] ? v : best[s];
      magnitude[s] = m > magnitude[s] ? m : magnitude[s];
    }
  }
  for (uint32_t i = kStreams * quarter; i < n; ++i) {
    const lane_t v = ordered_lane<T, kFlushSubnormals>(p[i]);
    const lane_t m = static_cast<lane_t>(L::bits(p[i]) & L::kMagnitude);
    best[0] = v > best[0] ? v : best[0];
    magnitude[0] = m > magnitude[0] ? m : magnitude[0];
  }
  lane_t top = best[0];
  lane_t top_magnitude = magnitude[0];
  for (uint32_t s = 1; s < kStreams; ++s) {
    top = best[s] > top ? best[s] : top;
    top_magnitude = magnitude[s] > top_magnitude ? magnitude[s] : top_magnitude;
  }
  return ChunkSummary<T>{top, top_magnitude > static_cast<lane_t>(L::kInfBits)};
}

#if defined(__GNUC__)
// fp32 pass one in the float domain, with the compilers' portable vector
// types (SSE2 on x86-64, NEON on arm64): a float max and an unordered compare
// per four elements, where the integer image needs about twelve instructions at
// the baseline ISA. A NaN never enters a running maximum (x > NaN-free best is
// false for NaN x), so NaNs are tracked on the side. The compares must see
// subnormals as they are (the launcher clears the running thread's
// flush-inputs bit); flush-denormal mode flushes them in software first.
typedef float f32x4 __attribute__((vector_size(16)));
typedef int32_t i32x4 __attribute__((vector_size(16)));

// compared_value<true>() (greedy_key.h) on four lanes.
inline f32x4 flush_subnormals(f32x4 x) {
  i32x4 b;
  memcpy(&b, &x, sizeof(b));
  b &= (b & 0x7F800000) != 0;
  memcpy(&x, &b, sizeof(x));
  return x;
}

template <bool kFlushSubnormals>
inline ChunkSummary<float> summarise_chunk_f32(const float* __restrict__ p, uint32_t n) {
  typedef f32x4 f4;
  typedef i32x4 i4;
  constexpr uint32_t kVectors = 4;  // independent maxima, so no long dependency chain
  constexpr uint32_t kStep = 4 * kVectors;
  const float first = compared_value<kFlushSubnormals>(p[0]);
  f4 best[kVectors];
  i4 nan_seen[kVectors];
  for (uint32_t k = 0; k < kVectors; ++k) {
    best[k] = f4{first, first, first, first};
    nan_seen[k] = i4{0, 0, 0, 0};
  }
  uint32_t i = 0;
  for (; i + kStep <= n; i += kStep) {
    for (uint32_t k = 0; k < kVectors; ++k) {
      f4 x;
      memcpy(&x, p + i + 4 * k, sizeof(x));
      if (kFlushSubnormals) x = flush_subnormals(x);
      best[k] = x > best[k] ? x : best[k];
      nan_seen[k] |= x != x;
    }
  }
  float top = best[0][0];
  bool has_nan = false;
  for (uint32_t k = 0; k < kVectors; ++k) {
    for (int lane = 0; lane < 4; ++lane) {
      top = best[k][lane] > top ? best[k][lane] : top;
      has_nan |= nan_seen[k][lane] != 0;
    }
  }
  for (; i < n; ++i) {
    const float x = compared_value<kFlushSubnormals>(p[i]);
    top = x > top ? x : top;
    has_nan |= x != x;
  }
  // If p[0] is NaN, `top` may still be that NaN: has_nan is set and decides.
  return ChunkSummary<float>{ordered_lane(top), has_nan};
}

template <>
inline ChunkSummary<float> summarise_chunk<float, false>(const float* __restrict__ p, uint32_t n) {
  return summarise_chunk_f32<false>(p, n);
}
template <>
inline ChunkSummary<float> summarise_chunk<float, true>(const float* __restrict__ p, uint32_t n) {
  return summarise_chunk_f32<true>(p, n);
}
#endif

// Whether any of p[0, kBlock) has the given lane: a branch-free reduction the
// compiler vectorises.
constexpr uint32_t kBlock = 256;
template <class T, bool kFlushSubnormals = false>
inline bool block_has_lane(const T* __restrict__ p, typename Lanes<T>::lane_t lane) {
  using lane_t = typename Lanes<T>::lane_t;
  lane_t hits = 0;
  for (uint32_t i = 0; i < kBlock; ++i) {
    hits |= static_cast<lane_t>(ordered_lane<T, kFlushSubnormals>(p[i]) == lane);
  }
  return hits != 0;
}

#if defined(__GNUC__)
// fp32 blocks tested in the float domain, one vector compare per four
// elements instead of the integer image. Pass two runs only on chunks without
// a NaN, and for floats that are not NaN, equal lanes means IEEE-equal values
// (-0.0 and +0.0 share lane 0 and compare equal). On the 2-core CI-class CPU,
// side by side: 0-5.5% less time for fp32 at batch 16 and 256
// (docs/PERFORMANCE.md).
template <bool kFlushSubnormals>
inline bool block_has_lane_f32(const float* __restrict__ p, int32_t lane) {
  typedef f32x4 f4;
  typedef i32x4 i4;
  // ordered_lane() inverted: a negative lane is the negated magnitude.
  const uint32_t magnitude = lane < 0 ? 0u - static_cast<uint32_t>(lane) : static_cast<uint32_t>(lane);
  const float value = bits_to_float(lane < 0 ? (magnitude | 0x80000000u) : magnitude);
  const f4 values = {value, value, value, value};
  i4 hits = {0, 0, 0, 0};
  for (uint32_t i = 0; i < kBlock; i += 4) {
    f4 x;
    memcpy(&x, p + i, sizeof(x));
    if (kFlushSubnormals) x = flush_subnormals(x);
    hits |= x == values;
  }
  return (hits[0] | hits[1] | hits[2] | hits[3]) != 0;
}

template <>
inline bool block_has_lane<float, false>(const float* __restrict__ p, int32_t lane) {
  return block_has_lane_f32<false>(p, lane);
}
template <>
inline bool block_has_lane<float, true>(const float* __restrict__ p, int32_t lane) {
  return block_has_lane_f32<true>(p, lane);
}
#endif

// Pass two: the offset of the first element of p[0, n) whose lane equals
// `lane`, which must occur. Whole blocks are tested with block_has_lane; only
// the block that holds the match is scanned one element at a time.
template <class T, bool kFlushSubnormals = false>
inline uint32_t first_equal(const T* __restrict__ p, uint32_t n, typename Lanes<T>::lane_t lane) {
  uint32_t start = 0;
  while (start + kBlock <= n && !block_has_lane<T, kFlushSubnormals>(p + start, lane)) start += kBlock;
  while (ordered_lane<T, kFlushSubnormals>(p[start]) != lane) ++start;
  return start;
}

template <class T>
inline uint32_t first_nan(const T* __restrict__ p, uint32_t n) {
  (void)n;  // a NaN is known to be there
  uint32_t j = 0;
  while (!is_nan(p[j])) ++j;
  return j;
}

// Key of a contiguous segment p[0, n), whose first element has row index
// first_index. n >= 1. kFlushSubnormals: rank as in flush-denormal mode
// (compared_value() in greedy_key.h).
template <class T, bool kFlushSubnormals = false>
inline Key contiguous_segment_key(const T* p, uint32_t n, uint32_t first_index) {
  using lane_t = typename Lanes<T>::lane_t;
  lane_t best_lane = 0;
  uint32_t best = 0;  // offset in the segment
  bool have_best = false;
  constexpr uint32_t kChunk = chunk_elements<T>();
  for (uint32_t start = 0; start < n; start += kChunk) {
    const T* chunk = p + start;
    const uint32_t len = n - start < kChunk ? n - start : kChunk;
    const ChunkSummary<T> s = summarise_chunk<T, kFlushSubnormals>(chunk, len);
    if (s.has_nan) {
      // The first NaN of the segment decides it: nothing after it can win.
      const uint32_t j = first_nan(chunk, len);
      return make_key(Lanes<T>::to_float(chunk[j]), first_index + start + j);
    }
    if (!have_best || s.max_lane > best_lane) {
      const uint32_t j = first_equal<T, kFlushSubnormals>(chunk, len, s.max_lane);
      best_lane = s.max_lane;
      best = start + j;
      have_best = true;
    }
  }
  return make_key(compared_value<kFlushSubnormals>(Lanes<T>::to_float(p[best])), first_index + best);
}

// Key of elements [begin, end) of a row whose elements are `stride` apart.
// Used when the vocab dimension is not contiguous; begin < end.
template <class T, bool kFlushSubnormals = false>
inline Key strided_segment_key(const T* row, int64_t stride, uint32_t begin, uint32_t end) {
  auto value = [&](uint32_t i) {
    return compared_value<kFlushSubnormals>(Lanes<T>::to_float(row[static_cast<int64_t>(i) * stride]));
  };
  float best = value(begin);
  uint32_t best_index = begin;
  for (uint32_t i = begin + 1; i < end; ++i) {
    const float v = value(i);
    if (replaces(v, best)) {
      best = v;
      best_index = i;
    }
  }
  return make_key(best, best_index);
}

// Key of elements [begin, end) of a row; begin < end.
template <class T, bool kFlushSubnormals = false>
inline Key segment_key(const T* row, int64_t stride, uint32_t begin, uint32_t end) {
  if (stride == 1) {
    return contiguous_segment_key<T, kFlushSubnormals>(row + begin, end - begin, begin);
  }
  return strided_segment_key<T, kFlushSubnormals>(row, stride, begin, end);
}

}  // namespace cpu
}  // namespace safe_greedy
