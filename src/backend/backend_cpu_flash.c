/* backend_cpu_flash.c - attention over many keys on the CPU, flash style:
 * the U-Net's self-attention (4096 tokens of 40-wide heads at 512x512)
 * and the VAE's (one 512-wide head).
 *
 * Per (image, head) the keys are packed once, transposed (kt: head_dim x
 * tk), and the values padded to whole vectors (vp: tk x dp); then blocks of
 * R queries run on all threads. A block walks the keys KC at a time:
 * scores S = Q K^T for R x KC (4 KiB, in L1) with a register block of
 * accumulators, the online softmax (running max and sum per row, the
 * output rescaled when the max grows), then O += P V, register-blocked too.
 * No tq x tk or R x tk scores are ever stored, and neither product is a
 * thin sgemm that repacks K or V for every block of queries.
 *
 * Vectors are GCC's generic vectors. The block (backend_cpu_flash_block.h)
 * is written once for a width: 16 floats, compiled for AVX-512, and 8,
 * compiled for AVX2 + FMA and for the build's base target; each call runs
 * the variant of the processor (cpu_isa.h). The Makefile builds this file
 * with -ffp-contract=fast: a * b + c is one fused multiply-add where the
 * variant has them (ISO C's default leaves it two roundings).
 * Arithmetic: fp32 products summed over head_dim in order, the exponent as
 * the two-pass path's (sdc_fast_expf of (s - max) * scale, a vector
 * at a time), the row maxima and the sums of probabilities in a vector's
 * lanes; tests/test_backend_cpu.c holds every variant to 1e-5 of float64. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "backend/backend_cpu.h"
#include "backend/cpu_isa.h"

#define R 8    /* queries per block */
#define KC 128 /* keys per chunk: a multiple of 32 */

typedef struct flash_args {
    float *out;
    const float *q;
    int tq, tk, d, dp, q_stride, width;
    size_t tkp; /* tk rounded up to KC */
    const float *kt, *vp;
    float scale;
    float *work; /* per thread: R d (queries), R KC (scores), R dp (output) */
} flash_args;

#define FV 16
#define FV_KEYS 2
#define FV_COLS 3
#define FN(x) x##16
#include "backend/backend_cpu_flash_block.h"
#undef FV
#undef FV_KEYS
#undef FV_COLS
#undef FN
#define FV 8
#define FV_KEYS 1
#define FV_COLS 1
#define FN(x) x##8
#include "backend/backend_cpu_flash_block.h"

/* block(): 16-wide for AVX-512, 8-wide for AVX2 and the base target */
SDC_ISA_KERNEL_BY(block, block16, block8, (const flash_args *a, int i0, float *w), (a, i0, w))

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
