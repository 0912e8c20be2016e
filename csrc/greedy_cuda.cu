// GPU launcher of greedy_sample (CUDA, and ROCm through hipify): validation,
// device guard, current stream, launch plan, workspace, dtype dispatch.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <limits>

#include "greedy_checks.h"
#include "greedy_dispatch.h"
#include "greedy_gpu.cuh"
#include "greedy_gpu_workspace.h"
#include "greedy_ops.h"
#include "greedy_plan.h"

namespace safe_greedy {
namespace {

// Blocks of one kernel instantiation resident on the whole device, looked up
// once per device and instantiation (the template arguments: every
// instantiation has its own register count): the per-call path makes no
// driver query.
template <int kThreads, class T, class IndexT, bool kContiguous>
int64_t resident_blocks(int device) {
  constexpr int kMaxDevices = 64;
  static std::atomic<int64_t> cached[kMaxDevices] = {};
  if (device < kMaxDevices) {
    const int64_t known = cached[device].load(std::memory_order_relaxed);
    if (known > 0) return known;
  }
  int sms = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  int per_sm = 0;
  C10_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
      &per_sm, gpu::greedy_sample_kernel<kThreads, T, IndexT, kContiguous>, kThreads, 0));
  const int64_t blocks = static_cast<int64_t>(sms) * std::max(per_sm, 1);
  if (device < kMaxDevices) cached[device].store(blocks, std::memory_order_relaxed);
  return blocks;
}

template <int kThreads, class T, class IndexT, bool kContiguous>
void launch_with(at::Tensor& out, const at::Tensor& logits, cudaStream_t stream, int device) {
  const int64_t batch = logits.size(0);
  const uint32_t vocab = static_cast<uint32_t>(logits.size(1));
  const int64_t resident = resident_blocks<kThreads, T, IndexT, kContiguous>(device);
  const gpu::LaunchPlan plan =
      gpu::plan_launch(batch, vocab, kContiguous, 16 / sizeof(T), kThreads, resident);
  const int64_t items = batch * plan.splits;
  TORCH_CHECK(items <= std::numeric_limits<int32_t>::max(),
              "greedy_sample: batch ", number_text(batch),
              " needs more blocks than one launch allows");

  gpu::Params p{};
  p.logits = logits.const_data_ptr();
  p.out = out.data_ptr();
  p.out_stride = out.stride(0);
  p.row_stride = logits.stride(0);
  p.column_stride = logits.stride(1);
  p.vocab = vocab;
  p.splits = plan.splits;
  p.units_per_split = plan.units_per_split;
  if (plan.splits > 1) {
    const gpu::Workspace ws = gpu::workspace_for(device, stream, gpu::max_split_rows(resident));
    p.row_keys = ws.row_keys;
    p.row_arrivals = ws.row_arrivals;
  }
  gpu::greedy_sample_kernel<kThreads, T, IndexT, kContiguous>
      <<<static_cast<unsigned int>(items), kThreads, 0, stream>>>(p);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <class T, class IndexT, bool kContiguous>
void launch(at::Tensor& out, const at::Tensor& logits, cudaStream_t stream, int device) {
  constexpr int kNarrow = gpu::kNarrowBlockThreads;
  constexpr int kStandard = gpu::kStandardBlockThreads;
  constexpr int kWide = gpu::kWideBlockThreads;
  const gpu::ResidentBlocks resident{resident_blocks<kNarrow, T, IndexT, kContiguous>(device),
                                     resident_blocks<kStandard, T, IndexT, kContiguous>(device),
                                     resident_blocks<kWide, T, IndexT, kContiguous>(device)};
  const int64_t units = gpu::row_units(logits.size(1), kContiguous, 16 / sizeof(T));
  switch (gpu::block_threads_for(logits.size(0), units, resident)) {
    case kNarrow:
      launch_with<kNarrow, T, IndexT, kContiguous>(out, logits, stream, device);
      break;
    case kWide:
      launch_with<kWide, T, IndexT, kContiguous>(out, logits, stream, device);
      break;
    default:
      launch_with<kStandard, T, IndexT, kContiguous>(out, logits, stream, device);
      break;
  }
}

}  // namespace

void greedy_sample_cuda(at::Tensor& out, const at::Tensor& logits) {
  check_greedy_sample_args(out, logits);
  TORCH_CHECK(logits.is_cuda(), "greedy_sample: the GPU kernel got logits on ",
              logits.device().str());
  if (logits.size(0) == 0) return;
  const c10::cuda::CUDAGuard guard(logits.device());
  const int device = logits.get_device();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device).stream();
  SAFE_GREEDY_DISPATCH_LOGITS(logits.scalar_type(), [&] {
    SAFE_GREEDY_DISPATCH_INDEX(out.scalar_type(), [&] {
      if (logits.stride(1) == 1 || logits.size(1) == 1) {
        launch<LogitsT, IndexT, true>(out, logits, stream, device);
      } else {
        launch<LogitsT, IndexT, false>(out, logits, stream, device);
      }
    });
  });
}

}  // namespace safe_greedy

TORCH_LIBRARY_IMPL(safe_greedy, CUDA, m) {
  m.impl("greedy_sample", &safe_greedy::greedy_sample_cuda);
}
