/* backend_cpu_bf16.c - the CPU's products in bf16 (--precision bf16).
 *
 * A weight loaded while the backend's products_bf16 was set (backend.h)
 * has its products computed from bf16 operands: the activations and the
 * weight are rounded to bf16 (to nearest, ties to even), each product of
 * two bf16 values is exact in fp32, and the sums are fp32's. So the
 * result is the fp32 product of the rounded operands, up to the order of
 * the sums; the rounding itself (2^-9 relative per operand) is the
 * mode's whole error.
 *
 * With AMX (cpu_isa.h) the tile unit computes it: y's 32x32 blocks as 2x2
 * tiles of 16x16 fp32 sums, each step TDPBF16PS of a 16x32 tile of x and
 * a 32x16 tile of w, about three times sgemm's speed on the same cores.
 * Elsewhere the rounded operands are widened back and multiplied by
 * sgemm: the same products, at fp32's speed.
 *
 * Operands are laid out for the tiles once per call in scratch slot
 * SDC_CPU_SLOT_BF16: x as bf16 rows padded with zeros to kp (k rounded up
 * to 32) and to mp rows (m rounded up to 32); w in column blocks of 16,
 * each (kp/2, 16, 2): the pairs of k next to each other, as TDPBF16PS
 * reads its second operand. */
#include <cblas.h>
#include <omp.h>
#include <stdint.h>

#include "backend/backend_cpu.h"
#include "backend/cpu_isa.h"
#if SDC_CPU_AMX
#include <immintrin.h>
#endif

/* n values of src to bf16 at dst, then zeros up to padded */
SDC_INLINE void to_bf16_row_body(uint16_t *dst, const float *src, int n, int padded) {
    for (int i = 0; i < n; i++) dst[i] = sdc_bf16_bits(src[i]);
    for (int i = n; i < padded; i++) dst[i] = 0;
}
SDC_ISA_KERNEL(to_bf16_row, (uint16_t * dst, const float *src, int n, int padded), (dst, src, n, padded))

/* n values of src rounded to bf16, as fp32, at dst */
SDC_INLINE void round_row_body(float *dst, const float *src, int n) {
    uint32_t *d = (uint32_t *)dst;
    for (int i = 0; i < n; i++) d[i] = (uint32_t)sdc_bf16_bits(src[i]) << 16;
}
SDC_ISA_KERNEL(round_row, (float *dst, const float *src, int n), (dst, src, n))

enum {
    TILE = 16,        /* rows (and fp32 columns) of a tile */
    KSTEP = 32,       /* bf16 values of k in a tile row (64 bytes) */
    BLOCK = 32,       /* y's blocks: 2x2 tiles */
    CHUNK = 256,      /* columns of w one thread goes through for a run of row blocks: (256, kp) bf16 stays
                       * in its L2 for k up to ~2500 */
};

#if SDC_CPU_AMX
/* the tile configuration LDTILECFG reads (64 bytes, palette 1) */
typedef struct amx_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_config;

/* tiles 0-3: the 2x2 sums; 4-5: x's two row tiles; 6-7: w's two column tiles */
/* A constant in memory: GCC 12 does not see LDTILECFG read its operand and
 * drops the stores that would fill a configuration built on the stack. */
static const amx_config amx_tiles = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {TILE, TILE, TILE, TILE, TILE, TILE, TILE, TILE},
};
__attribute__((target("amx-tile"))) void sdc_cpu_amx_begin(void) { _tile_loadconfig(&amx_tiles); }
__attribute__((target("amx-tile"))) void sdc_cpu_amx_end(void) { _tile_release(); }

/* one 32x32 block of sums into acc (32x32 fp32): a = x's 32 padded rows
 * (row stride kp), b = w's two packed column blocks */
__attribute__((target("amx-tile,amx-bf16"))) static void amx_block(float *acc, const uint16_t *a, const uint16_t *b,
                                                                    int kp) {
    const uint16_t *a1 = a + (size_t)TILE * kp, *b1 = b + (size_t)TILE * kp;
    const size_t stride = (size_t)kp * sizeof(uint16_t);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int k0 = 0; k0 < kp; k0 += KSTEP) {
        _tile_loadd(4, a + k0, stride);
        _tile_loadd(5, a1 + k0, stride);
        _tile_loadd(6, b + (size_t)k0 * TILE, 64);
        _tile_loadd(7, b1 + (size_t)k0 * TILE, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, acc, BLOCK * sizeof(float));
    _tile_stored(1, acc + TILE, BLOCK * sizeof(float));
    _tile_stored(2, acc + TILE * BLOCK, BLOCK * sizeof(float));
    _tile_stored(3, acc + TILE * BLOCK + TILE, BLOCK * sizeof(float));
}
#endif

/* one column of a packed block: src's len values (zeros past them, up to
 * kp) as bf16 pairs, the pair (2p, 2p + 1) one 32-bit word at dst[16 p] */
SDC_INLINE void pack_column_body(uint32_t *dst, const float *src, int len, int kp) {
    int p = 0;
    for (; 2 * p + 1 < len; p++)
        dst[(size_t)p * TILE] = sdc_bf16_bits(src[2 * p]) | (uint32_t)sdc_bf16_bits(src[2 * p + 1]) << 16;
    for (; p < kp / 2; p++) dst[(size_t)p * TILE] = 2 * p < len ? sdc_bf16_bits(src[2 * p]) : 0;
}
SDC_ISA_KERNEL(pack_column, (uint32_t * dst, const float *src, int len, int kp), (dst, src, len, kp))

void sdc_cpu_pack_bf16_cols(uint16_t *dst, const float *w, int ldw, int n, int k, int kp, int jb) {
    /* the tile unit reads the words; C code never reads them as uint16_t */
    uint32_t *words = (uint32_t *)dst;
    for (int c = 0; c < TILE; c++) {
        const int j = jb * TILE + c;
        pack_column(words + c, j < n ? w + (size_t)j * ldw : w, j < n ? k : 0, kp);
    }
}

static size_t round_up(size_t v, size_t q) { return (v + q - 1) / q * q; }

/* floats of scratch a call takes: the tiles' operands, or the rounded
 * copies sgemm multiplies; the larger, so that a plan holds either way */
static size_t scratch_floats(int m, int n, int k) {
    const size_t kp = round_up((size_t)k, KSTEP);
    const size_t tiles = (round_up((size_t)m, BLOCK) + round_up((size_t)n, BLOCK)) * kp / 2;
    const size_t copies = ((size_t)m + n) * k;
    return tiles > copies ? tiles : copies;
}

#if SDC_CPU_AMX
static void gemm_amx(float *scratch, int m, int n, int k, const float *x, int ldx, const float *w, int ldw,
                     float beta, float *y, int ldy) {
    const int kp = (int)round_up((size_t)k, KSTEP), mp = (int)round_up((size_t)m, BLOCK);
    const int np = (int)round_up((size_t)n, BLOCK);
    uint16_t *xb = (uint16_t *)scratch, *wb = xb + (size_t)mp * kp;
    const int row_blocks = mp / BLOCK, chunks = (np + CHUNK - 1) / CHUNK;
#pragma omp parallel
    {
#pragma omp for schedule(static) nowait
        for (int i = 0; i < mp; i++)
            to_bf16_row(xb + (size_t)i * kp, i < m ? x + (size_t)i * ldx : NULL, i < m ? k : 0, kp);
#pragma omp for schedule(static)
        for (int jb = 0; jb < np / TILE; jb++) sdc_cpu_pack_bf16_cols(wb + (size_t)jb * TILE * kp, w, ldw, n, k, kp, jb);
        float acc[BLOCK * BLOCK] __attribute__((aligned(64)));
        sdc_cpu_amx_begin();
        /* a thread's units: one chunk of w's columns against a run of row blocks */
#pragma omp for schedule(static)
        for (int u = 0; u < chunks * row_blocks; u++) {
            const int ch = u / row_blocks, i0 = (u % row_blocks) * BLOCK;
            const int rows = m - i0 < BLOCK ? m - i0 : BLOCK;
            const int j_end = (ch + 1) * CHUNK < np ? (ch + 1) * CHUNK : np;
            for (int j0 = ch * CHUNK; j0 < j_end; j0 += BLOCK) {
                amx_block(acc, xb + (size_t)i0 * kp, wb + (size_t)j0 * kp, kp);
                const int cols = n - j0 < BLOCK ? n - j0 : BLOCK;
                for (int r = 0; r < rows; r++) {
                    float *yr = y + (size_t)(i0 + r) * ldy + j0;
                    const float *ar = acc + r * BLOCK;
                    if (beta == 0.0f)
                        for (int c = 0; c < cols; c++) yr[c] = ar[c];
                    else
                        for (int c = 0; c < cols; c++) yr[c] = ar[c] + beta * yr[c];
                }
            }
        }
        sdc_cpu_amx_end();
    }
}
#endif

static void gemm_rounded(float *scratch, int m, int n, int k, const float *x, int ldx, const float *w, int ldw,
                         float beta, float *y, int ldy) {
    float *xr = scratch, *wr = scratch + (size_t)m * k;
#pragma omp parallel
    {
#pragma omp for schedule(static) nowait
        for (int i = 0; i < m; i++) round_row(xr + (size_t)i * k, x + (size_t)i * ldx, k);
#pragma omp for schedule(static)
        for (int j = 0; j < n; j++) round_row(wr + (size_t)j * k, w + (size_t)j * ldw, k);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, xr, k, wr, k, beta, y, ldy);
}

sdc_status sdc_cpu_gemm_bf16(sdc_backend *be, const char *op, int m, int n, int k, const float *x, int ldx,
                             const float *w, int ldw, float beta, float *y, int ldy) {
    if (m <= 0 || n <= 0 || k <= 0) return sdc_fail(SDC_ERR_ARG, "%s: a %dx%dx%d bf16 product", op, m, n, k);
    float *scratch = NULL;
    SDC_TRY(sdc_cpu_scratch(be, SDC_CPU_SLOT_BF16, scratch_floats(m, n, k), op, &scratch));
    if (sdc_cpu_planning(be)) return SDC_OK;
#if SDC_CPU_AMX
    if (sdc_cpu_amx_active()) {
        gemm_amx(scratch, m, n, k, x, ldx, w, ldw, beta, y, ldy);
        return SDC_OK;
    }
#endif
    gemm_rounded(scratch, m, n, k, x, ldx, w, ldw, beta, y, ldy);
    return SDC_OK;
}
