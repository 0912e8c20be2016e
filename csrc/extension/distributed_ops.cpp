// The vocab-parallel ops behind safe_greedy.distributed: their schemas, CPU
// kernels and in-place bookkeeping.
//
//   local_keys(shard, vocab_offset, valid_width) -> keys   int64 [batch]
//   write_tokens(out, keys)                                 out[r] = token of keys[r]
//
// local_keys reuses greedy_sample for the argmax of the shard's valid columns
// (written straight into the keys tensor it returns), then replaces each
// local column index by the signed key of that column (distributed_keys.h).
// The CUDA kernels live in distributed_cuda.cu, the fake kernels in
// python/safe_greedy/distributed.py.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/library.h>

#include "distributed_checks.h"
#include "kernels/distributed_keys.h"
#include "greedy_dispatch.h"
#include "greedy_ops.h"

namespace safe_greedy {
namespace {

// Rows per task of the CPU loops: each row costs a few nanoseconds.
constexpr int64_t kRowGrain = 4096;

at::Tensor local_keys_cpu(const at::Tensor& shard, int64_t vocab_offset, int64_t valid_width) {
  check_local_keys_args(shard, vocab_offset, valid_width);
  TORCH_CHECK(shard.device().is_cpu(), "local_keys: the CPU kernel got a shard on ",
              shard.device().str());
  at::Tensor keys = at::empty({shard.size(0)}, shard.options().dtype(at::kLong));
  if (shard.size(0) == 0) return keys;
  if (valid_width == 0) return keys.fill_(kEmptySignedKey);
  greedy_sample_cpu(keys, shard.narrow(1, 0, valid_width));  // keys: local column indices
  int64_t* k = keys.data_ptr<int64_t>();
  SAFE_GREEDY_DISPATCH_LOGITS(shard.scalar_type(), [&] {
    const auto* base = reinterpret_cast<const LogitsT*>(shard.const_data_ptr());
    const int64_t row_stride = shard.stride(0);
    const int64_t column_stride = shard.stride(1);
    at::parallel_for(0, shard.size(0), kRowGrain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        k[r] = shard_column_key(base + r * row_stride, column_stride, k[r], vocab_offset);
      }
    });
  });
  return keys;
}

void write_tokens_cpu(at::Tensor& out, const at::Tensor& keys) {
  check_write_tokens_args(out, keys);
  TORCH_CHECK(keys.device().is_cpu(), "keys_to_tokens: the CPU kernel got keys on ",
              keys.device().str());
  const int64_t* k = keys.const_data_ptr<int64_t>();
  const int64_t key_stride = keys.stride(0);
  const int64_t out_stride = out.stride(0);
  SAFE_GREEDY_DISPATCH_INDEX(out.scalar_type(), [&] {
    IndexT* o = out.data_ptr<IndexT>();
    at::parallel_for(0, keys.size(0), kRowGrain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        o[r * out_stride] = static_cast<IndexT>(signed_key_token(k[r * key_stride]));
      }
    });
  });
}

// As for greedy_sample (greedy_ops.cpp): refuse an inference tensor outside
// inference mode, and count a write that happened in out's version counter.
void write_tokens_count_write(c10::DispatchKeySet dispatch_keys, at::Tensor& out,
                              const at::Tensor& keys) {
  TORCH_CHECK(!out.is_inference() || c10::InferenceMode::is_enabled(),
              "keys_to_tokens: out is an inference tensor, which torch lets in-place ops write "
              "only inside inference mode (torch.inference_mode())");
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("safe_greedy::write_tokens", "")
                             .typed<void(at::Tensor&, const at::Tensor&)>();
  {
    at::AutoDispatchBelowADInplaceOrView below;
    op.redispatch(dispatch_keys & c10::after_ADInplaceOrView_keyset, out, keys);
  }
  torch::autograd::impl::bump_version(out);
}

}  // namespace
}  // namespace safe_greedy

TORCH_LIBRARY_FRAGMENT(safe_greedy, m) {
  m.def("local_keys(Tensor shard, int vocab_offset, int valid_width) -> Tensor");
  m.def("write_tokens(Tensor(a!) out, Tensor keys) -> ()");
}

TORCH_LIBRARY_IMPL(safe_greedy, CPU, m) {
  m.impl("local_keys", &safe_greedy::local_keys_cpu);
  m.impl("write_tokens", &safe_greedy::write_tokens_cpu);
}

TORCH_LIBRARY_IMPL(safe_greedy, ADInplaceOrView, m) {
  m.impl("write_tokens", TORCH_FN(safe_greedy::write_tokens_count_write));
}
