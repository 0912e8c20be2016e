// The ordering rule of greedy_sample, shared by the CPU and GPU kernels.
//
// torch.argmax over a row returns the index of the first NaN if the row has
// one, otherwise the lowest index among the elements equal to the maximum
// (IEEE equality: -0.0 ties +0.0, -inf ties -inf). Everything in this file
// exists to reproduce exactly that, whatever order the elements are visited in.
//
// The central object is a 64-bit key:
//   high 32 bits: an order-preserving image of the value, with every NaN mapped
//                 to one image above +inf and -0.0 mapped to +0.0;
//   low 32 bits:  0xFFFFFFFF - index, so that among equal values the lowest
//                 index has the largest key.
// The largest key of a row is the torch answer, so partial results can be
// combined with a plain unsigned max in any order (threads, warps, blocks,
// CPU chunks). Key 0 is below every real key and is the empty result.
//
// This header is torch-free and compiles as plain C++, CUDA and HIP.
#pragma once

#include <stdint.h>
#include <string.h>

#if defined(__HIPCC__)
#include <hip/hip_runtime.h>  // defines __forceinline__ for clang's HIP mode
#endif

#if defined(__CUDACC__) || defined(__HIPCC__)
#define SG_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define SG_HOST_DEVICE inline
#endif

namespace safe_greedy {

using Key = uint64_t;

// The empty result: smaller than the key of any element.
constexpr Key kEmptyKey = 0;

// The longest row: indices fit the key's 32-bit field, and loops that step an
// index past the end of a row (by a block or a chunk) cannot wrap around.
constexpr uint64_t kMaxVocab = 0x7FFFFFFFull;

SG_HOST_DEVICE uint32_t float_bits(float v) {
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
  return __float_as_uint(v);
#else
  uint32_t u;
  memcpy(&u, &v, sizeof(u));
  return u;
#endif
}

SG_HOST_DEVICE float bits_to_float(uint32_t u) {
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
  return __uint_as_float(u);
#else
  float v;
  memcpy(&v, &u, sizeof(v));
  return v;
#endif
}

// Order-preserving image of a float: a < b  <=>  image(a) < image(b) for
// non-NaN a, b, with image(-0.0) == image(+0.0) and every NaN (any sign, any
// payload) above image(+inf). The smallest image produced is image(-inf) =
// 0x007FFFFF, so an image of 0 never occurs.
SG_HOST_DEVICE uint32_t order_image(float v) {
  uint32_t u = float_bits(v);
  // Decided on the bits, so that no floating-point flag can change it.
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0xFFFFFFFFu;  // NaN: above +inf
  if ((u << 1) == 0) u = 0;                                  // -0.0 -> +0.0
  // Positive floats: set the sign bit so they sit above all negatives.
  // Negative floats: flip every bit so larger magnitudes sort lower.
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// The value a key ranks: the inverse of order_image() on the key's high half,
// except that a NaN key gives a quiet NaN (sign and payload are not kept) and
// zeros give +0.0. The empty key gives -inf, which ties every value below.
SG_HOST_DEVICE float key_value(Key key) {
  uint32_t image = static_cast<uint32_t>(key >> 32);
  if (image == 0xFFFFFFFFu) return bits_to_float(0x7FC00000u);
  if (image < 0x007FFFFFu) image = 0x007FFFFFu;  // below image(-inf): the empty key
  return bits_to_float((image & 0x80000000u) ? (image & 0x7FFFFFFFu) : ~image);
}

SG_HOST_DEVICE Key make_key(float v, uint32_t index) {
  return (static_cast<Key>(order_image(v)) << 32) |
         static_cast<Key>(0xFFFFFFFFu - index);
}

SG_HOST_DEVICE uint32_t key_index(Key key) {
  return 0xFFFFFFFFu - static_cast<uint32_t>(key);
}

SG_HOST_DEVICE Key max_key(Key a, Key b) { return a > b ? a : b; }

// The signed form of a key, for collectives (all-reduce offers a max of
// signed 64-bit integers, not of unsigned ones). Flipping the top bit maps
// [0, 2^64) onto [-2^63, 2^63) in the same order: for any keys a, b,
// a < b  <=>  to_signed_key(a) < to_signed_key(b). So a signed max of signed
// keys, in any order and grouping, is the signed form of the largest key.
// The empty key becomes INT64_MIN, below every element's signed key
// (including an all -inf row's: its image, 0x007FFFFF, is not 0); the signed
// key of a NaN at index i is above that of every non-NaN, and among NaNs, or
// among equal values, the lowest index has the largest signed key.
constexpr Key kKeyTopBit = 0x8000000000000000ull;

SG_HOST_DEVICE int64_t to_signed_key(Key key) { return static_cast<int64_t>(key ^ kKeyTopBit); }

SG_HOST_DEVICE Key from_signed_key(int64_t signed_key) {
  return static_cast<Key>(signed_key) ^ kKeyTopBit;
}

// to_signed_key(kEmptyKey), INT64_MIN: the signed key of nothing.
constexpr int64_t kEmptySignedKey = static_cast<int64_t>(kEmptyKey ^ kKeyTopBit);

// The same rule in the float domain, for the hot loops, which visit the
// elements of one running maximum in increasing index order: `v` (at a higher
// index than `best`) replaces `best` exactly when make_key(v, later) >
// make_key(best, earlier). A NaN replaces any non-NaN and is never replaced;
// ties (including -0.0 vs +0.0) keep the earlier element.
SG_HOST_DEVICE bool replaces(float v, float best) {
  return !(v <= best) && (best == best);
}

// A value that ties the greater of `a` and `b` under the same rule: a NaN if
// either is one, otherwise the larger (either of -0.0 and +0.0, which tie).
// Order-free, so a vector's elements can be reduced to their greatest value
// in any grouping; which index holds it is found afterwards (see
// BestVector in greedy_gpu_item_loops.cuh).
SG_HOST_DEVICE float greater_of(float a, float b) {
  return (a != a || a > b) ? a : b;
}

// The rule in flush-denormal mode (torch.set_flush_denormal(True): x86's
// MXCSR.DAZ, arm64's FPCR.FZ), where the CPU reads every subnormal fp32 operand
// as a zero. There torch.argmax on the CPU ranks fp32 subnormals, and bf16 ones
// (which widen to fp32 subnormals), as zeros: they tie with +-0.0 and with each
// other. fp16 subnormals widen to normal fp32 values and keep their order. So
// the mode's rule is: widen, flush, then the rule above. Decided on the bits,
// so it does not depend on the mode of the thread that runs it.
SG_HOST_DEVICE float flush_subnormal(float v) {
  return (float_bits(v) & 0x7F800000u) == 0 ? 0.0f : v;
}

// The value the rule compares: `v` itself, or flushed in flush-denormal mode.
// A template flag, so the default kernels carry no per-element test for it.
template <bool kFlushSubnormals>
SG_HOST_DEVICE float compared_value(float v) {
  return kFlushSubnormals ? flush_subnormal(v) : v;
}

// fp16 and bf16 widen to fp32 exactly; comparing the widened values is the
// same as comparing the originals.
SG_HOST_DEVICE float bf16_bits_to_float(uint16_t b) {
  return bits_to_float(static_cast<uint32_t>(b) << 16);
}

// Portable IEEE binary16 -> binary32 (the GPU kernels use the hardware
// conversion instead; tests check that both agree on all 65536 inputs).
SG_HOST_DEVICE float fp16_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1Fu;
  uint32_t mantissa = h & 0x3FFu;
  if (exponent == 0x1Fu) {  // inf or NaN: keep the payload
    return bits_to_float(sign | 0x7F800000u | (mantissa << 13));
  }
  if (exponent == 0) {
    if (mantissa == 0) return bits_to_float(sign);  // +-0
    // Subnormal: normalise the mantissa.
    exponent = 113;  // 127 - 15 + 1
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    mantissa &= 0x3FFu;
    return bits_to_float(sign | (exponent << 23) | (mantissa << 13));
  }
  return bits_to_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

// Storage tags for the 16-bit formats: the kernels are templated on these so
// that the header needs neither torch's nor the vendors' half types.
struct bf16_t {
  uint16_t bits;
};
struct fp16_t {
  uint16_t bits;
};

}  // namespace safe_greedy
