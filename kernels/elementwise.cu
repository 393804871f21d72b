// elementwise.cu - the small NHWC ops of the CUDA backend: activations,
// adds, embedding lookup, GEGLU, row broadcast, concat, pad, nearest resize.
// Each takes its activations in any of the three element types (t: SDC_CU_*),
// computes every value in fp32 and rounds it once to t; vectors and tables
// (bias, embedding table, positions) are fp32.
#include <math.h>

#include "kernels.h"

#define BLOCK 256

static unsigned grid_for(size_t n) {
    size_t g = SDC_CEIL_DIV_CU(n, (size_t)BLOCK);
    return (unsigned)(g > 65535u * 32u ? 65535u * 32u : g);
}

template <typename T>
__global__ void activation_kernel(T *y, const T *x, size_t n, int act) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = sdc_to_float(x[i]);
        switch (act) {
        case 1: v = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); break; // gelu
        case 2: v = v / (1.0f + expf(-1.702f * v)); break;                       // quick_gelu
        case 3: v = v / (1.0f + expf(-v)); break;                                // silu
        case 4: v = v < 0.0f ? 0.0f : v; break;                                  // relu (NaN stays)
        case 5: v = tanhf(v / 3.0f) * 3.0f; break;                               // TAESD's clamp
        default: break;
        }
        y[i] = sdc_from_float<T>(v);
    }
}

extern "C" int sdc_activation_cuda(void *y, const void *x, int t, size_t n, int act, cudaStream_t s) {
    if (!n) return 0;
    SDC_TYPED(t, (int)SDC_LAUNCH(activation_kernel<T>, grid_for(n), BLOCK, 0, s, (T *)y, (const T *)x, n, act));
}

template <typename T> __global__ void add_kernel(T *y, const T *a, const T *b, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = sdc_from_float<T>(sdc_to_float(a[i]) + sdc_to_float(b[i]));
}

extern "C" int sdc_add_cuda(void *y, const void *a, const void *b, int t, size_t n, cudaStream_t s) {
    if (!n) return 0;
    SDC_TYPED(t, (int)SDC_LAUNCH(add_kernel<T>, grid_for(n), BLOCK, 0, s, (T *)y, (const T *)a, (const T *)b, n));
}

template <typename T> __global__ void geglu_kernel(T *y, const T *x, int m, int f) {
    size_t n = (size_t)m * f;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / f, j = i % f;
        float a = sdc_to_float(x[r * 2 * f + j]), g = sdc_to_float(x[r * 2 * f + f + j]);
        y[i] = sdc_from_float<T>(a * (0.5f * g * (1.0f + erff(g * 0.70710678118654752f))));
    }
}

extern "C" int sdc_geglu_cuda(void *y, const void *x, int t, int m, int f, cudaStream_t s) {
    size_t n = (size_t)m * f;
    if (!n) return 0;
    SDC_TYPED(t, (int)SDC_LAUNCH(geglu_kernel<T>, grid_for(n), BLOCK, 0, s, (T *)y, (const T *)x, m, f));
}

template <typename T> __global__ void add_rows_kernel(T *y, const T *x, const T *v, size_t rows, int c, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t b = i / (rows * c);
        y[i] = sdc_from_float<T>(sdc_to_float(x[i]) + sdc_to_float(v[b * c + i % c]));
    }
}

extern "C" int sdc_add_rows_cuda(void *y, const void *x, const void *v, int t, int n, size_t rows, int c,
                                 cudaStream_t s) {
    size_t total = (size_t)n * rows * c;
    if (!total) return 0;
    SDC_TYPED(t, (int)SDC_LAUNCH(add_rows_kernel<T>, grid_for(total), BLOCK, 0, s, (T *)y, (const T *)x,
                                 (const T *)v, rows, c, total));
}

template <typename T> __global__ void concat_kernel(T *y, const T *a, const T *b, size_t rows, int ca, int cb) {
    const int c = ca + cb;
    size_t n = rows * c;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / c;
        int j = (int)(i % c);
        y[i] = j < ca ? a[r * ca + j] : b[r * cb + (j - ca)];
    }
}

extern "C" int sdc_concat_channels_cuda(void *y, const void *a, const void *b, int t, size_t rows, int ca, int cb,
                                        cudaStream_t s) {
    size_t n = rows * (size_t)(ca + cb);
    if (!n) return 0;
    SDC_TYPED(t, (int)SDC_LAUNCH(concat_kernel<T>, grid_for(n), BLOCK, 0, s, (T *)y, (const T *)a, (const T *)b,
                                 rows, ca, cb));
}

template <typename T>
__global__ void pad_kernel(T *y, const T *x, int n, int h, int w, int c, int top, int left, int ho, int wo) {
    size_t total = (size_t)n * ho * wo * c;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        int ch = (int)(i % c);
        size_t p = i / c;
        int ox = (int)(p % wo), oy = (int)((p / wo) % ho), b = (int)(p / ((size_t)wo * ho));
        int iy = oy - top, ix = ox - left;
        y[i] = (iy >= 0 && iy < h && ix >= 0 && ix < w) ? x[(((size_t)b * h + iy) * w + ix) * c + ch]
                                                        : sdc_from_float<T>(0.0f);
    }
}

extern "C" int sdc_pad_cuda(void *y, const void *x, int t, int n, int h, int w, int c, int top, int bottom, int left,
                            int right, cudaStream_t s) {
    const int ho = h + top + bottom, wo = w + left + right;
    size_t total = (size_t)n * ho * wo * c;
    if (!total) return 0;
    SDC_TYPED(t, (int)SDC_LAUNCH(pad_kernel<T>, grid_for(total), BLOCK, 0, s, (T *)y, (const T *)x, n, h, w, c, top,
                                 left, ho, wo));
}

template <typename T> __global__ void upsample_kernel(T *y, const T *x, int n, int h, int w, int c, int ho, int wo) {
    size_t total = (size_t)n * ho * wo * c;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        int ch = (int)(i % c);
        size_t p = i / c;
        int ox = (int)(p % wo), oy = (int)((p / wo) % ho), b = (int)(p / ((size_t)wo * ho));
        int iy = (int)((long long)oy * h / ho), ix = (int)((long long)ox * w / wo);
        y[i] = x[(((size_t)b * h + iy) * w + ix) * c + ch];
    }
}

extern "C" int sdc_upsample_nearest_cuda(void *y, const void *x, int t, int n, int h, int w, int c, int ho, int wo,
                                         cudaStream_t s) {
    size_t total = (size_t)n * ho * wo * c;
    if (!total) return 0;
    SDC_TYPED(t, (int)SDC_LAUNCH(upsample_kernel<T>, grid_for(total), BLOCK, 0, s, (T *)y, (const T *)x, n, h, w, c,
                                 ho, wo));
}

template <typename T> __global__ void bias_rows_kernel(T *y, const float *bias, size_t rows, int c) {
    size_t n = rows * c;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = sdc_from_float<T>(bias[i % c]);
}

extern "C" int sdc_bias_rows_cuda(void *y, int t, const float *bias, size_t rows, int c, cudaStream_t s) {
    size_t n = rows * c;
    if (!n) return 0;
    SDC_TYPED(t, (int)SDC_LAUNCH(bias_rows_kernel<T>, grid_for(n), BLOCK, 0, s, (T *)y, bias, rows, c));
}

template <typename T> __global__ void bias_residual_kernel(T *y, const float *bias, const T *res, size_t rows, int c) {
    size_t n = rows * c;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = sdc_from_float<T>(sdc_to_float(y[i]) +
                                 ((bias ? bias[i % c] : 0.0f) + (res ? sdc_to_float(res[i]) : 0.0f)));
}

extern "C" int sdc_bias_residual_cuda(void *y, int t, const float *bias, const void *residual, size_t rows, int c,
                                      cudaStream_t s) {
    size_t n = rows * c;
    if (!n || (!bias && !residual)) return 0;
    SDC_TYPED(t, (int)SDC_LAUNCH(bias_residual_kernel<T>, grid_for(n), BLOCK, 0, s, (T *)y, bias,
                                 (const T *)residual, rows, c));
}
