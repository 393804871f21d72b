// latent.cu - the denoising loop's kernels: the sinusoidal time embedding,
// the U-Net input scaling, classifier-free guidance, the sampler update and
// its noise. The scalars come from the host (src/sampling/scheduler.c);
// every product, sum and quotient is written with an _rn intrinsic so nvcc
// does not fuse them into FMAs: the CPU backend computes without fusion, and
// the latents of both backends must agree bit for bit given the same model
// output (backend.h, sdc_latent_update).
#include <math.h>

#include "kernels.h"

#define BLOCK 256

static unsigned grid_for(size_t n) {
    size_t g = SDC_CEIL_DIV_CU(n, (size_t)BLOCK);
    return (unsigned)(g > 65535u * 32u ? 65535u * 32u : g);
}

#define GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

// y (rows, dim): [cos(t f_i), sin(t f_i)], f_i = exp(-ln(10000) i / half)
template <typename T> __global__ void timestep_embedding_kernel(T *y, int rows, int dim, float t) {
    const int half = dim / 2;
    const size_t n = (size_t)rows * dim;
    GRID_STRIDE(k, n) {
        const int j = (int)(k % dim);
        float v = 0.0f;
        if (j < 2 * half) {
            const int i = j < half ? j : j - half;
            float expo = __fmul_rn(-9.21034049987792969f, (float)i); // -ln(10000) in float32
            expo = __fdiv_rn(expo, (float)half);
            const float arg = __fmul_rn(t, expf(expo));
            v = j < half ? cosf(arg) : sinf(arg);
        }
        y[k] = sdc_from_float<T>(v);
    }
}

extern "C" int sdc_timestep_embedding_cuda(void *y, int t_type, int rows, int dim, float t, cudaStream_t s) {
    const size_t n = (size_t)rows * dim;
    if (!n) return 0;
    SDC_TYPED(t_type, (int)SDC_LAUNCH(timestep_embedding_kernel<T>, grid_for(n), BLOCK, 0, s, (T *)y, rows, dim, t));
}

__global__ void scale_kernel(float *y, const float *x, float a, int div, size_t n) {
    GRID_STRIDE(i, n) y[i] = div ? __fdiv_rn(x[i], a) : __fmul_rn(x[i], a);
}

extern "C" int sdc_scale_cuda(float *y, const float *x, float a, int div, size_t n, cudaStream_t s) {
    if (!n) return 0;
    return (int)SDC_LAUNCH(scale_kernel, grid_for(n), BLOCK, 0, s, y, x, a, div, n);
}

__global__ void axpy_kernel(float *y, float a, const float *x, size_t n) {
    GRID_STRIDE(i, n) y[i] = __fadd_rn(y[i], __fmul_rn(a, x[i]));
}

extern "C" int sdc_axpy_cuda(float *y, float a, const float *x, size_t n, cudaStream_t s) {
    if (!n) return 0;
    return (int)SDC_LAUNCH(axpy_kernel, grid_for(n), BLOCK, 0, s, y, a, x, n);
}

__global__ void guidance_kernel(float *y, const float *u, const float *c, float g, size_t n) {
    GRID_STRIDE(i, n) y[i] = __fadd_rn(u[i], __fmul_rn(g, __fsub_rn(c[i], u[i])));
}

extern "C" int sdc_guidance_cuda(float *y, const float *u, const float *c, float g, size_t n, cudaStream_t s) {
    if (!n) return 0;
    return (int)SDC_LAUNCH(guidance_kernel, grid_for(n), BLOCK, 0, s, y, u, c, g, n);
}

// The expressions of sdc_latent_update_apply (src/backend/backend_cpu_latent.c).
__global__ void latent_update_kernel(int kind, int v, float c0, float c1, float c2, float c3, float c4, float c5,
                                     float *x, const float *mo, float *x0_out, const float *x0_prev, size_t n) {
    GRID_STRIDE(j, n) {
        const float xj = x[j], m = mo[j];
        float r;
        if (kind == SDC_CU_UPDATE_DDIM || kind == SDC_CU_UPDATE_DDPM) {
            const float x0 = v ? __fsub_rn(__fmul_rn(c0, xj), __fmul_rn(c1, m))
                               : __fdiv_rn(__fsub_rn(xj, __fmul_rn(c1, m)), c0);
            if (kind == SDC_CU_UPDATE_DDIM) {
                const float eps = v ? __fadd_rn(__fmul_rn(c0, m), __fmul_rn(c1, xj)) : m;
                r = __fadd_rn(__fmul_rn(c2, x0), __fmul_rn(c3, eps));
            } else {
                r = __fadd_rn(__fmul_rn(c2, x0), __fmul_rn(c3, xj));
            }
        } else if (kind == SDC_CU_UPDATE_EULER) {
            const float x0 = v ? __fadd_rn(__fmul_rn(m, c1), __fdiv_rn(xj, c2)) : __fsub_rn(xj, __fmul_rn(c0, m));
            const float deriv = __fdiv_rn(__fsub_rn(xj, x0), c0);
            r = __fadd_rn(xj, __fmul_rn(deriv, c3));
        } else { // DPM++ first or second order
            const float d = v ? __fsub_rn(__fmul_rn(c0, xj), __fmul_rn(c1, m))
                              : __fdiv_rn(__fsub_rn(xj, __fmul_rn(c1, m)), c0);
            x0_out[j] = d;
            r = __fsub_rn(__fmul_rn(c2, xj), __fmul_rn(c3, d));
            if (kind == SDC_CU_UPDATE_DPM2) {
                const float d1 = __fmul_rn(c4, __fsub_rn(d, x0_prev[j]));
                r = __fsub_rn(r, __fmul_rn(c5, d1));
            }
        }
        x[j] = r;
    }
}

extern "C" int sdc_latent_update_cuda(int kind, int v, const float *c, float *x, const float *mo, float *x0_out,
                                      const float *x0_prev, size_t n, cudaStream_t s) {
    if (!n) return 0;
    return (int)SDC_LAUNCH(latent_update_kernel, grid_for(n), BLOCK, 0, s, kind, v, c[0], c[1], c[2], c[3], c[4],
                           c[5], x, mo, x0_out, x0_prev, n);
}
