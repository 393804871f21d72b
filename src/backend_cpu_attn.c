/* backend_cpu_attn.c - multi-head attention on the CPU: for each (image,
 * head) and block of queries, scores = Q K^T by sgemm, a row softmax, then
 * out = P V by sgemm. Memory is one score block, never tq x tk at once. */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>

#include "backend_cpu.h"

/* queries per block: the score block is QBLOCK x tk floats */
#define QBLOCK 256

static void softmax_rows(float *s, int rows, int cols, int ld, int row0, bool causal, float scale) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < rows; i++) {
        float *r = s + (size_t)i * ld;
        int n = causal ? (row0 + i + 1 < cols ? row0 + i + 1 : cols) : cols;
        float mx = -INFINITY;
        for (int j = 0; j < n; j++) mx = r[j] > mx ? r[j] : mx;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < n; j++) {
            float e = sdc_fast_expf((r[j] - mx) * scale);
            r[j] = e;
            sum += e;
        }
        float inv = 1.0f / sum;
#pragma omp simd
        for (int j = 0; j < n; j++) r[j] *= inv;
        for (int j = n; j < cols; j++) r[j] = 0.0f;
    }
}

sdc_status sdc_cpu_attention(sdc_backend *be, float *out, const float *q, const float *k,
                             const float *v, int batch, int heads, int tq, int tk,
                             int head_dim, int q_stride, int kv_stride, bool causal) {
    if (batch < 1 || heads < 1 || tq < 1 || tk < 1 || head_dim < 1)
        return sdc_fail(SDC_ERR_ARG, "attention: bad shape batch=%d heads=%d tq=%d tk=%d d=%d",
                        batch, heads, tq, tk, head_dim);
    const int width = heads * head_dim;
    const int qb = tq < QBLOCK ? tq : QBLOCK;
    float *s = sdc_cpu_scratch(be, 0, (size_t)qb * tk);
    if (!s) return sdc_fail(SDC_ERR_OOM, "attention: out of memory for %d x %d scores", qb, tk);
    /* softmax(scale * q.k) with the scale folded into the exponent */
    const float scale = 1.0f / sqrtf((float)head_dim);
    for (int b = 0; b < batch; b++)
        for (int h = 0; h < heads; h++) {
            const float *kb = k + (size_t)b * tk * kv_stride + h * head_dim;
            const float *vb = v + (size_t)b * tk * kv_stride + h * head_dim;
            for (int i0 = 0; i0 < tq; i0 += qb) {
                int rows = tq - i0 < qb ? tq - i0 : qb;
                const float *qi = q + ((size_t)b * tq + i0) * q_stride + h * head_dim;
                float *o = out + ((size_t)b * tq + i0) * width + h * head_dim;
                /* only keys 0..i0+rows-1 can be seen by a causal block */
                int nk = causal ? (i0 + rows < tk ? i0 + rows : tk) : tk;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, head_dim, 1.0f, qi,
                            q_stride, kb, kv_stride, 0.0f, s, nk);
                softmax_rows(s, rows, nk, nk, i0, causal, scale);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, head_dim, nk, 1.0f, s,
                            nk, vb, kv_stride, 0.0f, o, width);
            }
        }
    return SDC_OK;
}
