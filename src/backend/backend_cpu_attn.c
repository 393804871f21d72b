/* backend_cpu_attn.c - multi-head attention on the CPU: for each (image,
 * head) and block of queries, scores = Q K^T by sgemm, a row softmax, then
 * out = P V by sgemm. Memory is one score block, never tq x tk at once.
 * Many keys without a causal mask (self-attention in the U-Net and VAE)
 * go to the flash-style kernel instead (backend_cpu_flash.c); this path
 * keeps the text encoder's causal 77 tokens and cross-attention. */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>

#include "backend/backend_cpu.h"

/* Work is split into jobs of (image, head, block of queries); with enough
 * jobs each thread runs whole jobs with single-threaded sgemm and its own
 * score block, sized to stay in L2 (64 x 4096 floats = 1 MiB). */
#define QBLOCK 64

/* one row block: s holds (rows, nk) scores, replaced by exp(scale * (s -
 * max)); inv[i] gets 1 / row sum, applied to the output rows afterwards
 * (one pass over the scores fewer than normalising them). */
static void softmax_rows(float *s, float *inv, int rows, int nk_all, int row0, bool causal, float scale) {
    for (int i = 0; i < rows; i++) {
        float *r = s + (size_t)i * nk_all;
        int n = causal ? (row0 + i + 1 < nk_all ? row0 + i + 1 : nk_all) : nk_all;
        float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
        for (int j = 0; j < n; j++) mx = r[j] > mx ? r[j] : mx;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < n; j++) {
            float e = sdc_fast_expf((r[j] - mx) * scale);
            r[j] = e;
            sum += e;
        }
        inv[i] = 1.0f / sum;
        for (int j = n; j < nk_all; j++) r[j] = 0.0f;
    }
}

typedef struct attn_args {
    float *out;
    const float *q, *k, *v;
    int heads, tq, tk, d, q_stride, kv_stride, width, blocks;
    bool causal;
    float scale;
} attn_args;

static void attn_job(const attn_args *a, int job, float *s) {
    const int blk = job % a->blocks, bh = job / a->blocks, b = bh / a->heads, h = bh % a->heads;
    const int i0 = blk * QBLOCK, rows = a->tq - i0 < QBLOCK ? a->tq - i0 : QBLOCK;
    const float *kb = a->k + (size_t)b * a->tk * a->kv_stride + h * a->d;
    const float *vb = a->v + (size_t)b * a->tk * a->kv_stride + h * a->d;
    const float *qi = a->q + ((size_t)b * a->tq + i0) * a->q_stride + h * a->d;
    float *o = a->out + ((size_t)b * a->tq + i0) * a->width + h * a->d;
    /* a causal block sees keys 0 .. i0 + rows - 1 only */
    const int nk = a->causal ? (i0 + rows < a->tk ? i0 + rows : a->tk) : a->tk;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, a->d, 1.0f, qi, a->q_stride, kb,
                a->kv_stride, 0.0f, s, nk);
    float inv[QBLOCK];
    softmax_rows(s, inv, rows, nk, i0, a->causal, a->scale);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, a->d, nk, 1.0f, s, nk, vb, a->kv_stride,
                0.0f, o, a->width);
    for (int i = 0; i < rows; i++) {
        float *orow = o + (size_t)i * a->width;
        for (int c = 0; c < a->d; c++) orow[c] *= inv[i];
    }
}

sdc_status sdc_cpu_attention(sdc_backend *be, sdc_buf out, sdc_buf q, sdc_buf k, sdc_buf v, int batch,
                             int heads, int tq, int tk, int head_dim, int q_stride, int kv_stride, bool causal) {
    SDC_TRY(sdc_cpu_f32("attention", 4, (sdc_buf[]){out, q, k, v}));
    if (batch < 1 || heads < 1 || tq < 1 || tk < 1 || head_dim < 1)
        return sdc_fail(SDC_ERR_ARG, "attention: bad shape batch=%d heads=%d tq=%d tk=%d d=%d",
                        batch, heads, tq, tk, head_dim);
    if (sdc_cpu_flash_takes(tk, head_dim, causal)) {
        if (be->attention_bf16 && sdc_cpu_planning(be)) /* either kernel's scratch, whichever runs */
            SDC_TRY(sdc_cpu_flash_attention_amx(be, out.p, q.p, k.p, v.p, batch, heads, tq, tk, head_dim, q_stride,
                                                kv_stride));
        else if (be->attention_bf16 && sdc_cpu_amx_active())
            return sdc_cpu_flash_attention_amx(be, out.p, q.p, k.p, v.p, batch, heads, tq, tk, head_dim, q_stride,
                                               kv_stride);
        return sdc_cpu_flash_attention(be, out.p, q.p, k.p, v.p, batch, heads, tq, tk, head_dim, q_stride, kv_stride);
    }
    attn_args a = {.out = out.p, .q = q.p, .k = k.p, .v = v.p, .heads = heads, .tq = tq, .tk = tk, .d = head_dim,
                   .q_stride = q_stride, .kv_stride = kv_stride, .width = heads * head_dim,
                   .blocks = (tq + QBLOCK - 1) / QBLOCK, .causal = causal,
                   /* softmax(scale * q.k) with the scale folded into the exponent */
                   .scale = 1.0f / sqrtf((float)head_dim)};
    const int jobs = batch * heads * a.blocks, nt = omp_get_max_threads();
    float *s = NULL;
    SDC_TRY(sdc_cpu_scratch(be, 0, (size_t)nt * QBLOCK * tk, "attention", &s));
    if (sdc_cpu_planning(be)) return SDC_OK;
    if (jobs >= 4 * nt && nt > 1) {
        int blas_threads = openblas_get_num_threads();
        openblas_set_num_threads(1);
#pragma omp parallel for schedule(dynamic, 1)
        for (int j = 0; j < jobs; j++) attn_job(&a, j, s + (size_t)omp_get_thread_num() * QBLOCK * tk);
        openblas_set_num_threads(blas_threads);
    } else {
        for (int j = 0; j < jobs; j++) attn_job(&a, j, s);
    }
    return SDC_OK;
}
