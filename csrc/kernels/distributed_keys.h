// The per-row steps of vocab-parallel greedy sampling, shared by the CPU and
// GPU kernels of safe_greedy.distributed.
//
// Each rank holds some columns of every row. It finds the best of its valid
// columns with greedy_sample (a local column index), then turns that column
// into the signed key of greedy_key.h, built with the column's global index.
// A signed max of those keys over the ranks, in any order and grouping, is the
// signed key of the whole row's torch.argmax, and the token it names is the
// answer. Nothing here orders anything itself: the rule is greedy_key.h's.
//
// Torch-free; compiles as plain C++, CUDA and HIP.
#pragma once

#include <stdint.h>

#include "greedy_key.h"

namespace safe_greedy {

// One element widened to float, exactly.
SG_HOST_DEVICE float element_value(const float* p) { return *p; }
SG_HOST_DEVICE float element_value(const bf16_t* p) { return bf16_bits_to_float(p->bits); }
SG_HOST_DEVICE float element_value(const fp16_t* p) { return fp16_bits_to_float(p->bits); }

// The signed key of column `column` of a shard row whose column 0 is global
// column `vocab_offset`. The caller keeps vocab_offset + column < kMaxVocab.
template <class T>
SG_HOST_DEVICE int64_t shard_column_key(const T* row, int64_t column_stride, int64_t column,
                                        int64_t vocab_offset) {
  const float value = element_value(row + column * column_stride);
  return to_signed_key(make_key(value, static_cast<uint32_t>(vocab_offset + column)));
}

// A rank with no valid column (an empty shard, or one holding only padding)
// contributes kEmptySignedKey, below every element's key, so it never wins.
//
// The token a max-reduced signed key names. A key that stayed empty (no rank
// held a valid column, so the row had no element and torch.argmax would have
// refused it) gives -1, which no vocabulary contains.
SG_HOST_DEVICE int64_t signed_key_token(int64_t signed_key) {
  const Key key = from_signed_key(signed_key);
  return key == kEmptyKey ? -1 : static_cast<int64_t>(key_index(key));
}

}  // namespace safe_greedy
