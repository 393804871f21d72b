/* test_cuda_typed.c - the CUDA kernels that take activations in fp16 and
 * bf16 as well as fp32 (kernels/elementwise.cu, norm.cu, conv.cu's
 * im2col). Each computes in fp32 and rounds once to its type, so each is
 * checked exactly: the kernel on inputs rounded to the type gives, bit for
 * bit, the fp32 kernel's result on the same rounded values, rounded once
 * (host round-to-nearest-even, sdc_f32_to_f16 / sdc_f32_to_bf16). The
 * launchers are called directly on device buffers (the legacy stream, then
 * sdc_cuda_sync), on the emulated device in make test and on a GPU where
 * there is one. Built only where nvcc is (the kernels are linked). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"
#include "backend/backend.h"
#include "backend/cuda.h"
#include "cuda_testutil.h"
#include "testutil.h"

static const int TYPES[2] = {SDC_CU_F16, SDC_CU_BF16};
static const char *tname(int t) { return t == SDC_CU_F16 ? "f16" : "bf16"; }

static uint16_t to_bits(int t, float v) { return t == SDC_CU_F16 ? sdc_f32_to_f16(v) : sdc_f32_to_bf16(v); }
static float from_bits(int t, uint16_t b) { return t == SDC_CU_F16 ? sdc_f16_to_f32(b) : sdc_bf16_to_f32(b); }

/* One input in both forms on the device: n values rounded to t, as t
 * (bits) and as fp32 (the same values). */
typedef struct pair {
    float *f32;
    float *half; /* (n + 1) / 2 floats of room: n elements of t */
    size_t n;
} pair;

static pair pair_make(sdc_backend *g, int t, size_t n, uint64_t seed, float scale) {
    float *v = test_random(n, seed, scale);
    uint16_t *b = calloc(n + 1, sizeof *b);
    for (size_t i = 0; i < n; i++) {
        b[i] = to_bits(t, v[i]);
        v[i] = from_bits(t, b[i]);
    }
    pair p = {dev(g, v, n), dev(g, (const float *)b, (n + 1) / 2), n};
    free(v), free(b);
    return p;
}

/* An output in both forms: fp32 and t. */
static pair out_make(sdc_backend *g, size_t n) {
    pair p = {NULL, NULL, n};
    cr_assert_eq(g->ops->alloc(g, n, &p.f32), SDC_OK);
    cr_assert_eq(g->ops->alloc(g, (n + 1) / 2, &p.half), SDC_OK);
    return p;
}

static void pair_free(sdc_backend *g, pair *p) {
    g->ops->free(g, p->f32);
    g->ops->free(g, p->half);
}

/* the t result is the fp32 result rounded once, bit for bit */
static void expect_rounded(sdc_backend *g, const char *what, int t, const pair *out) {
    cr_assert_eq(sdc_cuda_sync(), 0, "%s: device sync", what);
    const size_t n = out->n;
    float *want = malloc(n * sizeof(float));
    uint16_t *got = calloc(n + 1, sizeof *got);
    cr_assert_eq(g->ops->download(g, want, out->f32, n), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(g->ops->download(g, (float *)got, out->half, (n + 1) / 2), SDC_OK, "%s", sdc_last_error());
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got[i], to_bits(t, want[i]), "%s %s [%zu]: 0x%04x, the fp32 kernel's %.9g rounds to 0x%04x", what,
                     tname(t), i, got[i], (double)want[i], to_bits(t, want[i]));
    free(want), free(got);
}

#define RUN(what, t, out, call32, callt)                                                               \
    do {                                                                                               \
        cr_assert_eq((call32), 0, "%s fp32 launch", what);                                             \
        cr_assert_eq((callt), 0, "%s %s launch", what, tname(t));                                      \
        expect_rounded(g, what, t, &(out));                                                            \
    } while (0)

Test(cuda_typed, elementwise) {
    sdc_backend *g = gpu_mem(0);
    const int n = 2, h = 5, w = 7, c = 24;
    const size_t nx = (size_t)n * h * w * c;
    float *vh = test_random(c * n, 21, 1.0f);
    float *bias = dev(g, vh, c);
    for (int k = 0; k < 2; k++) {
        const int t = TYPES[k];
        pair x = pair_make(g, t, nx, 24, 3.0f), x2 = pair_make(g, t, nx, 25, 3.0f), v = pair_make(g, t, (size_t)n * c, 26, 1.0f);
        pair y = out_make(g, nx), yb = out_make(g, (size_t)n * (h + 3) * (w + 4) * c), yc = out_make(g, nx * 2);
        for (int act = 0; act < 4; act++) {
            char what[32];
            snprintf(what, sizeof what, "activation %d", act);
            RUN(what, t, y, sdc_activation_cuda(y.f32, x.f32, SDC_CU_F32, nx, act, NULL),
                sdc_activation_cuda(y.half, x.half, t, nx, act, NULL));
        }
        RUN("add", t, y, sdc_add_cuda(y.f32, x.f32, x2.f32, SDC_CU_F32, nx, NULL),
            sdc_add_cuda(y.half, x.half, x2.half, t, nx, NULL));
        const int m = (int)(nx / 40);
        pair yg = out_make(g, (size_t)m * 20);
        RUN("geglu", t, yg, sdc_geglu_cuda(yg.f32, x.f32, SDC_CU_F32, m, 20, NULL),
            sdc_geglu_cuda(yg.half, x.half, t, m, 20, NULL));
        RUN("add_rows", t, y, sdc_add_rows_cuda(y.f32, x.f32, v.f32, SDC_CU_F32, n, (size_t)h * w, c, NULL),
            sdc_add_rows_cuda(y.half, x.half, v.half, t, n, (size_t)h * w, c, NULL));
        RUN("concat", t, yc, sdc_concat_channels_cuda(yc.f32, x.f32, x2.f32, SDC_CU_F32, (size_t)n * h * w, c, c, NULL),
            sdc_concat_channels_cuda(yc.half, x.half, x2.half, t, (size_t)n * h * w, c, c, NULL));
        RUN("pad", t, yb, sdc_pad_cuda(yb.f32, x.f32, SDC_CU_F32, n, h, w, c, 2, 1, 1, 3, NULL),
            sdc_pad_cuda(yb.half, x.half, t, n, h, w, c, 2, 1, 1, 3, NULL));
        pair yu = out_make(g, (size_t)n * 9 * 10 * c);
        RUN("upsample", t, yu, sdc_upsample_nearest_cuda(yu.f32, x.f32, SDC_CU_F32, n, h, w, c, 9, 10, NULL),
            sdc_upsample_nearest_cuda(yu.half, x.half, t, n, h, w, c, 9, 10, NULL));
        RUN("bias_rows", t, y, sdc_bias_rows_cuda(y.f32, SDC_CU_F32, bias, (size_t)n * h * w, c, NULL),
            sdc_bias_rows_cuda(y.half, t, bias, (size_t)n * h * w, c, NULL));
        /* y += bias + residual: y starts as x in both forms */
        pair yr = pair_make(g, t, nx, 24, 3.0f);
        RUN("bias_residual", t, yr, sdc_bias_residual_cuda(yr.f32, SDC_CU_F32, bias, x2.f32, (size_t)n * h * w, c, NULL),
            sdc_bias_residual_cuda(yr.half, t, bias, x2.half, (size_t)n * h * w, c, NULL));
        pair_free(g, &yr);
        yr = pair_make(g, t, nx, 27, 3.0f);
        RUN("residual only", t, yr, sdc_bias_residual_cuda(yr.f32, SDC_CU_F32, NULL, x2.f32, (size_t)n * h * w, c, NULL),
            sdc_bias_residual_cuda(yr.half, t, NULL, x2.half, (size_t)n * h * w, c, NULL));
        pair *ps[] = {&x, &x2, &v, &y, &yb, &yc, &yg, &yu, &yr};
        for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) pair_free(g, ps[i]);
    }
    cr_assert_neq(sdc_add_cuda(NULL, NULL, NULL, 9, 4, NULL), 0, "an unknown element type is refused");
    free(vh);
    g->ops->free(g, bias);
    sdc_backend_destroy(g);
}

/* layer norm over rows shorter and longer than the 256-thread block; group
 * norm with and without SiLU; statistics from the rounded inputs */
Test(cuda_typed, norms) {
    sdc_backend *g = gpu_mem(0);
    const int rows[2] = {74, 63}, cols[2] = {40, 300};
    float *gh = test_random(300, 31, 1.0f), *bh = test_random(300, 32, 1.0f);
    float *gamma = dev(g, gh, 300), *beta = dev(g, bh, 300), *stats = NULL;
    cr_assert_eq(g->ops->alloc(g, sdc_group_norm_scratch_floats(3, 21, 30), &stats), SDC_OK);
    for (int k = 0; k < 2; k++) {
        const int t = TYPES[k];
        for (int c = 0; c < 2; c++) {
            const size_t nn = (size_t)rows[c] * cols[c];
            pair x = pair_make(g, t, nn, 33 + c, 4.0f), y = out_make(g, nn);
            RUN("layer_norm", t, y,
                sdc_layer_norm_cuda(y.f32, x.f32, SDC_CU_F32, gamma, beta, rows[c], cols[c], 1e-5f, NULL),
                sdc_layer_norm_cuda(y.half, x.half, t, gamma, beta, rows[c], cols[c], 1e-5f, NULL));
            pair_free(g, &x), pair_free(g, &y);
        }
        const size_t ng = (size_t)3 * 21 * 300;
        pair x = pair_make(g, t, ng, 35, 4.0f), y = out_make(g, ng);
        for (int silu = 0; silu < 2; silu++)
            RUN(silu ? "group_norm + silu" : "group_norm", t, y,
                sdc_group_norm_cuda(y.f32, x.f32, SDC_CU_F32, gamma, beta, 3, 21, 300, 30, 1e-5f, silu, stats, NULL),
                sdc_group_norm_cuda(y.half, x.half, t, gamma, beta, 3, 21, 300, 30, 1e-5f, silu, stats, NULL));
        pair_free(g, &x), pair_free(g, &y);
    }
    free(gh), free(bh);
    float *bufs[] = {gamma, beta, stats};
    for (int i = 0; i < 3; i++) g->ops->free(g, bufs[i]);
    sdc_backend_destroy(g);
}

/* im2col reading x in fp16/bf16 into columns of the same type, and into
 * fp32 columns (then exact: the rounded values themselves); 3x3 with
 * padded channels, stride 2 */
Test(cuda_typed, im2col) {
    sdc_backend *g = gpu_mem(0);
    const int n = 2, h = 9, w = 8, cin = 5, cp = 8, k = 3;
    const int shapes[2][2] = {{1, 1}, {2, 1}}; /* stride, pad */
    for (int q = 0; q < 2; q++) {
        const int t = TYPES[q];
        pair x = pair_make(g, t, (size_t)n * h * w * cin, 41, 2.0f);
        for (int s = 0; s < 2; s++) {
            const int st = shapes[s][0], pd = shapes[s][1];
            const int ho = (h + 2 * pd - k) / st + 1, wo = (w + 2 * pd - k) / st + 1;
            const size_t rows = (size_t)n * ho * wo - 3, nc = rows * k * k * cp; /* from row 3 on */
            pair col = out_make(g, nc);
            RUN("im2col", t, col,
                sdc_im2col_typed_cuda(col.f32, SDC_CU_F32, x.f32, SDC_CU_F32, n, h, w, cin, cp, k, st, pd, ho, wo, 3,
                                      rows, NULL),
                sdc_im2col_typed_cuda(col.half, t, x.half, t, n, h, w, cin, cp, k, st, pd, ho, wo, 3, rows, NULL));
            /* typed x into fp32 columns: the same values exactly */
            float *c32 = NULL;
            cr_assert_eq(g->ops->alloc(g, nc, &c32), SDC_OK);
            cr_assert_eq(sdc_im2col_typed_cuda(c32, SDC_CU_F32, x.half, t, n, h, w, cin, cp, k, st, pd, ho, wo, 3,
                                               rows, NULL), 0);
            cr_assert_eq(sdc_cuda_sync(), 0);
            float *a = malloc(nc * sizeof(float)), *b = malloc(nc * sizeof(float));
            cr_assert_eq(g->ops->download(g, a, c32, nc), SDC_OK);
            cr_assert_eq(g->ops->download(g, b, col.f32, nc), SDC_OK);
            cr_assert_eq(memcmp(a, b, nc * sizeof(float)), 0, "im2col %s x into fp32 columns", tname(t));
            free(a), free(b);
            g->ops->free(g, c32);
            pair_free(g, &col);
        }
        pair_free(g, &x);
    }
    sdc_backend_destroy(g);
}
