// The softmax statistics behind greedy_sample's extra outputs (logsumexp, the
// chosen token's log-probability, validity), shared by the CPU and GPU kernels
// as greedy_key.h shares the ordering.
//
// A partial result over any set of elements is a RowStats pair:
//   max: the greatest element (a NaN if any element is one, see greater_of),
//   sum: the sum of exp(x - shift(max)) over the elements,
// where shift(max) is max itself, or 0 when max is -inf. The shift keeps
// exp(-inf - -inf) (a NaN) out of the sum: elements at -inf contribute
// exp(-inf) = 0, and an empty or all -inf partial is {-inf, 0}, which adds
// nothing to whatever it is combined with. Every exponent is at most 0 where
// max is finite, so the sum cannot overflow (logits near 2e4 included).
//
// Pairs combine in any order (threads, warps, blocks, split items, CPU
// chunks and segments); finite results then differ only by rounding. Where
// max is a NaN or +-inf the sum is meaningless (it may be a NaN) and the
// outputs come from max alone, exactly as torch gives them.
//
// This header is torch-free and compiles as plain C++, CUDA and HIP.
#pragma once

#include <math.h>
#include <stdint.h>

#include "greedy_key.h"

namespace safe_greedy {

struct RowStats {
  float max;
  float sum;
};

SG_HOST_DEVICE RowStats empty_stats() { return RowStats{-INFINITY, 0.0f}; }

SG_HOST_DEVICE float quiet_nan() { return bits_to_float(0x7FC00000u); }

// Where exp_nonpositive() returns 0: exp(-87) is still a normal float, and
// anything smaller is below the rounding of a sum that holds exp(0) = 1.
constexpr float kExpMinArgument = -87.0f;

// Bit access for the types exp_nonpositive() runs on: float here, and the
// CPU kernel's vector type in greedy_cpu.h.
template <class V>
struct ExpLanes;

template <>
struct ExpLanes<float> {
  using bits_t = int32_t;
  static inline bits_t to_bits(float x) { return static_cast<int32_t>(float_bits(x)); }
  static inline float from_bits(bits_t b) { return bits_to_float(static_cast<uint32_t>(b)); }
  static inline float splat(float x) { return x; }
};

// Forced inline under GCC and clang, for what the CPU kernel runs on vector
// types inside functions built for a wider ISA (greedy_cpu.h), where a call
// would pass them by a different ABI than the callee's.
#if defined(__GNUC__)
#define SG_VECTOR_INLINE __attribute__((always_inline)) inline
#else
#define SG_VECTOR_INLINE inline
#endif

// exp(x) for x <= 0 with plain arithmetic only, so that the CPU kernel's
// compiler vectorises it at the baseline ISA (no vector exp there, and no
// -ffast-math may reach the kernels). x = k ln2 + r with |r| <= ln2 / 2, and
// e^r by its Taylor polynomial of degree 7 (remainder below 2^-27 relative).
// Below kExpMinArgument, and for a NaN, it returns 0.
template <class V>
SG_VECTOR_INLINE V exp_nonpositive(V x) {
  using E = ExpLanes<V>;
  const V low = E::splat(kExpMinArgument);
  const V clamped = x >= low ? x : low;
  // Rounds x / ln2 to the nearest integer k: adding 1.5 * 2^23 leaves k in
  // the low mantissa bits. Written out in full, so no compiler may fold it.
  const V magic = E::splat(12582912.0f);
  const V shifted = clamped * E::splat(1.44269504088896341f) + magic;
  const V k = shifted - magic;
  // ln2 in two parts; k * kLn2High is exact for the |k| <= 126 that occur.
  const V r = (clamped - k * E::splat(0.693359375f)) - k * E::splat(-2.12194440e-4f);
  V p = E::splat(1.0f / 5040.0f);
  p = p * r + E::splat(1.0f / 720.0f);
  p = p * r + E::splat(1.0f / 120.0f);
  p = p * r + E::splat(1.0f / 24.0f);
  p = p * r + E::splat(1.0f / 6.0f);
  p = p * r + E::splat(0.5f);
  p = p * r + E::splat(1.0f);
  p = p * r + E::splat(1.0f);
  // 2^k from k's bits: k + 127 in the exponent field, 1 <= k + 127 <= 127.
  const auto k_bits = E::to_bits(shifted) - E::to_bits(magic);
  const V scale = E::from_bits((k_bits + 127) << 23);
  return x >= low ? p * scale : E::splat(0.0f);
}

// exp(x) for x <= 0 (and whatever, never a trap, for a NaN). The GPU uses its
// exp2 unit (one MUFU.EX2 on CUDA, flushing results below 2^-126 to zero,
// which no sum that holds exp(0) = 1 can tell): the rounding of x * log2(e)
// costs at most |x| * 2^-24 relative, about 5e-6 at x = -87, and less where
// terms weigh in the sum.
SG_HOST_DEVICE float stats_exp(float x) {
#if defined(__CUDA_ARCH__)
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x * 1.44269504088896341f));
  return y;
#elif defined(__HIP_DEVICE_COMPILE__)
  return exp2f(x * 1.44269504088896341f);
#else
  return exp_nonpositive(x);
#endif
}

// What the exponents of a partial with this maximum are taken relative to.
SG_HOST_DEVICE float exp_shift(float max) { return max == -INFINITY ? 0.0f : max; }

// The sum of `s` rescaled to the shift of a maximum at least its own: the
// one exponential every combination of partials takes per partial.
SG_HOST_DEVICE float sum_at(RowStats s, float shift) { return s.sum * stats_exp(s.max - shift); }

// The partial `s` with its maximum raised to include `greatest`, the greatest
// of elements about to be added (term() gives their exponentials): the sum is
// rescaled once for all of them.
SG_HOST_DEVICE RowStats raise_max(RowStats s, float greatest) {
  const float max = greater_of(s.max, greatest);
  return RowStats{max, sum_at(s, exp_shift(max))};
}

// One element's share of the sum of a partial whose shift is `shift`.
SG_HOST_DEVICE float term(float x, float shift) { return stats_exp(x - shift); }

// `s` with one more element: for scalar heads and tails, and strided rows.
SG_HOST_DEVICE RowStats add_element(RowStats s, float x) {
  const RowStats raised = raise_max(s, x);
  return RowStats{raised.max, raised.sum + term(x, exp_shift(raised.max))};
}

// The pair of the union of two partials' elements.
SG_HOST_DEVICE RowStats combine_stats(RowStats a, RowStats b) {
  const float max = greater_of(a.max, b.max);
  const float shift = exp_shift(max);
  return RowStats{max, sum_at(a, shift) + sum_at(b, shift)};
}

SG_HOST_DEVICE bool is_finite_value(float x) { return x - x == 0.0f; }

// logsumexp of the row, given log(s.sum): torch's NaN, +inf and -inf where
// max is one of them.
SG_HOST_DEVICE float logsumexp_with(RowStats s, float log_sum) {
  return is_finite_value(s.max) ? s.max + log_sum : s.max;
}

SG_HOST_DEVICE float logsumexp_of(RowStats s) { return logsumexp_with(s, logf(s.sum)); }

// Whether the row holds no NaN and its maximum is above -inf, from its best
// key: a NaN has the highest image, an all -inf row's best key the lowest.
SG_HOST_DEVICE bool key_is_valid(Key best) {
  const uint32_t image = static_cast<uint32_t>(best >> 32);
  return image != 0xFFFFFFFFu && image > order_image(-INFINITY);
}

// What greedy_sample writes for one row.
struct RowResult {
  uint32_t index;   // the token: torch.argmax, or the fallback for an invalid row
  float logprob;    // log_softmax(row)[index]
  float logsumexp;  // logsumexp(row)
  bool valid;
};

// No fallback token: every row gets torch.argmax.
constexpr int64_t kNoFallback = -1;

// The row's outputs from its best key and its pair. The chosen token of a row
// with a finite maximum is an element equal to the maximum, so its
// log-probability is (x - max) - log(sum) = 0 - log(sum): computed so, not as
// x - logsumexp, which would lose the digits of log(sum) to the rounding of
// max + log(sum) when |max| is large. Every other row gives a NaN, as
// torch's log_softmax does there: a NaN row, an all -inf row (-inf - -inf),
// and the chosen +inf (+inf - +inf); the fallback token of an invalid row
// lies in such a row too.
SG_HOST_DEVICE RowResult finish_row(Key best, RowStats s, int64_t fallback_token) {
  RowResult r;
  r.valid = key_is_valid(best);
  r.index = (r.valid || fallback_token == kNoFallback) ? key_index(best)
                                                       : static_cast<uint32_t>(fallback_token);
  // One logarithm for both outputs: the compiler does not merge two calls.
  const float log_sum = logf(s.sum);
  r.logsumexp = logsumexp_with(s, log_sum);
  r.logprob = r.valid && is_finite_value(s.max) ? 0.0f - log_sum : quiet_nan();
  return r;
}

// Where the extra outputs of greedy_sample go (null where not requested; the
// strides are in elements), and the fallback token.
struct ExtraOutputs {
  float* logprobs = nullptr;
  int64_t logprobs_stride = 0;
  float* logsumexp = nullptr;
  int64_t logsumexp_stride = 0;
  bool* valid = nullptr;
  int64_t valid_stride = 0;
  int64_t fallback_token = kNoFallback;
  // Whether any output needs the pairs; valid and the fallback need only keys.
  SG_HOST_DEVICE bool needs_stats() const { return logprobs != nullptr || logsumexp != nullptr; }
};

// Writes row `row`'s outputs from its best key and its pair.
template <class IndexT>
SG_HOST_DEVICE void write_row(IndexT* out, int64_t out_stride, const ExtraOutputs& outputs,
                              int64_t row, Key best, RowStats s) {
  // Every destination is read before the row's outputs are computed, so that
  // the GPU issues those parameter reads together and predicates the stores,
  // instead of one read behind each null test (see "the row's end, side by
  // side" in docs/PERFORMANCE.md).
  const int64_t logprobs_at = row * outputs.logprobs_stride;
  const int64_t logsumexp_at = row * outputs.logsumexp_stride;
  const int64_t valid_at = row * outputs.valid_stride;
  float* const logprobs = outputs.logprobs;
  float* const logsumexp = outputs.logsumexp;
  bool* const valid = outputs.valid;
  const RowResult r = finish_row(best, s, outputs.fallback_token);
  out[row * out_stride] = static_cast<IndexT>(r.index);
  if (logprobs != nullptr) logprobs[logprobs_at] = r.logprob;
  if (logsumexp != nullptr) logsumexp[logsumexp_at] = r.logsumexp;
  if (valid != nullptr) valid[valid_at] = r.valid;
}

}  // namespace safe_greedy
