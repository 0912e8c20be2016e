#include "greedy_gpu_workspace.h"

#include <c10/cuda/CUDAException.h>

#include <map>
#include <mutex>
#include <utility>
#include <vector>

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

// Eager launches: the workspace of each (device, stream), kept forever.
Workspace stream_workspace(int device, cudaStream_t stream, int64_t rows) {
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

// Captured launches: workspaces no graph owns any more, per device, all zero
// (every launch leaves its slots zero, and a graph gives its workspace back
// only once its last launch is done). Never freed, for the reason above.
struct FreeSlots {
  std::mutex mutex;  // taken for nothing but the vector: no CUDA call under it
  std::map<int, std::vector<Slots>> by_device;
};

FreeSlots& free_slots() {
  static auto* pool = new FreeSlots();
  return *pool;
}

// A captured launch's workspace, owned by the graph it was captured into.
struct GraphOwned {
  int device;
  Slots slots;
};

// Runs when the graph and every executable graph made from it are destroyed
// and their launches are done; the driver may call it from a thread of its
// own, where no CUDA call is allowed.
void give_back(void* owned) {
  auto* g = static_cast<GraphOwned*>(owned);
  {
    FreeSlots& pool = free_slots();
    const std::lock_guard<std::mutex> lock(pool.mutex);
    pool.by_device[g->device].push_back(g->slots);
  }
  delete g;
}

Slots take_free_slots(int device, int64_t rows) {
  {
    FreeSlots& pool = free_slots();
    const std::lock_guard<std::mutex> lock(pool.mutex);
    std::vector<Slots>& held = pool.by_device[device];
    for (size_t i = 0; i < held.size(); ++i) {
      if (held[i].rows >= rows) {
        const Slots found = held[i];
        held[i] = held.back();
        held.pop_back();
        return found;
      }
    }
  }
  return create_slots(rows);
}

// Each captured launch gets a workspace of its own, which the graph keeps
// until it is destroyed, so that graphs captured on one stream can be
// replayed concurrently (a replay is ordered after the previous replays of
// the same executable graph, so launches of one graph node never overlap).
Workspace graph_workspace(int device, cudaGraph_t graph, int64_t rows) {
  auto* owned = new GraphOwned{device, take_free_slots(device, rows)};
  const Workspace workspace = owned->slots.workspace;
  // As in create_slots(): whatever capture mode this thread is in.
  cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  C10_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
  cudaUserObject_t object = nullptr;
  cudaError_t err = cudaUserObjectCreate(&object, owned, give_back, 1, cudaUserObjectNoDestructorSync);
  if (err == cudaSuccess) {
    err = cudaGraphRetainUserObject(graph, object, 1, cudaGraphUserObjectMove);
    // Dropping the reference that did not move gives the workspace back.
    if (err != cudaSuccess) cudaUserObjectRelease(object, 1);
  } else {
    give_back(owned);
  }
  cudaStreamCaptureMode restored = mode;
  cudaThreadExchangeStreamCaptureMode(&restored);
  C10_CUDA_CHECK(err);
  return workspace;
}

}  // namespace

Workspace workspace_for(int device, cudaStream_t stream, int64_t rows) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  cudaGraph_t graph = nullptr;
#if defined(USE_ROCM)
  C10_CUDA_CHECK(hipStreamGetCaptureInfo_v2(stream, &status, nullptr, &graph, nullptr, nullptr));
#else
  C10_CUDA_CHECK(cudaStreamGetCaptureInfo(stream, &status, nullptr, &graph));
#endif
  // An invalidated capture fails at the launch, whichever workspace it names.
  if (status == cudaStreamCaptureStatusActive) return graph_workspace(device, graph, rows);
  return stream_workspace(device, stream, rows);
}

}  // namespace gpu
}  // namespace safe_greedy
