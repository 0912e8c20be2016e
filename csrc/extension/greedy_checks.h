// Input validation shared by the CPU and GPU launchers.
//
// Every check runs before anything is written, so a call that raises leaves
// `out` untouched. Each message says what was expected and what came.
#pragma once

#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>

#include <stdint.h>

#include <algorithm>
#include <initializer_list>
#include <optional>

#include "errors.h"
#include "kernels/greedy_key.h"
#include "kernels/greedy_stats.h"

namespace safe_greedy {

using torch::stable::Tensor;
using torch::headeronly::ScalarType;

// The bytes a tensor's elements span, from its lowest address to one past its
// highest (torch strides are never negative); empty for a tensor of no
// elements.
struct ByteSpan {
  uintptr_t begin = 0;
  uintptr_t end = 0;
  bool empty() const { return begin == end; }
};

// Each accessor of a stable tensor is a call into libtorch, some microseconds
// a call in all for the checks of one call: the checks read each fact of a
// tensor once (its sizes and strides as whole arrays) and pass it on.
inline ByteSpan byte_span(const Tensor& t, torch::headeronly::IntHeaderOnlyArrayRef sizes,
                          torch::headeronly::IntHeaderOnlyArrayRef strides) {
  int64_t last = 0;  // the last element's offset from the first, in elements
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] == 0) return {};
    last += (sizes[d] - 1) * strides[d];
  }
  const auto begin = reinterpret_cast<uintptr_t>(t.const_data_ptr());
  return {begin, begin + static_cast<uintptr_t>((last + 1) * t.element_size())};
}

inline ByteSpan byte_span(const Tensor& t) { return byte_span(t, t.sizes(), t.strides()); }

inline bool spans_apart(const ByteSpan& x, const ByteSpan& y) {
  return x.empty() || y.empty() || x.end <= y.begin || y.end <= x.begin;
}

// What the 1-D outputs of an op line up with: one entry per row of logits
// (greedy_sample) or per key (keys_to_tokens), on that tensor's device.
struct EntriesOf {
  const char* op;                // the name the messages start with
  int64_t entries;               // the source's size(0)
  torch::stable::Device device;  // the source's device
  const char* per_entry;         // "row of logits": an output has one entry per ...
  const char* owner;             // "logits'": ... and lies on the ... device
  const char* entry;             // "row": every ... needs its own slot
};

// A 1-D output of `dtypes` with an entry of its own for each of `of`'s, on
// its device: the checks every written [batch] tensor gets, in one order.
// Returns the bytes it spans.
inline ByteSpan check_entry_output(const EntriesOf& of, const Tensor& t, const char* name,
                                   std::initializer_list<ScalarType> dtypes,
                                   const char* dtype_text) {
  const auto sizes = t.sizes();
  const int64_t dim = static_cast<int64_t>(sizes.size());
  SAFE_GREEDY_CHECK(dim == 1, of.op, ": ", name, " must be 1-D [batch], got a ", number_text(dim),
                    "-D tensor of shape ", shape_text(sizes));
  const int64_t size = sizes[0];
  SAFE_GREEDY_CHECK(size == of.entries, of.op, ": ", name, " must have one entry per ",
                    of.per_entry, " (", number_text(of.entries), "), got ", number_text(size));
  const ScalarType dtype = t.scalar_type();
  SAFE_GREEDY_CHECK(std::find(dtypes.begin(), dtypes.end(), dtype) != dtypes.end(), of.op, ": ",
                    name, " must be ", dtype_text, ", got ", dtype);
  const torch::stable::Device device = t.device();
  SAFE_GREEDY_CHECK(device == of.device, of.op, ": ", name, " must be on the ", of.owner,
                    " device (", of.device, "), got ", device);
  // A 1-D tensor overlaps itself only where several entries share stride 0.
  const auto strides = t.strides();
  const int64_t stride = strides[0];
  SAFE_GREEDY_CHECK(stride != 0 || size <= 1, of.op, ": ", name,
                    " has overlapping entries (stride ", number_text(stride), "); every ", of.entry,
                    " needs its own slot");
  return byte_span(t, sizes, strides);
}

// out is refused when the bytes it spans meet the bytes logits spans.
// at::assert_no_overlap would decide only for two dense tensors and let any
// other pair through (a strided out inside a padded logits buffer); refusing
// by span also refuses an out interleaved with logits in elements logits
// never reads, a layout no caller needs.
inline void check_out_apart_from_logits(const ByteSpan& o, const ByteSpan& l) {
  SAFE_GREEDY_CHECK(spans_apart(o, l),
                    "greedy_sample: out must not share memory with logits, got out at bytes ",
                    number_text(static_cast<int64_t>(o.begin - l.begin)), " to ",
                    number_text(static_cast<int64_t>(o.end - l.begin)), " of the logits' span of ",
                    number_text(static_cast<int64_t>(l.end - l.begin)), " bytes");
}

// greedy_sample's checks of logits and out; returns what the checks of its
// extra outputs need.
struct CheckedArgs {
  EntriesOf rows;  // an output has an entry per row of logits
  ByteSpan out;
  ByteSpan logits;
  int64_t vocab;
};

inline CheckedArgs check_greedy_sample_args(const Tensor& out, const Tensor& logits) {
  const auto sizes = logits.sizes();
  const int64_t dim = static_cast<int64_t>(sizes.size());
  SAFE_GREEDY_CHECK(dim == 2, "greedy_sample: logits must be 2-D [batch, vocab], got a ",
                    number_text(dim), "-D tensor of shape ", shape_text(sizes));
  const auto dtype = logits.scalar_type();
  SAFE_GREEDY_CHECK(
      dtype == ScalarType::Float || dtype == ScalarType::Half || dtype == ScalarType::BFloat16,
      "greedy_sample: logits must be float32, float16 or bfloat16, got ", dtype);
  const int64_t vocab = sizes[1];
  // IndexError in Python, the error torch.argmax raises for an empty row.
  SAFE_GREEDY_CHECK_INDEX(vocab > 0,
                          "greedy_sample: the vocab dimension of logits is empty (shape ",
                          shape_text(sizes), "); argmax of an empty row is undefined");
  SAFE_GREEDY_CHECK(static_cast<uint64_t>(vocab) <= kMaxVocab,
                    "greedy_sample: vocab must be at most 2^31 - 1, got ", number_text(vocab));
  const EntriesOf rows{"greedy_sample", sizes[0], logits.device(),
                       "row of logits", "logits'", "row"};
  const ByteSpan out_span =
      check_entry_output(rows, out, "out", {ScalarType::Int, ScalarType::Long}, "int32 or int64");
  const ByteSpan logits_span = byte_span(logits, sizes, logits.strides());
  check_out_apart_from_logits(out_span, logits_span);
  return CheckedArgs{rows, out_span, logits_span, vocab};
}

// The checks of greedy_sample with its extra outputs, all before anything is
// written; returns where the outputs go. Each extra output has an entry per
// row of logits, as out, and none of its bytes among the logits' or another
// output's.
inline ExtraOutputs check_greedy_outputs_args(const Tensor& out, const Tensor& logits,
                                              const std::optional<Tensor>& logprobs,
                                              const std::optional<Tensor>& logsumexp,
                                              const std::optional<Tensor>& valid,
                                              std::optional<int64_t> fallback_token) {
  const CheckedArgs checked = check_greedy_sample_args(out, logits);
  struct Written {
    const char* name;
    ByteSpan span;
  };
  Written written[4] = {{"out", checked.out}};
  int count = 1;
  const auto check = [&](const std::optional<Tensor>& t, const char* name, ScalarType dtype,
                         const char* dtype_name) {
    if (!t.has_value()) return;
    const ByteSpan span = check_entry_output(checked.rows, *t, name, {dtype}, dtype_name);
    SAFE_GREEDY_CHECK(spans_apart(span, checked.logits), "greedy_sample: ", name,
                      " must not share memory with logits");
    for (int i = 0; i < count; ++i) {
      SAFE_GREEDY_CHECK(spans_apart(span, written[i].span), "greedy_sample: ", name,
                        " must not share memory with ", written[i].name);
    }
    written[count++] = Written{name, span};
  };
  check(logprobs, "logprobs", ScalarType::Float, "float32");
  check(logsumexp, "logsumexp", ScalarType::Float, "float32");
  check(valid, "valid", ScalarType::Bool, "bool");
  if (fallback_token.has_value()) {
    const int64_t vocab = checked.vocab;
    const int64_t token = *fallback_token;
    SAFE_GREEDY_CHECK_VALUE(token >= 0 && token < vocab,
                            "greedy_sample: fallback_token must be a token id in [0, vocab) = [0, ",
                            number_text(vocab), "), got ", number_text(token));
  }

  ExtraOutputs outputs;
  if (logprobs.has_value()) {
    outputs.logprobs = logprobs->mutable_data_ptr<float>();
    outputs.logprobs_stride = logprobs->stride(0);
  }
  if (logsumexp.has_value()) {
    outputs.logsumexp = logsumexp->mutable_data_ptr<float>();
    outputs.logsumexp_stride = logsumexp->stride(0);
  }
  if (valid.has_value()) {
    outputs.valid = valid->mutable_data_ptr<bool>();
    outputs.valid_stride = valid->stride(0);
  }
  outputs.fallback_token = fallback_token.value_or(kNoFallback);
  return outputs;
}

}  // namespace safe_greedy
