// port.h - the one place where a GPU build (nvcc) and the host execution of
// the same kernels (kernels/emu/, any C++17 compiler) differ: the launch,
// and named wrappers for every warp-level or PTX instruction the kernels
// use. Kernel files include this (through kernels.h) and never use `<<<>>>`,
// inline PTX or *_sync intrinsics directly.
//
//   SDC_LAUNCH(kernel, grid, block, shmem, stream, args...)  -> cudaError_t
//   SDC_DYNAMIC_SHARED(type, name)         the block's dynamic shared memory
//   sdc_shfl / sdc_shfl_xor / sdc_shfl_down / sdc_shfl_up (mask, v, lane)
//   sdc_ballot / sdc_any / sdc_all (mask, pred), sdc_syncwarp(mask)
//   sdc_mma_m16n8k16_f16 / _bf16 (d[4], a[4], b[2], c[4])  row.col, f32 acc
//   sdc_mma16<T>::run / ::pack             the same for a kernel templated on T
//   sdc_ldmatrix_x1 / _x2 / _x4 (r[], p), and _trans      8x8 b16 matrices
//   sdc_cp_async4 / 8 / 16 (smem, gmem), sdc_cp_async_commit(),
//   sdc_cp_async_wait<N>()
//   atomicAdd / atomicMax / atomicCAS as in CUDA
//   __half, __nv_bfloat16 and their conversions as in cuda_fp16.h
//
// On nvcc each wrapper is the instruction itself. On the host each follows
// the PTX ISA's description (which lane holds which element of which
// fragment); kernels/emu/emu.h says how threads, warps and blocks run.
#ifndef SDC_PORT_H
#define SDC_PORT_H

#include <stddef.h>
#include <stdint.h>

#if defined(__CUDACC__)

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define SDC_EMULATED 0

template <typename... P, typename... A>
static inline cudaError_t sdc_launch_(void (*kernel)(P...), dim3 grid, dim3 block, size_t shmem, cudaStream_t s,
                                      A... args) {
    kernel<<<grid, block, shmem, s>>>(args...);
    return cudaGetLastError();
}
#define SDC_LAUNCH(kernel, grid, block, shmem, stream, ...)                                                     \
    sdc_launch_(kernel, dim3(grid), dim3(block), (size_t)(shmem), stream, __VA_ARGS__)
#define SDC_DYNAMIC_SHARED(type, name) extern __shared__ type name[]

__device__ __forceinline__ float sdc_shfl(unsigned mask, float v, int src) { return __shfl_sync(mask, v, src); }
__device__ __forceinline__ float sdc_shfl_xor(unsigned mask, float v, int m) { return __shfl_xor_sync(mask, v, m); }
__device__ __forceinline__ float sdc_shfl_down(unsigned mask, float v, int d) { return __shfl_down_sync(mask, v, d); }
__device__ __forceinline__ float sdc_shfl_up(unsigned mask, float v, int d) { return __shfl_up_sync(mask, v, d); }
__device__ __forceinline__ unsigned sdc_ballot(unsigned mask, int pred) { return __ballot_sync(mask, pred); }
__device__ __forceinline__ int sdc_any(unsigned mask, int pred) { return __any_sync(mask, pred); }
__device__ __forceinline__ int sdc_all(unsigned mask, int pred) { return __all_sync(mask, pred); }
__device__ __forceinline__ void sdc_syncwarp(unsigned mask) { __syncwarp(mask); }

// D (16x8, f32) = A (16x16, row) . B (16x8, col) + C; fragments per lane as
// in the PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"
__device__ __forceinline__ void sdc_mma_m16n8k16_f16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                     const float c[4]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%10,%11,%12,%13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
                   "f"(c[2]), "f"(c[3]));
}
__device__ __forceinline__ void sdc_mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                      const float c[4]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%10,%11,%12,%13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
                   "f"(c[2]), "f"(c[3]));
}

__device__ __forceinline__ unsigned sdc_smem_addr(const void *p) {
    return (unsigned)__cvta_generic_to_shared(p);
}
// p: this lane's row address (lanes 8j..8j+7 give the rows of matrix j)
__device__ __forceinline__ void sdc_ldmatrix_x1(uint32_t r[1], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(sdc_smem_addr(p)));
}
__device__ __forceinline__ void sdc_ldmatrix_x2(uint32_t r[2], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(sdc_smem_addr(p)));
}
__device__ __forceinline__ void sdc_ldmatrix_x4(uint32_t r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(sdc_smem_addr(p)));
}
__device__ __forceinline__ void sdc_ldmatrix_x1_trans(uint32_t r[1], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n"
                 : "=r"(r[0])
                 : "r"(sdc_smem_addr(p)));
}
__device__ __forceinline__ void sdc_ldmatrix_x2_trans(uint32_t r[2], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(sdc_smem_addr(p)));
}
__device__ __forceinline__ void sdc_ldmatrix_x4_trans(uint32_t r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(sdc_smem_addr(p)));
}

__device__ __forceinline__ void sdc_cp_async4(void *smem, const void *gmem) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(sdc_smem_addr(smem)), "l"(gmem));
}
__device__ __forceinline__ void sdc_cp_async8(void *smem, const void *gmem) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" ::"r"(sdc_smem_addr(smem)), "l"(gmem));
}
__device__ __forceinline__ void sdc_cp_async16(void *smem, const void *gmem) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(sdc_smem_addr(smem)), "l"(gmem));
}
__device__ __forceinline__ void sdc_cp_async_commit(void) { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void sdc_cp_async_wait(void) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

#else // host execution

#include "emu/emu.h"

#endif

// Unroll the loop that follows (constant trip counts over register arrays:
// unrolled, the arrays stay in registers); the host compiler decides alone.
#if defined(__CUDACC__)
#define SDC_UNROLL _Pragma("unroll")
#else
#define SDC_UNROLL
#endif

// Lane and warp of this thread in a one-dimensional block.
__device__ __forceinline__ int sdc_lane(void) { return (int)(threadIdx.x & 31u); }
__device__ __forceinline__ int sdc_warp(void) { return (int)(threadIdx.x >> 5); }

// Two 16-bit values in one 32-bit register, the lower column in the low half.
__device__ __forceinline__ uint32_t sdc_pack_half2(__half lo, __half hi) {
    return (uint32_t)__half_as_ushort(lo) | ((uint32_t)__half_as_ushort(hi) << 16);
}
__device__ __forceinline__ uint32_t sdc_pack_bf162(__nv_bfloat16 lo, __nv_bfloat16 hi) {
    return (uint32_t)__bfloat16_as_ushort(lo) | ((uint32_t)__bfloat16_as_ushort(hi) << 16);
}

// mma.sync m16n8k16 with f32 accumulation (d += a b) for a kernel templated
// on its half type, and a pair of fp32 values packed as two of that type
template <typename T> struct sdc_mma16;
template <> struct sdc_mma16<__half> {
    static __device__ __forceinline__ void run(float d[4], const uint32_t a[4], const uint32_t b[2]) {
        sdc_mma_m16n8k16_f16(d, a, b, d);
    }
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        return sdc_pack_half2(__float2half(lo), __float2half(hi));
    }
};
template <> struct sdc_mma16<__nv_bfloat16> {
    static __device__ __forceinline__ void run(float d[4], const uint32_t a[4], const uint32_t b[2]) {
        sdc_mma_m16n8k16_bf16(d, a, b, d);
    }
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        return sdc_pack_bf162(__float2bfloat16(lo), __float2bfloat16(hi));
    }
};

// Element conversions for kernels templated on the stored type: to fp32,
// and from fp32 rounding to nearest even.
__device__ __forceinline__ float sdc_to_float(float v) { return v; }
__device__ __forceinline__ float sdc_to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float sdc_to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T sdc_from_float(float v);
template <> __device__ __forceinline__ float sdc_from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __half sdc_from_float<__half>(float v) { return __float2half(v); }
template <> __device__ __forceinline__ __nv_bfloat16 sdc_from_float<__nv_bfloat16>(float v) {
    return __float2bfloat16(v);
}

#endif
