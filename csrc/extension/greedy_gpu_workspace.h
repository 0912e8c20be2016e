// The GPU kernel's per-row combine slots, created once and reused forever.
#pragma once

#include <cuda_runtime.h>

#include <stdint.h>

#include "kernels/greedy_key.h"

namespace safe_greedy {
namespace gpu {

struct Workspace {
  Key* row_keys;            // [slots], all zero between launches: a key per split row,
                            // or a slot per item of rows combined by collection
  uint32_t* row_arrivals;   // [slots], all zero between launches: a counter per split row
  uint64_t* row_stats;      // [slots]: a pair per item, for the kernels with the extra
                            // outputs; each launch writes what it reads
};

// The workspace for a launch on `stream` of `device`, with room for at least
// `slots` key slots (and as many counters). Created zeroed and never freed;
// the kernel returns every slot it touches to zero, so no call needs a memset.
//
// Launches sharing a workspace must not overlap, so: an eager launch gets the
// workspace of its (device, stream), which launches on other streams never
// share; a launch captured into a CUDA graph gets the workspace of its
// captured stream in that capture, which the graph holds until it is
// destroyed (later captures then reuse it), so graphs captured on one stream
// may be replayed concurrently. (Executable graphs made from one capture:
// instantiated twice, cloned or embedded as a child graph, share its
// workspaces: replay those one at a time.)
Workspace workspace_for(int device, cudaStream_t stream, int64_t slots);

}  // namespace gpu
}  // namespace safe_greedy
