/* backend_cpu_flash_amx.c - flash attention with AMX's tiles, the CPU's
 * --precision bf16 (backend.h, attention_bf16).
 *
 * As the fp32 kernel (backend_cpu_flash.c), per (image, head) the keys and
 * values are packed once and blocks of queries walk the keys a chunk at a
 * time with an online softmax; here a block is AQ = 16 queries (one
 * tile's rows) and a chunk AK = 128 keys.
 *  - Scores S = Q K^T: 16x16 fp32 tiles, TDPBF16PS over head_dim in steps
 *    of 32, q rounded to bf16 once per block, K packed per 16 keys as
 *    sdc_cpu_pack_bf16_cols lays out a weight (the pairs of head_dim next
 *    to each other).
 *  - Softmax in fp32, 16 lanes: the row maxima (a pass over the 16 rows),
 *    the 16 rows' rescaling factors as one vector exponent, then per row
 *    p = 2^((s - max) scale log2 e), its sum kept in 16 lanes and P
 *    rounded to bf16 by VCVTNE2PS2BF16.
 *  - P V: tiles again, V packed as (tk/2, 16, 2) per 16 columns; the
 *    output block stays fp32 in memory, rescaled per row.
 * The exponent is exp2 of a reduced argument: Cephes' degree-6 polynomial
 * on [-1/2, 1/2] (about 1 ulp) and VSCALEFPS; arguments below -126 are
 * taken as -126 (2^-126: a probability that rounds away next to the row's
 * largest, 1). NaN in q, k or v reaches the output. The operands' rounding
 * is the mode's error: tests/test_cpu_bf16.c holds this kernel to float64
 * attention of the rounded q, k, v in its own order. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "backend/backend_cpu.h"

#if SDC_CPU_AMX
#include <immintrin.h>

#define AMX_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,amx-tile,amx-bf16")))

enum { AQ = 16, AK = 128 };

typedef struct amx_flash {
    float *out;
    const float *q;
    int tq, tk, d, dk, dv, q_stride, width;
    size_t tkp; /* tk rounded up to AK */
    const uint16_t *kp, *vp;
    float c; /* the softmax's scale times log2 e */
} amx_flash;

/* s[0 .. 16)[0 .. 64) (row stride AK) = qa (16 x dk bf16) . kc^T, kc: 4
 * packed blocks of 16 keys (dk x 16 each) */
AMX_TARGET static void scores64(float *s, const uint16_t *qa, int dk, const uint16_t *kc) {
    const size_t kb = (size_t)dk * 16, stride = (size_t)dk * sizeof(uint16_t);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int k0 = 0; k0 < dk; k0 += 32) {
        const uint16_t *b = kc + (size_t)k0 * 16;
        _tile_loadd(4, qa + k0, stride);
        _tile_loadd(5, b, 64);
        _tile_dpbf16ps(0, 4, 5);
        _tile_loadd(6, b + kb, 64);
        _tile_dpbf16ps(1, 4, 6);
        _tile_loadd(7, b + 2 * kb, 64);
        _tile_dpbf16ps(2, 4, 7);
        _tile_loadd(5, b + 3 * kb, 64);
        _tile_dpbf16ps(3, 4, 5);
    }
    _tile_stored(0, s, AK * sizeof(float));
    _tile_stored(1, s + 16, AK * sizeof(float));
    _tile_stored(2, s + 32, AK * sizeof(float));
    _tile_stored(3, s + 48, AK * sizeof(float));
}

/* pv (16 x dv fp32, row stride dv) = pa (16 x AK bf16) . vc, the chunk's
 * values: column block cb at vc + cb vb, its keys in pairs */
AMX_TARGET static void pv_tiles(float *pv, int dv, const uint16_t *pa, const uint16_t *vc, size_t vb) {
    const size_t stride = (size_t)dv * sizeof(float);
    int cb = 0;
    for (; cb + 2 <= dv / 16; cb += 2) { /* two column blocks, two independent sums */
        const uint16_t *b0 = vc + (size_t)cb * vb, *b1 = b0 + vb;
        _tile_zero(0);
        _tile_zero(1);
        for (int k0 = 0; k0 < AK; k0 += 32) {
            _tile_loadd(4, pa + k0, AK * sizeof(uint16_t));
            _tile_loadd(5, b0 + (size_t)k0 * 16, 64);
            _tile_dpbf16ps(0, 4, 5);
            _tile_loadd(6, b1 + (size_t)k0 * 16, 64);
            _tile_dpbf16ps(1, 4, 6);
        }
        _tile_stored(0, pv + cb * 16, stride);
        _tile_stored(1, pv + cb * 16 + 16, stride);
    }
    if (cb < dv / 16) {
        const uint16_t *b0 = vc + (size_t)cb * vb;
        _tile_zero(0);
        for (int k0 = 0; k0 < AK; k0 += 32) {
            _tile_loadd(4, pa + k0, AK * sizeof(uint16_t));
            _tile_loadd(5, b0 + (size_t)k0 * 16, 64);
            _tile_dpbf16ps(0, 4, 5);
        }
        _tile_stored(0, pv + cb * 16, stride);
    }
}

/* 2^y, y <= 0 (larger works too); below -126 as -126; NaN stays NaN */
AMX_TARGET static inline __m512 exp2_v(__m512 y) {
    y = _mm512_max_ps(_mm512_set1_ps(-126.0f), y); /* the second operand when either is NaN */
    const __m512 n = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(y, n);
    __m512 p = _mm512_set1_ps(1.535336188319500e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.339887440266574e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618437357674640e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550332471162809e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402264791363012e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931472028550421e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* keys 2 jp and 2 jp + 1 of V (v0, v1; NULL past tk: zeros) as bf16
 * pairs, column c's at dst[(c / 16) cb_words + c % 16]; zeros past d */
AMX_TARGET static void pack_pair(uint32_t *dst, size_t cb_words, const float *v0, const float *v1, int d, int dv) {
    for (int c0 = 0; c0 < dv; c0 += 16) {
        uint32_t *o = dst + (size_t)(c0 / 16) * cb_words;
        for (int c = 0; c < 16; c++) {
            const int cc = c0 + c;
            const uint32_t lo = v0 && cc < d ? sdc_bf16_bits(v0[cc]) : 0, hi = v1 && cc < d ? sdc_bf16_bits(v1[cc]) : 0;
            o[c] = lo | hi << 16;
        }
    }
}

/* rows i0 .. i0 + AQ of the output (fewer at the end); w: this thread's
 * qa (AQ dk bf16), s (AQ AK), pv and o (AQ dv each), pa (AQ AK bf16),
 * row sums (AQ x 16) */
AMX_TARGET static void block(const amx_flash *a, int i0, float *w) {
    const int dk = a->dk, dv = a->dv, rows = a->tq - i0 < AQ ? a->tq - i0 : AQ;
    uint16_t *qa = (uint16_t *)w;
    float *s = w + (size_t)AQ * dk / 2, *pv = s + AQ * AK, *o = pv + (size_t)AQ * dv;
    uint16_t *pa = (uint16_t *)(o + (size_t)AQ * dv);
    float *sums = (float *)(pa + AQ * AK);
    float mx[AQ] __attribute__((aligned(64))), mn[AQ] __attribute__((aligned(64)));
    float alpha[AQ] __attribute__((aligned(64)));
    for (int r = 0; r < AQ; r++) {
        const float *qr = a->q + (size_t)(i0 + r) * a->q_stride;
        for (int c = 0; c < dk; c++) qa[r * dk + c] = r < rows && c < a->d ? sdc_bf16_bits(qr[c]) : 0;
        mx[r] = -INFINITY;
    }
    memset(o, 0, (size_t)AQ * dv * sizeof(float));
    memset(sums, 0, (size_t)AQ * 16 * sizeof(float));
    const __m512 cv = _mm512_set1_ps(a->c);
    for (size_t j0 = 0; j0 < (size_t)a->tk; j0 += AK) {
        const int nk = (size_t)a->tk - j0 < AK ? (int)((size_t)a->tk - j0) : AK;
        scores64(s, qa, dk, a->kp + j0 * dk);
        if (nk > 64) scores64(s + 64, qa, dk, a->kp + (j0 + 64) * dk);
        /* the keys past tk (their scores 0) and, for nk <= 64, the half not
         * computed: out of every lane below by the masks */
        __mmask16 live[AK / 16];
        for (int v = 0; v < AK / 16; v++) {
            const int left = nk - 16 * v;
            live[v] = left >= 16 ? (__mmask16)0xffff : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
        }
        /* the row maxima, then every row's rescaling in one exponent */
        for (int r = 0; r < AQ; r++) {
            __m512 m = _mm512_set1_ps(mx[r]);
            for (int v = 0; v < AK / 16; v++) m = _mm512_mask_max_ps(m, live[v], m, _mm512_loadu_ps(s + r * AK + 16 * v));
            mn[r] = _mm512_reduce_max_ps(m);
        }
        const __m512 mnv = _mm512_load_ps(mn), mxv = _mm512_load_ps(mx);
        _mm512_store_ps(alpha, exp2_v(_mm512_mul_ps(_mm512_sub_ps(mxv, mnv), cv)));
        _mm512_store_ps(mx, mnv);
        for (int r = 0; r < AQ; r++) {
            const __m512 off = _mm512_set1_ps(-mn[r] * a->c);
            __m512 acc = _mm512_setzero_ps(), e[AK / 16];
            for (int v = 0; v < AK / 16; v++) {
                e[v] = _mm512_maskz_mov_ps(live[v], exp2_v(_mm512_fmadd_ps(_mm512_loadu_ps(s + r * AK + 16 * v), cv, off)));
                acc = _mm512_add_ps(acc, e[v]);
            }
            float *sr = sums + r * 16;
            _mm512_storeu_ps(sr, _mm512_fmadd_ps(_mm512_loadu_ps(sr), _mm512_set1_ps(alpha[r]), acc));
            for (int v = 0; v < AK / 16; v += 2)
                _mm512_storeu_si512(pa + r * AK + 16 * v, (__m512i)_mm512_cvtne2ps_pbh(e[v + 1], e[v]));
        }
        pv_tiles(pv, dv, pa, a->vp + j0 * 16, a->tkp * 16);
        for (int r = 0; r < AQ; r++) {
            const __m512 al = _mm512_set1_ps(alpha[r]);
            for (int c = 0; c < dv; c += 16)
                _mm512_storeu_ps(o + r * dv + c, _mm512_fmadd_ps(_mm512_loadu_ps(o + r * dv + c), al,
                                                                 _mm512_loadu_ps(pv + r * dv + c)));
        }
    }
    for (int r = 0; r < rows; r++) {
        float *dst = a->out + (size_t)(i0 + r) * a->width;
        const float inv = 1.0f / _mm512_reduce_add_ps(_mm512_loadu_ps(sums + r * 16));
        for (int c = 0; c < a->d; c++) dst[c] = o[r * dv + c] * inv;
    }
}

sdc_status sdc_cpu_flash_attention_amx(sdc_backend *be, float *out, const float *q, const float *k, const float *v,
                                       int batch, int heads, int tq, int tk, int d, int q_stride, int kv_stride) {
    const int dk = (d + 31) / 32 * 32, dv = (d + 15) / 16 * 16, nt = omp_get_max_threads();
    const size_t tkp = ((size_t)tk + AK - 1) / AK * AK;
    const size_t per_thread =
        (size_t)AQ * dk / 2 + (size_t)AQ * AK + (size_t)2 * AQ * dv + (size_t)AQ * AK / 2 + (size_t)AQ * 16;
    float *buf = NULL;
    SDC_TRY(sdc_cpu_scratch(be, 0, tkp * dk / 2 + tkp * dv / 2 + (size_t)nt * per_thread, "attention", &buf));
    if (sdc_cpu_planning(be)) return SDC_OK;
    uint16_t *kp = (uint16_t *)buf, *vp = kp + tkp * dk;
    float *work = buf + tkp * dk / 2 + tkp * dv / 2;
    amx_flash a = {.tq = tq, .tk = tk, .d = d, .dk = dk, .dv = dv, .q_stride = q_stride, .width = heads * d,
                   .tkp = tkp, .kp = kp, .vp = vp, .c = (float)(1.4426950408889634 / sqrt((double)d))};
    const size_t vb = tkp * 16; /* a column block of V: tkp keys x 16 columns */
    for (int b = 0; b < batch; b++)
        for (int h = 0; h < heads; h++) {
            const float *kb = k + (size_t)b * tk * kv_stride + (size_t)h * d;
            const float *vbase = v + (size_t)b * tk * kv_stride + (size_t)h * d;
            a.q = q + (size_t)b * tq * q_stride + (size_t)h * d;
            a.out = out + (size_t)b * tq * a.width + (size_t)h * d;
#pragma omp parallel
            {
#pragma omp for schedule(static) nowait
                for (int jb = 0; jb < (int)(tkp / 16); jb++)
                    sdc_cpu_pack_bf16_cols(kp + (size_t)jb * 16 * dk, kb, kv_stride, tk, d, dk, jb);
                /* vp[c / 16][j / 2][c % 16][j % 2] = v[j][c]; zero past tk and d */
#pragma omp for schedule(static)
                for (size_t jp = 0; jp < tkp / 2; jp++) {
                    const size_t j = 2 * jp;
                    pack_pair((uint32_t *)vp + jp * 16, vb / 2, j < (size_t)tk ? vbase + j * kv_stride : NULL,
                              j + 1 < (size_t)tk ? vbase + (j + 1) * kv_stride : NULL, d, dv);
                }
                float *w = work + (size_t)omp_get_thread_num() * per_thread;
                sdc_cpu_amx_begin();
#pragma omp for schedule(static)
                for (int i0 = 0; i0 < tq; i0 += AQ) block(&a, i0, w);
                sdc_cpu_amx_end();
            }
        }
    return SDC_OK;
}
#else
sdc_status sdc_cpu_flash_attention_amx(sdc_backend *be, float *out, const float *q, const float *k, const float *v,
                                       int batch, int heads, int tq, int tk, int d, int q_stride, int kv_stride) {
    return sdc_cpu_flash_attention(be, out, q, k, v, batch, heads, tq, tk, d, q_stride, kv_stride);
}
#endif
