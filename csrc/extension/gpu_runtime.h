// What the GPU launchers ask of the CUDA (or HIP) runtime and of torch
// through the stable ABI: errors of runtime calls, and the current stream.
#pragma once

#include <cuda_runtime.h>
// aoti_torch_get_current_cuda_stream is declared only under USE_CUDA, which
// setup.py defines for the GPU sources (under USE_ROCM in a ROCm torch's
// hipified headers, which serve it with the current HIP stream).
#include <torch/csrc/stable/c/shim.h>

#include <stdint.h>

#include "errors.h"

namespace safe_greedy {

// Raises RuntimeError naming the call when a runtime call failed.
inline void check_cuda(cudaError_t err, const char* call) {
  if (err != cudaSuccess) {
    raise<std::runtime_error>("CUDA error: ", cudaGetErrorString(err), " (", call, ")");
  }
}

// torch's current stream on `device`, the stream every launch goes to.
inline cudaStream_t current_stream(int32_t device) {
  void* stream = nullptr;
  SAFE_GREEDY_CHECK(aoti_torch_get_current_cuda_stream(device, &stream) == TORCH_SUCCESS,
                    "greedy_sample: torch gave no current stream for device ",
                    number_text(device));
  return static_cast<cudaStream_t>(stream);
}

}  // namespace safe_greedy

#define SAFE_GREEDY_CUDA_CHECK(call) ::safe_greedy::check_cuda((call), #call)
