// The CPU kernel (safe_greedy::cpu::segment_key) against a naive scan that
// applies torch's rule element by element, on random and adversarial rows of
// every storage type, contiguous and strided, whole rows and sub-segments, in
// the default mode and in flush-denormal mode; and its statistics
// (cpu::segment with kStats) against logsumexp in double, in both modes (the
// statistics read the values as they are, and a flushed subnormal moves a
// logsumexp by less than the tolerance).
#include <stdint.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "check.h"
#include "greedy_cpu.h"
#include "greedy_key.h"
#include "greedy_stats.h"

using safe_greedy::bf16_t;
using safe_greedy::fp16_t;
using safe_greedy::Key;
using test::bits_of;
using test::float_of;

namespace {

// Per storage type: its name, the reference widening, and how to store a
// float (the generators below only store values the format holds exactly, or
// accept the format's rounding by truncation, which is just another value).
template <class T>
struct Format;

template <>
struct Format<float> {
  static constexpr const char* kName = "fp32";
  static float widen(float x) { return x; }
  static float from_bits32(uint32_t u) { return float_of(u); }
  static float random(test::Rng& rng) { return float_of(rng.bits32()); }
  static float subnormal(test::Rng& rng) { return float_of(rng.bits32() & 0x807FFFFFu); }
};

template <>
struct Format<bf16_t> {
  static constexpr const char* kName = "bf16";
  static float widen(bf16_t x) { return test::ref_bf16_to_float(x.bits); }
  static bf16_t from_bits32(uint32_t u) { return bf16_t{test::truncated_bf16_bits(float_of(u))}; }
  static bf16_t random(test::Rng& rng) { return bf16_t{rng.bits16()}; }
  static bf16_t subnormal(test::Rng& rng) { return bf16_t{static_cast<uint16_t>(rng.bits16() & 0x807Fu)}; }
};

template <>
struct Format<fp16_t> {
  static constexpr const char* kName = "fp16";
  static float widen(fp16_t x) { return test::ref_fp16_to_float(x.bits); }
  // Exact for the values the generators use (small integers, zeros, infs, NaNs).
  static fp16_t from_bits32(uint32_t u) { return fp16_t{test::truncated_fp16_bits(float_of(u))}; }
  static fp16_t random(test::Rng& rng) { return fp16_t{rng.bits16()}; }
  static fp16_t subnormal(test::Rng& rng) { return fp16_t{static_cast<uint16_t>(rng.bits16() & 0x83FFu)}; }
};

template <class T>
T from_float(float f) {
  return Format<T>::from_bits32(bits_of(f));
}

// What torch compares in flush-denormal mode: the widened value, with an
// fp32 subnormal read as zero.
template <bool kFlush>
float as_compared(float v) {
  return kFlush && std::fpclassify(v) == FP_SUBNORMAL ? 0.0f : v;
}

// torch's rule, one element at a time, in increasing index order: the first
// NaN ends the scan; otherwise only a strictly greater value moves the answer.
template <class T, bool kFlush>
uint32_t naive_argmax(const T* row, int64_t stride, uint32_t begin, uint32_t end) {
  uint32_t best = begin;
  float best_value = as_compared<kFlush>(Format<T>::widen(row[static_cast<int64_t>(begin) * stride]));
  if (std::isnan(best_value)) return best;
  for (uint32_t i = begin + 1; i < end; ++i) {
    const float v = as_compared<kFlush>(Format<T>::widen(row[static_cast<int64_t>(i) * stride]));
    if (std::isnan(v)) return i;
    if (v > best_value) {
      best_value = v;
      best = i;
    }
  }
  return best;
}

// A row laid out in a buffer with `stride`, at an element offset that moves
// its alignment, with every slot that is not an element of [begin, end) set to
// a poison value (NaN, or +inf) that would win if the kernel read it.
template <class T>
struct Layout {
  std::vector<T> buffer;
  T* row;
};

template <class T>
Layout<T> lay_out(const std::vector<T>& values, int64_t stride, uint32_t begin, uint32_t end,
                  size_t offset, bool poison_nan) {
  const T poison = from_float<T>(poison_nan ? float_of(0x7FC00000u) : float_of(0x7F800000u));
  Layout<T> l;
  const size_t n = values.size();
  l.buffer.assign(offset + (n == 0 ? 0 : (n - 1) * static_cast<size_t>(stride) + 1) + 8, poison);
  l.row = l.buffer.data() + offset;
  for (uint32_t i = begin; i < end; ++i) l.row[static_cast<size_t>(i) * stride] = values[i];
  return l;
}

template <class T>
std::vector<float> widened(const std::vector<T>& values, uint32_t begin, uint32_t end) {
  std::vector<float> w;
  for (uint32_t i = begin; i < end; ++i) w.push_back(Format<T>::widen(values[i]));
  return w;
}

uint64_t g_cases = 0;

template <class T, bool kFlush>
void check_row_in_mode(const std::vector<T>& values, const std::string& what, test::Rng& rng) {
  const char* mode = kFlush ? " (flush-denormal)" : "";
  const uint32_t n = static_cast<uint32_t>(values.size());
  for (int64_t stride : {int64_t{1}, int64_t{3}}) {
    // The whole row, and one random sub-segment.
    uint32_t begin = 0, end = n;
    for (int pass = 0; pass < 2; ++pass) {
      if (pass == 1) {
        if (n < 2) break;
        begin = static_cast<uint32_t>(rng.below(n));
        end = begin + 1 + static_cast<uint32_t>(rng.below(n - begin));
      }
      const size_t offset = static_cast<size_t>(rng.below(8));
      const Layout<T> l = lay_out(values, stride, begin, end, offset, (g_cases & 1) == 0);
      const uint32_t want = naive_argmax<T, kFlush>(l.row, stride, begin, end);
      const Key got = safe_greedy::cpu::segment_key<T, kFlush>(l.row, stride, begin, end);
      const uint32_t got_index = safe_greedy::key_index(got);
      ++g_cases;
      CHECK(got_index == want, "%s %s%s n=%u stride=%lld [%u,%u): index %u, torch rule says %u",
            Format<T>::kName, what.c_str(), mode, n, static_cast<long long>(stride), begin, end,
            got_index, want);
      // The key's value half must be the winner's, as compared, or combining
      // segments across threads would compare the wrong values.
      const Key want_key =
          safe_greedy::make_key(as_compared<kFlush>(Format<T>::widen(values[want])), want);
      CHECK(got == want_key, "%s %s%s n=%u stride=%lld [%u,%u): key 0x%016llX, want 0x%016llX",
            Format<T>::kName, what.c_str(), mode, n, static_cast<long long>(stride), begin, end,
            static_cast<unsigned long long>(got), static_cast<unsigned long long>(want_key));
      // With the statistics: the same key, and the segment's logsumexp.
      const safe_greedy::cpu::SegmentResult with_stats =
          safe_greedy::cpu::segment<T, true, kFlush>(l.row, stride, begin, end);
      CHECK(with_stats.key == got);
      const double want_lse = test::reference_logsumexp(widened(values, begin, end));
      const float got_lse = safe_greedy::logsumexp_of(with_stats.stats);
      CHECK(test::agrees_with_reference(got_lse, want_lse),
            "%s %s%s n=%u stride=%lld [%u,%u): logsumexp %.9g, want %.17g", Format<T>::kName,
            what.c_str(), mode, n, static_cast<long long>(stride), begin, end, got_lse, want_lse);
    }
    // The launcher's way: cut [0, n) into segments, max their keys.
    if (n >= 2) {
      const Layout<T> l = lay_out(values, stride, 0, n, 0, true);
      const uint32_t cuts = 1 + static_cast<uint32_t>(rng.below(5));
      const uint32_t per = (n + cuts - 1) / cuts;
      Key combined = safe_greedy::kEmptyKey;
      safe_greedy::RowStats stats = safe_greedy::empty_stats();
      for (uint32_t first = 0; first < n; first += per) {
        const uint32_t last = first + per < n ? first + per : n;
        combined = safe_greedy::max_key(
            combined, safe_greedy::cpu::segment_key<T, kFlush>(l.row, stride, first, last));
        stats = safe_greedy::combine_stats(
            stats, safe_greedy::cpu::segment<T, true, kFlush>(l.row, stride, first, last).stats);
      }
      const double want_lse = test::reference_logsumexp(widened(values, 0, n));
      CHECK(test::agrees_with_reference(safe_greedy::logsumexp_of(stats), want_lse),
            "%s %s%s n=%u stride=%lld in %u segments: logsumexp %.9g, want %.17g",
            Format<T>::kName, what.c_str(), mode, n, static_cast<long long>(stride), cuts,
            safe_greedy::logsumexp_of(stats), want_lse);
      const uint32_t want = naive_argmax<T, kFlush>(l.row, stride, 0, n);
      CHECK(safe_greedy::key_index(combined) == want,
            "%s %s%s n=%u stride=%lld in %u segments: index %u, torch rule says %u",
            Format<T>::kName, what.c_str(), mode, n, static_cast<long long>(stride), cuts,
            safe_greedy::key_index(combined), want);
    }
  }
}

template <class T>
void check_row(const std::vector<T>& values, const std::string& what, test::Rng& rng) {
  check_row_in_mode<T, false>(values, what, rng);
  check_row_in_mode<T, true>(values, what, rng);
}

const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = float_of(0x7FC00000u);
const float kNegNaN = float_of(0xFFC00000u);

// Row lengths: tiny ones, the vector and block widths, and the chunk
// boundaries of the CPU kernel (c elements) and their neighbours.
std::vector<uint32_t> lengths(test::Rng& rng, uint32_t c) {
  std::vector<uint32_t> n = {1,   2,   3,   4,   5,    7,    8,    9,    15,   16,  17,
                             31,  32,  33,  255, 256,  257,  1023, 1024, 4095, 4096, 4097,
                             c - 1, c, c + 1, 2 * c - 1, 2 * c, 2 * c + 1, 3 * c + c / 2};
  for (int k = 0; k < 12; ++k) n.push_back(1 + static_cast<uint32_t>(rng.below(3 * c)));
  return n;
}

template <class T>
void run_format() {
  test::Rng rng(0xC0FFEEull + sizeof(T) * 7 + Format<T>::kName[1]);
  const uint32_t c = safe_greedy::cpu::chunk_elements<T>();
  const uint32_t boundaries[] = {0, 1, c - 1, c, c + 1, 2 * c - 1, 2 * c, 2 * c + 1, 3 * c - 1, 3 * c};
  for (uint32_t n : lengths(rng, c)) {
    std::vector<T> v(n);
    auto fill = [&](const std::function<float(uint32_t)>& f) {
      for (uint32_t i = 0; i < n; ++i) v[i] = from_float<T>(f(i));
    };

    // Random bit patterns: every exponent, NaNs now and then.
    for (auto& x : v) x = Format<T>::random(rng);
    check_row(v, "random bits", rng);

    // Small integers of both signs, zeros of both signs: many ties.
    fill([&](uint32_t) {
      const int k = static_cast<int>(rng.below(9)) - 8;
      return k == 0 ? (rng.below(2) ? -0.0f : 0.0f) : static_cast<float>(k);
    });
    check_row(v, "ties, all <= 0", rng);
    fill([&](uint32_t) { return static_cast<float>(static_cast<int>(rng.below(7)) - 3); });
    check_row(v, "ties", rng);

    // Signed zeros only: the first element wins.
    fill([&](uint32_t) { return rng.below(2) ? -0.0f : 0.0f; });
    check_row(v, "-0/+0", rng);

    // All -inf, all NaN (either sign), all +inf: index 0 (or the segment's first).
    fill([&](uint32_t) { return -kInf; });
    check_row(v, "all -inf", rng);
    fill([&](uint32_t) { return rng.below(2) ? kNaN : kNegNaN; });
    check_row(v, "all NaN", rng);
    fill([&](uint32_t) { return kInf; });
    check_row(v, "all +inf", rng);

    // Negative rows, as NaN sanitisers leave them.
    fill([&](uint32_t) { return rng.below(2) ? -1e30f : -kInf; });
    check_row(v, "-1e30/-inf", rng);
    fill([&](uint32_t i) { return -1e5f - static_cast<float>(i % 97); });
    check_row(v, "negative", rng);

    // The maximum at the last element, and at the first.
    fill([&](uint32_t i) { return i + 1 == n ? 1.0f : -static_cast<float>(rng.below(100)); });
    check_row(v, "max last", rng);
    fill([&](uint32_t i) { return i == 0 ? 1.0f : -static_cast<float>(rng.below(100)); });
    check_row(v, "max first", rng);

    // Denormals (fp32 only keeps them; the 16-bit formats see zeros or their own).
    fill([&](uint32_t) { return float_of(static_cast<uint32_t>(rng.below(4)) |
                                         (rng.below(2) ? 0x80000000u : 0u)); });
    check_row(v, "denormals", rng);
    // Subnormals of the format itself, zeros of either sign and negatives: in
    // flush-denormal mode the fp32 and bf16 subnormals tie with the zeros.
    for (auto& x : v) {
      const uint64_t pick = rng.below(8);
      x = pick < 5 ? Format<T>::subnormal(rng)
                   : from_float<T>(pick == 5 ? 0.0f : pick == 6 ? -0.0f : -1.0f);
    }
    check_row(v, "subnormals, zeros", rng);
    // Negative subnormals and -1 everywhere but one zero near the end:
    // flushed, the first subnormal ties the zero and wins.
    for (auto& x : v) {
      x = Format<T>::subnormal(rng);
      if (safe_greedy::float_bits(Format<T>::widen(x)) < 0x80000000u) x = from_float<T>(-1.0f);
    }
    v[n - 1 - static_cast<uint32_t>(rng.below(n < 4 ? n : 4))] = from_float<T>(0.0f);
    check_row(v, "negative subnormals, one zero", rng);

    // NaN at each chunk boundary in turn, on a random background, and after a
    // +inf (the NaN still wins), and a NaN before a larger value.
    for (uint32_t b : boundaries) {
      if (b >= n) continue;
      fill([&](uint32_t) { return static_cast<float>(static_cast<int>(rng.below(64)) - 32); });
      v[b] = from_float<T>(rng.below(2) ? kNaN : kNegNaN);
      check_row(v, "NaN at " + std::to_string(b), rng);
      if (b > 0) v[b - 1] = from_float<T>(kInf);
      if (b + 1 < n) v[b + 1] = from_float<T>(kInf);
      v[0] = from_float<T>(kInf);
      check_row(v, "NaN at " + std::to_string(b) + " among +inf", rng);
      // Two NaNs: the first one wins, even in the next chunk.
      if (b + c + 1 < n) {
        v[b + c + 1] = from_float<T>(kNaN);
        check_row(v, "two NaNs from " + std::to_string(b), rng);
      }
    }
    // Maxima tied across chunk boundaries: the earliest one wins.
    fill([&](uint32_t) { return -static_cast<float>(rng.below(64)); });
    for (uint32_t b : boundaries) {
      if (b < n) v[b] = from_float<T>(b % 2 ? 0.0f : -0.0f);
    }
    check_row(v, "ties at boundaries", rng);
    // Strictly increasing chunk maxima: every chunk replaces the last.
    fill([&](uint32_t i) { return static_cast<float>(i / 512) - 1000.0f; });
    check_row(v, "rising", rng);
  }
}

}  // namespace

int main() {
  run_format<float>();
  run_format<bf16_t>();
  run_format<fp16_t>();
  std::printf("test_cpu_kernel: %llu rows compared\n", static_cast<unsigned long long>(g_cases));
  return test::finish("test_cpu_kernel");
}
