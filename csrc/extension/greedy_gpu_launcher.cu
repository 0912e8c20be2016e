// GPU launcher of greedy_sample (CUDA, and ROCm through hipify): validation,
// device guard, current stream, launch plan, workspace, dtype dispatch, and
// the launch itself (early start where the device allows).
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <string>

#include "greedy_checks.h"
#include "greedy_dispatch.h"
#include "greedy_gpu_workspace.h"
#include "greedy_ops.h"
#include "gpu_runtime.h"
#include "inplace_write.h"
#include "kernels/greedy_gpu.cuh"
#include "kernels/greedy_plan.h"

namespace safe_greedy {
namespace {

#if !defined(USE_ROCM)  // ROCm has no programmatic dependent launch
// Whether SAFE_GREEDY_PDL=0 turns programmatic dependent launch off.
bool early_start_allowed() {
  static const bool allowed = [] {
    const char* setting = std::getenv("SAFE_GREEDY_PDL");
    return setting == nullptr || std::string(setting) != "0";
  }();
  return allowed;
}
#endif

// A tuning build (compiled with -DSAFE_GREEDY_TUNING) lets the environment
// variable SAFE_GREEDY_TUNING_SPLITS force every call's split count, for
// benchmarks/tune_splits.py. Every build compiles that path; only a tuning
// build runs it.
#if defined(SAFE_GREEDY_TUNING)
constexpr bool kTuningBuild = true;
#else
constexpr bool kTuningBuild = false;
#endif

// SAFE_GREEDY_TUNING_SPLITS, or 0 where it is unset or empty. Read on every
// call, so that one process can sweep split counts.
int64_t forced_splits_from_environment() {
  const char* setting = std::getenv("SAFE_GREEDY_TUNING_SPLITS");
  if (setting == nullptr || *setting == '\0') return 0;
  char* end = nullptr;
  const long long splits = std::strtoll(setting, &end, 10);
  SAFE_GREEDY_CHECK_VALUE(*end == '\0' && splits >= 1,
                          "SAFE_GREEDY_TUNING_SPLITS must be a positive number of splits, got '",
                          setting, "'");
  return splits;
}

// Looked up once per device (the per-call path makes no driver query): the
// device's part of the plan's DeviceDescription.
struct DeviceFacts {
  int64_t multiprocessors;
  int wave_width;
  int compute_capability;
};

DeviceFacts look_up_device_facts(int device) {
  int sms = 0;
  int wave = 0;
  int major = 0;
  int minor = 0;
  SAFE_GREEDY_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  SAFE_GREEDY_CUDA_CHECK(cudaDeviceGetAttribute(&wave, cudaDevAttrWarpSize, device));
  SAFE_GREEDY_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  SAFE_GREEDY_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  return DeviceFacts{sms, wave, 10 * major + minor};
}

// What the launcher needs to know about one kernel instantiation on one device.
struct KernelFacts {
  // Blocks of it that fit a multiprocessor (each instantiation has its own
  // register count).
  int64_t fit;
  // Whether the launch may start before the previous kernel in the stream has
  // finished (programmatic dependent launch). Only where the code that runs
  // was compiled for compute capability 9.0 or later: the kernel's wait for
  // the previous grid exists only there, and a build for an older target
  // running on a newer device through its PTX must not start early.
  bool early_start;
};

// On the current device, which the caller's device guard has set.
template <int kThreads, int kRowThreads, class T, class IndexT, bool kContiguous, bool kStats>
KernelFacts look_up_kernel_facts() {
  const auto kernel =
      gpu::greedy_sample_kernel<kThreads, kRowThreads, T, IndexT, kContiguous, kStats>;
  int per_sm = 0;
  SAFE_GREEDY_CUDA_CHECK(
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, 0));
  KernelFacts facts{per_sm, false};
#if !defined(USE_ROCM)
  cudaFuncAttributes attributes{};
  SAFE_GREEDY_CUDA_CHECK(cudaFuncGetAttributes(&attributes, kernel));
  facts.early_start = early_start_allowed() && attributes.ptxVersion >= 90;
#endif
  return facts;
}

// look_up(device), called once per device and LookUp type and cached.
template <class Facts, class LookUp>
Facts once_per_device(int device, LookUp look_up) {
  constexpr int kMaxDevices = 64;
  if (device >= kMaxDevices) return look_up(device);
  static std::once_flag looked_up[kMaxDevices];
  static Facts facts[kMaxDevices];
  std::call_once(looked_up[device], [&] { facts[device] = look_up(device); });
  return facts[device];
}

DeviceFacts device_facts(int device) {
  return once_per_device<DeviceFacts>(device, look_up_device_facts);
}

template <int kThreads, int kRowThreads, class T, class IndexT, bool kContiguous, bool kStats>
KernelFacts kernel_facts(int device) {
  return once_per_device<KernelFacts>(device, [](int) {
    return look_up_kernel_facts<kThreads, kRowThreads, T, IndexT, kContiguous, kStats>();
  });
}

// Launches the kernel on `stream`; with `early_start`, its blocks may start
// while the previous kernel on the stream finishes (the kernel waits for it
// before touching memory, see wait_for_previous_grid()).
template <class Kernel, class KernelParams>
void launch_kernel(Kernel kernel, dim3 grid, int threads, cudaStream_t stream,
                   bool early_start, const KernelParams& p) {
#if !defined(USE_ROCM)
  if (early_start) {
    cudaLaunchAttribute attributes[1] = {};
    attributes[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attributes[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t config = {};
    config.gridDim = grid;
    config.blockDim = dim3(threads);
    config.dynamicSmemBytes = 0;
    config.stream = stream;
    config.attrs = attributes;
    config.numAttrs = 1;
    SAFE_GREEDY_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, p));
    return;
  }
#endif
  kernel<<<grid, threads, 0, stream>>>(p);
  SAFE_GREEDY_CUDA_CHECK(cudaGetLastError());
}

// The plan's DeviceDescription for this call's kernels on `device`.
template <class T, class IndexT, bool kContiguous, bool kStats>
gpu::DeviceDescription describe_device(int device) {
  constexpr int kNarrow = gpu::kNarrowBlockThreads;
  constexpr int kStandard = gpu::kStandardBlockThreads;
  constexpr int kWide = gpu::kWideBlockThreads;
  const DeviceFacts d = device_facts(device);
  gpu::DeviceDescription description{};
  description.multiprocessors = d.multiprocessors;
  description.wave_width = d.wave_width;
#if defined(USE_ROCM)
  description.amd = true;
#endif
  description.compute_capability = d.compute_capability;
  description.fit.narrow =
      kernel_facts<kNarrow, kNarrow, T, IndexT, kContiguous, kStats>(device).fit;
  description.fit.standard =
      kernel_facts<kStandard, kStandard, T, IndexT, kContiguous, kStats>(device).fit;
  description.fit.wide = kernel_facts<kWide, kWide, T, IndexT, kContiguous, kStats>(device).fit;
  return description;
}

// Launches the instantiation of kThreads threads a block, kRowThreads a row,
// as `plan` says.
template <int kThreads, int kRowThreads, class T, class IndexT, bool kContiguous, bool kStats>
void launch_planned(const gpu::LaunchPlan& plan, const gpu::KernelParams<kStats>& p,
                    cudaStream_t stream, int device) {
  const bool early_start =
      kernel_facts<kThreads, kRowThreads, T, IndexT, kContiguous, kStats>(device).early_start;
  const dim3 grid(static_cast<unsigned int>(plan.grid_x), plan.grid_y);
  launch_kernel(gpu::greedy_sample_kernel<kThreads, kRowThreads, T, IndexT, kContiguous, kStats>,
                grid, kThreads, stream, early_start, p);
}

// kStats: the kernels with the extra outputs, which go where `outputs` says.
template <class T, class IndexT, bool kContiguous, bool kStats>
void launch(Tensor& out, const Tensor& logits, const ExtraOutputs& outputs,
            cudaStream_t stream, int device) {
  const int64_t batch = logits.size(0);
  const uint32_t vocab = static_cast<uint32_t>(logits.size(1));
  const gpu::Problem problem{batch, vocab, kContiguous, static_cast<int>(16 / sizeof(T)), kStats};
  gpu::LaunchPlan plan =
      gpu::plan_launch(problem, describe_device<T, IndexT, kContiguous, kStats>(device));
  // A plain `if`: the tuning path stays referenced (and compiled) in every
  // build, and the compiler drops it where kTuningBuild is false.
  if (kTuningBuild) {
    plan = gpu::with_forced_splits(plan, problem, forced_splits_from_environment());
  }
  SAFE_GREEDY_CHECK(plan.grid_x <= std::numeric_limits<int32_t>::max(),
                    "greedy_sample: batch ", number_text(batch),
                    " needs more blocks than one launch allows");

  gpu::KernelParams<kStats> p{};
  p.logits = logits.const_data_ptr();
  p.out = out.mutable_data_ptr();
  p.out_stride = out.stride(0);
  p.row_stride = logits.stride(0);
  p.column_stride = logits.stride(1);
  p.vocab = vocab;
  p.splits = plan.splits;
  p.units_per_split = plan.units_per_split;
  p.rows = batch;
  p.combine = plan.combine;
  if (plan.combine != gpu::Combine::kNone) {
    // A slot per item (rows combined by collection need one each), which is
    // also at least one per row.
    SAFE_GREEDY_CHECK(batch * plan.splits <= plan.workspace_slots,
                      "greedy_sample: internal error: split into more items than the "
                      "workspace holds");
    const gpu::Workspace ws = gpu::workspace_for(device, stream, plan.workspace_slots);
    p.row_keys = ws.row_keys;
    p.row_arrivals = ws.row_arrivals;
    if constexpr (kStats) p.row_stats = ws.row_stats;
  }
  if constexpr (kStats) p.outputs = outputs;

  constexpr int kNarrow = gpu::kNarrowBlockThreads;
  constexpr int kStandard = gpu::kStandardBlockThreads;
  constexpr int kWide = gpu::kWideBlockThreads;
  if (plan.row_threads != plan.block_threads) {
    // Blocks that read several short rows: only contiguous rows, in the one
    // group width this build instantiates.
    SAFE_GREEDY_CHECK(kContiguous && plan.block_threads == kStandard &&
                          plan.row_threads == gpu::kShortRowThreads,
                      "greedy_sample: internal error: no kernel for ",
                      number_text(plan.row_threads), " threads a row");
    if constexpr (kContiguous) {
      launch_planned<kStandard, gpu::kShortRowThreads, T, IndexT, kContiguous, kStats>(
          plan, p, stream, device);
    }
    return;
  }
  switch (plan.block_threads) {
    case kNarrow:
      launch_planned<kNarrow, kNarrow, T, IndexT, kContiguous, kStats>(plan, p, stream, device);
      break;
    case kWide:
      launch_planned<kWide, kWide, T, IndexT, kContiguous, kStats>(plan, p, stream, device);
      break;
    default:
      launch_planned<kStandard, kStandard, T, IndexT, kContiguous, kStats>(plan, p, stream, device);
      break;
  }
}

// Guard, stream and dispatch, shared by both ops: kStats picks the kernels
// with the extra outputs.
template <bool kStats>
void run_gpu_kernel(Tensor& out, const Tensor& logits, const ExtraOutputs& outputs) {
  if (logits.size(0) == 0) return;
  const int device = logits.get_device_index();
  const torch::stable::accelerator::DeviceGuard guard(device);
  const cudaStream_t stream = current_stream(device);
  SAFE_GREEDY_DISPATCH_LOGITS(logits.scalar_type(), [&] {
    SAFE_GREEDY_DISPATCH_INDEX(out.scalar_type(), [&] {
      if (logits.stride(1) == 1 || logits.size(1) == 1) {
        launch<LogitsT, IndexT, true, kStats>(out, logits, outputs, stream, device);
      } else {
        launch<LogitsT, IndexT, false, kStats>(out, logits, outputs, stream, device);
      }
    });
  });
}

void check_on_gpu(const Tensor& logits) {
  SAFE_GREEDY_CHECK(logits.is_cuda(), "greedy_sample: the GPU kernel got logits on ",
                    logits.device());
}

}  // namespace

void greedy_sample_cuda(Tensor& out, const Tensor& logits) {
  check_greedy_sample_args(out, logits);
  check_on_gpu(logits);
  count_write(out, "greedy_sample", "out");
  greedy_sample_unchecked_cuda(out, logits);
}

void greedy_sample_unchecked_cuda(Tensor& out, const Tensor& logits) {
  run_gpu_kernel<false>(out, logits, ExtraOutputs{});
}

void greedy_sample_outputs_cuda(Tensor& out, const Tensor& logits,
                                const std::optional<Tensor>& logprobs,
                                const std::optional<Tensor>& logsumexp,
                                const std::optional<Tensor>& valid,
                                std::optional<int64_t> fallback_token) {
  const ExtraOutputs outputs =
      check_greedy_outputs_args(out, logits, logprobs, logsumexp, valid, fallback_token);
  check_on_gpu(logits);
  count_outputs_write(out, logprobs, logsumexp, valid);
  // One kernel for any choice of outputs: the pairs cost little beside the
  // read, and a kernel without them for valid and the fallback alone would
  // double the instantiations again.
  run_gpu_kernel<true>(out, logits, outputs);
}

}  // namespace safe_greedy

STABLE_TORCH_LIBRARY_IMPL(safe_greedy, CUDA, m) {
  m.impl("greedy_sample", TORCH_BOX(&safe_greedy::greedy_sample_cuda));
  m.impl("greedy_sample_outputs", TORCH_BOX(&safe_greedy::greedy_sample_outputs_cuda));
}
