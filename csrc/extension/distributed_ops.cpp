// The vocab-parallel ops behind safe_greedy.distributed: their schemas, CPU
// kernels and in-place bookkeeping.
//
//   local_keys(shard, vocab_offset, valid_width) -> keys   int64 [batch]
//   write_tokens(out, keys)                                 out[r] = token of keys[r]
//
// local_keys reuses greedy_sample's kernel for the argmax of the shard's valid columns
// (written straight into the keys tensor it returns), then replaces each
// local column index by the signed key of that column (distributed_keys.h).
// The CUDA kernels live in distributed_cuda.cu, the fake kernels in
// python/safe_greedy/distributed.py.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>

#include "distributed_checks.h"
#include "kernels/distributed_keys.h"
#include "greedy_dispatch.h"
#include "greedy_ops.h"
#include "inplace_write.h"

namespace safe_greedy {
namespace {

// Rows per task of the CPU loops: each row costs a few nanoseconds.
constexpr int64_t kRowGrain = 4096;

Tensor local_keys_cpu(const Tensor& shard, int64_t vocab_offset, int64_t valid_width) {
  check_local_keys_args(shard, vocab_offset, valid_width);
  SAFE_GREEDY_CHECK(shard.is_cpu(), "local_keys: the CPU kernel got a shard on ",
                    shard.device());
  Tensor keys = empty_keys_for(shard);
  if (shard.size(0) == 0) return keys;
  if (valid_width == 0) return fill_with_empty_keys(keys);
  // keys: local column indices. local_keys' checks imply greedy_sample's, and keys
  // is new, so there is no write to count.
  greedy_sample_unchecked_cpu(keys, valid_columns_of(shard, valid_width));
  int64_t* k = keys.mutable_data_ptr<int64_t>();
  SAFE_GREEDY_DISPATCH_LOGITS(shard.scalar_type(), [&] {
    const auto* base = reinterpret_cast<const LogitsT*>(shard.const_data_ptr());
    const int64_t row_stride = shard.stride(0);
    const int64_t column_stride = shard.stride(1);
    torch::stable::parallel_for(0, shard.size(0), kRowGrain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        k[r] = shard_column_key(base + r * row_stride, column_stride, k[r], vocab_offset);
      }
    });
  });
  return keys;
}

void write_tokens_cpu(Tensor& out, const Tensor& keys) {
  check_write_tokens_args(out, keys);
  SAFE_GREEDY_CHECK(keys.is_cpu(), "keys_to_tokens: the CPU kernel got keys on ",
                    keys.device());
  count_write(out, "keys_to_tokens", "out");
  const int64_t* k = keys.const_data_ptr<int64_t>();
  const int64_t key_stride = keys.stride(0);
  const int64_t out_stride = out.stride(0);
  SAFE_GREEDY_DISPATCH_INDEX(out.scalar_type(), [&] {
    IndexT* o = out.mutable_data_ptr<IndexT>();
    torch::stable::parallel_for(0, keys.size(0), kRowGrain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        o[r * out_stride] = static_cast<IndexT>(signed_key_token(k[r * key_stride]));
      }
    });
  });
}

}  // namespace
}  // namespace safe_greedy

STABLE_TORCH_LIBRARY_FRAGMENT(safe_greedy, m) {
  m.def("local_keys(Tensor shard, int vocab_offset, int valid_width) -> Tensor");
  m.def("write_tokens(Tensor(a!) out, Tensor keys) -> ()");
}

STABLE_TORCH_LIBRARY_IMPL(safe_greedy, CPU, m) {
  m.impl("local_keys", TORCH_BOX(&safe_greedy::local_keys_cpu));
  m.impl("write_tokens", TORCH_BOX(&safe_greedy::write_tokens_cpu));
}
