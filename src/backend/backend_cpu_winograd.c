/* backend_cpu_winograd.c - stride-1, padding-1 3x3 convolutions on the CPU
 * by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, 2015).
 *
 * Each 2x2 block of outputs (a tile) is computed from the 4x4 input patch
 * around it: V = B^T d B per input channel, U = G g G^T per (output, input)
 * channel pair, M = sum over input channels of U (.) V, Y = A^T M A. The
 * sum over channels is 16 sgemms, one per position xi of the 4x4 grid:
 *     M[xi][tiles, cout] = V[xi][tiles, cin] . U[xi][cout, cin]^T
 * 16 products of tiles x cin x cout for what direct convolution does in 36
 * (4 outputs x 9 taps): 2.25x fewer multiply-adds. The transforms' entries
 * are 0, +-1 and +-1/2, so in fp32 the error stays that of the direct sum
 * (tests/test_backend_image.c: normwise 1e-5 against float64; measured
 * ~1e-7). Weights of any type (F32, F16, BF16) are transformed from the
 * kernel as stored; no transformed copy is kept between calls.
 *
 * Memory: tiles are taken in blocks and output channels in chunks so that
 * V (16 x block x cin), M (16 x block x chunk) and U (16 x chunk x cin) each
 * stay near 32 MiB whatever the image size (scratch slots 1, 2 and 4).
 *
 * The input and output transforms of one tile are compiled for AVX-512,
 * AVX2 and the build's base target, and each call runs the processor's
 * variant (cpu_isa.h); the products are OpenBLAS's, which chooses its own. */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>

#include "backend/backend_cpu.h"
#include "backend/cpu_isa.h"

#define WINO_BUDGET ((size_t)32 << 20) /* bytes of each of V, M and U, about */

/* U[xi][co - c0][ci] = (G g G^T)[xi] for co in [c0, c0 + nb), g the 3x3
 * kernel of (co, ci); w is (cout, 3, 3, cin), or PyTorch's (cout, cin, 3,
 * 3) (pt_taps), of any weight type. tmp: a
 * row of 9 cin floats per thread. */
static void transform_weights(float *u, sdc_weight w, int c0, int nb, int cin, float *tmp) {
    const size_t row = (size_t)9 * cin, plane = (size_t)nb * cin;
#pragma omp parallel for schedule(static)
    for (int o = 0; o < nb; o++) {
        float *g = tmp + (size_t)omp_get_thread_num() * row; /* (3, 3, cin) */
        sdc_cpu_widen_row(g, w, (size_t)(c0 + o), row);
        float *uo = u + (size_t)o * cin;
#pragma omp simd
        for (int ci = 0; ci < cin; ci++) {
            float t[4][3]; /* G g: rows g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2 */
            for (int c = 0; c < 3; c++) {
                const float g0 = g[(0 * 3 + c) * cin + ci], g1 = g[(1 * 3 + c) * cin + ci],
                            g2 = g[(2 * 3 + c) * cin + ci];
                t[0][c] = g0;
                t[1][c] = 0.5f * ((g0 + g2) + g1);
                t[2][c] = 0.5f * ((g0 + g2) - g1);
                t[3][c] = g2;
            }
            for (int r = 0; r < 4; r++) { /* (G g) G^T, row by row */
                uo[(size_t)(r * 4 + 0) * plane + ci] = t[r][0];
                uo[(size_t)(r * 4 + 1) * plane + ci] = 0.5f * ((t[r][0] + t[r][2]) + t[r][1]);
                uo[(size_t)(r * 4 + 2) * plane + ci] = 0.5f * ((t[r][0] + t[r][2]) - t[r][1]);
                uo[(size_t)(r * 4 + 3) * plane + ci] = t[r][2];
            }
        }
    }
}

/* F(4x4, 3x3): U = G g G^T with 6x6 entries, G's rows g0/4,
 * -(g0+g1+g2)/6, -(g0-g1+g2)/6, (g0+2g1+4g2)/24, (g0-2g1+4g2)/24, g2
 * (interpolation points 0, +-1, +-2 and infinity, Lavin and Gray). */
SDC_INLINE void g_rows6(float o[6], float g0, float g1, float g2) {
    const float s = g0 + g2, q = g0 + 4.0f * g2;
    o[0] = 0.25f * g0;
    o[1] = -(s + g1) * (1.0f / 6.0f);
    o[2] = -(s - g1) * (1.0f / 6.0f);
    o[3] = (q + 2.0f * g1) * (1.0f / 24.0f);
    o[4] = (q - 2.0f * g1) * (1.0f / 24.0f);
    o[5] = g2;
}

static void transform_weights6(float *u, sdc_weight w, int c0, int nb, int cin, float *tmp) {
    const size_t row = (size_t)9 * cin, plane = (size_t)nb * cin;
#pragma omp parallel for schedule(static)
    for (int o = 0; o < nb; o++) {
        float *g = tmp + (size_t)omp_get_thread_num() * row; /* (3, 3, cin) */
        sdc_cpu_widen_row(g, w, (size_t)(c0 + o), row);
        float *uo = u + (size_t)o * cin;
#pragma omp simd
        for (int ci = 0; ci < cin; ci++) {
            float t[6][3], r[6]; /* G g, then (G g) G^T row by row */
            for (int c = 0; c < 3; c++) {
                float col[6];
                g_rows6(col, g[(0 * 3 + c) * cin + ci], g[(1 * 3 + c) * cin + ci], g[(2 * 3 + c) * cin + ci]);
                for (int k = 0; k < 6; k++) t[k][c] = col[k];
            }
            for (int k = 0; k < 6; k++) {
                g_rows6(r, t[k][0], t[k][1], t[k][2]);
                for (int q = 0; q < 6; q++) uo[(size_t)(k * 6 + q) * plane + ci] = r[q];
            }
        }
    }
}

typedef struct wino_shape {
    int n, h, w, cin, cout, th, tw; /* th, tw: tiles down and across */
    int m;                          /* outputs per tile side: 2 (F(2x2, 3x3)) or 4 (F(4x4, 3x3)) */
} wino_shape;

/* the n x n patch (n = m + 2) under tile t: pointers to its pixels' cin
 * channels, rows m i - 1 .., columns m j - 1 .., `zeros` outside the image */
static void patch_rows(const float **row, const float *x, const float *zeros, const wino_shape *s, size_t t) {
    const int n = s->m + 2, b = (int)(t / ((size_t)s->th * s->tw)), rem = (int)(t % ((size_t)s->th * s->tw));
    const int y0 = s->m * (rem / s->tw) - 1, x0 = s->m * (rem % s->tw) - 1;
    for (int r = 0; r < n; r++)
        for (int c = 0; c < n; c++) {
            const int iy = y0 + r, ix = x0 + c;
            row[r * n + c] =
                iy >= 0 && iy < s->h && ix >= 0 && ix < s->w ? x + (((size_t)b * s->h + iy) * s->w + ix) * s->cin : zeros;
        }
}

/* one tile's 16 rows of V: vk[xi plane + ci] for ci < cin */
SDC_INLINE void input_tile2_body(float *vk, const float *const *row, int cin, size_t plane) {
#pragma omp simd
    for (int ci = 0; ci < cin; ci++) {
        float d[4][4], e[4][4];
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++) d[r][c] = row[r * 4 + c][ci];
        for (int c = 0; c < 4; c++) { /* B^T d, column by column */
            e[0][c] = d[0][c] - d[2][c];
            e[1][c] = d[1][c] + d[2][c];
            e[2][c] = d[2][c] - d[1][c];
            e[3][c] = d[1][c] - d[3][c];
        }
        for (int r = 0; r < 4; r++) { /* (B^T d) B, row by row */
            vk[(size_t)(r * 4 + 0) * plane + ci] = e[r][0] - e[r][2];
            vk[(size_t)(r * 4 + 1) * plane + ci] = e[r][1] + e[r][2];
            vk[(size_t)(r * 4 + 2) * plane + ci] = e[r][2] - e[r][1];
            vk[(size_t)(r * 4 + 3) * plane + ci] = e[r][1] - e[r][3];
        }
    }
}
SDC_ISA_KERNEL(input_tile2, (float *vk, const float *const *row, int cin, size_t plane), (vk, row, cin, plane))

/* V[xi][t - t0][ci] = (B^T d B)[xi] for tiles t in [t0, t0 + nt): d the
 * 4x4 patch of x[n, h, w, cin] at rows 2 i - 1 .., columns 2 j - 1 ..,
 * zero outside the image (read from `zeros`, cin of them). */
static void transform_input(float *v, const float *x, const float *zeros, const wino_shape *s, size_t t0, int nt) {
    const int cin = s->cin;
    const size_t plane = (size_t)nt * cin;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < nt; k++) {
        const float *row[16];
        patch_rows(row, x, zeros, s, t0 + (size_t)k);
        input_tile2(v + (size_t)k * cin, row, cin, plane);
    }
}

/* output (dy, dx) of one tile, channels c0 .. c0 + nb: yo[c] (plus ro[c]) */
SDC_INLINE void output_pixel2_body(float *yo, const float *ro, const float *mk, size_t plane, const float *bias,
                                   int nb, int dy, int dx) {
#pragma omp simd
    for (int c = 0; c < nb; c++) {
        float a[4]; /* A^T M: row dy of it, then times A: column dx */
        for (int q = 0; q < 4; q++) {
            const float m0 = mk[(size_t)(0 * 4 + q) * plane + c], m1 = mk[(size_t)(1 * 4 + q) * plane + c],
                        m2 = mk[(size_t)(2 * 4 + q) * plane + c], m3 = mk[(size_t)(3 * 4 + q) * plane + c];
            a[q] = dy == 0 ? (m0 + m1) + m2 : (m1 - m2) - m3;
        }
        float v = dx == 0 ? (a[0] + a[1]) + a[2] : (a[1] - a[2]) - a[3];
        if (bias) v += bias[c];
        if (ro) v += ro[c];
        yo[c] = v;
    }
}
SDC_ISA_KERNEL(output_pixel2,
               (float *yo, const float *ro, const float *mk, size_t plane, const float *bias, int nb, int dy, int dx),
               (yo, ro, mk, plane, bias, nb, dy, dx))

/* y[.., co] for co in [c0, c0 + nb) of tiles [t0, t0 + nt) from M[xi][t -
 * t0][co - c0]: Y = A^T M A plus bias and residual; outputs past the
 * image's last row or column (odd sizes) are not written. */
static void transform_output(float *y, const float *m, const float *bias, const float *residual,
                             const wino_shape *s, size_t t0, int nt, int c0, int nb) {
    const size_t plane = (size_t)nt * nb;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < nt; k++) {
        const size_t t = t0 + (size_t)k;
        const int b = (int)(t / ((size_t)s->th * s->tw)), rem = (int)(t % ((size_t)s->th * s->tw));
        const int oy = 2 * (rem / s->tw), ox = 2 * (rem % s->tw);
        const float *mk = m + (size_t)k * nb;
        for (int dy = 0; dy < 2 && oy + dy < s->h; dy++)
            for (int dx = 0; dx < 2 && ox + dx < s->w; dx++) {
                const size_t o = (((size_t)b * s->h + oy + dy) * s->w + ox + dx) * s->cout + c0;
                output_pixel2(y + o, residual ? residual + o : NULL, mk, plane, bias ? bias + c0 : NULL, nb, dy, dx);
            }
    }
}

/* B^T d for F(4x4, 3x3), a column (or row) of six: the rows of B^T are
 * (4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
 * (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1). */
SDC_INLINE void bt_rows6(float o[6], const float d[6]) {
    const float a = d[4] - 4.0f * d[2], b = d[3] - 4.0f * d[1], c = d[4] - d[2], e = 2.0f * (d[3] - d[1]);
    o[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
    o[1] = a + b;
    o[2] = a - b;
    o[3] = c + e;
    o[4] = c - e;
    o[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
}

/* one tile's 36 rows of V: vk[xi plane + ci] for ci < cin */
SDC_INLINE void input_tile6_body(float *vk, const float *const *row, int cin, size_t plane) {
#pragma omp simd
    for (int ci = 0; ci < cin; ci++) {
        float e[6][6], col[6], o[6];
        for (int c = 0; c < 6; c++) { /* B^T d, column by column */
            for (int r = 0; r < 6; r++) col[r] = row[r * 6 + c][ci];
            bt_rows6(o, col);
            for (int r = 0; r < 6; r++) e[r][c] = o[r];
        }
        for (int r = 0; r < 6; r++) { /* (B^T d) B, row by row */
            bt_rows6(o, e[r]);
            for (int q = 0; q < 6; q++) vk[(size_t)(r * 6 + q) * plane + ci] = o[q];
        }
    }
}
SDC_ISA_KERNEL(input_tile6, (float *vk, const float *const *row, int cin, size_t plane), (vk, row, cin, plane))

/* V[xi][t - t0][ci] = (B^T d B)[xi], 36 positions, d the 6x6 patch at rows
 * 4 i - 1 .., columns 4 j - 1 .. (zeros outside the image) */
static void transform_input6(float *v, const float *x, const float *zeros, const wino_shape *s, size_t t0, int nt) {
    const int cin = s->cin;
    const size_t plane = (size_t)nt * cin;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < nt; k++) {
        const float *row[36];
        patch_rows(row, x, zeros, s, t0 + (size_t)k);
        input_tile6(v + (size_t)k * cin, row, cin, plane);
    }
}

/* A^T m for F(4x4, 3x3): rows (1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0),
 * (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1) */
SDC_INLINE void at_rows6(float o[4], const float m[6]) {
    const float p = m[1] + m[2], q = m[1] - m[2], r = m[3] + m[4], d = m[3] - m[4];
    o[0] = m[0] + p + r;
    o[1] = q + 2.0f * d;
    o[2] = p + 4.0f * r;
    o[3] = q + 8.0f * d + m[5];
}

/* one tile's ny x nx outputs (of 4 x 4), channels c0 .. c0 + nb: yo[dy][dx][c]
 * (plus ro[dy][dx][c] where there is a residual) */
SDC_INLINE void output_tile6_body(float *(*yo)[4], const float *(*ro)[4], const float *mk, size_t plane,
                                  const float *bias, int nb, int ny, int nx) {
#pragma omp simd
    for (int c = 0; c < nb; c++) {
        float a[4][6], col[6], o[4];
        for (int q = 0; q < 6; q++) { /* A^T M, column by column */
            for (int r = 0; r < 6; r++) col[r] = mk[(size_t)(r * 6 + q) * plane + c];
            at_rows6(o, col);
            for (int r = 0; r < 4; r++) a[r][q] = o[r];
        }
        const float bc = bias ? bias[c] : 0.0f;
        for (int dy = 0; dy < ny; dy++) { /* times A, row by row; outputs past the image not written */
            at_rows6(o, a[dy]);
            for (int dx = 0; dx < nx; dx++) {
                float v = o[dx] + bc;
                if (ro[0][0]) v += ro[dy][dx][c];
                yo[dy][dx][c] = v;
            }
        }
    }
}
SDC_ISA_KERNEL(output_tile6,
               (float *(*yo)[4], const float *(*ro)[4], const float *mk, size_t plane, const float *bias,
                int nb, int ny, int nx),
               (yo, ro, mk, plane, bias, nb, ny, nx))

static void transform_output6(float *y, const float *m, const float *bias, const float *residual,
                              const wino_shape *s, size_t t0, int nt, int c0, int nb) {
    const size_t plane = (size_t)nt * nb;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < nt; k++) {
        const size_t t = t0 + (size_t)k;
        const int b = (int)(t / ((size_t)s->th * s->tw)), rem = (int)(t % ((size_t)s->th * s->tw));
        const int oy = 4 * (rem / s->tw), ox = 4 * (rem % s->tw);
        const int ny = s->h - oy < 4 ? s->h - oy : 4, nx = s->w - ox < 4 ? s->w - ox : 4;
        const float *mk = m + (size_t)k * nb;
        float *yo[4][4];
        const float *ro[4][4];
        for (int dy = 0; dy < 4; dy++)
            for (int dx = 0; dx < 4; dx++) {
                const size_t o = (((size_t)b * s->h + oy + (dy < ny ? dy : 0)) * s->w + ox + (dx < nx ? dx : 0)) *
                                     s->cout + c0;
                yo[dy][dx] = y + o;
                ro[dy][dx] = residual ? residual + o : NULL;
            }
        output_tile6(yo, ro, mk, plane, bias ? bias + c0 : NULL, nb, ny, nx);
    }
}

/* the 16 (or 36) products of one block: M[xi] = V[xi] U[xi]^T, one multithreaded
 * sgemm after the other (running them side by side on one thread each
 * meant switching OpenBLAS's thread count per call, which cost more than
 * a small convolution whenever the cores were shared). F(4x4)'s sums over
 * the input channels are taken WINO4_KC channels at a time, each chunk's
 * product added to M (beta 1): a blocked sum. Its transformed operands are
 * tens of times the outputs, and one fp32 chain over all 320 channels
 * left the result 1.4e-5 off float64 with one BLAS's blocking (2.2e-6 with
 * exact products): the error then depended on the BLAS's choice of K
 * blocks; chunks of 128 keep it near 6e-6 whatever the BLAS does. */
#define WINO4_KC 128
static sdc_status products(sdc_backend *be, bool bf16, float *m, const float *v, const float *u, int planes, int nt,
                           int nb, int cin) {
    const size_t vp = (size_t)nt * cin, up = (size_t)nb * cin, mp = (size_t)nt * nb;
    if (bf16) { /* one product over every channel: the operands' rounding dwarfs the sums' order */
        for (int xi = 0; xi < planes; xi++)
            SDC_TRY(sdc_cpu_gemm_bf16(be, "conv2d", nt, nb, cin, v + xi * vp, cin, u + xi * up, cin, 0.0f,
                                      m + xi * mp, nb));
        return SDC_OK;
    }
    const int kc = planes == 36 ? WINO4_KC : cin;
    for (int xi = 0; xi < planes; xi++)
        for (int k0 = 0; k0 < cin; k0 += kc)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nt, nb, cin - k0 < kc ? cin - k0 : kc, 1.0f,
                        v + xi * vp + k0, cin, u + xi * up + k0, cin, k0 ? 1.0f : 0.0f, m + xi * mp, nb);
    return SDC_OK;
}

sdc_status sdc_cpu_conv3x3_winograd(sdc_backend *be, float *y, const float *x, sdc_weight w, const float *bias,
                                    const float *residual, int n, int h, int wi, int cin, int cout, int tile) {
    if (tile != 2 && tile != 4) return sdc_fail(SDC_ERR_ARG, "conv2d: Winograd tiles of %d outputs (2 or 4)", tile);
    const wino_shape s = {n, h, wi, cin, cout, (h + tile - 1) / tile, (wi + tile - 1) / tile, tile};
    const int planes = (tile + 2) * (tile + 2);
    const size_t tiles = (size_t)n * s.th * s.tw;
    /* output channels per chunk: U within budget (all of them for the
     * U-Net's 320 and 640-wide layers), a multiple of 16 */
    size_t nb = WINO_BUDGET / ((size_t)planes * cin * sizeof(float));
    nb = nb >= (size_t)cout ? (size_t)cout : (nb < 16 ? 16 : nb / 16 * 16);
    /* tiles per block: V and M within budget */
    const size_t widest = (size_t)cin > nb ? (size_t)cin : nb;
    size_t tb = WINO_BUDGET / ((size_t)planes * widest * sizeof(float));
    tb = tb < 64 ? 64 : tb;
    tb = tb > tiles ? tiles : tb;
    const int nt_omp = omp_get_max_threads();
    float *v = NULL, *m = NULL, *u = NULL;
    SDC_TRY(sdc_cpu_scratch(be, 1, (size_t)planes * tb * cin, "conv2d", &v));
    SDC_TRY(sdc_cpu_scratch(be, 2, (size_t)planes * tb * nb, "conv2d", &m));
    /* U, then a widened kernel row per thread, then a row of zeros */
    SDC_TRY(sdc_cpu_scratch(be, SDC_CPU_SLOT_PANEL, (size_t)planes * nb * cin + (size_t)(nt_omp * 9 + 1) * cin,
                            "conv2d", &u));
    if (sdc_cpu_planning(be))
        return w.bf16 ? sdc_cpu_gemm_bf16(be, "conv2d", (int)tb, (int)nb, cin, v, cin, u, cin, 0.0f, m, (int)nb)
                      : SDC_OK;
    float *tmp = u + (size_t)planes * nb * cin, *zeros = tmp + (size_t)nt_omp * 9 * cin;
    memset(zeros, 0, (size_t)cin * sizeof(float));
    const bool one_chunk = nb == (size_t)cout;
    void (*tw)(float *, sdc_weight, int, int, int, float *) = tile == 4 ? transform_weights6 : transform_weights;
    if (one_chunk) tw(u, w, 0, cout, cin, tmp);
    for (size_t t0 = 0; t0 < tiles; t0 += tb) {
        const int nt = (int)(tiles - t0 < tb ? tiles - t0 : tb);
        if (tile == 4) transform_input6(v, x, zeros, &s, t0, nt);
        else transform_input(v, x, zeros, &s, t0, nt);
        for (int c0 = 0; c0 < cout; c0 += (int)nb) {
            const int cols = cout - c0 < (int)nb ? cout - c0 : (int)nb;
            if (!one_chunk) tw(u, w, c0, cols, cin, tmp);
            SDC_TRY(products(be, w.bf16, m, v, u, planes, nt, cols, cin));
            if (tile == 4) transform_output6(y, m, bias, residual, &s, t0, nt, c0, cols);
            else transform_output(y, m, bias, residual, &s, t0, nt, c0, cols);
        }
    }
    return SDC_OK;
}
