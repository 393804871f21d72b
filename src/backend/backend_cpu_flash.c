/* backend_cpu_flash.c - attention over many keys on the CPU, flash style:
 * the U-Net's self-attention (4096 tokens of 40-wide heads at 512x512)
 * and the VAE's (one 512-wide head).
 *
 * Per (image, head) the keys are packed once, transposed (kt: head_dim x
 * tk), and the values padded to whole vectors (vp: tk x dp); then blocks of
 * R queries run on all threads. A block walks the keys KC at a time:
 * scores S = Q K^T for R x KC (4 KiB, in L1) with R x 32 accumulators in
 * registers, the online softmax (running max and sum per row, the output
 * rescaled when the max grows), then O += P V with R x 48 accumulators.
 * No tq x tk or R x tk scores are ever stored, and neither product is a
 * thin sgemm that repacks K or V for every block of queries.
 *
 * Vectors are GCC's generic 16-float vectors: AVX-512 registers where the
 * build targets them, pairs of AVX2 registers otherwise. Arithmetic: fp32
 * products summed over head_dim in order, the exponent as the two-pass
 * path's (sdc_fast_expf of (s - max) * scale), the sum of probabilities
 * in fp32; tests/test_backend_cpu.c holds it to 1e-5 of float64. */
#include <math.h>
#include <omp.h>

#include "backend/backend_cpu.h"

typedef float v16 __attribute__((vector_size(64)));
/* Without AVX-512 in the build (OPT without -march=native, `make
 * sanitize`) GCC warns that passing v16 by value changes the ABI; every
 * function here that does is static, so no caller outside sees it. */
#pragma GCC diagnostic ignored "-Wpsabi"

#define R 8     /* queries per block */
#define KC 128  /* keys per chunk: a multiple of 32 */

static inline v16 ld(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void st(float *p, v16 v) { memcpy(p, &v, sizeof v); }

/* S[r][j] = sum_c q[r][c] kt[c][j0 + j] for j < KC (32 at a time) */
static void scores(float *s, const float *q, int d, const float *kt, size_t ldk, size_t j0) {
    for (int j = 0; j < KC; j += 32) {
        v16 a0[R], a1[R];
        for (int r = 0; r < R; r++) a0[r] = a1[r] = (v16){0};
        for (int c = 0; c < d; c++) {
            const float *k = kt + (size_t)c * ldk + j0 + j;
            const v16 k0 = ld(k), k1 = ld(k + 16);
            for (int r = 0; r < R; r++) {
                const float x = q[r * d + c];
                a0[r] += k0 * x;
                a1[r] += k1 * x;
            }
        }
        for (int r = 0; r < R; r++) {
            st(s + r * KC + j, a0[r]);
            st(s + r * KC + j + 16, a1[r]);
        }
    }
}

/* o[r][c0 ..c0 + 16 nv) += sum_j p[r][j] vp[j0 + j][c0 ..] for j < nk */
static inline __attribute__((always_inline)) void pv_pass(float *o, int dp, const float *p, const float *vp,
                                                           size_t j0, int nk, int c0, const int nv) {
    v16 a[R][3];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < nv; v++) a[r][v] = ld(o + r * dp + c0 + 16 * v);
    for (int j = 0; j < nk; j++) {
        const float *row = vp + (j0 + (size_t)j) * dp + c0;
        v16 x[3];
        for (int v = 0; v < nv; v++) x[v] = ld(row + 16 * v);
        for (int r = 0; r < R; r++) {
            const float pr = p[r * KC + j];
            for (int v = 0; v < nv; v++) a[r][v] += x[v] * pr;
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < nv; v++) st(o + r * dp + c0 + 16 * v, a[r][v]);
}

typedef struct flash_args {
    float *out;
    const float *q;
    int tq, tk, d, dp, q_stride, width;
    size_t tkp; /* tk rounded up to KC */
    const float *kt, *vp;
    float scale;
    float *work; /* per thread: R d (queries), R KC (scores), R dp (output) */
} flash_args;

static void block(const flash_args *a, int i0, float *w) {
    const int d = a->d, dp = a->dp, rows = a->tq - i0 < R ? a->tq - i0 : R;
    float *q = w, *s = q + R * d, *o = s + R * KC;
    float mx[R], sum[R];
    for (int r = 0; r < R; r++) {
        for (int c = 0; c < d; c++) q[r * d + c] = r < rows ? a->q[(size_t)(i0 + r) * a->q_stride + c] : 0.0f;
        mx[r] = -INFINITY;
        sum[r] = 0.0f;
    }
    memset(o, 0, (size_t)R * dp * sizeof(float));
    for (size_t j0 = 0; j0 < (size_t)a->tk; j0 += KC) {
        const int nk = (size_t)a->tk - j0 < KC ? (int)((size_t)a->tk - j0) : KC;
        scores(s, q, d, a->kt, a->tkp, j0);
        for (int r = 0; r < R; r++) {
            float *sr = s + r * KC, m = mx[r];
            for (int j = 0; j < nk; j++) m = sr[j] > m ? sr[j] : m;
            /* the output so far and its sum, rescaled to the new max */
            const float alpha = mx[r] == -INFINITY ? 0.0f : sdc_fast_expf((mx[r] - m) * a->scale);
            float add = 0.0f;
#pragma omp simd reduction(+ : add)
            for (int j = 0; j < nk; j++) {
                const float e = sdc_fast_expf((sr[j] - m) * a->scale);
                sr[j] = e;
                add += e;
            }
            if (alpha != 1.0f)
                for (int c = 0; c < dp; c++) o[r * dp + c] *= alpha;
            sum[r] = sum[r] * alpha + add;
            mx[r] = m;
        }
        int c0 = 0;
        for (; c0 + 48 <= dp; c0 += 48) pv_pass(o, dp, s, a->vp, j0, nk, c0, 3);
        if (dp - c0 == 32) pv_pass(o, dp, s, a->vp, j0, nk, c0, 2);
        else if (dp - c0 == 16) pv_pass(o, dp, s, a->vp, j0, nk, c0, 1);
    }
    for (int r = 0; r < rows; r++) {
        float *dst = a->out + (size_t)(i0 + r) * a->width;
        const float inv = 1.0f / sum[r];
        for (int c = 0; c < d; c++) dst[c] = o[r * dp + c] * inv;
    }
}

bool sdc_cpu_flash_takes(int tk, int head_dim, bool causal) { return !causal && tk >= 256 && head_dim <= 1024; }

sdc_status sdc_cpu_flash_attention(sdc_backend *be, float *out, const float *q, const float *k, const float *v,
                                   int batch, int heads, int tq, int tk, int d, int q_stride, int kv_stride) {
    const int dp = (d + 15) / 16 * 16, nt = omp_get_max_threads();
    const size_t tkp = ((size_t)tk + KC - 1) / KC * KC, per_thread = (size_t)R * (d + KC + dp);
    float *buf = NULL;
    SDC_TRY(sdc_cpu_scratch(be, 0, (size_t)d * tkp + tkp * dp + (size_t)nt * per_thread, "attention", &buf));
    if (sdc_cpu_planning(be)) return SDC_OK;
    float *kt = buf, *vp = kt + (size_t)d * tkp, *work = vp + tkp * dp;
    flash_args a = {.tq = tq, .tk = tk, .d = d, .dp = dp, .q_stride = q_stride, .width = heads * d, .tkp = tkp,
                    .kt = kt, .vp = vp, .scale = 1.0f / sqrtf((float)d), .work = work};
    for (int b = 0; b < batch; b++)
        for (int h = 0; h < heads; h++) {
            const float *kb = k + (size_t)b * tk * kv_stride + (size_t)h * d;
            const float *vb = v + (size_t)b * tk * kv_stride + (size_t)h * d;
            a.q = q + (size_t)b * tq * q_stride + (size_t)h * d;
            a.out = out + (size_t)b * tq * a.width + (size_t)h * d;
#pragma omp parallel
            {
                /* kt[c][j] = k[j][c], vp[j][c] = v[j][c]; zero past tk and d */
#pragma omp for schedule(static)
                for (size_t j = 0; j < tkp; j++) {
                    const bool in = j < (size_t)tk;
                    for (int c = 0; c < d; c++) kt[(size_t)c * tkp + j] = in ? kb[j * kv_stride + c] : 0.0f;
                    for (int c = 0; c < dp; c++) vp[j * dp + c] = in && c < d ? vb[j * kv_stride + c] : 0.0f;
                }
                float *w = work + (size_t)omp_get_thread_num() * per_thread;
#pragma omp for schedule(static)
                for (int i0 = 0; i0 < tq; i0 += R) block(&a, i0, w);
            }
        }
    return SDC_OK;
}
