// CPU launcher of greedy_sample: validation, dtype dispatch and threading
// around the torch-free segment kernel in greedy_cpu.h.
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "greedy_checks.h"
#include "greedy_dispatch.h"
#include "greedy_ops.h"
#include "kernels/greedy_cpu.h"

namespace safe_greedy {
namespace {

// Below this many elements a segment is not worth a thread of its own.
constexpr int64_t kMinSegment = 16384;

// kExtra: the extra outputs are written (see greedy_stats.h); kStats: the
// rows' pairs are computed for those that need them. The plain kernel
// (neither) writes only out.
template <class T, class IndexT, bool kExtra, bool kStats>
void greedy_sample_rows(IndexT* out, int64_t out_stride, const ExtraOutputs& outputs,
                        const T* logits, int64_t batch, int64_t vocab,
                        int64_t row_stride, int64_t column_stride) {
  const uint32_t n = static_cast<uint32_t>(vocab);
  const int64_t threads = at::get_num_threads();
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
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const cpu::SegmentResult s =
            cpu::segment<T, kStats>(logits + r * row_stride, column_stride, 0, n);
        write(r, s.key, s.stats);
      }
    });
    return;
  }

  const int64_t per_segment = (vocab + segments - 1) / segments;
  std::vector<Key> keys(static_cast<size_t>(batch * segments), kEmptyKey);
  std::vector<RowStats> stats(kStats ? static_cast<size_t>(batch * segments) : 0, empty_stats());
  at::parallel_for(0, batch * segments, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t r = item / segments;
      const int64_t first = (item % segments) * per_segment;
      const int64_t last = std::min(vocab, first + per_segment);
      if (first < last) {
        const cpu::SegmentResult s =
            cpu::segment<T, kStats>(logits + r * row_stride, column_stride,
                                    static_cast<uint32_t>(first), static_cast<uint32_t>(last));
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
void run_cpu_kernel(at::Tensor& out, const ExtraOutputs& outputs, const at::Tensor& logits) {
  SAFE_GREEDY_DISPATCH_LOGITS(logits.scalar_type(), [&] {
    SAFE_GREEDY_DISPATCH_INDEX(out.scalar_type(), [&] {
      greedy_sample_rows<LogitsT, IndexT, kExtra, kStats>(
          out.data_ptr<IndexT>(), out.stride(0), outputs,
          reinterpret_cast<const LogitsT*>(logits.const_data_ptr()), logits.size(0),
          logits.size(1), logits.stride(0), logits.stride(1));
    });
  });
}

void check_on_cpu(const at::Tensor& logits) {
  TORCH_CHECK(logits.device().is_cpu(), "greedy_sample: the CPU kernel got logits on ",
              logits.device().str());
}

}  // namespace

void greedy_sample_cpu(at::Tensor& out, const at::Tensor& logits) {
  check_greedy_sample_args(out, logits);
  check_on_cpu(logits);
  if (logits.size(0) == 0) return;
  run_cpu_kernel<false, false>(out, ExtraOutputs{}, logits);
}

void greedy_sample_outputs_cpu(at::Tensor& out, const at::Tensor& logits,
                               const std::optional<at::Tensor>& logprobs,
                               const std::optional<at::Tensor>& logsumexp,
                               const std::optional<at::Tensor>& valid,
                               std::optional<int64_t> fallback_token) {
  const ExtraOutputs outputs =
      check_greedy_outputs_args(out, logits, logprobs, logsumexp, valid, fallback_token);
  check_on_cpu(logits);
  if (logits.size(0) == 0) return;
  if (outputs.needs_stats()) {
    run_cpu_kernel<true, true>(out, outputs, logits);
  } else {
    run_cpu_kernel<true, false>(out, outputs, logits);
  }
}

}  // namespace safe_greedy
