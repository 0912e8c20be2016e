// What a 16-byte vector of each storage type holds: its elements widened to
// float, and its greatest element (any NaN gives a NaN).
#pragma once

#include <stdint.h>

#include "greedy_gpu_platform.cuh"
#include "greedy_key.h"

namespace safe_greedy {
namespace gpu {

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

}  // namespace gpu
}  // namespace safe_greedy
