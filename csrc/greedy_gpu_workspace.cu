#include "greedy_gpu_workspace.h"

#include <c10/cuda/CUDAException.h>

#include <map>
#include <mutex>
#include <utility>

namespace safe_greedy {
namespace gpu {
namespace {

struct Slots {
  Workspace workspace;
  int64_t rows;
};

// Allocates and zeroes outside any stream capture that may be under way on
// this thread: cudaMalloc and a synchronous memset are not capturable, and
// the slots must be zero before the first launch, captured or not.
Slots create_slots(int64_t rows) {
  cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  C10_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
  const size_t key_bytes = static_cast<size_t>(rows) * sizeof(Key);
  const size_t bytes = key_bytes + static_cast<size_t>(rows) * sizeof(uint32_t);
  void* memory = nullptr;
  cudaError_t err = cudaMalloc(&memory, bytes);
  cudaStream_t side = nullptr;
  if (err == cudaSuccess) err = cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking);
  if (err == cudaSuccess) err = cudaMemsetAsync(memory, 0, bytes, side);
  if (err == cudaSuccess) err = cudaStreamSynchronize(side);
  if (side != nullptr) cudaStreamDestroy(side);
  cudaStreamCaptureMode restored = mode;
  cudaThreadExchangeStreamCaptureMode(&restored);
  if (err != cudaSuccess && memory != nullptr) cudaFree(memory);
  C10_CUDA_CHECK(err);
  auto* base = static_cast<unsigned char*>(memory);
  return Slots{Workspace{reinterpret_cast<Key*>(base),
                         reinterpret_cast<uint32_t*>(base + key_bytes)},
               rows};
}

}  // namespace

Workspace workspace_for(int device, cudaStream_t stream, int64_t rows) {
  static std::mutex mutex;
  // Never destroyed: the slots outlive every stream that might still use them,
  // and freeing device memory at process exit races the driver's teardown.
  static auto* slots = new std::map<std::pair<int, cudaStream_t>, Slots>();
  const std::lock_guard<std::mutex> lock(mutex);
  auto it = slots->find({device, stream});
  if (it != slots->end() && it->second.rows >= rows) return it->second.workspace;
  // A larger request than before (a device whose occupancy grew) leaks the
  // old slots instead of freeing memory a queued launch may still use.
  const Slots created = create_slots(rows);
  (*slots)[{device, stream}] = created;
  return created.workspace;
}

}  // namespace gpu
}  // namespace safe_greedy
