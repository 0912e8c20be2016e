// A minimal test harness for the torch-free C++ tests, plus the independent
// references they compare the headers against.
//
// No test framework: the tests must build anywhere CMake and a C++17 compiler
// do, with no network. CHECK counts failures and prints the first few in full;
// main() returns non-zero when anything failed, which is what ctest reads.
#pragma once

#include <stdint.h>
#include <string.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace test {

struct Counters {
  uint64_t checks = 0;
  uint64_t failures = 0;
};

inline Counters& counters() {
  static Counters c;
  return c;
}

// Printing every failure of an exhaustive sweep would bury the first one.
constexpr uint64_t kMaxPrinted = 20;

inline bool record(bool ok, const char* expr, const char* file, int line, const std::string& what) {
  Counters& c = counters();
  ++c.checks;
  if (ok) return true;
  if (++c.failures <= kMaxPrinted) {
    std::fprintf(stderr, "%s:%d: CHECK(%s) failed%s%s\n", file, line, expr,
                 what.empty() ? "" : ": ", what.c_str());
  } else if (c.failures == kMaxPrinted + 1) {
    std::fprintf(stderr, "(further failures are counted, not printed)\n");
  }
  return false;
}

// CHECK(cond) or CHECK(cond, "context", ...): the context is formatted only
// when the check fails, so hot sweeps stay cheap.
inline std::string format() { return std::string(); }
inline std::string format(const char* message) { return message; }
template <class... Args>
std::string format(const char* fmt, Args... args) {
  char buf[512];
  std::snprintf(buf, sizeof(buf), fmt, args...);
  return buf;
}

#define CHECK(cond, ...)                                                                 \
  ((cond) ? (++::test::counters().checks, true)                                          \
          : ::test::record(false, #cond, __FILE__, __LINE__, ::test::format(__VA_ARGS__)))

inline int finish(const char* name) {
  const Counters& c = counters();
  std::printf("%s: %llu checks, %llu failed\n", name, static_cast<unsigned long long>(c.checks),
              static_cast<unsigned long long>(c.failures));
  return c.failures == 0 ? 0 : 1;
}

inline uint32_t bits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof(u));
  return u;
}

inline float float_of(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof(f));
  return f;
}

inline bool is_nan_bits(uint32_t u) { return (u & 0x7FFFFFFFu) > 0x7F800000u; }

// The torch rule, written from its definition: the earlier element keeps the
// row unless the later one is strictly greater, or the later one is NaN and
// the earlier one is not. Floating-point comparison, so IEEE equality decides
// ties (-0.0 == +0.0, inf == inf).
inline bool later_wins(float earlier, float later) {
  if (std::isnan(earlier)) return false;
  if (std::isnan(later)) return true;
  return later > earlier;
}

// Reference widenings of the 16-bit formats, computed arithmetically (exact in
// double, and the results are representable in float). NaNs are built from
// the bits: sign kept, payload moved to the top of the fp32 fraction.
inline float ref_fp16_to_float(uint16_t h) {
  const bool negative = (h & 0x8000u) != 0;
  const int exponent = (h >> 10) & 0x1F;
  const int mantissa = h & 0x3FF;
  if (exponent == 0x1F) {
    if (mantissa == 0) {
      return negative ? -std::numeric_limits<float>::infinity()
                      : std::numeric_limits<float>::infinity();
    }
    return float_of((negative ? 0x80000000u : 0u) | 0x7F800000u |
                    (static_cast<uint32_t>(mantissa) << 13));
  }
  const double magnitude = exponent == 0 ? std::ldexp(static_cast<double>(mantissa), -24)
                                         : std::ldexp(static_cast<double>(1024 + mantissa),
                                                      exponent - 25);
  const float f = static_cast<float>(magnitude);
  return negative ? -f : f;
}

inline float ref_bf16_to_float(uint16_t b) {
  const bool negative = (b & 0x8000u) != 0;
  const int exponent = (b >> 7) & 0xFF;
  const int mantissa = b & 0x7F;
  if (exponent == 0xFF) {
    if (mantissa == 0) {
      return negative ? -std::numeric_limits<float>::infinity()
                      : std::numeric_limits<float>::infinity();
    }
    return float_of((negative ? 0x80000000u : 0u) | 0x7F800000u |
                    (static_cast<uint32_t>(mantissa) << 16));
  }
  const double magnitude = exponent == 0 ? std::ldexp(static_cast<double>(mantissa), -133)
                                         : std::ldexp(static_cast<double>(128 + mantissa),
                                                      exponent - 134);
  const float f = static_cast<float>(magnitude);
  return negative ? -f : f;
}

// The other way, by truncation: the 16-bit bits of a float, exact where the
// format holds the value. bf16 keeps the top half; fp16 keeps infinities and
// NaNs (sign and the top of the payload, made quiet), saturates to infinity
// from 65504 up and flushes values below its normal range to a signed zero.
inline uint16_t truncated_bf16_bits(float f) { return static_cast<uint16_t>(bits_of(f) >> 16); }

inline uint16_t truncated_fp16_bits(float f) {
  const uint32_t u = bits_of(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  if (std::isnan(f)) return static_cast<uint16_t>(sign | 0x7E00u | ((u >> 13) & 0x1FFu));
  if (std::isinf(f) || std::fabs(f) >= 65504.0f) return static_cast<uint16_t>(sign | 0x7C00u);
  if (f == 0.0f) return sign;
  const int exponent = static_cast<int>((u >> 23) & 0xFFu) - 127 + 15;
  if (exponent <= 0) return sign;
  return static_cast<uint16_t>(sign | (exponent << 10) | ((u >> 13) & 0x3FFu));
}

// fp32 values at the edges of the ordering: signed zeros, denormals, ones,
// the largest finite values, infinities, and NaNs of both signs with quiet,
// signalling, smallest and largest payloads.
inline std::vector<uint32_t> special_fp32_bits() {
  return {
      0x00000000u, 0x80000000u,                             // +0, -0
      0x00000001u, 0x80000001u, 0x007FFFFFu, 0x807FFFFFu,   // denormal min, max
      0x00800000u, 0x80800000u,                             // normal min
      0x3F7FFFFFu, 0x3F800000u, 0x3F800001u,                // 1 and its neighbours
      0xBF7FFFFFu, 0xBF800000u, 0xBF800001u,
      0x40000000u, 0xC0000000u,                             // +-2
      0xC7C35000u, 0xF149F2CAu,                             // -1e5, -1e30 (NaN sanitisers)
      0x7F7FFFFFu, 0xFF7FFFFFu,                             // +-FLT_MAX
      0x7F800000u, 0xFF800000u,                             // +-inf
      0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0xFF800001u,   // NaNs
      0x7FC00001u, 0x7FA00000u, 0x7FBFFFFFu, 0x7FFFFFFFu,
      0xFFFFFFFFu, 0xFFBFFFFFu,
  };
}

// logsumexp of values in double, from its definition and torch's special
// values: NaN if any NaN; +inf if any +inf; -inf if all are -inf (or none).
inline double reference_logsumexp(const std::vector<float>& v) {
  const double inf = std::numeric_limits<double>::infinity();
  bool nan = false, pos_inf = false;
  double max = -inf;
  for (float x : v) {
    nan |= std::isnan(x);
    pos_inf |= static_cast<double>(x) == inf;
    if (!std::isnan(x) && x > max) max = x;
  }
  if (nan) return std::nan("");
  if (pos_inf) return inf;
  if (max == -inf) return max;
  double sum = 0;
  for (float x : v) sum += std::exp(static_cast<double>(x) - max);
  return max + std::log(sum);
}

// Whether a float32 statistic agrees with its double reference: the same NaN
// or infinity, or within 2e-6 relative to max(1, |reference|), well inside
// the 2e-5 the outputs promise against torch's float32 (which is itself a
// few 1e-6 off in log_softmax).
inline bool agrees_with_reference(double got, double want) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::fabs(got - want) <= 2e-6 * std::fmax(1.0, std::fabs(want));
}

// Deterministic on every platform: raw mt19937_64 output, no std distributions.
class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  uint64_t next() { return engine_(); }
  uint32_t bits32() { return static_cast<uint32_t>(engine_() >> 32); }
  uint16_t bits16() { return static_cast<uint16_t>(engine_() >> 48); }
  // Uniform in [0, n), n >= 1 (the bias is irrelevant here).
  uint64_t below(uint64_t n) { return engine_() % n; }

 private:
  std::mt19937_64 engine_;
};

}  // namespace test
