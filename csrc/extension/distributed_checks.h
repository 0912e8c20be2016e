// Input validation of the vocab-parallel ops (local_keys, write_tokens),
// shared by their CPU and GPU kernels and mirrored by the fake kernels in
// python/safe_greedy/distributed.py. Every check runs before anything is
// written; each message says what was expected and what came.
#pragma once

#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <optional>

#include <stdint.h>

#include "greedy_checks.h"
#include "kernels/greedy_key.h"

namespace safe_greedy {

// local_keys' result: [batch] int64 on the shard's device, not yet written.
inline Tensor empty_keys_for(const Tensor& shard) {
  const int64_t rows = shard.size(0);
  return torch::stable::empty({rows}, ScalarType::Long, std::nullopt, shard.device());
}

// Every row's key kEmptySignedKey, as for a shard with no valid column.
inline Tensor fill_with_empty_keys(const Tensor& keys) {
  // fill_ takes a double, which holds this key exactly.
  static_assert(static_cast<int64_t>(static_cast<double>(kEmptySignedKey)) == kEmptySignedKey);
  return torch::stable::fill_(keys, static_cast<double>(kEmptySignedKey));
}

// The shard's first valid_width columns, the ones local_keys' argmax reads
// (torch::stable::narrow takes the tensor it narrows by reference).
inline Tensor valid_columns_of(Tensor shard, int64_t valid_width) {
  return torch::stable::narrow(shard, 1, 0, valid_width);
}

// shard: [batch, width] logits holding the global columns vocab_offset ..
// vocab_offset + width - 1, of which the first valid_width are real (the rest
// are padding past the vocabulary).
inline void check_local_keys_args(const Tensor& shard, int64_t vocab_offset,
                                  int64_t valid_width) {
  SAFE_GREEDY_CHECK(shard.dim() == 2, "local_keys: shard must be 2-D [batch, width], got a ",
                    number_text(shard.dim()), "-D tensor of shape ", shape_text(shard.sizes()));
  const auto dtype = shard.scalar_type();
  SAFE_GREEDY_CHECK(
      dtype == ScalarType::Float || dtype == ScalarType::Half || dtype == ScalarType::BFloat16,
      "local_keys: shard must be float32, float16 or bfloat16, got ", dtype);
  SAFE_GREEDY_CHECK(vocab_offset >= 0, "local_keys: vocab_offset must be at least 0, got ",
                    number_text(vocab_offset));
  SAFE_GREEDY_CHECK(valid_width >= 0 && valid_width <= shard.size(1),
                    "local_keys: valid_width must lie in [0, ", number_text(shard.size(1)),
                    "] (the shard's width), got ", number_text(valid_width));
  // The global index of every valid column must fit the key's index field
  // as greedy_sample's do (a vocabulary of at most 2^31 - 1).
  const uint64_t reach = static_cast<uint64_t>(vocab_offset) + static_cast<uint64_t>(valid_width);
  SAFE_GREEDY_CHECK(valid_width == 0 || reach <= kMaxVocab,
                    "local_keys: the shard's valid columns reach global index ",
                    number_text(vocab_offset + valid_width - 1),
                    "; the vocabulary must hold at most 2^31 - 1 tokens");
}

// out[r] = the token that the max-reduced signed key keys[r] names.
inline void check_write_tokens_args(const Tensor& out, const Tensor& keys) {
  SAFE_GREEDY_CHECK(keys.dim() == 1, "keys_to_tokens: keys must be 1-D [batch], got a ",
                    number_text(keys.dim()), "-D tensor of shape ", shape_text(keys.sizes()));
  SAFE_GREEDY_CHECK(keys.scalar_type() == ScalarType::Long,
                    "keys_to_tokens: keys must be int64, got ", keys.scalar_type());
  const EntriesOf keys_entries{"keys_to_tokens", keys.size(0), keys.device(), "key", "keys'",
                               "key"};
  const ByteSpan o = check_entry_output(keys_entries, out, "out",
                                        {ScalarType::Int, ScalarType::Long}, "int32 or int64");
  // Each entry is read before the same entry is written, so out may be keys
  // itself (the same bytes); any other overlap could read an entry already
  // written.
  const ByteSpan k = byte_span(keys);
  const bool same_entries = o.begin == k.begin && o.end == k.end &&
                            out.element_size() == keys.element_size() &&
                            out.stride(0) == keys.stride(0);
  SAFE_GREEDY_CHECK(same_entries || spans_apart(o, k),
                    "keys_to_tokens: out must be keys itself or share no memory with it");
}

}  // namespace safe_greedy
