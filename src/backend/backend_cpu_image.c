/* backend_cpu_image.c - NHWC image ops on the CPU: convolution (sgemm over
 * shifted views or an im2col block), group norm, nearest resize, channel
 * concat, GEGLU, per-image row broadcast. */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>

#include "backend/backend_cpu.h"
#include "backend/cpu_isa.h"
#include "model/safetensors.h"

/* bias and residual after the matrix product; y is (rows, cout) */
static void epilogue(float *y, const float *bias, const float *residual, size_t rows, int cout) {
    if (!bias && !residual) return;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        float *yr = y + r * cout;
        const float *rr = residual ? residual + r * cout : NULL;
        for (int c = 0; c < cout; c++) yr[c] += (bias ? bias[c] : 0.0f) + (rr ? rr[c] : 0.0f);
    }
}

/* 3x3, stride 1, padding 1: zero-pad the input once to (h+2, w+2) and
 * compute the output on the padded grid, so that each of the 9 taps is one
 * sgemm over a shifted view (lda = cin) accumulated into the same result;
 * the two extra columns and rows per image are dropped at the end. */
static sdc_status conv3x3_shifted(sdc_backend *be, float *y, const float *x, sdc_weight wt,
                                  const float *bias, const float *residual, int n, int h,
                                  int wi, int cin, int cout) {
    const int hp = h + 2, wp = wi + 2;
    const size_t m = (size_t)n * hp * wp, slack = (size_t)2 * wp + 2;
    /* a half kernel, or one in PyTorch's layout, is widened nb output
     * channels (9 cin each) at a time */
    const bool half = wt.type != SDC_DT_F32 || wt.pt_taps > 1;
    const int nb = half ? sdc_cpu_panel_rows(cout, (size_t)9 * cin) : cout;
    float *p = NULL, *yw = NULL, *panel = NULL;
    SDC_TRY(sdc_cpu_scratch(be, 1, (m + slack) * cin, "conv2d", &p));
    SDC_TRY(sdc_cpu_scratch(be, 2, m * cout, "conv2d", &yw));
    if (half) SDC_TRY(sdc_cpu_scratch(be, SDC_CPU_SLOT_PANEL, (size_t)nb * 9 * cin, "conv2d", &panel));
    if (sdc_cpu_planning(be))
        return wt.bf16 ? sdc_cpu_gemm_bf16(be, "conv2d", (int)m, nb, cin, NULL, cin, NULL, 9 * cin, 0.0f, NULL, cout)
                       : SDC_OK;
    memset(p, 0, (m + slack) * cin * sizeof(float));
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < n; b++)
        for (int yy = 0; yy < h; yy++)
            memcpy(p + (((size_t)b * hp + yy + 1) * wp + 1) * cin,
                   x + ((size_t)b * h + yy) * wi * cin, (size_t)wi * cin * sizeof(float));
    for (int c0 = 0; c0 < cout; c0 += nb) {
        const int cols = cout - c0 < nb ? cout - c0 : nb;
        const float *w = wt.p;
        if (half) {
            sdc_cpu_widen_rows(panel, wt, (size_t)c0, cols, (size_t)9 * cin);
            w = panel;
        }
        for (int t = 0; t < 9; t++) {
            int dy = t / 3, dx = t % 3;
            if (wt.bf16) {
                SDC_TRY(sdc_cpu_gemm_bf16(be, "conv2d", (int)m, cols, cin, p + ((size_t)dy * wp + dx) * cin, cin,
                                          w + (size_t)t * cin, 9 * cin, t ? 1.0f : 0.0f, yw + c0, cout));
                continue;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, cols, cin, 1.0f,
                        p + ((size_t)dy * wp + dx) * cin, cin, w + (size_t)t * cin, 9 * cin,
                        t ? 1.0f : 0.0f, yw + c0, cout);
        }
    }
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < n; b++)
        for (int yy = 0; yy < h; yy++) {
            size_t row = ((size_t)b * h + yy) * wi;
            float *yr = y + row * cout;
            const float *src = yw + ((size_t)b * hp + yy) * wp * cout;
            const float *rr = residual ? residual + row * cout : NULL;
            for (int xx = 0; xx < wi; xx++)
                for (int c = 0; c < cout; c++) {
                    size_t i = (size_t)xx * cout + c;
                    yr[i] = src[i] + (bias ? bias[c] : 0.0f) + (rr ? rr[i] : 0.0f);
                }
        }
    return SDC_OK;
}

/* General case: im2col for a block of output pixels, then one sgemm with
 * K = k*k*cin. Blocks keep the column buffer near 32 MiB. */
static sdc_status conv_im2col(sdc_backend *be, float *y, const float *x, sdc_weight w, int n,
                              int h, int wi, int cin, int cout, int k, int stride, int pad, int ho,
                              int wo) {
    const size_t kk = (size_t)k * k * cin, total = (size_t)n * ho * wo;
    size_t mb = ((size_t)8 << 20) / kk;
    if (mb < 64) mb = 64;
    if (mb > total) mb = total;
    float *col = NULL;
    SDC_TRY(sdc_cpu_scratch(be, 1, mb * kk, "conv2d", &col));
    if (sdc_cpu_planning(be)) /* the product's panel of a half kernel, a bf16 product's operands */
        return sdc_cpu_gemm_nt(be, "conv2d", (int)mb, cout, (int)kk, NULL, (int)kk, w, 0.0f, NULL, cout);
    for (size_t m0 = 0; m0 < total; m0 += mb) {
        size_t rows = total - m0 < mb ? total - m0 : mb;
#pragma omp parallel for schedule(static)
        for (size_t r = 0; r < rows; r++) {
            size_t pix = m0 + r;
            int b = (int)(pix / ((size_t)ho * wo)), rem = (int)(pix % ((size_t)ho * wo));
            int oy = rem / wo, ox = rem % wo;
            float *c = col + r * kk;
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++, c += cin) {
                    int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                    if (iy < 0 || iy >= h || ix < 0 || ix >= wi)
                        memset(c, 0, (size_t)cin * sizeof(float));
                    else
                        memcpy(c, x + (((size_t)b * h + iy) * wi + ix) * cin, (size_t)cin * sizeof(float));
                }
        }
        SDC_TRY(sdc_cpu_gemm_nt(be, "conv2d", (int)rows, cout, (int)kk, col, (int)kk, w, 0.0f, y + m0 * cout, cout));
    }
    return SDC_OK;
}

sdc_status sdc_cpu_conv2d(sdc_backend *be, sdc_buf yb, sdc_buf xb, sdc_weight wt,
                          const float *bias, sdc_buf rb, int n, int h, int wi,
                          int cin, int cout, int k, int stride, int pad) {
    SDC_TRY(sdc_cpu_f32("conv2d", 3, (sdc_buf[]){yb, xb, rb}));
    float *y = yb.p;
    const float *x = xb.p, *residual = rb.p; /* residual NULL: none */
    if (wt.type != SDC_DT_F32 && wt.type != SDC_DT_F16 && wt.type != SDC_DT_BF16)
        return sdc_fail(SDC_ERR_ARG, "conv2d: weights of type %s (F32, F16 or BF16)", sdc_dtype_name(wt.type));
    if (wt.chan_pad > 1)
        return sdc_fail(SDC_ERR_ARG, "conv2d: a kernel with channels padded to %d (the CPU's are unpadded)",
                        wt.chan_pad);
    if (wt.pt_taps > 1 && wt.pt_taps != k * k)
        return sdc_fail(SDC_ERR_ARG, "conv2d: a kernel of %d taps for a %dx%d convolution", wt.pt_taps, k, k);
    if (n < 1 || h < 1 || wi < 1 || cin < 1 || cout < 1 || k < 1 || stride < 1 || pad < 0)
        return sdc_fail(SDC_ERR_ARG, "conv2d: bad shape n=%d h=%d w=%d cin=%d cout=%d k=%d s=%d p=%d",
                        n, h, wi, cin, cout, k, stride, pad);
    const int ho = (h + 2 * pad - k) / stride + 1, wo = (wi + 2 * pad - k) / stride + 1;
    if (ho < 1 || wo < 1)
        return sdc_fail(SDC_ERR_ARG, "conv2d: %dx%d input too small for a %dx%d kernel", h, wi, k, k);
    if (k == 1 && stride == 1 && pad == 0) {
        SDC_TRY(sdc_cpu_gemm_nt(be, "conv2d", n * h * wi, cout, cin, x, cin, wt, 0.0f, y, cout));
        if (sdc_cpu_planning(be)) return SDC_OK;
    } else if (k == 3 && stride == 1 && pad == 1 && h * wi >= 256) {
        const sdc_cpu_impl *im = be->impl;
        int tile = im->winograd;
        if (!tile) return conv3x3_shifted(be, y, x, wt, bias, residual, n, h, wi, cin, cout);
        /* F(4x4) only with enough tiles to amortise its costlier weight
         * transform and keep the products' rows many; else F(2x2) */
        if (tile == 4 && (size_t)n * ((h + 3) / 4) * ((wi + 3) / 4) < im->wino4_tiles) tile = 2;
        return sdc_cpu_conv3x3_winograd(be, y, x, wt, bias, residual, n, h, wi, cin, cout, tile);
    } else {
        SDC_TRY(conv_im2col(be, y, x, wt, n, h, wi, cin, cout, k, stride, pad, ho, wo));
        if (sdc_cpu_planning(be)) return SDC_OK;
    }
    epilogue(y, bias, residual, (size_t)n * ho * wo, cout);
    return SDC_OK;
}

/* one pixel's channels into the per-channel sums: of x (gm NULL), or of
 * (x - its group's mean)^2 */
SDC_INLINE void gn_accumulate_body(double *acc, const float *xr, const double *gm, int c, int cg) {
    if (!gm) {
#pragma omp simd
        for (int j = 0; j < c; j++) acc[j] += xr[j];
    } else {
#pragma omp simd
        for (int j = 0; j < c; j++) {
            double d = xr[j] - gm[j / cg];
            acc[j] += d * d;
        }
    }
}
SDC_ISA_KERNEL(gn_accumulate, (double *acc, const float *xr, const double *gm, int c, int cg), (acc, xr, gm, c, cg))

/* one pixel normalised (and SiLU'd) */
SDC_INLINE void gn_apply_body(float *yr, const float *xr, const float *mf, const float *mr, const float *scale,
                              const float *beta, int c, bool silu) {
    if (silu) {
#pragma omp simd
        for (int j = 0; j < c; j++) {
            float v = ((xr[j] - mf[j]) - mr[j]) * scale[j] + beta[j];
            yr[j] = v / (1.0f + sdc_fast_expf(-v));
        }
    } else {
#pragma omp simd
        for (int j = 0; j < c; j++) yr[j] = ((xr[j] - mf[j]) - mr[j]) * scale[j] + beta[j];
    }
}
SDC_ISA_KERNEL(gn_apply,
               (float *yr, const float *xr, const float *mf, const float *mr, const float *scale, const float *beta,
                int c, bool silu),
               (yr, xr, mf, mr, scale, beta, c, silu))

/* Group norm, NHWC. Channels are contiguous, so statistics are gathered
 * per channel over pixel chunks (vectorised across channels, in double),
 * then combined per group: pass 1 the means, pass 2 the squared deviations
 * from the group mean (two-pass, never E[x^2] - E[x]^2), pass 3 applies. */
sdc_status sdc_cpu_group_norm(sdc_backend *be, sdc_buf yb, sdc_buf xb, const float *gamma,
                              const float *beta, int n, int hw, int c, int groups, float eps,
                              bool silu) {
    SDC_TRY(sdc_cpu_f32("group_norm", 2, (sdc_buf[]){yb, xb}));
    float *y = yb.p;
    const float *x = xb.p;
    if (groups < 1 || c % groups != 0)
        return sdc_fail(SDC_ERR_ARG, "group_norm: %d channels not divisible into %d groups", c, groups);
    const int cg = c / groups, nt = omp_get_max_threads();
    float *partf = NULL;
    SDC_TRY(sdc_cpu_scratch(be, 3, (size_t)nt * c * 2 + (size_t)4 * c, "group_norm", &partf));
    if (sdc_cpu_planning(be)) return SDC_OK;
    double *part = (double *)partf;
    /* per channel: the group mean as a float plus its rounding residual
     * (so x - mean loses nothing when |mean| >> std), and the scale */
    float *mf = (float *)(part + (size_t)nt * c), *mr = mf + c, *scale = mr + c;
    for (int b = 0; b < n; b++) {
        const float *xb = x + (size_t)b * hw * c;
        float *yb = y + (size_t)b * hw * c;
        double mean_g[512], inv_g[512];
        double *gm = groups <= 512 ? mean_g : malloc((size_t)groups * sizeof(double));
        double *gi = groups <= 512 ? inv_g : malloc((size_t)groups * sizeof(double));
        if (!gm || !gi) return sdc_fail(SDC_ERR_OOM, "group_norm: out of memory");
        for (int pass = 0; pass < 2; pass++) {
#pragma omp parallel
            {
                double *acc = part + (size_t)omp_get_thread_num() * c;
                for (int j = 0; j < c; j++) acc[j] = 0.0;
#pragma omp for schedule(static)
                for (int p = 0; p < hw; p++) gn_accumulate(acc, xb + (size_t)p * c, pass ? gm : NULL, c, cg);
            }
            for (int g = 0; g < groups; g++) {
                double s = 0.0;
                for (int t = 0; t < nt; t++)
                    for (int j = g * cg; j < (g + 1) * cg; j++) s += part[(size_t)t * c + j];
                s /= (double)hw * cg;
                if (pass == 0) gm[g] = s;
                else gi[g] = 1.0 / sqrt(s + eps);
            }
        }
        for (int j = 0; j < c; j++) {
            mf[j] = (float)gm[j / cg];
            mr[j] = (float)(gm[j / cg] - (double)mf[j]);
            scale[j] = (float)(gi[j / cg] * gamma[j]);
        }
        if (gm != mean_g) free(gm);
        if (gi != inv_g) free(gi);
#pragma omp parallel for schedule(static)
        for (int p = 0; p < hw; p++)
            gn_apply(yb + (size_t)p * c, xb + (size_t)p * c, mf, mr, scale, beta, c, silu);
    }
    return SDC_OK;
}

sdc_status sdc_cpu_upsample_nearest(sdc_backend *be, sdc_buf yb, sdc_buf xb, int n, int h,
                                    int w, int c, int ho, int wo) {
    (void)be;
    SDC_TRY(sdc_cpu_f32("upsample_nearest", 2, (sdc_buf[]){yb, xb}));
    float *y = yb.p;
    const float *x = xb.p;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < n; b++)
        for (int oy = 0; oy < ho; oy++) {
            int iy = (int)((int64_t)oy * h / ho);
            for (int ox = 0; ox < wo; ox++) {
                int ix = (int)((int64_t)ox * w / wo);
                memcpy(y + (((size_t)b * ho + oy) * wo + ox) * c, x + (((size_t)b * h + iy) * w + ix) * c,
                       (size_t)c * sizeof(float));
            }
        }
    return SDC_OK;
}

sdc_status sdc_cpu_pad(sdc_backend *be, sdc_buf yb, sdc_buf xb, int n, int h, int w, int c, int top,
                       int bottom, int left, int right) {
    (void)be;
    SDC_TRY(sdc_cpu_f32("pad", 2, (sdc_buf[]){yb, xb}));
    float *y = yb.p;
    const float *x = xb.p;
    const int ho = h + top + bottom, wo = w + left + right;
    memset(y, 0, (size_t)n * ho * wo * c * sizeof(float));
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < n; b++)
        for (int yy = 0; yy < h; yy++)
            memcpy(y + (((size_t)b * ho + yy + top) * wo + left) * c, x + ((size_t)b * h + yy) * w * c,
                   (size_t)w * c * sizeof(float));
    return SDC_OK;
}

sdc_status sdc_cpu_concat_channels(sdc_backend *be, sdc_buf yb, sdc_buf ab, sdc_buf bb,
                                   size_t rows, int ca, int cb) {
    (void)be;
    SDC_TRY(sdc_cpu_f32("concat_channels", 3, (sdc_buf[]){yb, ab, bb}));
    float *y = yb.p;
    const float *a = ab.p, *b = bb.p;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        memcpy(y + r * (ca + cb), a + r * ca, (size_t)ca * sizeof(float));
        memcpy(y + r * (ca + cb) + ca, b + r * cb, (size_t)cb * sizeof(float));
    }
    return SDC_OK;
}

/* erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), vectorisable */
SDC_INLINE float erf_approx(float x) {
    float ax = fabsf(x), t = 1.0f / (1.0f + 0.3275911f * ax);
    float p = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    float r = 1.0f - p * sdc_fast_expf(-ax * ax);
    return x < 0 ? -r : r;
}

/* yr[j] = a[j] gelu(g[j]) for j < f */
SDC_INLINE void geglu_row_body(float *yr, const float *a, const float *g, int f) {
#pragma omp simd
    for (int j = 0; j < f; j++) yr[j] = a[j] * (0.5f * g[j] * (1.0f + erf_approx(g[j] * 0.70710678118654752f)));
}
SDC_ISA_KERNEL(geglu_row, (float *yr, const float *a, const float *g, int f), (yr, a, g, f))

sdc_status sdc_cpu_geglu(sdc_backend *be, sdc_buf yb, sdc_buf xb, int m, int f) {
    (void)be;
    SDC_TRY(sdc_cpu_f32("geglu", 2, (sdc_buf[]){yb, xb}));
    float *y = yb.p;
    const float *x = xb.p;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < m; i++) {
        const float *a = x + (size_t)i * 2 * f, *g = a + f;
        geglu_row(y + (size_t)i * f, a, g, f);
    }
    return SDC_OK;
}

sdc_status sdc_cpu_add_rows(sdc_backend *be, sdc_buf yb, sdc_buf xb, sdc_buf vb, int n,
                            size_t rows, int c) {
    (void)be;
    SDC_TRY(sdc_cpu_f32("add_rows", 3, (sdc_buf[]){yb, xb, vb}));
    float *y = yb.p;
    const float *x = xb.p, *v = vb.p;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < n; b++)
        for (size_t r = 0; r < rows; r++) {
            const float *xr = x + ((size_t)b * rows + r) * c, *vb = v + (size_t)b * c;
            float *yr = y + ((size_t)b * rows + r) * c;
            for (int j = 0; j < c; j++) yr[j] = xr[j] + vb[j];
        }
    return SDC_OK;
}
