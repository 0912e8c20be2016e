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
//
// With the extra outputs (kStats), each chunk is read a third time while it is
// still in cache, for the sum of exp(x - max) of greedy_stats.h, taken
// relative to the maximum that pass one found; the plain kernel compiles
// without it.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <type_traits>

#include "greedy_key.h"
#include "greedy_stats.h"

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
  static inline float bits_to_value(uint32_t b) { return bits_to_float(b); }
  static inline float to_float_for_sum(float x) { return x; }
};

template <>
struct Lanes<bf16_t> {
  using lane_t = int16_t;
  static inline uint16_t bits(bf16_t x) { return x.bits; }
  static constexpr uint16_t kMagnitude = 0x7FFFu;
  static constexpr uint16_t kInfBits = 0x7F80u;
  static constexpr bool kWidensToSubnormal = true;
  static inline float to_float(bf16_t x) { return bf16_bits_to_float(x.bits); }
  static inline float bits_to_value(uint16_t b) { return bf16_bits_to_float(b); }
  static inline float to_float_for_sum(bf16_t x) { return to_float(x); }
};

template <>
struct Lanes<fp16_t> {
  using lane_t = int16_t;
  static inline uint16_t bits(fp16_t x) { return x.bits; }
  static constexpr uint16_t kMagnitude = 0x7FFFu;
  static constexpr uint16_t kInfBits = 0x7C00u;
  static constexpr bool kWidensToSubnormal = false;
  static inline float to_float(fp16_t x) { return fp16_bits_to_float(x.bits); }
  static inline float bits_to_value(uint16_t b) { return fp16_bits_to_float(b); }
  // For the sums of exp (pass three): without fp16_bits_to_float's loop over
  // subnormals, so that the compiler vectorises it. Multiplying by 2^112
  // moves the exponent to fp32's bias and normalises subnormals, exactly;
  // infinities and NaNs keep their bits. (Were denormals flushed, a
  // subnormal would read as 0, a difference below 6.1e-5 that no sum of exp
  // can tell; the keys never use this.)
  static inline float to_float_for_sum(fp16_t x) {
    const uint32_t magnitude = static_cast<uint32_t>(x.bits & 0x7FFFu) << 13;
    const uint32_t finite = float_bits(bits_to_float(magnitude) * 0x1p112f);
    // Infinities and NaNs by mask, not by branch, so that the loop over a
    // block vectorises.
    const uint32_t special = 0u - static_cast<uint32_t>((x.bits & kInfBits) == kInfBits);
    const uint32_t bits = (finite & ~special) | ((magnitude | 0x7F800000u) & special);
    return bits_to_float(bits | (static_cast<uint32_t>(x.bits & 0x8000u) << 16));
  }
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

// ordered_lane() inverted, for lanes of non-NaN values (-0.0 comes back as
// +0.0, which ties it).
template <class T>
inline float lane_value(typename Lanes<T>::lane_t lane) {
  using L = Lanes<T>;
  using bits_t = typename std::remove_cv<decltype(L::kMagnitude)>::type;
  const bits_t magnitude = static_cast<bits_t>(lane < 0 ? bits_t(0) - static_cast<bits_t>(lane)
                                                        : static_cast<bits_t>(lane));
  const bits_t sign = static_cast<bits_t>(L::kMagnitude + 1u);
  return L::bits_to_value(static_cast<bits_t>(lane < 0 ? (magnitude | sign) : magnitude));
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
// (-0.0 and +0.0 share lane 0 and compare equal). Less time for fp32 (see
// "CPU, 2026-11-28, 1131e17" in docs/PERFORMANCE.md).
template <bool kFlushSubnormals>
inline bool block_has_lane_f32(const float* __restrict__ p, int32_t lane) {
  typedef f32x4 f4;
  typedef i32x4 i4;
  const float value = lane_value<float>(lane);
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

#if defined(__GNUC__)
// Eight and sixteen lanes, for pass three where the CPU has AVX2 and FMA, or
// AVX-512. Every function that takes or returns them is forced inline
// (SG_VECTOR_INLINE), so they never pass a call between code built for
// different ISAs, whose ABIs for them differ (clang refuses such a call; GCC
// compiles it, wrongly): GCC's note on that difference concerns no call here,
// and the builds pass -Wno-psabi.
typedef float f32x8 __attribute__((vector_size(32)));
typedef int32_t i32x8 __attribute__((vector_size(32)));
typedef float f32x16 __attribute__((vector_size(64)));
typedef int32_t i32x16 __attribute__((vector_size(64)));
}  // namespace cpu

// exp_nonpositive() on the vector types: at the baseline ISA each lane as the
// scalar code computes it, bit for bit (tests/cpp/test_stats.cpp).
template <class V, class B>
struct VectorExpLanes {
  using bits_t = B;
  static SG_VECTOR_INLINE bits_t to_bits(V x) {
    bits_t b;
    memcpy(&b, &x, sizeof(b));
    return b;
  }
  static SG_VECTOR_INLINE V from_bits(bits_t b) {
    V x;
    memcpy(&x, &b, sizeof(x));
    return x;
  }
  static SG_VECTOR_INLINE V splat(float x) { return V{} + x; }
};

template <>
struct ExpLanes<cpu::f32x4> : VectorExpLanes<cpu::f32x4, cpu::i32x4> {};
template <>
struct ExpLanes<cpu::f32x8> : VectorExpLanes<cpu::f32x8, cpu::i32x8> {};
template <>
struct ExpLanes<cpu::f32x16> : VectorExpLanes<cpu::f32x16, cpu::i32x16> {};

namespace cpu {
#endif

// Pass three: the sum of exp(x - shift) over p[0, n), where no x is above the
// shift, with a vector loop in lanes of V (float: none) and a scalar tail.
// Four vectors of partial sums keep each one short, which bounds the
// rounding of a long chunk.
template <class V>
SG_VECTOR_INLINE float exp_sum(const float* __restrict__ p, uint32_t n, float shift) {
  float total = 0.0f;
  uint32_t i = 0;
  if constexpr (!std::is_same<V, float>::value) {
    constexpr uint32_t kLanes = sizeof(V) / sizeof(float);
    constexpr uint32_t kVectors = 4;
    const V shifts = ExpLanes<V>::splat(shift);
    V sums[kVectors] = {};
    for (; i + kLanes * kVectors <= n; i += kLanes * kVectors) {
      for (uint32_t k = 0; k < kVectors; ++k) {
        V x;
        memcpy(&x, p + i + kLanes * k, sizeof(x));
        sums[k] += exp_nonpositive(x - shifts);
      }
    }
    // The lanes added pairwise, as a tree.
    const V all = (sums[0] + sums[1]) + (sums[2] + sums[3]);
    float lanes[kLanes];
    memcpy(lanes, &all, sizeof(lanes));
    for (uint32_t width = 1; width < kLanes; width *= 2) {
      for (uint32_t k = 0; k < kLanes; k += 2 * width) lanes[k] += lanes[k + width];
    }
    total = lanes[0];
  }
  for (; i < n; ++i) total += exp_nonpositive(p[i] - shift);
  return total;
}

// A block of 16-bit values as floats, for pass three (a loop of its own:
// written inline in chunk_exp_sum_in(), GCC 12 did not vectorise it).
template <class T>
SG_VECTOR_INLINE void widen_for_sum(const T* __restrict__ p, uint32_t n, float* __restrict__ out) {
  for (uint32_t i = 0; i < n; ++i) out[i] = Lanes<T>::to_float_for_sum(p[i]);
}

// exp_sum() over a chunk of any storage type: the 16-bit formats are widened
// a block at a time into a buffer that stays in L1, and summed from there.
template <class V, class T>
SG_VECTOR_INLINE float chunk_exp_sum_in(const T* __restrict__ p, uint32_t n, float shift) {
  if constexpr (std::is_same<T, float>::value) {
    return exp_sum<V>(p, n, shift);
  } else {
    float widened[kBlock];
    float total = 0.0f;
    for (uint32_t start = 0; start < n; start += kBlock) {
      const uint32_t len = n - start < kBlock ? n - start : kBlock;
      widen_for_sum(p + start, len, widened);
      total += exp_sum<V>(widened, len, shift);
    }
    return total;
  }
}

// The lanes of pass three's vector loop at the baseline ISA: SSE2 on x86-64,
// NEON on arm64.
#if defined(__GNUC__)
using BaselineLanes = f32x4;
#else
using BaselineLanes = float;
#endif

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
// Pass three compiled for AVX2 and FMA, widening included; called only where
// the CPU has both, as the build targets the baseline ISA. The compiler fuses
// the polynomial's multiply-adds, so an exponential may differ from the
// baseline code's in its last bit (both within 2 ulp of exp). See "AVX2 and
// AVX-512 exponentials" in docs/PERFORMANCE.md.
template <class T>
__attribute__((target("avx2,fma"))) float chunk_exp_sum_avx2(const T* __restrict__ p, uint32_t n,
                                                             float shift) {
  return chunk_exp_sum_in<f32x8>(p, n, shift);
}

inline bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

// The same in sixteen lanes, for CPUs with AVX-512.
template <class T>
__attribute__((target("avx512f"))) float chunk_exp_sum_avx512(const T* __restrict__ p, uint32_t n,
                                                              float shift) {
  return chunk_exp_sum_in<f32x16>(p, n, shift);
}

inline bool cpu_has_avx512() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
}
#endif

template <class T>
inline float chunk_exp_sum(const T* __restrict__ p, uint32_t n, float shift) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  if (cpu_has_avx512()) return chunk_exp_sum_avx512(p, n, shift);
  if (cpu_has_avx2()) return chunk_exp_sum_avx2(p, n, shift);
#endif
  return chunk_exp_sum_in<BaselineLanes>(p, n, shift);
}

// `s` with the elements of a NaN-free chunk whose greatest value is
// `chunk_max` added.
template <class T>
inline RowStats add_chunk(RowStats s, const T* p, uint32_t n, float chunk_max) {
  const RowStats raised = raise_max(s, chunk_max);
  return RowStats{raised.max, raised.sum + chunk_exp_sum(p, n, exp_shift(raised.max))};
}

// What a segment reports: its best key, and with kStats its pair of
// greedy_stats.h (otherwise left empty).
struct SegmentResult {
  Key key;
  RowStats stats;
};

// Result of a contiguous segment p[0, n), whose first element has row index
// first_index. n >= 1. kFlushSubnormals: rank as in flush-denormal mode
// (compared_value() in greedy_key.h); the statistics read the values as they
// are (a flushed subnormal moves a logsumexp by less than 2^-126).
template <class T, bool kStats, bool kFlushSubnormals = false>
inline SegmentResult contiguous_segment(const T* p, uint32_t n, uint32_t first_index) {
  using lane_t = typename Lanes<T>::lane_t;
  lane_t best_lane = 0;
  uint32_t best = 0;  // offset in the segment
  bool have_best = false;
  RowStats stats = empty_stats();
  constexpr uint32_t kChunk = chunk_elements<T>();
  for (uint32_t start = 0; start < n; start += kChunk) {
    const T* chunk = p + start;
    const uint32_t len = n - start < kChunk ? n - start : kChunk;
    const ChunkSummary<T> s = summarise_chunk<T, kFlushSubnormals>(chunk, len);
    if (s.has_nan) {
      // The first NaN of the segment decides it: nothing after it can win,
      // and its pair is a NaN whatever else the segment holds.
      const uint32_t j = first_nan(chunk, len);
      const float nan = Lanes<T>::to_float(chunk[j]);
      return SegmentResult{make_key(nan, first_index + start + j), RowStats{nan, 0.0f}};
    }
    if (!have_best || s.max_lane > best_lane) {
      const uint32_t j = first_equal<T, kFlushSubnormals>(chunk, len, s.max_lane);
      best_lane = s.max_lane;
      best = start + j;
      have_best = true;
    }
    if constexpr (kStats) stats = add_chunk(stats, chunk, len, lane_value<T>(s.max_lane));
  }
  return SegmentResult{
      make_key(compared_value<kFlushSubnormals>(Lanes<T>::to_float(p[best])), first_index + best), stats};
}

// The pair of elements [begin, end) of a row whose elements are `stride`
// apart: widened a block at a time into a buffer (16 KiB, in L1), and summed
// from there as a contiguous chunk is. Blocks this long keep the sum of block
// sums short: with 256-element blocks, rows of 151936 were 6e-6 off in double.
// begin < end.
constexpr uint32_t kStridedBlock = 4096;
template <class T>
inline RowStats strided_stats(const T* row, int64_t stride, uint32_t begin, uint32_t end) {
  float widened[kStridedBlock];
  RowStats stats = empty_stats();
  for (uint32_t start = begin; start < end; start += kStridedBlock) {
    const uint32_t len = end - start < kStridedBlock ? end - start : kStridedBlock;
    float greatest = -INFINITY;
    for (uint32_t i = 0; i < len; ++i) {
      widened[i] = Lanes<T>::to_float(row[static_cast<int64_t>(start + i) * stride]);
      greatest = greater_of(greatest, widened[i]);
    }
    stats = add_chunk(stats, widened, len, greatest);
  }
  return stats;
}

// Result of elements [begin, end) of a row whose elements are `stride`
// apart. Used when the vocab dimension is not contiguous; begin < end.
template <class T, bool kStats, bool kFlushSubnormals = false>
inline SegmentResult strided_segment(const T* row, int64_t stride, uint32_t begin, uint32_t end) {
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
  RowStats stats = empty_stats();
  if constexpr (kStats) stats = strided_stats(row, stride, begin, end);
  return SegmentResult{make_key(best, best_index), stats};
}

// Result of elements [begin, end) of a row; begin < end.
template <class T, bool kStats, bool kFlushSubnormals = false>
inline SegmentResult segment(const T* row, int64_t stride, uint32_t begin, uint32_t end) {
  if (stride == 1) {
    return contiguous_segment<T, kStats, kFlushSubnormals>(row + begin, end - begin, begin);
  }
  return strided_segment<T, kStats, kFlushSubnormals>(row, stride, begin, end);
}

// Key of elements [begin, end) of a row; begin < end.
template <class T, bool kFlushSubnormals = false>
inline Key segment_key(const T* row, int64_t stride, uint32_t begin, uint32_t end) {
  return segment<T, false, kFlushSubnormals>(row, stride, begin, end).key;
}

}  // namespace cpu
}  // namespace safe_greedy
