// The ordering rule of csrc/kernels/greedy_key.h (and the CPU kernel's integer lanes)
// against torch.argmax's rule written directly, exhaustively where the domain
// allows it (every fp16 and bf16 pattern, every fp32 pattern for the image) and
// on special and random values elsewhere.
#include <stdint.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "check.h"
#include "greedy_cpu.h"
#include "greedy_key.h"

using safe_greedy::bf16_t;
using safe_greedy::fp16_t;
using safe_greedy::Key;
using safe_greedy::make_key;
using safe_greedy::order_image;
using test::bits_of;
using test::float_of;

namespace {

constexpr uint32_t kQuietBit = 0x00400000u;

// NaN in, NaN out, with the sign and the payload kept; whether a signalling
// NaN comes out quieted is the only freedom a conversion has.
bool same_nan(uint32_t got, uint32_t want) {
  return test::is_nan_bits(got) && (got | kQuietBit) == (want | kQuietBit);
}

// One widened value against a reference: equal bits, or NaN for NaN.
void check_widened(const char* format, uint16_t b, uint32_t got, uint32_t want, const char* who) {
  if (test::is_nan_bits(want)) {
    CHECK(same_nan(got, want), "%s 0x%04X -> 0x%08X, %s gives NaN 0x%08X", format, b, got, who,
          want);
  } else {
    CHECK(got == want, "%s 0x%04X -> 0x%08X, %s gives 0x%08X", format, b, got, who, want);
  }
}

void test_fp16_widening() {
  for (uint32_t h = 0; h <= 0xFFFFu; ++h) {
    const uint16_t b = static_cast<uint16_t>(h);
    const uint32_t got = bits_of(safe_greedy::fp16_bits_to_float(b));
    check_widened("fp16", b, got, bits_of(test::ref_fp16_to_float(b)), "the reference");
#if defined(__FLT16_MAX__)
    // The compiler's own conversion, where it has one, as a second opinion.
    _Float16 native;
    memcpy(&native, &b, sizeof(b));
    check_widened("fp16", b, got, bits_of(static_cast<float>(native)), "_Float16");
#endif
  }
}

void test_bf16_widening() {
  for (uint32_t h = 0; h <= 0xFFFFu; ++h) {
    const uint16_t b = static_cast<uint16_t>(h);
    check_widened("bf16", b, bits_of(safe_greedy::bf16_bits_to_float(b)),
                  bits_of(test::ref_bf16_to_float(b)), "the reference");
  }
}

// One pair of elements at indices i < j: the keys, the float-domain rule and
// torch's rule must all pick the same one.
void check_pair(uint32_t a_bits, uint32_t b_bits, uint32_t i, uint32_t j) {
  const float a = float_of(a_bits);
  const float b = float_of(b_bits);
  const bool later = test::later_wins(a, b);
  const Key ka = make_key(a, i);
  const Key kb = make_key(b, j);
  CHECK((kb > ka) == later, "a=0x%08X@%u b=0x%08X@%u: key says %s wins", a_bits, i, b_bits, j,
        kb > ka ? "later" : "earlier");
  CHECK(ka != kb, "a=0x%08X@%u b=0x%08X@%u: equal keys", a_bits, i, b_bits, j);
  CHECK(safe_greedy::replaces(b, a) == later, "replaces(0x%08X, 0x%08X) = %d, torch says %d",
        b_bits, a_bits, static_cast<int>(safe_greedy::replaces(b, a)), static_cast<int>(later));
  CHECK(safe_greedy::key_index(ka) == i && safe_greedy::key_index(kb) == j,
        "key_index lost 0x%08X@%u or 0x%08X@%u", a_bits, i, b_bits, j);
  CHECK(ka > safe_greedy::kEmptyKey && kb > safe_greedy::kEmptyKey, "key not above empty");
  CHECK(safe_greedy::max_key(ka, kb) == (later ? kb : ka), "max_key");
}

const uint32_t kIndexPairs[][2] = {
    {0, 1}, {1, 2}, {7, 123456}, {0, 0xFFFFFFFEu}, {0xFFFFFFFDu, 0xFFFFFFFEu}, {65535, 65536},
};

void test_special_pairs() {
  const std::vector<uint32_t> specials = test::special_fp32_bits();
  for (uint32_t a : specials) {
    for (uint32_t b : specials) {
      for (const auto& ij : kIndexPairs) check_pair(a, b, ij[0], ij[1]);
    }
  }
}

// Random pairs: uniform bit patterns (all exponents, a few NaNs), neighbours
// one ulp apart, and pairs with one special member, so every pair class shows
// up many times.
void test_random_pairs() {
  test::Rng rng(0x5AFE6EEDull);
  const std::vector<uint32_t> specials = test::special_fp32_bits();
  for (int n = 0; n < 1000000; ++n) {
    uint32_t a = rng.bits32();
    uint32_t b = rng.bits32();
    switch (n % 4) {
      case 1:
        b = a + static_cast<uint32_t>(rng.below(3)) - 1u;
        break;
      case 2:
        a = specials[rng.below(specials.size())];
        break;
      case 3:
        b = specials[rng.below(specials.size())];
        break;
      default:
        break;
    }
    uint32_t i = rng.bits32() % 0xFFFFFFFEu;
    uint32_t j = rng.bits32() % 0xFFFFFFFEu;
    if (i == j) ++j;
    if (i > j) std::swap(i, j);
    check_pair(a, b, i, j);
  }
}

// The image over all 2^32 patterns: walking the positive floats upwards and
// the negative floats downwards in bit order visits every non-NaN value in
// increasing order, so the image must rise strictly along both walks, with
// -0 and +0 meeting in the middle and every NaN above +inf. The same walks
// check the fp32 lane of the CPU kernel and its NaN test.
void test_fp32_image_exhaustive() {
  using safe_greedy::cpu::is_nan;
  using safe_greedy::cpu::ordered_lane;
  uint64_t bad_image = 0, bad_lane = 0, bad_nan = 0;
  uint32_t first_bad = 0;
  // Negative values from -inf (0xFF800000) up to -denorm_min (0x80000001).
  uint32_t prev_image = order_image(float_of(0xFF800000u));
  int32_t prev_lane = ordered_lane(float_of(0xFF800000u));
  // Each value in increasing float order must rank strictly above the last.
  auto step = [&](uint32_t u) {
    const float f = float_of(u);
    const uint32_t img = order_image(f);
    const int32_t lane = ordered_lane(f);
    if (!(img > prev_image)) bad_image += (first_bad = u, 1);
    if (!(lane > prev_lane)) bad_lane += (first_bad = u, 1);
    prev_image = img;
    prev_lane = lane;
  };
  for (uint32_t u = 0xFF7FFFFFu; u >= 0x80000001u; --u) step(u);
  // Through zero: -0 equals +0, both above -denorm_min.
  CHECK(order_image(-0.0f) == order_image(0.0f));
  CHECK(ordered_lane(-0.0f) == ordered_lane(0.0f));
  CHECK(order_image(0.0f) > prev_image && ordered_lane(0.0f) > prev_lane);
  prev_image = order_image(0.0f);
  prev_lane = ordered_lane(0.0f);
  for (uint32_t u = 0x00000001u; u <= 0x7F800000u; ++u) step(u);
  CHECK(bad_image == 0, "order_image not strictly increasing at %llu values (e.g. 0x%08X)",
        static_cast<unsigned long long>(bad_image), first_bad);
  CHECK(bad_lane == 0, "fp32 ordered_lane not strictly increasing at %llu values (e.g. 0x%08X)",
        static_cast<unsigned long long>(bad_lane), first_bad);
  CHECK(order_image(float_of(0xFF800000u)) == 0x007FFFFFu, "image(-inf) is the documented least");

  // Every pattern: NaN exactly when std::isnan says so, and then above +inf;
  // in flush-denormal mode, a zero exactly when subnormal or zero.
  const uint32_t inf_image = order_image(float_of(0x7F800000u));
  uint64_t bad_flush = 0;
  uint32_t u = 0;
  do {
    const float f = float_of(u);
    const bool nan = std::isnan(f);
    if (nan != is_nan(f)) bad_nan += (first_bad = u, 1);
    const uint32_t flushed = bits_of(safe_greedy::compared_value<true>(f));
    // A zero of either sign for zeros and subnormals; the value itself otherwise.
    const bool zero_after = std::fpclassify(f) == FP_SUBNORMAL || f == 0.0f;
    if (zero_after ? (flushed << 1) != 0u : flushed != u) bad_flush += (first_bad = u, 1);
    if (bits_of(safe_greedy::compared_value<false>(f)) != u) bad_flush += (first_bad = u, 1);
    if (nan && !(order_image(f) > inf_image && order_image(f) == 0xFFFFFFFFu)) {
      bad_nan += (first_bad = u, 1);
    }
  } while (++u != 0);
  CHECK(bad_nan == 0, "NaN handling wrong at %llu patterns (e.g. 0x%08X)",
        static_cast<unsigned long long>(bad_nan), first_bad);
  CHECK(bad_flush == 0, "compared_value wrong at %llu patterns (e.g. 0x%08X)",
        static_cast<unsigned long long>(bad_flush), first_bad);
}

// What torch compares in flush-denormal mode, written independently of the
// header: the widened value, an fp32 subnormal read as zero.
template <bool kFlush>
float ref_compared(float v) {
  return kFlush && std::fpclassify(v) == FP_SUBNORMAL ? 0.0f : v;
}

// A 16-bit format's lane and NaN test (CPU kernel, pass one) against the
// image of the widened value (the key), on all 65536 patterns, in the default
// mode and (kFlush) in flush-denormal mode, where the value compared is
// ref_compared<true>() of the widened one.
template <class T, bool kFlush>
void test_lanes_16(const char* name, float (*widen)(uint16_t)) {
  using safe_greedy::cpu::is_nan;
  using safe_greedy::cpu::ordered_lane;
  struct Entry {
    float value;
    uint32_t image;
    int32_t lane;
    uint16_t bits;
  };
  std::vector<Entry> values;
  std::vector<Entry> all;
  for (uint32_t h = 0; h <= 0xFFFFu; ++h) {
    const T x{static_cast<uint16_t>(h)};
    const float f = ref_compared<kFlush>(widen(static_cast<uint16_t>(h)));
    CHECK(is_nan(x) == std::isnan(f), "%s 0x%04X: is_nan %d", name, h,
          static_cast<int>(is_nan(x)));
    const Entry e{f, order_image(safe_greedy::compared_value<kFlush>(widen(static_cast<uint16_t>(h)))),
                  ordered_lane<T, kFlush>(x), static_cast<uint16_t>(h)};
    all.push_back(e);
    if (!std::isnan(f)) values.push_back(e);
  }
  // Sorting the non-NaN values and comparing neighbours proves both orders
  // are the same total preorder (both are transitive).
  std::sort(values.begin(), values.end(),
            [](const Entry& a, const Entry& b) { return a.value < b.value; });
  for (size_t k = 1; k < values.size(); ++k) {
    const Entry& a = values[k - 1];
    const Entry& b = values[k];
    const bool equal = a.value == b.value;
    CHECK(equal ? a.lane == b.lane : a.lane < b.lane, "%s%s 0x%04X vs 0x%04X: lanes %d, %d", name,
          kFlush ? " (flush)" : "", a.bits, b.bits, a.lane, b.lane);
    CHECK(equal ? a.image == b.image : a.image < b.image, "%s%s 0x%04X vs 0x%04X: images", name,
          kFlush ? " (flush)" : "", a.bits, b.bits);
  }
  // And directly, every pattern against a sample of partners.
  test::Rng rng(0xB16B00B5ull + sizeof(T));
  for (int s = 0; s < 64; ++s) {
    const Entry& b = all[rng.below(all.size())];
    for (const Entry& a : all) {
      if (std::isnan(a.value) || std::isnan(b.value)) continue;
      CHECK((a.lane < b.lane) == (a.image < b.image) && (a.lane == b.lane) == (a.image == b.image),
            "%s 0x%04X vs 0x%04X", name, a.bits, b.bits);
    }
  }
}

float widen_bf16(uint16_t b) { return safe_greedy::bf16_bits_to_float(b); }
float widen_fp16(uint16_t b) { return safe_greedy::fp16_bits_to_float(b); }

// fp32 lanes against images and float order on pairs of special and random
// values, in the default mode and (kFlush) in flush-denormal mode.
template <bool kFlush>
void test_lanes_fp32_pairs() {
  using safe_greedy::cpu::ordered_lane;
  using safe_greedy::compared_value;
  auto check = [](uint32_t a_bits, uint32_t b_bits) {
    const float a = float_of(a_bits);
    const float b = float_of(b_bits);
    if (std::isnan(a) || std::isnan(b)) return;
    const int32_t la = ordered_lane<float, kFlush>(a), lb = ordered_lane<float, kFlush>(b);
    const uint32_t ia = order_image(compared_value<kFlush>(a));
    const uint32_t ib = order_image(compared_value<kFlush>(b));
    const float ra = ref_compared<kFlush>(a), rb = ref_compared<kFlush>(b);
    CHECK((la < lb) == (ia < ib) && (la == lb) == (ia == ib) && (la < lb) == (ra < rb) &&
              (la == lb) == (ra == rb),
          "fp32%s 0x%08X vs 0x%08X", kFlush ? " (flush)" : "", a_bits, b_bits);
  };
  const std::vector<uint32_t> specials = test::special_fp32_bits();
  for (uint32_t a : specials) {
    for (uint32_t b : specials) check(a, b);
  }
  test::Rng rng(0x0DDBA11ull);
  for (int n = 0; n < 1000000; ++n) {
    const uint32_t a = rng.bits32();
    check(a, n % 2 ? rng.bits32() : a + static_cast<uint32_t>(rng.below(3)) - 1u);
  }
}

void test_key_index_and_empty() {
  const std::vector<uint32_t> specials = test::special_fp32_bits();
  const uint32_t indices[] = {0u, 1u, 2u, 4095u, 4096u, 151935u, 0x7FFFFFFFu, 0x80000000u,
                              0xFFFFFFFDu, 0xFFFFFFFEu};
  for (uint32_t v : specials) {
    for (uint32_t i : indices) {
      const Key k = make_key(float_of(v), i);
      CHECK(safe_greedy::key_index(k) == i, "key_index(make_key(0x%08X, %u))", v, i);
      CHECK(k > safe_greedy::kEmptyKey, "make_key(0x%08X, %u) not above kEmptyKey", v, i);
      CHECK(safe_greedy::max_key(k, safe_greedy::kEmptyKey) == k, "max_key with empty");
    }
  }
  // Even the smallest possible key (least value, index past the last legal one).
  CHECK(make_key(float_of(0xFF800000u), 0xFFFFFFFFu) > safe_greedy::kEmptyKey);
  CHECK(safe_greedy::kMaxVocab == 0x7FFFFFFFull);
}

// key_value() inverts the image on every float pattern: the same bits back,
// except zeros (+0.0) and NaNs (some NaN); the empty key reads as -inf.
void test_key_value_exhaustive() {
  using safe_greedy::key_value;
  uint64_t bad = 0;
  uint32_t first_bad = 0;
  uint32_t u = 0;
  do {
    const float f = float_of(u);
    const float back = key_value(make_key(f, 7u));
    const bool ok = std::isnan(f)          ? std::isnan(back)
                    : (u << 1) == 0        ? bits_of(back) == 0u
                                           : bits_of(back) == u;
    if (!ok) bad += (first_bad = u, 1);
  } while (++u != 0);
  CHECK(bad == 0, "key_value does not invert the image at %llu patterns (e.g. 0x%08X)",
        static_cast<unsigned long long>(bad), first_bad);
  CHECK(key_value(safe_greedy::kEmptyKey) == -std::numeric_limits<float>::infinity());
}

}  // namespace

int main() {
  test_fp16_widening();
  test_bf16_widening();
  test_special_pairs();
  test_random_pairs();
  test_key_index_and_empty();
  test_fp32_image_exhaustive();
  test_key_value_exhaustive();
  test_lanes_16<bf16_t, false>("bf16", widen_bf16);
  test_lanes_16<fp16_t, false>("fp16", widen_fp16);
  test_lanes_16<bf16_t, true>("bf16", widen_bf16);
  test_lanes_16<fp16_t, true>("fp16", widen_fp16);
  test_lanes_fp32_pairs<false>();
  test_lanes_fp32_pairs<true>();
  return test::finish("test_ordering");
}
