// Input validation shared by the CPU and GPU launchers.
//
// Every check runs before anything is written, so a call that raises leaves
// `out` untouched. Each message says what was expected and what came.
#pragma once

#include <torch/library.h>
#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>

#include <stdint.h>

#include <algorithm>
#include <initializer_list>
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

// What the 1-D outputs of an op line up with: one entry per row of logits
// (greedy_sample) or per key (keys_to_tokens), on that tensor's device.
struct EntriesOf {
  const char* op;           // the name the messages start with
  const at::Tensor& source;  // its size(0) entries and its device
  const char* per_entry;    // "row of logits": an output has one entry per ...
  const char* owner;        // "logits'": ... and lies on the ... device
  const char* entry;        // "row": every ... needs its own slot
};

inline EntriesOf rows_of_logits(const at::Tensor& logits) {
  return {"greedy_sample", logits, "row of logits", "logits'", "row"};
}

// A 1-D output of `dtypes` with an entry of its own for each of `of`'s, on
// its device: the checks every written [batch] tensor gets, in one order.
inline void check_entry_output(const EntriesOf& of, const at::Tensor& t, const char* name,
                               std::initializer_list<at::ScalarType> dtypes,
                               const char* dtype_text) {
  TORCH_CHECK(t.dim() == 1, of.op, ": ", name, " must be 1-D [batch], got a ",
              number_text(t.dim()), "-D tensor of shape ", shape_text(t.sizes()));
  const int64_t entries = of.source.size(0);
  TORCH_CHECK(t.size(0) == entries, of.op, ": ", name, " must have one entry per ", of.per_entry,
              " (", number_text(entries), "), got ", number_text(t.size(0)));
  TORCH_CHECK(std::find(dtypes.begin(), dtypes.end(), t.scalar_type()) != dtypes.end(), of.op,
              ": ", name, " must be ", dtype_text, ", got ", t.scalar_type());
  TORCH_CHECK(t.device() == of.source.device(), of.op, ": ", name, " must be on the ", of.owner,
              " device (", of.source.device().str(), "), got ", t.device().str());
  TORCH_CHECK(at::has_internal_overlap(t) != at::MemOverlap::Yes, of.op, ": ", name,
              " has overlapping entries (stride ", number_text(t.stride(0)), "); every ",
              of.entry, " needs its own slot");
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
  const int64_t vocab = logits.size(1);
  // IndexError in Python, the error torch.argmax raises for an empty row.
  TORCH_CHECK_INDEX(vocab > 0,
                    "greedy_sample: the vocab dimension of logits is empty (shape ",
                    shape_text(logits.sizes()), "); argmax of an empty row is undefined");
  TORCH_CHECK(static_cast<uint64_t>(vocab) <= kMaxVocab,
              "greedy_sample: vocab must be at most 2^31 - 1, got ", number_text(vocab));
  check_entry_output(rows_of_logits(logits), out, "out", {at::kInt, at::kLong}, "int32 or int64");
  check_out_apart_from_logits(out, logits);
}

// One optional output of greedy_sample: an entry per row of logits, as out,
// and none of its bytes among the logits'.
inline void check_extra_output(const at::Tensor& t, const char* name, at::ScalarType dtype,
                               const char* dtype_name, const at::Tensor& logits) {
  check_entry_output(rows_of_logits(logits), t, name, {dtype}, dtype_name);
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
