// Input validation shared by the CPU and GPU launchers.
//
// Every check runs before anything is written, so a call that raises leaves
// `out` untouched. Each message says what was expected and what came.
#pragma once

#include <torch/library.h>
#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>

#include <stdint.h>

#include <optional>
#include <string>
#include <vector>

#include "kernels/greedy_key.h"
#include "kernels/greedy_stats.h"

namespace safe_greedy {

// Numbers and shapes are formatted with std::to_string, not streamed: seen on
// an H100 machine's torch build, streaming an integer into the message of a
// failing check crashed the process (a libstdc++ locale mismatch between the
// extension's compiler and the loaded runtime), while strings streamed fine.
inline std::string number_text(int64_t n) { return std::to_string(n); }

inline std::string shape_text(at::IntArrayRef sizes) {
  std::string text = "[";
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(sizes[i]);
  }
  return text + "]";
}

// The bytes a tensor's elements span, from its lowest address to one past its
// highest (torch strides are never negative); empty for a tensor of no
// elements.
struct ByteSpan {
  uintptr_t begin = 0;
  uintptr_t end = 0;
  bool empty() const { return begin == end; }
};

inline ByteSpan byte_span(const at::Tensor& t) {
  if (t.numel() == 0) return {};
  int64_t last = 0;  // the last element's offset from the first, in elements
  for (int64_t d = 0; d < t.dim(); ++d) last += (t.size(d) - 1) * t.stride(d);
  const auto begin = reinterpret_cast<uintptr_t>(t.const_data_ptr());
  return {begin, begin + static_cast<uintptr_t>((last + 1) * t.element_size())};
}

inline bool spans_apart(const at::Tensor& a, const at::Tensor& b) {
  const ByteSpan x = byte_span(a);
  const ByteSpan y = byte_span(b);
  return x.empty() || y.empty() || x.end <= y.begin || y.end <= x.begin;
}

// out is refused when the bytes it spans meet the bytes logits spans.
// at::assert_no_overlap would decide only for two dense tensors and let any
// other pair through (a strided out inside a padded logits buffer); refusing
// by span also refuses an out interleaved with logits in elements logits
// never reads, a layout no caller needs.
inline void check_out_apart_from_logits(const at::Tensor& out, const at::Tensor& logits) {
  const ByteSpan o = byte_span(out);
  const ByteSpan l = byte_span(logits);
  const bool apart = spans_apart(out, logits);
  TORCH_CHECK(apart, "greedy_sample: out must not share memory with logits, got out at bytes ",
              number_text(static_cast<int64_t>(o.begin - l.begin)), " to ",
              number_text(static_cast<int64_t>(o.end - l.begin)),
              " of the logits' span of ", number_text(static_cast<int64_t>(l.end - l.begin)),
              " bytes");
}

inline void check_greedy_sample_args(const at::Tensor& out, const at::Tensor& logits) {
  TORCH_CHECK(logits.dim() == 2,
              "greedy_sample: logits must be 2-D [batch, vocab], got a ", number_text(logits.dim()),
              "-D tensor of shape ", shape_text(logits.sizes()));
  const auto dtype = logits.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16,
              "greedy_sample: logits must be float32, float16 or bfloat16, got ", dtype);
  const int64_t batch = logits.size(0);
  const int64_t vocab = logits.size(1);
  // IndexError in Python, the error torch.argmax raises for an empty row.
  TORCH_CHECK_INDEX(vocab > 0,
                    "greedy_sample: the vocab dimension of logits is empty (shape ",
                    shape_text(logits.sizes()), "); argmax of an empty row is undefined");
  TORCH_CHECK(static_cast<uint64_t>(vocab) <= kMaxVocab,
              "greedy_sample: vocab must be at most 2^31 - 1, got ", number_text(vocab));
  TORCH_CHECK(out.dim() == 1, "greedy_sample: out must be 1-D [batch], got a ",
              number_text(out.dim()), "-D tensor of shape ", shape_text(out.sizes()));
  TORCH_CHECK(out.size(0) == batch, "greedy_sample: out must have one entry per row of logits (",
              number_text(batch), "), got ", number_text(out.size(0)));
  TORCH_CHECK(out.scalar_type() == at::kInt || out.scalar_type() == at::kLong,
              "greedy_sample: out must be int32 or int64, got ", out.scalar_type());
  TORCH_CHECK(out.device() == logits.device(),
              "greedy_sample: out must be on the logits' device (", logits.device().str(),
              "), got ", out.device().str());
  TORCH_CHECK(at::has_internal_overlap(out) != at::MemOverlap::Yes,
              "greedy_sample: out has overlapping entries (stride ", number_text(out.stride(0)),
              "); every row needs its own slot");
  check_out_apart_from_logits(out, logits);
}

// One optional output of greedy_sample: 1-D [batch] of `dtype` on the logits'
// device, an entry of its own for every row.
inline void check_extra_output(const at::Tensor& t, const char* name, at::ScalarType dtype,
                               const char* dtype_name, const at::Tensor& logits) {
  TORCH_CHECK(t.dim() == 1, "greedy_sample: ", name, " must be 1-D [batch], got a ",
              number_text(t.dim()), "-D tensor of shape ", shape_text(t.sizes()));
  TORCH_CHECK(t.size(0) == logits.size(0), "greedy_sample: ", name,
              " must have one entry per row of logits (", number_text(logits.size(0)), "), got ",
              number_text(t.size(0)));
  TORCH_CHECK(t.scalar_type() == dtype, "greedy_sample: ", name, " must be ", dtype_name, ", got ",
              t.scalar_type());
  TORCH_CHECK(t.device() == logits.device(), "greedy_sample: ", name,
              " must be on the logits' device (", logits.device().str(), "), got ",
              t.device().str());
  TORCH_CHECK(at::has_internal_overlap(t) != at::MemOverlap::Yes, "greedy_sample: ", name,
              " has overlapping entries (stride ", number_text(t.stride(0)),
              "); every row needs its own slot");
  TORCH_CHECK(spans_apart(t, logits), "greedy_sample: ", name,
              " must not share memory with logits");
}

// The checks of greedy_sample with its extra outputs, all before anything is
// written; returns where the outputs go.
inline ExtraOutputs check_greedy_outputs_args(const at::Tensor& out, const at::Tensor& logits,
                                              const std::optional<at::Tensor>& logprobs,
                                              const std::optional<at::Tensor>& logsumexp,
                                              const std::optional<at::Tensor>& valid,
                                              std::optional<int64_t> fallback_token) {
  check_greedy_sample_args(out, logits);
  struct Named {
    const char* name;
    const at::Tensor* tensor;
  };
  std::vector<Named> written{{"out", &out}};
  const auto check = [&](const std::optional<at::Tensor>& t, const char* name,
                         at::ScalarType dtype, const char* dtype_name) {
    if (!t.has_value()) return;
    check_extra_output(*t, name, dtype, dtype_name, logits);
    for (const Named& other : written) {
      TORCH_CHECK(spans_apart(*t, *other.tensor), "greedy_sample: ", name,
                  " must not share memory with ", other.name);
    }
    written.push_back(Named{name, &*t});
  };
  check(logprobs, "logprobs", at::kFloat, "float32");
  check(logsumexp, "logsumexp", at::kFloat, "float32");
  check(valid, "valid", at::kBool, "bool");
  const int64_t vocab = logits.size(1);
  if (fallback_token.has_value()) {
    const int64_t token = *fallback_token;
    TORCH_CHECK_VALUE(token >= 0 && token < vocab,
                      "greedy_sample: fallback_token must be a token id in [0, vocab) = [0, ",
                      number_text(vocab), "), got ", number_text(token));
  }

  ExtraOutputs outputs;
  if (logprobs.has_value()) {
    outputs.logprobs = logprobs->data_ptr<float>();
    outputs.logprobs_stride = logprobs->stride(0);
  }
  if (logsumexp.has_value()) {
    outputs.logsumexp = logsumexp->data_ptr<float>();
    outputs.logsumexp_stride = logsumexp->stride(0);
  }
  if (valid.has_value()) {
    outputs.valid = valid->data_ptr<bool>();
    outputs.valid_stride = valid->stride(0);
  }
  outputs.fallback_token = fallback_token.value_or(kNoFallback);
  return outputs;
}

}  // namespace safe_greedy
