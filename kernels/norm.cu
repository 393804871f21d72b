// norm.cu - layer norm (one block per row) and group norm (one block per
// image and group for the statistics, then an elementwise apply), both
// two-pass: the mean first, then the mean squared deviation from it.
// x and y in any of the three element types (t: SDC_CU_*), statistics in
// double, gamma/beta fp32, each output rounded once to t.
#include <math.h>

#include "kernels.h"

#define NORM_BLOCK 256

// sum of v over the block (all threads get it)
__device__ double block_sum(double v, double *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

template <typename T>
__global__ void layer_norm_kernel(T *y, const T *x, const float *gamma, const float *beta, int n, float eps) {
    __shared__ double sh[NORM_BLOCK];
    const T *xr = x + (size_t)blockIdx.x * n;
    T *yr = y + (size_t)blockIdx.x * n;
    double s = 0.0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) s += sdc_to_float(xr[j]);
    const double mean = block_sum(s, sh) / n;
    double v = 0.0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        double d = sdc_to_float(xr[j]) - mean;
        v += d * d;
    }
    const double inv = 1.0 / sqrt(block_sum(v, sh) / n + eps);
    for (int j = threadIdx.x; j < n; j += blockDim.x)
        yr[j] = sdc_from_float<T>((float)((sdc_to_float(xr[j]) - mean) * inv) * (gamma ? gamma[j] : 1.0f) +
                                  (beta ? beta[j] : 0.0f));
}

extern "C" int sdc_layer_norm_cuda(void *y, const void *x, int t, const float *gamma, const float *beta, int m, int n,
                                   float eps, cudaStream_t s) {
    if (m <= 0) return 0;
    SDC_TYPED(t, (int)SDC_LAUNCH(layer_norm_kernel<T>, m, NORM_BLOCK, 0, s, (T *)y, (const T *)x, gamma, beta, n,
                                 eps));
}

// stats[2 * (b * groups + g)] = mean, [+1] = 1 / sqrt(var + eps)
template <typename T>
__global__ void group_stats_kernel(const T *x, int hw, int c, int groups, float eps, float *stats) {
    __shared__ double sh[NORM_BLOCK];
    const int b = blockIdx.x / groups, g = blockIdx.x % groups, cg = c / groups;
    const T *xb = x + (size_t)b * hw * c + (size_t)g * cg;
    const size_t n = (size_t)hw * cg;
    double s = 0.0;
    for (size_t e = threadIdx.x; e < n; e += blockDim.x) s += sdc_to_float(xb[(e / cg) * c + e % cg]);
    const double mean = block_sum(s, sh) / (double)n;
    double v = 0.0;
    for (size_t e = threadIdx.x; e < n; e += blockDim.x) {
        double d = sdc_to_float(xb[(e / cg) * c + e % cg]) - mean;
        v += d * d;
    }
    const double var = block_sum(v, sh) / (double)n;
    if (threadIdx.x == 0) {
        stats[2 * blockIdx.x] = (float)mean;
        stats[2 * blockIdx.x + 1] = (float)(1.0 / sqrt(var + eps));
    }
}

template <typename T>
__global__ void group_apply_kernel(T *y, const T *x, const float *gamma, const float *beta, int hw, int c, int groups,
                                   int silu, const float *stats, size_t total) {
    const int cg = c / groups;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const int ch = (int)(i % c);
        const size_t b = i / ((size_t)hw * c);
        const float *st = stats + 2 * (b * groups + ch / cg);
        float v = (sdc_to_float(x[i]) - st[0]) * st[1] * gamma[ch] + beta[ch];
        y[i] = sdc_from_float<T>(silu ? v / (1.0f + expf(-v)) : v);
    }
}

template <typename T>
static int group_norm(T *y, const T *x, const float *gamma, const float *beta, int n, int hw, int c, int groups,
                      float eps, int silu, float *stats, cudaStream_t s) {
    int e = (int)SDC_LAUNCH(group_stats_kernel<T>, n * groups, NORM_BLOCK, 0, s, x, hw, c, groups, eps, stats);
    if (e) return e;
    size_t total = (size_t)n * hw * c;
    size_t grid = SDC_CEIL_DIV_CU(total, (size_t)256);
    if (grid > 65535u * 32u) grid = 65535u * 32u;
    return (int)SDC_LAUNCH(group_apply_kernel<T>, (unsigned)grid, 256, 0, s, y, x, gamma, beta, hw, c, groups, silu,
                           stats, total);
}

extern "C" int sdc_group_norm_cuda(void *y, const void *x, int t, const float *gamma, const float *beta, int n, int hw,
                                   int c, int groups, float eps, int silu, float *stats, cudaStream_t s) {
    if (n <= 0 || hw <= 0) return 0;
    SDC_TYPED(t, group_norm((T *)y, (const T *)x, gamma, beta, n, hw, c, groups, eps, silu, stats, s));
}
