// The kernel's global memory accesses: 16-byte loads of logits, prefetches,
// the wait for the previous grid, and the atomics and slot accesses through
// which the blocks of a split row meet.
#pragma once

#include <stdint.h>

#include "greedy_gpu_platform.cuh"
#include "greedy_key.h"

namespace safe_greedy {
namespace gpu {

// Asks for the line holding `p` to be brought into L2, without waiting for
// it or holding a register. AMD targets have no such instruction; there the
// later load simply goes to memory.
__device__ __forceinline__ void prefetch_l2(const void* p) {
#if defined(__HIPCC__)
  (void)p;
#else
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
#endif
}

// One 16-byte vector of logits. On CUDA without allocating in L1, as each
// vector is read once; coherent, as the non-coherent path and the 256-byte L2
// fetch hint gained nothing beside that (see "2a240a2", "which qualifier of
// 2a240a2's load gains" and "74f83ec" in docs/PERFORMANCE.md). The qualifier
// needs sm_70; HIP gets a plain load.
__device__ __forceinline__ uint4 load_vector(const uint4* p) {
#if !defined(__HIPCC__) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  uint4 v;
  // volatile: kept after the wait for the previous grid, whose asm is volatile too.
  asm volatile("ld.global.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
#else
  return *p;
#endif
}

// load_vector() where `wanted`, else zeros, as one predicated load on CUDA.
// Written as such because the partial iteration's loads, left to the
// compiler, can come out one branch each, or be issued one at a time.
__device__ __forceinline__ uint4 load_vector_if(const uint4* p, bool wanted) {
#if !defined(__HIPCC__) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  uint4 v = make_uint4(0u, 0u, 0u, 0u);
  asm volatile(
      "{\n .reg .pred q;\n setp.ne.u32 q, %5, 0;\n"
      " @q ld.global.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n}"
      : "+r"(v.x), "+r"(v.y), "+r"(v.z), "+r"(v.w)
      : "l"(p), "r"(static_cast<uint32_t>(wanted)));
  return v;
#else
  return wanted ? *p : make_uint4(0u, 0u, 0u, 0u);
#endif
}

// Programmatic dependent launch (sm_90 and later). Where the launcher asks for
// it (launch_kernel() in extension/greedy_gpu_launcher.cu), this grid's blocks
// start while the kernel before it in the stream is still finishing, so the
// launch latency hides behind that kernel's tail; elsewhere this is a no-op. Nothing may touch
// memory before it returns: the logits are usually that kernel's output, and
// the workspace may still be in use by the previous greedy_sample on the stream.
__device__ __forceinline__ void wait_for_previous_grid() {
#if !defined(__HIPCC__) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// atomicAdd(counter, 1) with acquire-release ordering at device scope. On
// CUDA one acq_rel atomic (MEMBAR.ALL.GPU) replaces two sequentially
// consistent __threadfence()s (MEMBAR.SC.GPU), a shorter combine (see
// "3466355" in docs/PERFORMANCE.md). HIP keeps the portable fences.
__device__ __forceinline__ uint32_t arrive_acq_rel(uint32_t* counter) {
#if defined(__HIPCC__)
  __threadfence();
  const uint32_t old = atomicAdd(counter, 1u);
  __threadfence();
  return old;
#else
  uint32_t old;
  asm volatile("atom.add.acq_rel.gpu.global.u32 %0, [%1], 1;"
               : "=r"(old)
               : "l"(counter)
               : "memory");
  return old;
#endif
}

// A split's key slot, read and written as single 64-bit accesses that other
// blocks observe whole (relaxed, device scope): the key is the only datum
// passed between blocks, so no fence is needed. Every poll must reach the
// coherence point, never a stale L1 line.
__device__ __forceinline__ Key load_slot(const Key* slot) {
#if defined(__HIPCC__)
  return __hip_atomic_load(slot, __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_AGENT);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  Key v;
  asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(slot) : "memory");
  return v;
#else
  return *static_cast<const volatile Key*>(slot);
#endif
}

__device__ __forceinline__ void store_slot(Key* slot, Key key) {
#if defined(__HIPCC__)
  __hip_atomic_store(slot, key, __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_AGENT);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  asm volatile("st.relaxed.gpu.global.u64 [%0], %1;" ::"l"(slot), "l"(key) : "memory");
#else
  *static_cast<volatile Key*>(slot) = key;
#endif
}

// The row's next ticket, 0 to splits - 1; the counter wraps to zero as the
// last ticket is taken, ready for the next launch. (atomicInc, unlike
// atomicAdd, is not turned into a warp-aggregated form whose result shuffle
// would hold up the warp's loads until the atomic returned.)
__device__ __forceinline__ uint32_t take_ticket(uint32_t* counter, uint32_t splits) {
#if defined(__HIPCC__)
  return __builtin_amdgcn_atomic_inc32(counter, splits - 1, __ATOMIC_RELAXED, "agent");
#else
  return atomicInc(counter, splits - 1);
#endif
}

}  // namespace gpu
}  // namespace safe_greedy
