/* test_backend_image.c - the CPU backend's image ops against float64 loops
 * written out here, at U-Net shapes (320/640/1280 channels, 32 groups).
 * Tolerance: normwise relative error max|diff| / max|ref| <= 1e-5 (fp32
 * against float64; GEGLU and the fused SiLU use a ~1e-7 exp/erf). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend_cpu.h"
#include "backend/cpu_isa.h"
#include "testutil.h"

#define TOL 1e-5

/* Winograd's tile for stride-1 3x3 convolutions on 256 pixels or more:
 * F(4x4, 3x3) (the CPU's on large grids) or F(2x2, 3x3) */
static int g_tile = 4;


/* wtype: the kernel's type (a half kernel is rounded from the random one,
 * the reference computed with its widened values: the products widen
 * exactly, so the tolerance stays fp32's); direct: 3x3 convolutions as
 * shifted sgemms instead of Winograd; pt: the kernel in PyTorch's
 * (cout, cin, k, k) layout, as a model file's read in place */
static void conv_case_layout(int n, int h, int w, int cin, int cout, int k, int stride, int pad, bool residual,
                             sdc_dtype wtype, bool direct, bool pt) {
    sdc_backend *be = test_cpu_backend();
    ((sdc_cpu_impl *)be->impl)->winograd = direct ? 0 : g_tile;
    ((sdc_cpu_impl *)be->impl)->wino4_tiles = 0; /* g_tile whatever the size */
    const int ho = (h + 2 * pad - k) / stride + 1, wo = (w + 2 * pad - k) / stride + 1;
    const size_t ny = (size_t)n * ho * wo * cout;
    float *x = test_random((size_t)n * h * w * cin, 21, 1.0f), *wt = test_random((size_t)cout * k * k * cin, 22, 0.05f);
    float *b = test_random(cout, 23, 0.5f), *res = residual ? test_random(ny, 24, 1.0f) : NULL;
    float *y = malloc(ny * sizeof(float));
    double *r = malloc(ny * sizeof(double));
    const size_t nw = (size_t)cout * k * k * cin;
    sdc_weight kw = SDC_WEIGHT_F32(wt);
    if (wtype != SDC_DT_F32) {
        cr_assert_eq(be->ops->load_conv(be, wtype, wt, SDC_DT_F32, cout, k, cin, &kw), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(kw.type, wtype);
        for (size_t i = 0; i < nw; i++) /* the values the kernel holds */
            wt[i] = wtype == SDC_DT_F16 ? sdc_f16_to_f32(((uint16_t *)kw.p)[i]) : sdc_bf16_to_f32(((uint16_t *)kw.p)[i]);
    }
    void *own = kw.p != wt ? kw.p : NULL, *ptk = NULL;
    if (pt) { /* (cout, k, k, cin) -> (cout, cin, k, k), elements of the kernel's type */
        const size_t es = sdc_act_size(kw.type), kk = (size_t)k * k;
        ptk = malloc(nw * es);
        for (size_t co = 0; co < (size_t)cout; co++)
            for (size_t ci = 0; ci < (size_t)cin; ci++)
                for (size_t t = 0; t < kk; t++)
                    memcpy((char *)ptk + ((co * cin + ci) * kk + t) * es,
                           (const char *)kw.p + ((co * kk + t) * cin + ci) * es, es);
        kw.p = ptk;
        kw.pt_taps = k > 1 ? k * k : 0;
    }
    cr_assert_eq(be->ops->conv2d(be, SDC_F32(y), SDC_F32(x), kw, b, SDC_F32(res), n, h, w, cin, cout, k, stride, pad),
                 SDC_OK, "%s", sdc_last_error());
#pragma omp parallel for collapse(2)
    for (int bi = 0; bi < n; bi++)
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++)
                for (int co = 0; co < cout; co++) {
                    size_t o = (((size_t)bi * ho + oy) * wo + ox) * cout + co;
                    double s = b[co] + (res ? res[o] : 0.0);
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                            const float *xp = x + (((size_t)bi * h + iy) * w + ix) * cin;
                            const float *wp = wt + (((size_t)co * k + ky) * k + kx) * cin;
                            for (int ci = 0; ci < cin; ci++) s += (double)xp[ci] * wp[ci];
                        }
                    r[o] = s;
                }
    size_t worst;
    fprintf(stderr, "conv2d %dx%dx%d -> %d, k %d s %d, %s%s%s: max rel err %.3g\n", h, w, cin, cout, k, stride,
            sdc_dtype_name(wtype),
            direct ? ", direct" : k == 3 && stride == 1 && pad == 1 && h * w >= 256 ? g_tile == 4 ? ", F(4x4)" : ", F(2x2)" : "",
            pt ? ", PyTorch layout" : "",
            max_rel_err_f64(y, r, ny, &worst));
    check_close_f64(TOL, "conv2d", y, r, ny);
    if (own) be->ops->free(be, own);
    free(ptk);
    free(x), free(wt), free(b), free(res), free(y), free(r);
    sdc_backend_destroy(be);
}

static void conv_case_typed(int n, int h, int w, int cin, int cout, int k, int stride, int pad, bool residual,
                            sdc_dtype wtype, bool direct) {
    conv_case_layout(n, h, w, cin, cout, k, stride, pad, residual, wtype, direct, false);
}

static void conv_case(int n, int h, int w, int cin, int cout, int k, int stride, int pad, bool residual) {
    conv_case_typed(n, h, w, cin, cout, k, stride, pad, residual, SDC_DT_F32, false);
}

/* 3x3 stride 1 on a large grid takes Winograd's F(2x2, 3x3) */
Test(backend_image, conv3x3_shifted_320_to_640) { conv_case(2, 16, 17, 320, 640, 3, 1, 1, false); }
/* and as 9 shifted sgemms when asked (SDC_CPU_WINOGRAD=0) */
Test(backend_image, conv3x3_direct_320_to_640) {
    conv_case_typed(2, 16, 17, 320, 640, 3, 1, 1, true, SDC_DT_F32, true);
}
/* Winograd, F(4x4) then F(2x2): odd sizes (tiles past the last row and
 * column: 17 = 4 * 4 + 1, 19 = 4 * 4 + 3), a residual; several chunks of
 * output channels (U-Net's 2560 inputs); several blocks of tiles (a wide
 * input on a large grid). F(4x4)'s transforms have entries up to 8 and
 * 1/24: measured ~7e-6 at 2560 inputs against F(2x2)'s ~4e-7, both
 * inside fp32's 1e-5 */
static void winograd_cases(int tile) {
    g_tile = tile;
    conv_case(2, 17, 19, 48, 40, 3, 1, 1, true);
    conv_case(1, 18, 21, 32, 24, 3, 1, 1, false);
    conv_case(1, 16, 16, 2560, 640, 3, 1, 1, true);
    conv_case(1, 48, 48, 1024, 64, 3, 1, 1, false);
    g_tile = 4;
}
Test(backend_image, conv3x3_winograd_4x4) { winograd_cases(4); }
Test(backend_image, conv3x3_winograd_2x2) { winograd_cases(2); }
/* the transforms' variants below this processor's best (cpu_isa.h; the
 * tests above run the best): odd sizes, a residual, a wide input, both
 * tiles */
Test(backend_image, conv3x3_winograd_every_isa) {
    const sdc_cpu_isa best = sdc_cpu_isa_detect();
    for (int isa = SDC_ISA_BASE; isa < (int)best; isa++) {
        cr_assert(sdc_cpu_isa_force((sdc_cpu_isa)isa));
        for (int tile = 2; tile <= 4; tile += 2) {
            g_tile = tile;
            fprintf(stderr, "instruction set %s:\n", sdc_cpu_isa_name((sdc_cpu_isa)isa));
            conv_case(2, 17, 19, 48, 40, 3, 1, 1, true);
            conv_case(1, 18, 21, 32, 24, 3, 1, 1, false);
            conv_case(1, 16, 16, 2560, 64, 3, 1, 1, true);
        }
    }
    g_tile = 4;
    cr_assert(sdc_cpu_isa_force(best));
}
/* half kernels, as the CPU keeps fp16 and bf16 files' weights: every path */
Test(backend_image, conv_half_kernels) {
    conv_case_typed(2, 16, 17, 320, 64, 3, 1, 1, true, SDC_DT_F16, false);
    conv_case_typed(2, 16, 17, 320, 64, 3, 1, 1, false, SDC_DT_BF16, false);
    g_tile = 2;
    conv_case_typed(2, 16, 17, 320, 64, 3, 1, 1, true, SDC_DT_F16, false);
    g_tile = 4;
    conv_case_typed(1, 16, 16, 96, 80, 3, 1, 1, true, SDC_DT_F16, true);
    conv_case_typed(1, 8, 8, 256, 128, 3, 1, 1, true, SDC_DT_F16, false);
    conv_case_typed(2, 17, 16, 64, 96, 3, 2, 1, false, SDC_DT_BF16, false);
    conv_case_typed(2, 16, 16, 640, 320, 1, 1, 0, true, SDC_DT_F16, false);
}
/* kernels read in place from a model file, in PyTorch's layout, of every
 * type: Winograd (one chunk and several), shifted sgemms, im2col, stride
 * 2, 1x1 */
Test(backend_image, conv_pytorch_layout) {
    conv_case_layout(2, 16, 17, 320, 64, 3, 1, 1, true, SDC_DT_F16, false, true);
    conv_case_layout(1, 16, 16, 2560, 640, 3, 1, 1, false, SDC_DT_F16, false, true);
    conv_case_layout(2, 17, 19, 48, 40, 3, 1, 1, true, SDC_DT_F32, false, true);
    conv_case_layout(1, 16, 16, 96, 80, 3, 1, 1, true, SDC_DT_BF16, true, true);
    conv_case_layout(1, 16, 16, 96, 80, 3, 1, 1, false, SDC_DT_F32, true, true);
    conv_case_layout(1, 8, 8, 256, 128, 3, 1, 1, true, SDC_DT_F32, false, true);
    conv_case_layout(1, 8, 8, 256, 128, 3, 1, 1, true, SDC_DT_F16, false, true);
    conv_case_layout(2, 17, 16, 64, 96, 3, 2, 1, false, SDC_DT_BF16, false, true);
    conv_case_layout(2, 16, 16, 640, 320, 1, 1, 0, true, SDC_DT_F16, false, true);
}
/* small grids take im2col; the deepest U-Net level */
Test(backend_image, conv3x3_im2col_1280) { conv_case(1, 8, 8, 1280, 1280, 3, 1, 1, true); }
/* the downsampler: stride 2, padding 1, odd size */
Test(backend_image, conv3x3_stride2) { conv_case(2, 17, 16, 64, 96, 3, 2, 1, false); }
/* 1x1: skip connections and proj_in/out */
Test(backend_image, conv1x1_residual) { conv_case(2, 16, 16, 640, 320, 1, 1, 0, true); }
/* VAE's first conv: 3 input channels */
Test(backend_image, conv3x3_rgb) { conv_case(1, 32, 32, 4, 128, 3, 1, 1, false); }

static void group_norm_case(int n, int hw, int c, int groups, bool silu, float offset) {
    sdc_backend *be = test_cpu_backend();
    const size_t nx = (size_t)n * hw * c;
    float *x = test_random(nx, 31, 2.0f), *g = test_random(c, 32, 1.0f), *b = test_random(c, 33, 1.0f);
    for (size_t i = 0; i < nx; i++) x[i] += offset;
    float *y = malloc(nx * sizeof(float));
    double *r = malloc(nx * sizeof(double));
    cr_assert_eq(be->ops->group_norm(be, SDC_F32(y), SDC_F32(x), g, b, n, hw, c, groups, 1e-5f, silu), SDC_OK);
    const int cg = c / groups;
    for (int bi = 0; bi < n; bi++)
        for (int gi = 0; gi < groups; gi++) {
            double mu = 0, var = 0;
            for (int p = 0; p < hw; p++)
                for (int j = 0; j < cg; j++) mu += x[((size_t)bi * hw + p) * c + gi * cg + j];
            mu /= (double)hw * cg;
            for (int p = 0; p < hw; p++)
                for (int j = 0; j < cg; j++) var += pow(x[((size_t)bi * hw + p) * c + gi * cg + j] - mu, 2);
            var /= (double)hw * cg;
            for (int p = 0; p < hw; p++)
                for (int j = 0; j < cg; j++) {
                    size_t i = ((size_t)bi * hw + p) * c + gi * cg + j;
                    double v = (x[i] - mu) / sqrt(var + 1e-5) * g[gi * cg + j] + b[gi * cg + j];
                    r[i] = silu ? v / (1.0 + exp(-v)) : v;
                }
        }
    check_close_f64(TOL, "group_norm", y, r, nx);
    free(x), free(g), free(b), free(y), free(r);
    sdc_backend_destroy(be);
}

Test(backend_image, group_norm_64x64x320_silu) { group_norm_case(2, 64 * 64, 320, 32, true, 0.0f); }
Test(backend_image, group_norm_16x16x1280) { group_norm_case(1, 16 * 16, 1280, 32, false, 0.0f); }
/* a large common offset: single-pass E[x^2]-E[x]^2 fails here */
Test(backend_image, group_norm_offset) { group_norm_case(1, 32 * 32, 640, 32, false, 500.0f); }

/* group norm's sums and its apply (with SiLU), and GEGLU, at the
 * instruction sets below this processor's best (cpu_isa.h; the tests
 * around these run the best) */
static void geglu_case(int m, int f) {
    sdc_backend *be = test_cpu_backend();
    float *x = test_random((size_t)m * 2 * f, 51, 4.0f), *y = malloc((size_t)m * f * sizeof(float));
    double *r = malloc((size_t)m * f * sizeof(double));
    cr_assert_eq(be->ops->geglu(be, SDC_F32(y), SDC_F32(x), m, f), SDC_OK);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < f; j++) {
            double a = x[(size_t)i * 2 * f + j], g = x[(size_t)i * 2 * f + f + j];
            r[(size_t)i * f + j] = a * 0.5 * g * (1.0 + erf(g / sqrt(2.0)));
        }
    check_close_f64(TOL, "geglu", y, r, (size_t)m * f);
    free(x), free(y), free(r);
    sdc_backend_destroy(be);
}
Test(backend_image, norms_and_geglu_every_isa) {
    const sdc_cpu_isa best = sdc_cpu_isa_detect();
    for (int isa = SDC_ISA_BASE; isa < (int)best; isa++) {
        cr_assert(sdc_cpu_isa_force((sdc_cpu_isa)isa));
        group_norm_case(2, 24 * 24, 320, 32, true, 0.0f);
        group_norm_case(1, 32 * 32, 640, 32, false, 500.0f);
        geglu_case(77, 1283);
    }
    cr_assert(sdc_cpu_isa_force(best));
}

Test(backend_image, upsample_nearest) {
    sdc_backend *be = test_cpu_backend();
    const int n = 2, h = 5, w = 3, c = 7, ho = 10, wo = 7; /* 2x and a non-integer ratio */
    float *x = test_random((size_t)n * h * w * c, 41, 1.0f), *y = malloc((size_t)n * ho * wo * c * sizeof(float));
    cr_assert_eq(be->ops->upsample_nearest(be, SDC_F32(y), SDC_F32(x), n, h, w, c, ho, wo), SDC_OK);
    for (int b = 0; b < n; b++)
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++)
                for (int ch = 0; ch < c; ch++) {
                    int iy = (int)floor(oy * (double)h / ho), ix = (int)floor(ox * (double)w / wo);
                    cr_assert_eq(y[(((size_t)b * ho + oy) * wo + ox) * c + ch],
                                 x[(((size_t)b * h + iy) * w + ix) * c + ch]);
                }
    free(x), free(y);
    sdc_backend_destroy(be);
}

Test(backend_image, geglu_concat_add_rows) {
    sdc_backend *be = test_cpu_backend();
    const int m = 300, f = 640;
    float *x = test_random((size_t)m * 2 * f, 51, 4.0f), *y = malloc((size_t)m * f * sizeof(float));
    double *r = malloc((size_t)m * f * sizeof(double));
    cr_assert_eq(be->ops->geglu(be, SDC_F32(y), SDC_F32(x), m, f), SDC_OK);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < f; j++) {
            double a = x[(size_t)i * 2 * f + j], g = x[(size_t)i * 2 * f + f + j];
            r[(size_t)i * f + j] = a * 0.5 * g * (1.0 + erf(g / sqrt(2.0)));
        }
    check_close_f64(TOL, "geglu", y, r, (size_t)m * f);
    /* concat and row broadcast are exact */
    float *a = test_random(6 * 3, 52, 1.0f), *b = test_random(6 * 2, 53, 1.0f), *cc = malloc(6 * 5 * sizeof(float));
    cr_assert_eq(be->ops->concat_channels(be, SDC_F32(cc), SDC_F32(a), SDC_F32(b), 6, 3, 2), SDC_OK);
    for (int i = 0; i < 6; i++) {
        for (int j = 0; j < 3; j++) cr_assert_eq(cc[i * 5 + j], a[i * 3 + j]);
        for (int j = 0; j < 2; j++) cr_assert_eq(cc[i * 5 + 3 + j], b[i * 2 + j]);
    }
    float *v = test_random(2 * 5, 54, 1.0f), *z = malloc(6 * 5 * sizeof(float));
    cr_assert_eq(be->ops->add_rows(be, SDC_F32(z), SDC_F32(cc), SDC_F32(v), 2, 3, 5), SDC_OK);
    for (int bi = 0; bi < 2; bi++)
        for (int rr = 0; rr < 3; rr++)
            for (int j = 0; j < 5; j++)
                cr_assert_eq(z[(bi * 3 + rr) * 5 + j], cc[(bi * 3 + rr) * 5 + j] + v[bi * 5 + j]);
    free(x), free(y), free(r), free(a), free(b), free(cc), free(v), free(z);
    sdc_backend_destroy(be);
}
