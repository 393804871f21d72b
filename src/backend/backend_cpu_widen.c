/* backend_cpu_widen.c - half weights inside the CPU's products.
 *
 * The CPU keeps matrices and kernels in the file's type (backend.h,
 * weights_as_stored). A product with an F16 or BF16 weight widens it to
 * fp32 a panel of rows at a time into scratch slot SDC_CPU_SLOT_PANEL and
 * runs sgemm on the panel: every half value is exact in fp32, so the
 * result is the fp32 product's, and the widening (rows x k element
 * conversions) is 1/m of the product's m x rows x k multiply-adds.
 * A kernel read in place from the file (pt_taps > 1, PyTorch's layout)
 * is put in the CPU's (taps, cin) order in the same pass, of any type. */
#include <cblas.h>
#include <omp.h>
#include <stdint.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SDC_X86 1
#endif

#include "backend/backend_cpu.h"
#include "model/safetensors.h"

/* fp16 -> fp32 eight at a time by F16C where the processor has it, else
 * the portable conversion; bf16 -> fp32 is a shift (exact). */
#ifdef SDC_X86
__attribute__((target("avx,f16c"))) static void widen_f16_f16c(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = sdc_f16_to_f32(src[i]);
}
#endif

static void widen_bf16(float *dst, const uint16_t *src, size_t n) {
    uint32_t *d = (uint32_t *)dst;
#pragma omp simd
    for (size_t i = 0; i < n; i++) d[i] = (uint32_t)src[i] << 16;
}

void sdc_cpu_widen(float *dst, const void *src, sdc_dtype t, size_t n) {
    if (t == SDC_DT_F32) memcpy(dst, src, n * sizeof(float));
    else if (t == SDC_DT_BF16) widen_bf16(dst, src, n);
#ifdef SDC_X86
    else if (__builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx")) widen_f16_f16c(dst, src, n);
#endif
    else
        for (size_t i = 0; i < n; i++) dst[i] = sdc_f16_to_f32(((const uint16_t *)src)[i]);
}

void sdc_cpu_widen_row(float *dst, sdc_weight w, size_t r, size_t row_len) {
    const size_t es = sdc_act_size(w.type);
    const char *src = (const char *)w.p + r * row_len * es;
    if (w.pt_taps <= 1) {
        sdc_cpu_widen(dst, src, w.type, row_len);
        return;
    }
    /* PyTorch's (cin, taps) row to (taps, cin): widened a few channels at
     * a time into tmp, then scattered */
    enum { TMP = 1024 };
    float tmp[TMP];
    const size_t taps = (size_t)w.pt_taps, cin = row_len / taps;
    if (taps > TMP) {
        for (size_t c = 0; c < cin; c++)
            for (size_t t = 0; t < taps; t++) sdc_cpu_widen(dst + t * cin + c, src + (c * taps + t) * es, w.type, 1);
        return;
    }
    const size_t step = TMP / taps;
    for (size_t c0 = 0; c0 < cin; c0 += step) {
        const size_t nc = cin - c0 < step ? cin - c0 : step;
        sdc_cpu_widen(tmp, src + c0 * taps * es, w.type, nc * taps);
        for (size_t t = 0; t < taps; t++) {
            float *d = dst + t * cin + c0;
            for (size_t c = 0; c < nc; c++) d[c] = tmp[c * taps + t];
        }
    }
}

int sdc_cpu_panel_rows(int rows, size_t row_len) {
    /* about 8 MiB of fp32 a panel: whole for most matrices, a few panels
     * for the largest kernels; a multiple of 16 rows (sgemm's blocking) */
    size_t nb = ((size_t)8 << 20) / (row_len * sizeof(float));
    nb = nb < 16 ? 16 : nb / 16 * 16;
    return nb >= (size_t)rows ? rows : (int)nb;
}

void sdc_cpu_widen_rows(float *panel, sdc_weight w, size_t row0, int rows, size_t row_len) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) sdc_cpu_widen_row(panel + (size_t)r * row_len, w, row0 + (size_t)r, row_len);
}

sdc_status sdc_cpu_gemm_nt(sdc_backend *be, const char *op, int m, int n, int k, const float *x, int ldx,
                           sdc_weight w, float beta, float *y, int ldy) {
    if (w.type != SDC_DT_F32 && w.type != SDC_DT_F16 && w.type != SDC_DT_BF16)
        return sdc_fail(SDC_ERR_ARG, "%s: weights of type %s (F32, F16 or BF16)", op, sdc_dtype_name(w.type));
    if (w.type == SDC_DT_F32 && w.pt_taps <= 1) {
        if (w.bf16) return sdc_cpu_gemm_bf16(be, op, m, n, k, x, ldx, w.p, k, beta, y, ldy);
        if (sdc_cpu_planning(be)) return SDC_OK;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, ldx, w.p, k, beta, y, ldy);
        return SDC_OK;
    }
    const int nb = sdc_cpu_panel_rows(n, (size_t)k);
    float *panel = NULL;
    SDC_TRY(sdc_cpu_scratch(be, SDC_CPU_SLOT_PANEL, (size_t)nb * k, op, &panel));
    if (w.bf16 && sdc_cpu_planning(be)) return sdc_cpu_gemm_bf16(be, op, m, nb, k, x, ldx, panel, k, beta, y, ldy);
    if (sdc_cpu_planning(be)) return SDC_OK;
    for (int c0 = 0; c0 < n; c0 += nb) {
        const int cols = n - c0 < nb ? n - c0 : nb;
        sdc_cpu_widen_rows(panel, w, (size_t)c0, cols, (size_t)k);
        if (w.bf16) {
            SDC_TRY(sdc_cpu_gemm_bf16(be, op, m, cols, k, x, ldx, panel, k, beta, y + c0, ldy));
            continue;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, cols, k, 1.0f, x, ldx, panel, k, beta, y + c0, ldy);
    }
    return SDC_OK;
}
