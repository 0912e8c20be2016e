// Pure-read kernels for benchmarks/read_floor.py: they read every byte of a
// tensor with 16-byte loads and compute nothing that survives, so their time is
// what reading those bytes costs on this GPU with a given launch layout. They
// write nothing unless a 32-bit word of the data equals kNeverSeen, which keeps
// the compiler from dropping the loads (randn logits never contain it).
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

#include <cstdint>

namespace {

constexpr unsigned kNeverSeen = 0x7fc00123u;

__device__ __forceinline__ unsigned word_max(uint4 v) {
  return max(max(v.x, v.y), max(v.z, v.w));
}

// The largest 32-bit word among the vectors first, first + step, ... below
// end, read kUnroll loads at a time: the one loop both layouts below run.
template <int kUnroll>
__device__ __forceinline__ unsigned read_every_step(const uint4* __restrict__ data, int64_t first,
                                                    int64_t step, int64_t end) {
  unsigned seen = 0;
  int64_t i = first;
  for (; i + (kUnroll - 1) * step < end; i += kUnroll * step) {
    uint4 loaded[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) loaded[u] = __ldcs(data + i + u * step);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) seen = max(seen, word_max(loaded[u]));
  }
  for (; i < end; i += step) seen = max(seen, word_max(__ldcs(data + i)));
  return seen;
}

// Grid-stride: iteration n of all blocks reads one contiguous stretch of
// gridDim.x * kThreads * kUnroll vectors, the layout a plain streaming kernel
// uses.
template <int kThreads, int kUnroll>
__global__ void __launch_bounds__(kThreads)
    grid_stride_read(const uint4* __restrict__ data, int64_t vectors, unsigned* sink) {
  const unsigned seen = read_every_step<kUnroll>(
      data, static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x,
      static_cast<int64_t>(gridDim.x) * kThreads, vectors);
  if (seen == kNeverSeen) *sink = seen;
}

// Chunked: block b reads the b-th of gridDim.x equal contiguous chunks, its
// threads interleaved, four loads in flight a thread: a launch of
// safe_greedy's shape without the per-element key work, the block reduction
// or the combine (safe_greedy's items of a split row interleave in strips
// instead of reading one chunk each).
template <int kThreads>
__global__ void __launch_bounds__(kThreads)
    chunked_read(const uint4* __restrict__ data, int64_t vectors, int64_t chunk, unsigned* sink) {
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * chunk;
  const int64_t end = begin + chunk < vectors ? begin + chunk : vectors;
  const unsigned seen = read_every_step<4>(data, begin + threadIdx.x, kThreads, end);
  if (seen == kNeverSeen) *sink = seen;
}

const uint4* vectors_of(const at::Tensor& data, int64_t* vectors) {
  TORCH_CHECK(data.is_cuda() && data.is_contiguous(), "read_floor: data must be a contiguous CUDA tensor");
  const int64_t bytes = data.numel() * data.element_size();
  TORCH_CHECK(reinterpret_cast<uintptr_t>(data.data_ptr()) % 16 == 0, "read_floor: data must be 16-byte aligned");
  // Whole vectors only: a row of odd length leaves under 16 bytes unread.
  *vectors = bytes / 16;
  return static_cast<const uint4*>(data.data_ptr());
}

unsigned* sink_of(const at::Tensor& sink) {
  TORCH_CHECK(sink.is_cuda() && sink.scalar_type() == at::kInt && sink.numel() >= 1,
              "read_floor: sink must be a CUDA int32 tensor");
  return reinterpret_cast<unsigned*>(sink.data_ptr());
}

void read_grid_stride(const at::Tensor& data, const at::Tensor& sink, int64_t blocks, int64_t unroll) {
  int64_t vectors = 0;
  const uint4* p = vectors_of(data, &vectors);
  TORCH_CHECK(blocks >= 1 && blocks <= INT32_MAX, "read_floor: bad block count ", blocks);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  if (unroll == 4) {
    grid_stride_read<256, 4><<<blocks, 256, 0, stream>>>(p, vectors, sink_of(sink));
  } else if (unroll == 8) {
    grid_stride_read<256, 8><<<blocks, 256, 0, stream>>>(p, vectors, sink_of(sink));
  } else {
    TORCH_CHECK(false, "read_floor: unroll must be 4 or 8, got ", unroll);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void read_chunked(const at::Tensor& data, const at::Tensor& sink, int64_t blocks, int64_t threads) {
  int64_t vectors = 0;
  const uint4* p = vectors_of(data, &vectors);
  TORCH_CHECK(blocks >= 1 && blocks <= INT32_MAX, "read_floor: bad block count ", blocks);
  const int64_t chunk = (vectors + blocks - 1) / blocks;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  switch (threads) {
    case 128: chunked_read<128><<<blocks, 128, 0, stream>>>(p, vectors, chunk, sink_of(sink)); break;
    case 256: chunked_read<256><<<blocks, 256, 0, stream>>>(p, vectors, chunk, sink_of(sink)); break;
    case 512: chunked_read<512><<<blocks, 512, 0, stream>>>(p, vectors, chunk, sink_of(sink)); break;
    default: TORCH_CHECK(false, "read_floor: threads must be 128, 256 or 512, got ", threads);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("read_grid_stride", &read_grid_stride, "grid-stride pure read (data, sink, blocks, unroll)");
  m.def("read_chunked", &read_chunked, "chunked pure read (data, sink, blocks, threads)");
}
