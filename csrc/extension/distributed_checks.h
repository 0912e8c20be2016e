// Input validation of the vocab-parallel ops (local_keys, write_tokens),
// shared by their CPU and GPU kernels and mirrored by the fake kernels in
// python/safe_greedy/distributed.py. Every check runs before anything is
// written; each message says what was expected and what came.
#pragma once

#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>
#include <torch/library.h>

#include <stdint.h>

#include "greedy_checks.h"
#include "kernels/greedy_key.h"

namespace safe_greedy {

// shard: [batch, width] logits holding the global columns vocab_offset ..
// vocab_offset + width - 1, of which the first valid_width are real (the rest
// are padding past the vocabulary).
inline void check_local_keys_args(const at::Tensor& shard, int64_t vocab_offset,
                                  int64_t valid_width) {
  TORCH_CHECK(shard.dim() == 2, "local_keys: shard must be 2-D [batch, width], got a ",
              number_text(shard.dim()), "-D tensor of shape ", shape_text(shard.sizes()));
  const auto dtype = shard.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16,
              "local_keys: shard must be float32, float16 or bfloat16, got ", dtype);
  TORCH_CHECK(vocab_offset >= 0, "local_keys: vocab_offset must be at least 0, got ",
              number_text(vocab_offset));
  TORCH_CHECK(valid_width >= 0 && valid_width <= shard.size(1),
              "local_keys: valid_width must lie in [0, ", number_text(shard.size(1)),
              "] (the shard's width), got ", number_text(valid_width));
  // The global index of every valid column must fit the key's index field
  // as greedy_sample's do (a vocabulary of at most 2^31 - 1).
  TORCH_CHECK(valid_width == 0 ||
                  static_cast<uint64_t>(vocab_offset) + static_cast<uint64_t>(valid_width) <= kMaxVocab,
              "local_keys: the shard's valid columns reach global index ",
              number_text(vocab_offset + valid_width - 1),
              "; the vocabulary must hold at most 2^31 - 1 tokens");
}

// out[r] = the token that the max-reduced signed key keys[r] names.
inline void check_write_tokens_args(const at::Tensor& out, const at::Tensor& keys) {
  TORCH_CHECK(keys.dim() == 1, "keys_to_tokens: keys must be 1-D [batch], got a ",
              number_text(keys.dim()), "-D tensor of shape ", shape_text(keys.sizes()));
  TORCH_CHECK(keys.scalar_type() == at::kLong, "keys_to_tokens: keys must be int64, got ",
              keys.scalar_type());
  check_entry_output({"keys_to_tokens", keys, "key", "keys'", "key"}, out, "out",
                     {at::kInt, at::kLong}, "int32 or int64");
  // Each entry is read before the same entry is written, so out may be keys
  // itself; only a partial overlap could read an entry already written.
  at::assert_no_partial_overlap(out, keys);
}

}  // namespace safe_greedy
