// GPU kernels of the vocab-parallel ops (CUDA, and ROCm through hipify); see
// distributed_ops.cpp for what they compute. Both run on the current stream,
// allocate nothing but local_keys' result and never wait for the host, so
// they can be captured in a CUDA graph.
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>

#include "distributed_checks.h"
#include "kernels/distributed_keys.h"
#include "greedy_dispatch.h"
#include "greedy_ops.h"
#include "gpu_runtime.h"
#include "inplace_write.h"

namespace safe_greedy {
namespace {

constexpr int kThreads = 256;

unsigned int blocks_for(int64_t rows) {
  return static_cast<unsigned int>((rows + kThreads - 1) / kThreads);
}

// keys[r] holds row r's local column index on entry, its signed key on exit.
template <class T>
__global__ void shard_keys_kernel(int64_t* keys, const T* shard, int64_t rows, int64_t row_stride,
                                  int64_t column_stride, int64_t vocab_offset) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (r < rows) {
    keys[r] = shard_column_key(shard + r * row_stride, column_stride, keys[r], vocab_offset);
  }
}

template <class IndexT>
__global__ void write_tokens_kernel(IndexT* out, int64_t out_stride, const int64_t* keys,
                                    int64_t key_stride, int64_t rows) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (r < rows) out[r * out_stride] = static_cast<IndexT>(signed_key_token(keys[r * key_stride]));
}

Tensor local_keys_cuda(const Tensor& shard, int64_t vocab_offset, int64_t valid_width) {
  check_local_keys_args(shard, vocab_offset, valid_width);
  SAFE_GREEDY_CHECK(shard.is_cuda(), "local_keys: the GPU kernel got a shard on ",
                    shard.device());
  const int32_t device = shard.get_device_index();
  const torch::stable::accelerator::DeviceGuard guard(device);
  const int64_t rows = shard.size(0);
  Tensor keys = empty_keys_for(shard);
  if (rows == 0) return keys;
  if (valid_width == 0) return fill_with_empty_keys(keys);
  // keys: local column indices. local_keys' checks imply greedy_sample's, and keys
  // is new, so there is no write to count.
  greedy_sample_unchecked_cuda(keys, valid_columns_of(shard, valid_width));
  const cudaStream_t stream = current_stream(device);
  SAFE_GREEDY_DISPATCH_LOGITS(shard.scalar_type(), [&] {
    shard_keys_kernel<LogitsT><<<blocks_for(rows), kThreads, 0, stream>>>(
        keys.mutable_data_ptr<int64_t>(),
        reinterpret_cast<const LogitsT*>(shard.const_data_ptr()), rows,
        shard.stride(0), shard.stride(1), vocab_offset);
    SAFE_GREEDY_CUDA_CHECK(cudaGetLastError());
  });
  return keys;
}

void write_tokens_cuda(Tensor& out, const Tensor& keys) {
  check_write_tokens_args(out, keys);
  SAFE_GREEDY_CHECK(keys.is_cuda(), "keys_to_tokens: the GPU kernel got keys on ",
                    keys.device());
  count_write(out, "keys_to_tokens", "out");
  const int64_t rows = keys.size(0);
  if (rows == 0) return;
  const int32_t device = keys.get_device_index();
  const torch::stable::accelerator::DeviceGuard guard(device);
  const cudaStream_t stream = current_stream(device);
  SAFE_GREEDY_DISPATCH_INDEX(out.scalar_type(), [&] {
    write_tokens_kernel<IndexT><<<blocks_for(rows), kThreads, 0, stream>>>(
        out.mutable_data_ptr<IndexT>(), out.stride(0), keys.const_data_ptr<int64_t>(),
        keys.stride(0), rows);
    SAFE_GREEDY_CUDA_CHECK(cudaGetLastError());
  });
}

}  // namespace
}  // namespace safe_greedy

STABLE_TORCH_LIBRARY_IMPL(safe_greedy, CUDA, m) {
  m.impl("local_keys", TORCH_BOX(&safe_greedy::local_keys_cuda));
  m.impl("write_tokens", TORCH_BOX(&safe_greedy::write_tokens_cuda));
}
