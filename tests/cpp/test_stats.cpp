// The softmax statistics of greedy_stats.h against references computed in
// double from their definitions: the exponential, pairs built element by
// element and a vector at a time and combined in random orders, validity from
// keys, and the outputs of finish_row, with NaN, infinities, empty partials
// and huge magnitudes.
#include <stdint.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "check.h"
#include "greedy_cpu.h"  // the vector type exp_nonpositive() also runs on
#include "greedy_key.h"
#include "greedy_stats.h"

using safe_greedy::Key;
using safe_greedy::RowStats;
using test::bits_of;
using test::float_of;

namespace {

const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = float_of(0x7FC00000u);

void check_exp() {
  // Every 61st negative float from -0 down to the cut-off, against exp in
  // double; the polynomial and the rounding stay within 2 ulp.
  uint64_t worst_ulps_x1000 = 0;
  for (uint32_t u = 0x80000000u; u <= bits_of(safe_greedy::kExpMinArgument); u += 61) {
    const float x = float_of(u);
    const float got = safe_greedy::exp_nonpositive(x);
    const double want = std::exp(static_cast<double>(x));
    const double ulp = std::ldexp(1.0, std::ilogb(want) - 23);
    const double ulps = std::fabs(got - want) / ulp;
    if (ulps * 1000 > worst_ulps_x1000) worst_ulps_x1000 = static_cast<uint64_t>(ulps * 1000);
    CHECK(ulps <= 2.0, "exp(%.9g): got %.9g, want %.17g (%.2f ulp)", x, got, want, ulps);
  }
  std::printf("exp_nonpositive: worst error %.3f ulp\n", worst_ulps_x1000 / 1000.0);
  CHECK(safe_greedy::exp_nonpositive(0.0f) == 1.0f);
  CHECK(safe_greedy::exp_nonpositive(-0.0f) == 1.0f);
  // Below the cut-off, at -inf and for a NaN: exactly 0, never a NaN.
  for (float x : {std::nextafter(safe_greedy::kExpMinArgument, -kInf), -100.0f, -1e30f,
                  -std::numeric_limits<float>::max(), -kInf, kNaN, -kNaN}) {
    CHECK(bits_of(safe_greedy::exp_nonpositive(x)) == 0u, "exp(%g) = %g", x,
          safe_greedy::exp_nonpositive(x));
  }
#if defined(__GNUC__)
  // The CPU kernel's four-lane version gives the scalar's bits.
  test::Rng rng(17);
  for (int i = 0; i < 200000; ++i) {
    safe_greedy::cpu::f32x4 x;
    for (int k = 0; k < 4; ++k) x[k] = -float_of(rng.bits32() & 0x7FFFFFFFu);
    const safe_greedy::cpu::f32x4 got = safe_greedy::exp_nonpositive(x);
    for (int k = 0; k < 4; ++k) {
      CHECK(bits_of(got[k]) == bits_of(safe_greedy::exp_nonpositive(x[k])), "lane %d of exp(%g)",
            k, x[k]);
    }
  }
#endif
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
// exp_nonpositive() on one vector of V's lanes, through memory: the vector
// never passes a call between code compiled for different ISAs (clang
// refuses that), as in greedy_cpu.h.
template <class V>
SG_VECTOR_INLINE void exp_lanes(const float* in, float* out) {
  V x;
  std::memcpy(&x, in, sizeof(x));
  const V y = safe_greedy::exp_nonpositive(x);
  std::memcpy(out, &y, sizeof(y));
}

// The wide exponentials as the AVX2 and AVX-512 code compiles them
// (multiply-adds fused), sixteen values at a time.
__attribute__((target("avx2,fma"))) void exp_avx2(const float* in, float* out) {
  exp_lanes<safe_greedy::cpu::f32x8>(in, out);
  exp_lanes<safe_greedy::cpu::f32x8>(in + 8, out + 8);
}

__attribute__((target("avx512f"))) void exp_avx512(const float* in, float* out) {
  exp_lanes<safe_greedy::cpu::f32x16>(in, out);
}

// The wide loops this CPU can run, with their exponential and pass three.
struct WideLoop {
  const char* name;
  bool runs;
  void (*exp16)(const float*, float*);
  float (*sum_f32)(const float*, uint32_t, float);
  float (*sum_bf16)(const safe_greedy::bf16_t*, uint32_t, float);
  float (*sum_fp16)(const safe_greedy::fp16_t*, uint32_t, float);
};

std::vector<WideLoop> wide_loops() {
  using namespace safe_greedy::cpu;
  return {
      {"AVX2", cpu_has_avx2(), exp_avx2, chunk_exp_sum_avx2<float>,
       chunk_exp_sum_avx2<safe_greedy::bf16_t>, chunk_exp_sum_avx2<safe_greedy::fp16_t>},
      {"AVX-512", cpu_has_avx512(), exp_avx512, chunk_exp_sum_avx512<float>,
       chunk_exp_sum_avx512<safe_greedy::bf16_t>, chunk_exp_sum_avx512<safe_greedy::fp16_t>},
  };
}

template <class T>
float wide_sum(const WideLoop& loop, const T* p, uint32_t n, float shift) {
  if constexpr (std::is_same<T, float>::value) return loop.sum_f32(p, n, shift);
  if constexpr (std::is_same<T, safe_greedy::bf16_t>::value) return loop.sum_bf16(p, n, shift);
  if constexpr (std::is_same<T, safe_greedy::fp16_t>::value) return loop.sum_fp16(p, n, shift);
}

// A wide exponential over every 61st negative float down to the cut-off,
// within 2 ulp of exp in double, as the scalar code (check_exp); exactly 0
// below the cut-off, at -inf and for a NaN; 1 at zero.
void check_wide_exp(const WideLoop& loop) {
  float in[16], out[16];
  int filled = 0;
  uint64_t worst_ulps_x1000 = 0;
  auto check_lanes = [&](int lanes) {
    loop.exp16(in, out);
    for (int k = 0; k < lanes; ++k) {
      const double want = std::exp(static_cast<double>(in[k]));
      const double ulp = std::ldexp(1.0, std::ilogb(want) - 23);
      const double ulps = std::fabs(out[k] - want) / ulp;
      if (ulps * 1000 > worst_ulps_x1000) worst_ulps_x1000 = static_cast<uint64_t>(ulps * 1000);
      CHECK(ulps <= 2.0, "%s exp(%.9g): got %.9g, want %.17g", loop.name, in[k], out[k], want);
    }
  };
  for (uint32_t u = 0x80000000u; u <= bits_of(safe_greedy::kExpMinArgument); u += 61) {
    in[filled++] = float_of(u);
    if (filled == 16) {
      check_lanes(16);
      filled = 0;
    }
  }
  if (filled > 0) {
    for (int k = filled; k < 16; ++k) in[k] = 0.0f;
    check_lanes(filled);
  }
  std::printf("%s exp_nonpositive: worst error %.3f ulp\n", loop.name, worst_ulps_x1000 / 1000.0);
  const float edges[16] = {std::nextafter(safe_greedy::kExpMinArgument, -kInf), -100.0f, -1e30f,
                           -kInf, kNaN, -kNaN, 0.0f, -0.0f, -kInf, kNaN, -1e30f, -100.0f,
                           -0.0f, 0.0f, -kNaN, -88.0f};
  std::memcpy(in, edges, sizeof(in));
  loop.exp16(in, out);
  for (int k : {0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 14, 15}) {
    CHECK(bits_of(out[k]) == 0u, "%s exp(%g) = %g", loop.name, in[k], out[k]);
  }
  CHECK(out[6] == 1.0f && out[7] == 1.0f && out[12] == 1.0f && out[13] == 1.0f);
}
#endif

// Chunks of `n` values of storage type T, and the sum in double of exp(x -
// shift) over their values as pass three widens them.
template <class T>
double widened_exp_sum(const std::vector<T>& chunk, uint32_t n, float shift) {
  double sum = 0.0;
  for (uint32_t i = 0; i < n; ++i) {
    const float x = safe_greedy::cpu::Lanes<T>::to_float_for_sum(chunk[i]);
    sum += std::exp(static_cast<double>(x) - shift);
  }
  return sum;
}

template <class T>
T storage_of(float x);
template <>
float storage_of<float>(float x) { return x; }
template <>
safe_greedy::bf16_t storage_of<safe_greedy::bf16_t>(float x) {
  return safe_greedy::bf16_t{test::truncated_bf16_bits(x)};
}
template <>
safe_greedy::fp16_t storage_of<safe_greedy::fp16_t>(float x) {
  return safe_greedy::fp16_t{test::truncated_fp16_bits(x)};
}

// Pass three of the CPU kernel (chunk_exp_sum: the vector loop the CPU gets,
// then a scalar tail; 16-bit chunks widened a block at a time) against the
// sum in double, at lengths around every multiple of its loop's step and of
// the widening block; the baseline loop and every wide loop this CPU runs.
template <class T>
void check_exp_sums_of(test::Rng& rng) {
  std::vector<T> chunk(1100);
  for (uint32_t n : {0u, 1u, 7u, 15u, 16u, 17u, 31u, 32u, 33u, 63u, 64u, 65u, 100u, 255u, 256u,
                     257u, 1000u, 1100u}) {
    for (int trial = 0; trial < 20; ++trial) {
      // Values below a shift of 3, in fp16's normal range; some far below
      // (terms of 0).
      for (uint32_t i = 0; i < n; ++i) {
        const double u = static_cast<double>(rng.bits32()) / 4294967296.0;
        chunk[i] = storage_of<T>(static_cast<float>(trial % 4 == 0 ? 2.5 - 200.0 * u : 2.5 - 12.0 * u));
      }
      const float shift = 3.0f;
      const double want = widened_exp_sum(chunk, n, shift);
      auto close = [&](float got) { return std::fabs(got - want) <= 2e-6 * want + 1e-30; };
      const float got = safe_greedy::cpu::chunk_exp_sum(chunk.data(), n, shift);
      CHECK(close(got), "chunk_exp_sum of %u values: %.9g, want %.17g", n, got, want);
      const float baseline =
          safe_greedy::cpu::chunk_exp_sum_in<safe_greedy::cpu::BaselineLanes>(chunk.data(), n, shift);
      CHECK(close(baseline), "baseline chunk_exp_sum of %u values: %.9g, want %.17g", n, baseline, want);
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
      for (const WideLoop& loop : wide_loops()) {
        if (!loop.runs) continue;
        const float wide = wide_sum(loop, chunk.data(), n, shift);
        CHECK(close(wide), "%s chunk_exp_sum of %u values: %.9g, want %.17g", loop.name, n, wide, want);
      }
#endif
    }
  }
}

void check_exp_sums() {
  test::Rng rng(29);
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  for (const WideLoop& loop : wide_loops()) {
    std::printf("%s loop: %s\n", loop.name, loop.runs ? "checked" : "not on this CPU");
    if (loop.runs) check_wide_exp(loop);
  }
#endif
  check_exp_sums_of<float>(rng);
  check_exp_sums_of<safe_greedy::bf16_t>(rng);
  check_exp_sums_of<safe_greedy::fp16_t>(rng);
}

// A pair built the way the GPU kernel builds it: one raise_max per vector of
// `width` elements (by the vector's greatest value), then one term per element.
RowStats by_vectors(const float* v, size_t n, size_t width) {
  RowStats s = safe_greedy::empty_stats();
  for (size_t start = 0; start < n; start += width) {
    const size_t end = start + width < n ? start + width : n;
    float greatest = v[start];
    for (size_t i = start + 1; i < end; ++i) greatest = safe_greedy::greater_of(greatest, v[i]);
    s = safe_greedy::raise_max(s, greatest);
    const float shift = safe_greedy::exp_shift(s.max);
    for (size_t i = start; i < end; ++i) s.sum += safe_greedy::term(v[i], shift);
  }
  return s;
}

// Uniform in [centre - spread, centre + spread].
float uniform(test::Rng& rng, float centre, float spread) {
  const double unit = static_cast<double>(rng.below(1u << 24)) / (1u << 24);
  return static_cast<float>(centre + spread * (2 * unit - 1));
}

// A value of one of the kinds that matter here.
float draw_value(test::Rng& rng, float centre, float spread) {
  switch (rng.below(16)) {
    case 0:
      return -kInf;
    case 1:
      return rng.below(8) == 0 ? kInf : -kInf;
    case 2:
      // A NaN of either sign and any payload, now and then.
      return rng.below(16) == 0 ? float_of(0x7F800000u | (1 + static_cast<uint32_t>(rng.below(1u << 22))) |
                                           (rng.below(2) ? 0x80000000u : 0u))
                                : -1e30f;
    case 3:
      return rng.below(2) ? -0.0f : 0.0f;
    default:
      return uniform(rng, centre, spread);
  }
}

void check_pairs() {
  test::Rng rng(2024);
  const float centres[] = {0.0f, -5.0f, 20000.0f, -20000.0f, 1e30f, -1e30f};
  const float spreads[] = {0.0f, 1.0f, 30.0f, 200.0f};
  for (int round = 0; round < 20000; ++round) {
    const size_t n = 1 + static_cast<size_t>(rng.below(round % 10 == 0 ? 3000 : 40));
    const float centre = centres[rng.below(6)];
    const float spread = spreads[rng.below(4)];
    std::vector<float> v(n);
    // Mostly finite rows; some with the special values drawn in.
    const bool specials = rng.below(3) == 0;
    for (float& x : v) {
      x = specials ? draw_value(rng, centre, spread) : uniform(rng, centre, spread);
    }
    if (rng.below(8) == 0) {  // all -inf but one finite entry, or none
      for (float& x : v) x = -kInf;
      if (rng.below(2)) v[rng.below(n)] = static_cast<float>(centre);
    }
    const double want = test::reference_logsumexp(v);

    // Element by element, and by vectors of 4 and 8.
    RowStats one = safe_greedy::empty_stats();
    for (float x : v) one = safe_greedy::add_element(one, x);
    CHECK(test::agrees_with_reference(safe_greedy::logsumexp_of(one), want), "element by element, n=%zu: %.9g, want %.17g",
          n, safe_greedy::logsumexp_of(one), want);
    for (size_t width : {size_t{4}, size_t{8}}) {
      const RowStats s = by_vectors(v.data(), n, width);
      CHECK(test::agrees_with_reference(safe_greedy::logsumexp_of(s), want), "vectors of %zu, n=%zu: %.9g, want %.17g",
            width, n, safe_greedy::logsumexp_of(s), want);
    }

    // Cut into parts (some empty), each built by vectors, combined in a
    // random order.
    std::vector<RowStats> parts;
    for (size_t start = 0; start < n;) {
      const size_t len = static_cast<size_t>(rng.below(n - start + 1));
      parts.push_back(by_vectors(v.data() + start, len, 4));
      start += len;
      if (rng.below(4) == 0) parts.push_back(safe_greedy::empty_stats());
    }
    while (parts.size() > 1) {
      const size_t i = static_cast<size_t>(rng.below(parts.size()));
      size_t j = static_cast<size_t>(rng.below(parts.size() - 1));
      if (j >= i) ++j;
      parts[i] = safe_greedy::combine_stats(parts[i], parts[j]);
      parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(j));
    }
    const RowStats combined = parts[0];
    CHECK(test::agrees_with_reference(safe_greedy::logsumexp_of(combined), want), "combined, n=%zu: %.9g, want %.17g", n,
          safe_greedy::logsumexp_of(combined), want);

    // The chosen token's log-probability, against log_softmax in double.
    Key best = safe_greedy::kEmptyKey;
    for (size_t i = 0; i < n; ++i) {
      best = safe_greedy::max_key(best, safe_greedy::make_key(v[i], static_cast<uint32_t>(i)));
    }
    const uint32_t chosen = safe_greedy::key_index(best);
    const safe_greedy::RowResult r = safe_greedy::finish_row(best, combined, safe_greedy::kNoFallback);
    const double max = std::isfinite(want) ? static_cast<double>(v[chosen]) : 0.0;
    double lp_want;
    if (!std::isfinite(want)) {
      lp_want = std::nan("");  // NaN row, +inf chosen (+inf - +inf), all -inf (-inf - -inf)
    } else {
      double sum = 0;
      for (float x : v) sum += std::exp(static_cast<double>(x) - max);
      lp_want = -std::log(sum);
    }
    CHECK(test::agrees_with_reference(r.logprob, lp_want), "logprob, n=%zu: %.9g, want %.17g", n, r.logprob, lp_want);
    CHECK(r.index == chosen);
    CHECK(test::agrees_with_reference(r.logsumexp, want));
  }
  // The empty pair adds nothing, whatever it meets, in either order.
  for (float m : {-kInf, -1e30f, -5.0f, 0.0f, 3.0f, 1e30f}) {
    const RowStats s{m, m == -kInf ? 0.0f : 2.5f};
    for (const RowStats& c : {safe_greedy::combine_stats(s, safe_greedy::empty_stats()),
                              safe_greedy::combine_stats(safe_greedy::empty_stats(), s)}) {
      CHECK(bits_of(c.max) == bits_of(s.max) && bits_of(c.sum) == bits_of(s.sum),
            "empty combined with {%g, %g} gives {%g, %g}", s.max, s.sum, c.max, c.sum);
    }
  }
}

void check_validity() {
  struct Case {
    float value;
    bool valid;
  };
  const Case cases[] = {
      {kNaN, false},          {-kNaN, false},          {float_of(0x7F800001u), false},
      {-kInf, false},         {kInf, true},            {-std::numeric_limits<float>::max(), true},
      {-0.0f, true},          {0.0f, true},            {float_of(0x80000001u), true},
      {-1e30f, true},         {1.0f, true},
  };
  for (const Case& c : cases) {
    for (uint32_t index : {0u, 7u, 0x7FFFFFFEu}) {
      const Key key = safe_greedy::make_key(c.value, index);
      CHECK(safe_greedy::key_is_valid(key) == c.valid, "key of %g (bits 0x%08X)", c.value,
            bits_of(c.value));
      // The fallback replaces exactly the invalid rows' index.
      const safe_greedy::RowResult r =
          safe_greedy::finish_row(key, RowStats{c.value, 1.0f}, 42);
      CHECK(r.valid == c.valid);
      CHECK(r.index == (c.valid ? index : 42u), "fallback for %g: index %u", c.value, r.index);
      const safe_greedy::RowResult plain =
          safe_greedy::finish_row(key, RowStats{c.value, 1.0f}, safe_greedy::kNoFallback);
      CHECK(plain.index == index);
      // Invalid rows and the chosen +inf have a NaN log-probability.
      CHECK(std::isnan(r.logprob) == (!c.valid || c.value == kInf), "logprob of %g: %g", c.value,
            r.logprob);
    }
  }
  CHECK(!safe_greedy::key_is_valid(safe_greedy::kEmptyKey));
  // A row of one finite element: log-probability exactly +0.0, as torch.
  const safe_greedy::RowResult one = safe_greedy::finish_row(
      safe_greedy::make_key(3.0f, 0), safe_greedy::add_element(safe_greedy::empty_stats(), 3.0f),
      safe_greedy::kNoFallback);
  CHECK(bits_of(one.logprob) == 0u && one.logsumexp == 3.0f, "one element: %g, %g", one.logprob,
        one.logsumexp);
}

// The CPU kernel's widening of fp16 for its sums of exp, on all 65536
// inputs: the bits of the exact conversion.
void check_fp16_widening_for_sums() {
  for (uint32_t h = 0; h < 65536; ++h) {
    const safe_greedy::fp16_t x{static_cast<uint16_t>(h)};
    const uint32_t got = bits_of(safe_greedy::cpu::Lanes<safe_greedy::fp16_t>::to_float_for_sum(x));
    const uint32_t want = bits_of(safe_greedy::fp16_bits_to_float(x.bits));
    CHECK(got == want, "fp16 0x%04X: 0x%08X, want 0x%08X", h, got, want);
  }
}

}  // namespace

int main() {
  check_exp();
  check_exp_sums();
  check_fp16_widening_for_sums();
  check_pairs();
  check_validity();
  return test::finish("test_stats");
}
