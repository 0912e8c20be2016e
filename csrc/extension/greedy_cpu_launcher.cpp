// CPU launcher of greedy_sample: validation, dtype dispatch and threading
// around the torch-free segment kernel in greedy_cpu.h.
#include <torch/csrc/stable/ops.h>

#include <algorithm>
#include <atomic>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define SAFE_GREEDY_FORK 1
#endif

#if defined(__x86_64__) || defined(_M_X64) || defined(__SSE__)
#include <xmmintrin.h>
#define SAFE_GREEDY_MXCSR 1
#endif

#include "greedy_checks.h"
#include "greedy_dispatch.h"
#include "greedy_ops.h"
#include "inplace_write.h"
#include "kernels/greedy_cpu.h"

namespace safe_greedy {
namespace {

// The least work, in bytes of logits, that a thread is started for: less
// than that runs faster on the calling thread than it takes to wake another.
// Work below it opens no parallel region. See "CPU, 2026-12-05: small calls on
// the calling thread" in docs/PERFORMANCE.md.
constexpr int64_t kGrainBytes = 32768;
// Below this many elements a row segment is not worth a thread of its own.
constexpr int64_t kMinSegment = 16384;
static_assert(kMinSegment * 2 >= kGrainBytes, "a segment of any dtype is worth a thread");

// Flush-denormal mode (torch.set_flush_denormal(True)) of the calling thread:
// x86's MXCSR.DAZ or arm64's FPCR.FZ, the bit that makes subnormal fp32
// operands read as zero. Each thread has its own; reading it is one
// instruction. Elsewhere the mode does not exist.
#if defined(SAFE_GREEDY_MXCSR)
constexpr unsigned kFlushInputsBit = 0x0040u;  // MXCSR.DAZ
inline unsigned read_fp_control() { return _mm_getcsr(); }
inline void write_fp_control(unsigned v) { _mm_setcsr(v); }
#elif defined(__aarch64__)
constexpr uint64_t kFlushInputsBit = uint64_t{1} << 24;  // FPCR.FZ
inline uint64_t read_fp_control() {
  uint64_t v;
  __asm__ __volatile__("mrs %0, fpcr" : "=r"(v));
  return v;
}
inline void write_fp_control(uint64_t v) { __asm__ __volatile__("msr fpcr, %0" : : "r"(v)); }
#endif

bool caller_flushes_subnormals() {
#if defined(SAFE_GREEDY_MXCSR) || defined(__aarch64__)
  return (read_fp_control() & kFlushInputsBit) != 0;
#else
  return false;
#endif
}

// While alive, the running thread compares subnormals as they are. The
// kernel applies the caller's mode itself (greedy_cpu.h, kFlushSubnormals),
// but its fp32 fast paths compare in hardware, and a pool thread keeps the
// mode of the thread that started it, which need not be the caller's.
class IeeeSubnormals {
 public:
  IeeeSubnormals() {
#if defined(SAFE_GREEDY_MXCSR) || defined(__aarch64__)
    saved_ = read_fp_control();
    if (saved_ & kFlushInputsBit) write_fp_control(saved_ & ~kFlushInputsBit);
#endif
  }
  ~IeeeSubnormals() {
#if defined(SAFE_GREEDY_MXCSR) || defined(__aarch64__)
    if (saved_ & kFlushInputsBit) write_fp_control(saved_);
#endif
  }
  IeeeSubnormals(const IeeeSubnormals&) = delete;
  IeeeSubnormals& operator=(const IeeeSubnormals&) = delete;

 private:
#if defined(SAFE_GREEDY_MXCSR) || defined(__aarch64__)
  decltype(read_fp_control()) saved_;
#endif
};

// Set in the child of a fork(): the parent's thread pool did not come along
// (OpenMP's waits forever for threads the child does not have), so there
// every call runs on the calling thread. Registered when the extension loads.
std::atomic<bool> g_forked{false};
#if defined(SAFE_GREEDY_FORK)
const bool g_fork_handler = [] {
  return pthread_atfork(nullptr, nullptr, [] { g_forked.store(true, std::memory_order_relaxed); }) == 0;
}();
#endif

// kExtra: the extra outputs are written (see greedy_stats.h); kStats: the
// rows' pairs are computed for those that need them. The plain kernel
// (neither) writes only out. kFlushSubnormals: the caller's flush-denormal
// mode, which the tokens follow (the pairs read the values as they are).
template <class T, class IndexT, bool kExtra, bool kStats, bool kFlushSubnormals>
void greedy_sample_rows(IndexT* out, int64_t out_stride, const ExtraOutputs& outputs,
                        const T* logits, int64_t batch, int64_t vocab,
                        int64_t row_stride, int64_t column_stride) {
  const uint32_t n = static_cast<uint32_t>(vocab);
  const int64_t threads = g_forked.load(std::memory_order_relaxed)
                              ? 1
                              : static_cast<int64_t>(torch::stable::get_num_threads());
  // Enough segments per row to give every thread work when the batch is short.
  int64_t segments = 1;
  if (batch < threads) {
    segments = std::min((threads + batch - 1) / batch, std::max<int64_t>(1, vocab / kMinSegment));
  }
  const auto write = [&](int64_t r, Key k, RowStats stats) {
    if constexpr (kExtra) {
      write_row(out, out_stride, outputs, r, k, stats);
    } else {
      out[r * out_stride] = static_cast<IndexT>(key_index(k));
    }
  };

  if (segments == 1) {
    const int64_t row_bytes = vocab * static_cast<int64_t>(sizeof(T));
    const int64_t grain_rows = std::max<int64_t>(1, (kGrainBytes + row_bytes - 1) / row_bytes);
    auto rows = [&](int64_t begin, int64_t end) {
      IeeeSubnormals ieee;
      for (int64_t r = begin; r < end; ++r) {
        const cpu::SegmentResult s = cpu::segment<T, kStats, kFlushSubnormals>(
            logits + r * row_stride, column_stride, 0, n);
        write(r, s.key, s.stats);
      }
    };
    if (threads == 1) {
      rows(0, batch);
    } else {
      torch::stable::parallel_for(0, batch, grain_rows, rows);
    }
    return;
  }

  const int64_t per_segment = (vocab + segments - 1) / segments;
  std::vector<Key> keys(static_cast<size_t>(batch * segments), kEmptyKey);
  std::vector<RowStats> stats(kStats ? static_cast<size_t>(batch * segments) : 0, empty_stats());
  torch::stable::parallel_for(0, batch * segments, 1, [&](int64_t begin, int64_t end) {
    IeeeSubnormals ieee;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t r = item / segments;
      const int64_t first = (item % segments) * per_segment;
      const int64_t last = std::min(vocab, first + per_segment);
      if (first < last) {
        const cpu::SegmentResult s = cpu::segment<T, kStats, kFlushSubnormals>(
            logits + r * row_stride, column_stride, static_cast<uint32_t>(first),
            static_cast<uint32_t>(last));
        keys[item] = s.key;
        if constexpr (kStats) stats[item] = s.stats;
      }
    }
  });
  for (int64_t r = 0; r < batch; ++r) {
    Key k = kEmptyKey;
    RowStats row_stats = empty_stats();
    for (int64_t s = 0; s < segments; ++s) {
      k = max_key(k, keys[r * segments + s]);
      if constexpr (kStats) row_stats = combine_stats(row_stats, stats[r * segments + s]);
    }
    write(r, k, row_stats);
  }
}

template <bool kExtra, bool kStats>
void run_cpu_kernel(Tensor& out, const ExtraOutputs& outputs, const Tensor& logits) {
  // The mode as torch's CPU kernels see it on this thread; it then holds for
  // every row, whichever thread reads it.
  const bool flush = caller_flushes_subnormals();
  SAFE_GREEDY_DISPATCH_LOGITS(logits.scalar_type(), [&] {
    SAFE_GREEDY_DISPATCH_INDEX(out.scalar_type(), [&] {
      auto run = [&](auto rows) {
        rows(out.mutable_data_ptr<IndexT>(), out.stride(0), outputs,
             reinterpret_cast<const LogitsT*>(logits.const_data_ptr()), logits.size(0),
             logits.size(1), logits.stride(0), logits.stride(1));
      };
      if (flush) {
        run(greedy_sample_rows<LogitsT, IndexT, kExtra, kStats, true>);
      } else {
        run(greedy_sample_rows<LogitsT, IndexT, kExtra, kStats, false>);
      }
    });
  });
}

void check_on_cpu(const Tensor& logits) {
  SAFE_GREEDY_CHECK(logits.is_cpu(), "greedy_sample: the CPU kernel got logits on ",
                    logits.device());
}

}  // namespace

void greedy_sample_cpu(Tensor& out, const Tensor& logits) {
  check_greedy_sample_args(out, logits);
  check_on_cpu(logits);
  count_write(out, "greedy_sample", "out");
  greedy_sample_unchecked_cpu(out, logits);
}

void greedy_sample_unchecked_cpu(Tensor& out, const Tensor& logits) {
  if (logits.size(0) == 0) return;
  run_cpu_kernel<false, false>(out, ExtraOutputs{}, logits);
}

void greedy_sample_outputs_cpu(Tensor& out, const Tensor& logits,
                               const std::optional<Tensor>& logprobs,
                               const std::optional<Tensor>& logsumexp,
                               const std::optional<Tensor>& valid,
                               std::optional<int64_t> fallback_token) {
  const ExtraOutputs outputs =
      check_greedy_outputs_args(out, logits, logprobs, logsumexp, valid, fallback_token);
  check_on_cpu(logits);
  count_outputs_write(out, logprobs, logsumexp, valid);
  if (logits.size(0) == 0) return;
  if (outputs.needs_stats()) {
    run_cpu_kernel<true, true>(out, outputs, logits);
  } else {
    run_cpu_kernel<true, false>(out, outputs, logits);
  }
}

}  // namespace safe_greedy
