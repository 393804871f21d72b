// norm.cu - layer norm (one block per row, two-pass: the mean first, then
// the mean squared deviation from it) and group norm (statistics split
// over many blocks, below, then an elementwise apply with SiLU fused).
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

// Group norm's statistics are spread over many blocks: each (image, group)
// is split into `splits` ranges of pixels, one block each, so a U-Net at
// batch 2 with 32 groups runs ~1000 blocks, not 64. A block keeps
// Welford's running count, mean and M2 per thread in double (one pass over
// x, never E[x^2] - E[x]^2), merges its threads' by Chan's formula and
// writes them; one thread per (image, group) then merges its splits in
// order and writes mean and 1 / sqrt(var + eps).

// splits for n images of hw pixels in `groups` groups: about 1024 blocks,
// at most 64 a group and at least 16 pixels a split
static int gn_splits(int n, int hw, int groups) {
    int s = SDC_CEIL_DIV_CU(1024, n * groups);
    if (s > 64) s = 64;
    if (s > SDC_CEIL_DIV_CU(hw, 16)) s = SDC_CEIL_DIV_CU(hw, 16);
    return s < 1 ? 1 : s;
}

extern "C" size_t sdc_group_norm_scratch_floats(int n, int hw, int groups) {
    if (n <= 0 || hw <= 0 || groups <= 0) return 0;
    // stats (4 floats a group), then the partials (3 doubles a split)
    const size_t ng = (size_t)n * groups;
    return 4 * ng + 6 * ng * (size_t)gn_splits(n, hw, groups);
}

struct gn_welford {
    double n, mean, m2;
};

// Chan et al.: the statistics of the union of two disjoint sets
__device__ __forceinline__ gn_welford gn_merge(gn_welford a, gn_welford b) {
    if (b.n == 0.0) return a;
    if (a.n == 0.0) return b;
    const double n = a.n + b.n, d = b.mean - a.mean;
    return {n, a.mean + d * (b.n / n), a.m2 + b.m2 + d * d * (a.n * b.n / n)};
}

template <typename T>
__global__ void group_partial_kernel(const T *x, int hw, int c, int groups, int splits, gn_welford *part) {
    __shared__ gn_welford sh[NORM_BLOCK];
    const int bg = blockIdx.x / splits, sp = blockIdx.x % splits, b = bg / groups, g = bg % groups, cg = c / groups;
    const int per = SDC_CEIL_DIV_CU(hw, splits), p0 = sp * per, p1 = p0 + per < hw ? p0 + per : hw;
    const T *xb = x + (size_t)b * hw * c + (size_t)g * cg;
    gn_welford w = {0.0, 0.0, 0.0};
    const size_t n = p1 > p0 ? (size_t)(p1 - p0) * cg : 0;
    for (size_t e = threadIdx.x; e < n; e += blockDim.x) {
        const double v = sdc_to_float(xb[(p0 + e / cg) * (size_t)c + e % cg]);
        w.n += 1.0;
        const double d = v - w.mean;
        w.mean += d / w.n;
        w.m2 += d * (v - w.mean);
    }
    sh[threadIdx.x] = w;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] = gn_merge(sh[threadIdx.x], sh[threadIdx.x + s]);
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}

// stats[4 (b groups + g) + 0..2]: the mean as two floats (hi + lo: the
// fp32 apply subtracts it to double precision, so values far from zero
// keep their deviations), then 1 / sqrt(var + eps)
__global__ void group_final_kernel(const gn_welford *part, int ng, int splits, float eps, float *stats) {
    const int bg = blockIdx.x * blockDim.x + threadIdx.x;
    if (bg >= ng) return;
    gn_welford w = {0.0, 0.0, 0.0};
    for (int sp = 0; sp < splits; sp++) w = gn_merge(w, part[(size_t)bg * splits + sp]);
    const float hi = (float)w.mean;
    stats[4 * bg] = hi;
    stats[4 * bg + 1] = (float)(w.mean - (double)hi);
    stats[4 * bg + 2] = (float)(1.0 / sqrt(w.m2 / w.n + eps));
}

template <typename T>
__global__ void group_apply_kernel(T *y, const T *x, const float *gamma, const float *beta, int hw, int c, int groups,
                                   int silu, const float *stats, size_t total) {
    const int cg = c / groups;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const int ch = (int)(i % c);
        const size_t b = i / ((size_t)hw * c);
        const float *st = stats + 4 * (b * groups + ch / cg);
        float v = ((sdc_to_float(x[i]) - st[0]) - st[1]) * st[2] * gamma[ch] + beta[ch];
        y[i] = sdc_from_float<T>(silu ? v / (1.0f + expf(-v)) : v);
    }
}

template <typename T>
static int group_norm(T *y, const T *x, const float *gamma, const float *beta, int n, int hw, int c, int groups,
                      float eps, int silu, float *scratch, cudaStream_t s) {
    const int splits = gn_splits(n, hw, groups), ng = n * groups;
    float *stats = scratch;
    // the partials after the stats (4 floats a group: 16-byte steps, so as
    // aligned as the scratch, which is 256-byte aligned)
    gn_welford *part = (gn_welford *)(scratch + 4 * (size_t)ng);
    int e = (int)SDC_LAUNCH(group_partial_kernel<T>, ng * splits, NORM_BLOCK, 0, s, x, hw, c, groups, splits, part);
    if (!e) e = (int)SDC_LAUNCH(group_final_kernel, SDC_CEIL_DIV_CU(ng, 128), 128, 0, s, part, ng, splits, eps, stats);
    if (e) return e;
    size_t total = (size_t)n * hw * c;
    size_t grid = SDC_CEIL_DIV_CU(total, (size_t)256);
    if (grid > 65535u * 32u) grid = 65535u * 32u;
    return (int)SDC_LAUNCH(group_apply_kernel<T>, (unsigned)grid, 256, 0, s, y, x, gamma, beta, hw, c, groups, silu,
                           stats, total);
}

extern "C" int sdc_group_norm_cuda(void *y, const void *x, int t, const float *gamma, const float *beta, int n, int hw,
                                   int c, int groups, float eps, int silu, float *scratch, cudaStream_t s) {
    if (n <= 0 || hw <= 0) return 0;
    SDC_TYPED(t, group_norm((T *)y, (const T *)x, gamma, beta, n, hw, c, groups, eps, silu, scratch, s));
}
