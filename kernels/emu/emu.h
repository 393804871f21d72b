// emu.h - the host execution of sdc's CUDA kernels (included by port.h when
// the compiler is not nvcc). How a launch runs:
//   - the blocks of a grid run one after another on the launching thread;
//   - the threads of a block are fibers (their own stacks) on that thread,
//     switched only at __syncthreads(), warp-wide operations and exit, so a
//     barrier is a real barrier: no thread passes it before every thread of
//     the block has reached it;
//   - a warp-wide operation (shuffle, vote, mma, ldmatrix) waits for the
//     lanes of its mask, then computes every lane's result at once, from
//     every lane's inputs, as the PTX ISA describes;
//   - cp.async copies are held per thread and done at the cp.async.wait_group
//     that covers them, so shared memory read before the wait is stale;
//   - __shared__ variables are per block (static storage, one block runs at a
//     time); the dynamic shared memory is filled with 0xff (NaN) per block.
// What it reports (as a failed launch, cudaErrorLaunchFailure, with the
// kernel, block and thread on stderr): a barrier some thread of the block
// exits without reaching, threads waiting at different __syncthreads() (a
// barrier in divergent code), a warp operation a lane of its mask never
// reaches or reaches at another instruction, a dynamic shared memory request
// over the device limit. Global memory is host memory (malloc), so an
// out-of-bounds access is caught by AddressSanitizer in `make sanitize`.
#ifndef SDC_EMU_H
#define SDC_EMU_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <functional>
#include <type_traits>

#include "emu/emu_runtime.h"

#define SDC_EMULATED 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static thread_local

// CUDA's min / max take mixed arithmetic types
template <typename A, typename B> inline typename std::common_type<A, B>::type min(A a, B b) {
    return b < a ? b : a;
}
template <typename A, typename B> inline typename std::common_type<A, B>::type max(A a, B b) {
    return a < b ? b : a;
}

namespace sdc_emu {

struct Thread;
struct Block;
extern thread_local Thread *cur_thread;
extern thread_local Block *cur_block;
const uint3 &thread_idx();
const uint3 &block_idx();
const dim3 &block_dim();
const dim3 &grid_dim();
void *dynamic_shared();

// Checks the configuration, then runs (or, while the stream is captured,
// records) the grid; fn identifies the kernel for cudaFuncSetAttribute.
cudaError_t launch(const char *name, const void *fn, dim3 grid, dim3 block, size_t shmem, cudaStream_t s,
                   std::function<void()> body);

// The running thread's lane; a launch failure reported at file:line.
int lane_id();
void report(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

void syncthreads(const char *file, int line);

// Warp collectives: each lane gives IN bytes and the operation; when every
// lane of the mask has arrived, fn(in[32], out[32], active) runs once and
// each lane gets its OUT bytes.
enum { SLOT = 64 };
typedef void (*collective_fn)(const unsigned char (*in)[SLOT], unsigned char (*out)[SLOT], unsigned active);
void warp_collective(const char *op, unsigned mask, const void *in, size_t in_n, void *out, size_t out_n,
                     collective_fn fn, const char *file, int line);

// cp.async bookkeeping (per thread)
void cp_async(void *smem, const void *gmem, size_t n);
void cp_async_commit();
void cp_async_wait(int n);

float shfl(unsigned mask, float v, int lane, int mode, int width, const char *file, int line);
unsigned ballot(unsigned mask, int pred, const char *file, int line);
void syncwarp(unsigned mask, const char *file, int line);
void mma_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4], bool bf16,
                  const char *file, int line);
void ldmatrix(uint32_t *r, int count, bool trans, const void *p, const char *file, int line);

} // namespace sdc_emu

#define threadIdx (sdc_emu::thread_idx())
#define blockIdx (sdc_emu::block_idx())
#define blockDim (sdc_emu::block_dim())
#define gridDim (sdc_emu::grid_dim())
#define __syncthreads() sdc_emu::syncthreads(__FILE__, __LINE__)

#define SDC_LAUNCH(kernel, grid, block, shmem, stream, ...)                                                     \
    sdc_emu::launch(#kernel, (const void *)(kernel), dim3(grid), dim3(block), (size_t)(shmem), stream,         \
                    [=]() { (kernel)(__VA_ARGS__); })
#define SDC_DYNAMIC_SHARED(type, name) type *name = (type *)sdc_emu::dynamic_shared()

// shuffles: mode 0 idx, 1 xor, 2 down, 3 up
#define sdc_shfl(mask, v, src) sdc_emu::shfl(mask, v, src, 0, 32, __FILE__, __LINE__)
#define sdc_shfl_xor(mask, v, m) sdc_emu::shfl(mask, v, m, 1, 32, __FILE__, __LINE__)
#define sdc_shfl_down(mask, v, d) sdc_emu::shfl(mask, v, d, 2, 32, __FILE__, __LINE__)
#define sdc_shfl_up(mask, v, d) sdc_emu::shfl(mask, v, d, 3, 32, __FILE__, __LINE__)
#define sdc_ballot(mask, pred) sdc_emu::ballot(mask, pred, __FILE__, __LINE__)
#define sdc_any(mask, pred) (sdc_emu::ballot(mask, pred, __FILE__, __LINE__) != 0u)
#define sdc_all(mask, pred) (sdc_emu::ballot(mask, !(pred), __FILE__, __LINE__) == 0u)
#define sdc_syncwarp(mask) sdc_emu::syncwarp(mask, __FILE__, __LINE__)

#define sdc_mma_m16n8k16_f16(d, a, b, c) sdc_emu::mma_m16n8k16(d, a, b, c, false, __FILE__, __LINE__)
#define sdc_mma_m16n8k16_bf16(d, a, b, c) sdc_emu::mma_m16n8k16(d, a, b, c, true, __FILE__, __LINE__)
#define sdc_ldmatrix_x1(r, p) sdc_emu::ldmatrix(r, 1, false, p, __FILE__, __LINE__)
#define sdc_ldmatrix_x2(r, p) sdc_emu::ldmatrix(r, 2, false, p, __FILE__, __LINE__)
#define sdc_ldmatrix_x4(r, p) sdc_emu::ldmatrix(r, 4, false, p, __FILE__, __LINE__)
#define sdc_ldmatrix_x1_trans(r, p) sdc_emu::ldmatrix(r, 1, true, p, __FILE__, __LINE__)
#define sdc_ldmatrix_x2_trans(r, p) sdc_emu::ldmatrix(r, 2, true, p, __FILE__, __LINE__)
#define sdc_ldmatrix_x4_trans(r, p) sdc_emu::ldmatrix(r, 4, true, p, __FILE__, __LINE__)

inline void sdc_cp_async4(void *smem, const void *gmem) { sdc_emu::cp_async(smem, gmem, 4); }
inline void sdc_cp_async8(void *smem, const void *gmem) { sdc_emu::cp_async(smem, gmem, 8); }
inline void sdc_cp_async16(void *smem, const void *gmem) { sdc_emu::cp_async(smem, gmem, 16); }
inline void sdc_cp_async_commit(void) { sdc_emu::cp_async_commit(); }
template <int N> inline void sdc_cp_async_wait(void) { sdc_emu::cp_async_wait(N); }

// Atomics: the blocks of a launch run on one host thread, but launches may
// come from several, so these are real atomics.
inline float atomicAdd(float *p, float v) {
    float old, want;
    __atomic_load(p, &old, __ATOMIC_RELAXED);
    do {
        want = old + v;
    } while (!__atomic_compare_exchange(p, &old, &want, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return old;
}
inline int atomicAdd(int *p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
inline unsigned atomicAdd(unsigned *p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
inline int atomicMax(int *p, int v) {
    int old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (old < v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    return old;
}
inline int atomicCAS(int *p, int cmp, int v) {
    __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return cmp;
}
inline unsigned atomicCAS(unsigned *p, unsigned cmp, unsigned v) {
    __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return cmp;
}

// fp16 / bf16: storage types with the conversions of cuda_fp16.h /
// cuda_bf16.h (round to nearest even)
struct __half {
    uint16_t x;
};
struct __nv_bfloat16 {
    uint16_t x;
};
inline float sdc_emu_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
inline uint32_t sdc_emu_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
__half __float2half(float f);
float __half2float(__half h);
inline __nv_bfloat16 __float2bfloat16(float f) {
    uint32_t u = sdc_emu_f32_bits(f);
    __nv_bfloat16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        r.x = (uint16_t)((u >> 16) | 0x40u); // quiet NaN
    } else {
        u += 0x7fffu + ((u >> 16) & 1u);
        r.x = (uint16_t)(u >> 16);
    }
    return r;
}
inline float __bfloat162float(__nv_bfloat16 h) { return sdc_emu_bits_f32((uint32_t)h.x << 16); }
// IEEE single-precision operations rounded to nearest, never fused: the
// host build contracts nothing (ISO C++ mode), so these are the plain ops.
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline unsigned short __half_as_ushort(__half h) { return h.x; }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.x; }
inline __half __ushort_as_half(unsigned short u) { return __half{u}; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { return __nv_bfloat16{u}; }

#endif
