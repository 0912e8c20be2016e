#include "greedy_gpu_workspace.h"

#include "gpu_runtime.h"

#include <map>
#include <mutex>
#include <utility>
#include <vector>

namespace safe_greedy {
namespace gpu {
namespace {

struct Slots {
  Workspace workspace;
  int64_t count;  // key slots, and as many row counters and pairs
};

// Puts this thread in the relaxed capture mode for its lifetime: memory is
// allocated and zeroed, and a graph given a user object, while a stream may
// be capturing in a stricter mode (torch's default) that refuses those calls.
class RelaxedCaptureMode {
 public:
  RelaxedCaptureMode() { SAFE_GREEDY_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&previous_)); }
  ~RelaxedCaptureMode() { (void)cudaThreadExchangeStreamCaptureMode(&previous_); }
  RelaxedCaptureMode(const RelaxedCaptureMode&) = delete;
  RelaxedCaptureMode& operator=(const RelaxedCaptureMode&) = delete;

 private:
  cudaStreamCaptureMode previous_ = cudaStreamCaptureModeRelaxed;
};

// Allocates and zeroes outside any stream capture that may be under way on
// this thread (on a stream of its own, synchronously): the slots must be zero
// before the first launch, captured or not.
Slots create_slots(int64_t count) {
  const RelaxedCaptureMode relaxed;
  const size_t key_bytes = static_cast<size_t>(count) * sizeof(Key);
  const size_t stats_bytes = static_cast<size_t>(count) * sizeof(uint64_t);
  const size_t bytes = key_bytes + stats_bytes + static_cast<size_t>(count) * sizeof(uint32_t);
  void* memory = nullptr;
  cudaError_t err = cudaMalloc(&memory, bytes);
  cudaStream_t side = nullptr;
  if (err == cudaSuccess) err = cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking);
  if (err == cudaSuccess) err = cudaMemsetAsync(memory, 0, bytes, side);
  if (err == cudaSuccess) err = cudaStreamSynchronize(side);
  // Releases report nothing: the error worth reporting is the first, above.
  if (side != nullptr) (void)cudaStreamDestroy(side);
  if (err != cudaSuccess && memory != nullptr) (void)cudaFree(memory);
  SAFE_GREEDY_CUDA_CHECK(err);
  auto* base = static_cast<unsigned char*>(memory);
  return Slots{Workspace{reinterpret_cast<Key*>(base),
                         reinterpret_cast<uint32_t*>(base + key_bytes + stats_bytes),
                         reinterpret_cast<uint64_t*>(base + key_bytes)},
               count};
}

// Eager launches: the workspace of each (device, stream), kept forever.
Workspace stream_workspace(int device, cudaStream_t stream, int64_t count) {
  static std::mutex mutex;
  // Never destroyed: the slots outlive every stream that might still use them,
  // and freeing device memory at process exit races the driver's teardown.
  static auto* slots = new std::map<std::pair<int, cudaStream_t>, Slots>();
  const std::lock_guard<std::mutex> lock(mutex);
  auto it = slots->find({device, stream});
  if (it != slots->end() && it->second.count >= count) return it->second.workspace;
  // A larger request than before (a device whose occupancy grew) leaks the
  // old slots instead of freeing memory a queued launch may still use.
  const Slots created = create_slots(count);
  (*slots)[{device, stream}] = created;
  return created.workspace;
}

// Captured launches: a workspace per captured stream of each capture, held
// by the graph being captured (see capture_workspace()).
struct CaptureKey {
  int device;
  unsigned long long capture_id;  // unique to one capture for the process' life
  cudaStream_t stream;
  bool operator<(const CaptureKey& o) const {
    if (device != o.device) return device < o.device;
    if (capture_id != o.capture_id) return capture_id < o.capture_id;
    return stream < o.stream;
  }
};

struct CaptureSlots {
  std::mutex mutex;  // taken for the containers only: no CUDA call under it
  std::map<CaptureKey, Slots> in_capture;         // held by a graph that is still alive
  std::map<int, std::vector<Slots>> free_by_device;  // held by none, all zero
};

// Never destroyed, for the reason given in stream_workspace().
CaptureSlots& capture_slots() {
  static auto* slots = new CaptureSlots();
  return *slots;
}

// What a graph holds: one workspace and the capture it was made for.
struct GraphOwned {
  CaptureKey key;
  Slots slots;
};

// Whether a graph's slots may serve a later capture. CUDA runs a user
// object's destructor only after the launches of the graphs holding it are
// done; ROCm before 6.3 is not known to wait for them, so there the slots are
// never reused (a few kilobytes per destroyed graph).
#if defined(USE_ROCM) && HIP_VERSION < 60300000
constexpr bool kReuseGraphSlots = false;
#else
constexpr bool kReuseGraphSlots = true;
#endif

// Runs once the graph and every executable graph made from it are destroyed
// and their launches are done, possibly on a driver thread where no CUDA call
// is allowed. Every launch left the slots zero, so they go back as they came.
void give_back(void* owned) {
  auto* g = static_cast<GraphOwned*>(owned);
  {
    CaptureSlots& all = capture_slots();
    const std::lock_guard<std::mutex> lock(all.mutex);
    auto it = all.in_capture.find(g->key);
    if (it != all.in_capture.end() && it->second.workspace.row_keys == g->slots.workspace.row_keys) {
      all.in_capture.erase(it);
    }
    if (kReuseGraphSlots) all.free_by_device[g->key.device].push_back(g->slots);
  }
  delete g;
}

// Free slots, at least `count` of them, taken out of the pool, or new ones.
Slots take_free_slots(int device, int64_t count) {
  {
    CaptureSlots& all = capture_slots();
    const std::lock_guard<std::mutex> lock(all.mutex);
    std::vector<Slots>& held = all.free_by_device[device];
    for (size_t i = 0; i < held.size(); ++i) {
      if (held[i].count >= count) {
        const Slots found = held[i];
        held[i] = held.back();
        held.pop_back();
        return found;
      }
    }
  }
  return create_slots(count);
}

// The workspace of one captured stream of one capture. Launches captured on
// one stream are ordered in the graph, so they share it, as eager launches on
// a stream do (unless the capture's dependencies are rewritten with
// cudaStreamUpdateCaptureDependencies); other captures, and other streams of
// this one (forked work may run concurrently), get their own. The graph keeps
// it (a user object) until it is destroyed, so graphs captured on one stream
// may be replayed concurrently: a replay is ordered after the previous
// replays of the same executable graph, so launches of one graph node never
// overlap. Executable graphs made from one capture (instantiated twice,
// cloned, or embedded as a child graph) hold the same workspaces, and must
// not be replayed at the same time.
Workspace capture_workspace(const CaptureKey& key, cudaGraph_t graph, int64_t count) {
  CaptureSlots& all = capture_slots();
  {
    const std::lock_guard<std::mutex> lock(all.mutex);
    auto it = all.in_capture.find(key);
    if (it != all.in_capture.end() && it->second.count >= count) return it->second.workspace;
  }
  const RelaxedCaptureMode relaxed;  // first: if it throws, nothing is held yet
  // Only the thread capturing this stream gets here for this key.
  auto* owned = new GraphOwned{key, take_free_slots(key.device, count)};
  const Slots slots = owned->slots;
  cudaUserObject_t object = nullptr;
  cudaError_t err = cudaUserObjectCreate(&object, owned, give_back, 1, cudaUserObjectNoDestructorSync);
  if (err == cudaSuccess) {
    err = cudaGraphRetainUserObject(graph, object, 1, cudaGraphUserObjectMove);
    // Dropping the reference that did not move gives the slots back.
    if (err != cudaSuccess) (void)cudaUserObjectRelease(object, 1);
  } else {
    give_back(owned);
  }
  SAFE_GREEDY_CUDA_CHECK(err);
  {
    // A larger request than before in the same capture replaces the entry;
    // the graph still holds the smaller slots and gives them back in the end.
    const std::lock_guard<std::mutex> lock(all.mutex);
    all.in_capture[key] = slots;
  }
  return slots.workspace;
}

}  // namespace

Workspace workspace_for(int device, cudaStream_t stream, int64_t slots) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  unsigned long long capture_id = 0;
  cudaGraph_t graph = nullptr;
#if defined(USE_ROCM)
  SAFE_GREEDY_CUDA_CHECK(
      hipStreamGetCaptureInfo_v2(stream, &status, &capture_id, &graph, nullptr, nullptr));
#elif CUDART_VERSION < 12000
  SAFE_GREEDY_CUDA_CHECK(
      cudaStreamGetCaptureInfo_v2(stream, &status, &capture_id, &graph, nullptr, nullptr));
#else
  SAFE_GREEDY_CUDA_CHECK(cudaStreamGetCaptureInfo(stream, &status, &capture_id, &graph));
#endif
  // An invalidated capture fails at the launch, whichever workspace it names.
  if (status == cudaStreamCaptureStatusActive) {
    return capture_workspace(CaptureKey{device, capture_id, stream}, graph, slots);
  }
  return stream_workspace(device, stream, slots);
}

}  // namespace gpu
}  // namespace safe_greedy
