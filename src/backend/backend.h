/* backend.h - the small ops table that model code is written against.
 *
 * Buffers are fp32 in the backend's memory (host for the CPU backend, device
 * for CUDA), row-major. Token sequences are [batch, tokens, features];
 * images are NHWC. Every op returns an sdc_status; failures carry a message
 * naming the op. The CPU backend (backend_cpu.c) is the readable reference
 * and the oracle every other backend is tested against. */
#ifndef SDC_BACKEND_H
#define SDC_BACKEND_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sdc_act {
    SDC_ACT_NONE = 0,
    SDC_ACT_GELU,       /* exact: 0.5 x (1 + erf(x / sqrt 2)) */
    SDC_ACT_QUICK_GELU, /* x * sigmoid(1.702 x), OpenAI CLIP */
    SDC_ACT_SILU,       /* x * sigmoid(x) */
} sdc_act;

typedef struct sdc_backend sdc_backend;

typedef struct sdc_backend_ops {
    const char *name;
    void (*destroy)(sdc_backend *be);
    /* memory: n floats of backend memory */
    sdc_status (*alloc)(sdc_backend *be, size_t n, float **out);
    void (*free)(sdc_backend *be, float *p);
    sdc_status (*upload)(sdc_backend *be, float *dst, const float *src, size_t n);
    sdc_status (*download)(sdc_backend *be, float *dst, const float *src, size_t n);

    /* y[m, n] = x[m, k] . w[n, k]^T (+ bias[n] if bias != NULL) */
    sdc_status (*linear)(sdc_backend *be, float *y, const float *x,
                         const float *w, const float *bias, int m, int k, int n);
    /* y[m, n] = (x - mean) / sqrt(var + eps) * gamma + beta, per row;
     * two-pass statistics. y may alias x. */
    sdc_status (*layer_norm)(sdc_backend *be, float *y, const float *x,
                             const float *gamma, const float *beta, int m,
                             int n, float eps);
    /* Multi-head scaled dot-product attention, scale 1/sqrt(head_dim).
     * q: [batch, tq, *] with row stride q_stride floats; head h reads
     * columns [h*head_dim, (h+1)*head_dim). k, v: [batch, tk, *] with row
     * stride kv_stride. out: [batch, tq, heads*head_dim] (dense).
     * causal: query i attends to keys j <= i. */
    sdc_status (*attention)(sdc_backend *be, float *out, const float *q,
                            const float *k, const float *v, int batch,
                            int heads, int tq, int tk, int head_dim,
                            int q_stride, int kv_stride, bool causal);
    /* y[i] = act(x[i]) for n elements; y may alias x. */
    sdc_status (*activation)(sdc_backend *be, float *y, const float *x,
                             size_t n, sdc_act act);
    /* dst[i] = src[i] within backend memory. */
    sdc_status (*copy)(sdc_backend *be, float *dst, const float *src, size_t n);
    /* y[i] = a[i] + b[i]; y may alias a or b. */
    sdc_status (*add)(sdc_backend *be, float *y, const float *a,
                      const float *b, size_t n);
    /* y[t, :] = table[ids[t], :] + (pos ? pos[t, :] : 0) for t < n_ids;
     * ids is host memory, already range-checked. */
    sdc_status (*embed)(sdc_backend *be, float *y, const float *table,
                        const float *pos, const int *ids, int n_ids, int dim);

    /* --- image ops (NHWC) --------------------------------------------- */
    /* y[n, ho, wo, cout] = conv(x[n, h, w, cin]) + bias[cout]
     *                      (+ residual[n, ho, wo, cout] when not NULL)
     * w: (cout, k, k, cin), permuted at load from PyTorch's (cout, cin, k, k).
     * ho = (h + 2 pad - k) / stride + 1, likewise wo. y must not alias x. */
    sdc_status (*conv2d)(sdc_backend *be, float *y, const float *x, const float *w,
                         const float *bias, const float *residual, int n, int h,
                         int w_in, int cin, int cout, int k, int stride, int pad);
    /* Group norm over x[n, hw, c]: statistics per (image, group of c/groups
     * channels), two-pass; then gamma/beta per channel; silu after when
     * `silu`. y may alias x. */
    sdc_status (*group_norm)(sdc_backend *be, float *y, const float *x,
                             const float *gamma, const float *beta, int n, int hw,
                             int c, int groups, float eps, bool silu);
    /* Nearest-neighbour resize x[n, h, w, c] -> y[n, ho, wo, c] as PyTorch's
     * F.interpolate(mode="nearest"): src = floor(dst * in / out). */
    sdc_status (*upsample_nearest)(sdc_backend *be, float *y, const float *x, int n,
                                   int h, int w, int c, int ho, int wo);
    /* Zero padding: y[n, h + top + bottom, w + left + right, c] with x
     * placed at (top, left). */
    sdc_status (*pad)(sdc_backend *be, float *y, const float *x, int n, int h, int w, int c,
                      int top, int bottom, int left, int right);
    /* y[r, 0:ca] = a[r, :], y[r, ca:ca+cb] = b[r, :] for r < rows. */
    sdc_status (*concat_channels)(sdc_backend *be, float *y, const float *a,
                                  const float *b, size_t rows, int ca, int cb);
    /* GEGLU: y[m, j] = x[m, j] * gelu(x[m, f + j]) for j < f; x is (m, 2f). */
    sdc_status (*geglu)(sdc_backend *be, float *y, const float *x, int m, int f);
    /* y[b, r, j] = x[b, r, j] + v[b, j]: a per-image row broadcast over
     * `rows` positions (the time embedding added in a ResNet block). */
    sdc_status (*add_rows)(sdc_backend *be, float *y, const float *x, const float *v,
                           int n, size_t rows, int c);
} sdc_backend_ops;

struct sdc_backend {
    const sdc_backend_ops *ops;
    int n_threads;  /* CPU threads for this backend's own loops */
    void *impl;
};

/* CPU backend: plain C11 + OpenMP, OpenBLAS sgemm. n_threads 0 = all. */
sdc_status sdc_backend_cpu_create(int n_threads, sdc_backend **out);
/* CUDA backend on device `device` (kernels/backend_cuda.cu; an error when
 * the build had no nvcc or there is no such device). */
sdc_status sdc_backend_cuda_create(int device, sdc_backend **out);
void sdc_backend_destroy(sdc_backend *be);

/* Owned buffer helpers: allocate n floats and upload host data. */
sdc_status sdc_backend_upload_new(sdc_backend *be, const float *src, size_t n,
                                  float **out);

#ifdef __cplusplus
}
#endif
#endif
