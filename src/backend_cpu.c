/* backend_cpu.c - the CPU backend: the readable fp32 reference for every op.
 * Matrix products go through OpenBLAS sgemm; the rest is plain loops with
 * OpenMP over rows. Statistics are accumulated in double, two passes. */
#include "backend.h"

#include <cblas.h>
#include <omp.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static sdc_status cpu_alloc(sdc_backend *be, size_t n, float **out) {
    (void)be;
    /* 64-byte aligned for sgemm; size rounded up to the alignment */
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    if (!p)
        return sdc_fail(SDC_ERR_OOM, "cpu backend: out of memory allocating %zu bytes", bytes);
    *out = p;
    return SDC_OK;
}

static void cpu_free(sdc_backend *be, float *p) {
    (void)be;
    free(p);
}

static sdc_status cpu_copy(sdc_backend *be, float *dst, const float *src, size_t n) {
    (void)be;
    if (n) memmove(dst, src, n * sizeof(float));
    return SDC_OK;
}

static sdc_status cpu_linear(sdc_backend *be, float *y, const float *x,
                             const float *w, const float *bias, int m, int k, int n) {
    (void)be;
    if (m <= 0 || k <= 0 || n <= 0)
        return sdc_fail(SDC_ERR_ARG, "linear: bad shape m=%d k=%d n=%d", m, k, n);
    float beta = 0.0f;
    if (bias) {
        for (int i = 0; i < m; i++) memcpy(y + (size_t)i * n, bias, (size_t)n * sizeof(float));
        beta = 1.0f;
    }
    /* y[m,n] = x[m,k] * w[n,k]^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k,
                beta, y, n);
    return SDC_OK;
}

static sdc_status cpu_layer_norm(sdc_backend *be, float *y, const float *x,
                                 const float *gamma, const float *beta, int m,
                                 int n, float eps) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < m; i++) {
        const float *xr = x + (size_t)i * n;
        float *yr = y + (size_t)i * n;
        double mean = 0.0, var = 0.0;
        for (int j = 0; j < n; j++) mean += xr[j];
        mean /= n;
        for (int j = 0; j < n; j++) {
            double d = xr[j] - mean;
            var += d * d;
        }
        var /= n;
        /* centre in double: mean rounded to float would cost ~ulp(mean)
         * absolute error, large against the spread when |mean| >> std */
        double inv = 1.0 / sqrt(var + eps);
        for (int j = 0; j < n; j++)
            yr[j] = (float)((xr[j] - mean) * inv) * (gamma ? gamma[j] : 1.0f) + (beta ? beta[j] : 0.0f);
    }
    return SDC_OK;
}

/* One (batch, head) pair at a time; scores for one query row in a small
 * buffer. O(tq * tk * d) work; large token counts belong to the fused
 * kernels of faster backends, this is the reference. */
static sdc_status cpu_attention(sdc_backend *be, float *out, const float *q,
                                const float *k, const float *v, int batch,
                                int heads, int tq, int tk, int head_dim,
                                int q_stride, int kv_stride, bool causal) {
    (void)be;
    const float scale = 1.0f / sqrtf((float)head_dim);
    const int width = heads * head_dim;
    /* one row of scores per thread, allocated here so a failure is reported
     * on the calling thread */
    int nt = omp_get_max_threads();
    float *scores = malloc((size_t)nt * (size_t)tk * sizeof(float));
    if (!scores)
        return sdc_fail(SDC_ERR_OOM, "attention: out of memory for %d x %d scores", nt, tk);
#pragma omp parallel for collapse(2) schedule(static)
    for (int bh = 0; bh < batch * heads; bh++) {
        for (int i = 0; i < tq; i++) {
            float *s = scores + (size_t)omp_get_thread_num() * tk;
            int b = bh / heads, h = bh % heads;
            const float *qi = q + ((size_t)b * tq + i) * q_stride + h * head_dim;
            const float *kb = k + (size_t)b * tk * kv_stride + h * head_dim;
            const float *vb = v + (size_t)b * tk * kv_stride + h * head_dim;
            int nk = causal ? (i + 1 < tk ? i + 1 : tk) : tk;
            float mx = -INFINITY;
            for (int j = 0; j < nk; j++) {
                const float *kj = kb + (size_t)j * kv_stride;
                float dot = 0.0f;
                for (int d = 0; d < head_dim; d++) dot += qi[d] * kj[d];
                s[j] = dot * scale;
                if (s[j] > mx) mx = s[j];
            }
            double sum = 0.0;
            for (int j = 0; j < nk; j++) {
                s[j] = expf(s[j] - mx);
                sum += s[j];
            }
            float inv = (float)(1.0 / sum);
            float *o = out + ((size_t)b * tq + i) * width + h * head_dim;
            for (int d = 0; d < head_dim; d++) o[d] = 0.0f;
            for (int j = 0; j < nk; j++) {
                const float *vj = vb + (size_t)j * kv_stride;
                float p = s[j] * inv;
                for (int d = 0; d < head_dim; d++) o[d] += p * vj[d];
            }
        }
    }
    free(scores);
    return SDC_OK;
}

static sdc_status cpu_activation(sdc_backend *be, float *y, const float *x,
                                 size_t n, sdc_act act) {
    (void)be;
    switch (act) {
    case SDC_ACT_NONE:
        if (y != x) memmove(y, x, n * sizeof(float));
        break;
    case SDC_ACT_GELU:
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
        break;
    case SDC_ACT_QUICK_GELU:
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
        break;
    case SDC_ACT_SILU:
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
        break;
    default:
        return sdc_fail(SDC_ERR_ARG, "activation: unknown kind %d", (int)act);
    }
    return SDC_OK;
}

static sdc_status cpu_add(sdc_backend *be, float *y, const float *a,
                          const float *b, size_t n) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
    return SDC_OK;
}

static sdc_status cpu_embed(sdc_backend *be, float *y, const float *table,
                            const float *pos, const int *ids, int n_ids, int dim) {
    (void)be;
    for (int t = 0; t < n_ids; t++) {
        const float *row = table + (size_t)ids[t] * dim;
        float *yr = y + (size_t)t * dim;
        for (int j = 0; j < dim; j++) yr[j] = row[j] + (pos ? pos[(size_t)t * dim + j] : 0.0f);
    }
    return SDC_OK;
}

static const sdc_backend_ops cpu_ops = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .linear = cpu_linear,
    .layer_norm = cpu_layer_norm,
    .attention = cpu_attention,
    .activation = cpu_activation,
    .add = cpu_add,
    .embed = cpu_embed,
};

sdc_status sdc_backend_cpu_create(int n_threads, sdc_backend **out) {
    sdc_backend *be = calloc(1, sizeof *be);
    if (!be) return sdc_fail(SDC_ERR_OOM, "cpu backend: out of memory");
    be->ops = &cpu_ops;
    be->n_threads = n_threads;
    if (n_threads > 0) {
        omp_set_num_threads(n_threads);
        openblas_set_num_threads(n_threads);
    }
    *out = be;
    return SDC_OK;
}

void sdc_backend_destroy(sdc_backend *be) { free(be); }

sdc_status sdc_backend_upload_new(sdc_backend *be, const float *src, size_t n,
                                  float **out) {
    float *p = NULL;
    SDC_TRY(be->ops->alloc(be, n, &p));
    sdc_status st = be->ops->upload(be, p, src, n);
    if (st != SDC_OK) {
        be->ops->free(be, p);
        return st;
    }
    *out = p;
    return SDC_OK;
}
