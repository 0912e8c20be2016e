// GPU kernels of the vocab-parallel ops (CUDA, and ROCm through hipify); see
// distributed_ops.cpp for what they compute. Both run on the current stream,
// allocate nothing but local_keys' result and never wait for the host, so
// they can be captured in a CUDA graph.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "distributed_checks.h"
#include "kernels/distributed_keys.h"
#include "greedy_dispatch.h"
#include "greedy_ops.h"

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

at::Tensor local_keys_cuda(const at::Tensor& shard, int64_t vocab_offset, int64_t valid_width) {
  check_local_keys_args(shard, vocab_offset, valid_width);
  TORCH_CHECK(shard.is_cuda(), "local_keys: the GPU kernel got a shard on ", shard.device().str());
  const c10::cuda::CUDAGuard guard(shard.device());
  const int64_t rows = shard.size(0);
  at::Tensor keys = at::empty({rows}, shard.options().dtype(at::kLong));
  if (rows == 0) return keys;
  if (valid_width == 0) return keys.fill_(kEmptySignedKey);
  greedy_sample_cuda(keys, shard.narrow(1, 0, valid_width));  // keys: local column indices
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(shard.get_device()).stream();
  SAFE_GREEDY_DISPATCH_LOGITS(shard.scalar_type(), [&] {
    shard_keys_kernel<LogitsT><<<blocks_for(rows), kThreads, 0, stream>>>(
        keys.data_ptr<int64_t>(), reinterpret_cast<const LogitsT*>(shard.const_data_ptr()), rows,
        shard.stride(0), shard.stride(1), vocab_offset);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return keys;
}

void write_tokens_cuda(at::Tensor& out, const at::Tensor& keys) {
  check_write_tokens_args(out, keys);
  TORCH_CHECK(keys.is_cuda(), "keys_to_tokens: the GPU kernel got keys on ", keys.device().str());
  const int64_t rows = keys.size(0);
  if (rows == 0) return;
  const c10::cuda::CUDAGuard guard(keys.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(keys.get_device()).stream();
  SAFE_GREEDY_DISPATCH_INDEX(out.scalar_type(), [&] {
    write_tokens_kernel<IndexT><<<blocks_for(rows), kThreads, 0, stream>>>(
        out.data_ptr<IndexT>(), out.stride(0), keys.const_data_ptr<int64_t>(), keys.stride(0),
        rows);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace
}  // namespace safe_greedy

TORCH_LIBRARY_IMPL(safe_greedy, CUDA, m) {
  m.impl("local_keys", &safe_greedy::local_keys_cuda);
  m.impl("write_tokens", &safe_greedy::write_tokens_cuda);
}
