/* test_cuda_halfops.c - the CUDA backend's ops on fp16 and bf16 activations
 * (typed buffers, sdc_buf) against the CPU backend, on the emulated device
 * in make test and on a GPU where there is one.
 *
 * Each case rounds its inputs and weights to the half type on the host, so
 * the CPU computes in fp32 on exactly the values the device reads; what is
 * left is the device's own rounding: every result rounded once to the half
 * type (half an ulp: 2^-11 relative in fp16, 2^-8 in bf16), a product's
 * bias or residual added after that rounding, attention's probabilities
 * rounded to the half type before P V. Stated tolerances (max error over
 * the largest reference value, testutil's max_rel_err): elementwise ops and
 * norms 1e-3 (fp16) and 8e-3 (bf16), one rounding; products and attention
 * 2e-3 and 1.6e-2, two or three roundings. Conversions are exact. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "../kernels/kernels.h"
#include "cuda_testutil.h"
#include "testutil.h"

static const sdc_dtype HALF[2] = {SDC_DT_F16, SDC_DT_BF16};
static const double TOL_ONE[2] = {1e-3, 8e-3}, TOL_PRODUCT[2] = {2e-3, 1.6e-2};

static const char *tn(sdc_dtype t) { return t == SDC_DT_F16 ? "fp16" : "bf16"; }
static uint16_t to_bits(sdc_dtype t, float v) { return t == SDC_DT_F16 ? sdc_f32_to_f16(v) : sdc_f32_to_bf16(v); }
static float from_bits(sdc_dtype t, uint16_t b) { return t == SDC_DT_F16 ? sdc_f16_to_f32(b) : sdc_bf16_to_f32(b); }

/* A half input: n random values rounded to t (host, fp32: what the CPU
 * reads) and the same values as t on the device. */
typedef struct hin {
    float *host;
    sdc_buf d;
    size_t n;
} hin;

static hin hin_make(sdc_backend *g, sdc_dtype t, size_t n, uint64_t seed, float scale) {
    hin h = {test_random(n, seed, scale), {NULL, t}, n};
    uint16_t *bits = calloc(n + 1, sizeof *bits);
    for (size_t i = 0; i < n; i++) {
        bits[i] = to_bits(t, h.host[i]);
        h.host[i] = from_bits(t, bits[i]);
    }
    h.d.p = dev(g, (const float *)bits, sdc_act_floats(t, n));
    free(bits);
    return h;
}

static void hin_free(sdc_backend *g, hin *h) {
    free(h->host);
    g->ops->free(g, h->d.p);
}

static sdc_buf hout(sdc_backend *g, sdc_dtype t, size_t n) {
    float *p = NULL;
    cr_assert_eq(g->ops->alloc(g, sdc_act_floats(t, n), &p), SDC_OK, "%s", sdc_last_error());
    return (sdc_buf){p, t};
}

/* the device's half result against the CPU's fp32 one */
static void hexpect(sdc_backend *g, const char *what, sdc_buf out, const float *want, size_t n, double tol) {
    uint16_t *bits = calloc(n + 1, sizeof *bits);
    float *got = malloc(n * sizeof(float));
    cr_assert_eq(g->ops->download(g, (float *)bits, out.p, sdc_act_floats(out.type, n)), SDC_OK, "%s",
                 sdc_last_error());
    for (size_t i = 0; i < n; i++) got[i] = from_bits(out.type, bits[i]);
    size_t worst = 0;
    const double e = max_rel_err(got, want, n, &worst);
    if (!(e <= tol)) print_mismatches(what, got, want, n, tol, 5);
    cr_assert(e <= tol, "%s %s: cuda vs cpu max rel err %.3g > %.1e (at %zu)", what, tn(out.type), e, tol, worst);
    fprintf(stderr, "cuda %s %s: max rel err %.2e\n", what, tn(out.type), e);
    free(bits), free(got);
}

/* host values rounded to t, uploaded as fp32 (weights for load_*) */
static float *rounded(sdc_dtype t, size_t n, uint64_t seed, float scale) {
    float *v = test_random(n, seed, scale);
    for (size_t i = 0; i < n; i++) v[i] = from_bits(t, to_bits(t, v[i]));
    return v;
}

/* convert: fp32 -> half -> fp32 on both backends, bit for bit the host's
 * round to nearest even (past fp16's range, a subnormal, a tie) */
Test(cuda_halfops, convert) {
    sdc_backend *g = gpu_mem(0), *c = test_cpu_backend();
    const size_t n = 1001;
    float *x = test_random(n, 40, 4.0f), *back = malloc(n * sizeof(float));
    x[0] = 70000.0f, x[1] = -1e-6f, x[2] = 1.0f / 3.0f, x[3] = 1.0f + 1.0f / 2048.0f;
    uint16_t *bits = calloc(n + 1, sizeof *bits);
    float *dx = dev(g, x, n), *dback = NULL;
    cr_assert_eq(g->ops->alloc(g, n, &dback), SDC_OK);
    for (int k = 0; k < 2; k++) {
        const sdc_dtype t = HALF[k];
        sdc_buf dh = hout(g, t, n);
        sdc_buf chb = {calloc(n + 1, 2), t};
        cr_assert_eq(g->ops->convert(g, dh, SDC_F32(dx), n), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(c->ops->convert(c, chb, SDC_F32(x), n), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(g->ops->download(g, (float *)bits, dh.p, sdc_act_floats(t, n)), SDC_OK);
        for (size_t i = 0; i < n; i++) {
            const uint16_t want = to_bits(t, x[i]);
            cr_assert_eq(bits[i], want, "cuda %s of %g: 0x%04x, expected 0x%04x", tn(t), (double)x[i], bits[i], want);
            cr_assert_eq(((uint16_t *)chb.p)[i], want, "cpu %s of %g", tn(t), (double)x[i]);
        }
        cr_assert_eq(g->ops->convert(g, SDC_F32(dback), dh, n), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(g->ops->download(g, back, dback, n), SDC_OK);
        for (size_t i = 0; i < n; i++) {
            const float w = from_bits(t, bits[i]);
            cr_assert(back[i] == w || (isnan(back[i]) && isnan(w)), "widened %s %zu: %g, expected %g", tn(t), i,
                      (double)back[i], (double)w);
        }
        g->ops->free(g, dh.p);
        free(chb.p);
    }
    free(x), free(back), free(bits);
    g->ops->free(g, dx), g->ops->free(g, dback);
    sdc_backend_destroy(g);
    sdc_backend_destroy(c);
}

/* linear with bias: half activations, weights of their type. With a bias,
 * by cuBLASLt with the bias in its epilogue, from a half copy of the bias:
 * made with the weights when the bias is loaded as one (load_tensor of an
 * fp32 vector: no allocation at the product), else at its first use (one
 * allocation, none the second time); with SDC_LINEAR=cublas, by GemmEx and
 * a bias kernel (no allocation). The bias is the second half of a stacked
 * allocation: its copy goes when that allocation is freed, and a bias
 * given afterwards is the one used. */
static void linear_case(bool gemm, bool loaded, int h) {
    if (gemm) setenv("SDC_LINEAR", "cublas", 1);
    sdc_backend *g = gpu_mem(0), *c = test_cpu_backend();
    unsetenv("SDC_LINEAR");
    const int m = small_shapes() ? 37 : 4096, k = small_shapes() ? 72 : 320, n = small_shapes() ? 40 : 1280;
    const sdc_dtype t = HALF[h];
    g->weight_type = t;
    hin x = hin_make(g, t, (size_t)m * k, 41, 1.0f);
    float *w = rounded(t, (size_t)n * k, 42, 0.1f), *b = test_random(2 * (size_t)n, 43, 0.5f);
    float *y = malloc((size_t)m * n * sizeof(float)), *stack = NULL;
    if (loaded) {
        cr_assert_eq(g->ops->load_tensor(g, SDC_DT_F32, b, SDC_DT_F32, 2 * (size_t)n, (void **)&stack), SDC_OK,
                     "%s", sdc_last_error());
    } else {
        stack = dev(g, b, 2 * (size_t)n);
    }
    float *db = stack + n;
    sdc_weight dw = {.type = t};
    cr_assert_eq(g->ops->load_tensor(g, t, w, SDC_DT_F32, (size_t)n * k, &dw.p), SDC_OK, "%s", sdc_last_error());
    sdc_buf dy = hout(g, t, (size_t)m * n);
    const char *path = gemm ? "GemmEx + bias kernel" : loaded ? "Lt, loaded bias" : "Lt";
    char what[80];
    for (int bias = 0; bias < 3; bias++) {
        c->ops->linear(c, SDC_F32(y), SDC_F32(x.host), SDC_WEIGHT_F32(w), bias ? b + n : NULL, m, k, n);
        const size_t allocs = g->allocations;
        cr_assert_eq(g->ops->linear(g, dy, x.d, dw, bias ? db : NULL, m, k, n), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(g->allocations - allocs, (size_t)(bias == 1 && !gemm && !loaded),
                     "linear, bias %d, %s: allocations", bias, path);
        snprintf(what, sizeof what, "linear%s (%s)", bias ? " + bias" : "", path);
        hexpect(g, what, dy, y, (size_t)m * n, TOL_PRODUCT[h]);
    }
    size_t before = 0, after = 0, peak = 0;
    g->ops->memory(g, &before, &peak);
    g->ops->free(g, stack);
    g->ops->memory(g, &after, &peak);
    const size_t copy = loaded ? 2 * (size_t)n * 2 : gemm ? 0 : (size_t)n * 2;
    cr_assert_eq(before - after, 2 * (size_t)n * sizeof(float) + copy, "freeing the stacked biases freed %zu bytes",
                 before - after);
    for (int i = 0; i < n; i++) b[i] = -b[n + i] + 0.25f;
    db = dev(g, b, n);
    c->ops->linear(c, SDC_F32(y), SDC_F32(x.host), SDC_WEIGHT_F32(w), b, m, k, n);
    cr_assert_eq(g->ops->linear(g, dy, x.d, dw, db, m, k, n), SDC_OK, "%s", sdc_last_error());
    snprintf(what, sizeof what, "linear + another bias (%s)", path);
    hexpect(g, what, dy, y, (size_t)m * n, TOL_PRODUCT[h]);
    g->ops->free(g, dw.p), g->ops->free(g, dy.p), g->ops->free(g, db);
    hin_free(g, &x);
    free(w), free(b), free(y);
    sdc_backend_destroy(g);
    sdc_backend_destroy(c);
}

Test(cuda_halfops, linear) {
    for (int h = 0; h < 2; h++) {
        linear_case(false, false, h);
        linear_case(false, true, h);
        linear_case(true, false, h);
    }
}

/* conv2d on half activations, by the implicit GEMM of conv_igemm.cu or,
 * with SDC_CONV=im2col, by im2col + cuBLAS, or with SDC_CONV=cudnn by
 * cuDNN (the comparison column, the emulated cuDNN of kernels/emu/cudnn.cc
 * on the emulated device) where the input channels are a multiple of 8;
 * which one ran shows in the scratch: the implicit GEMM takes none, the
 * others take im2col blocks, cuDNN's workspace or its padded output. Kernels whose channels
 * the weights' layout pads (4 and 3 in: the U-Net's and the VAE encoder's
 * conv_in, read by element; 3 out: the VAE's conv_out). scale != 1: the
 * launcher called directly with that output scale, against the CPU's
 * result times it. */
enum { OURS, IM2COL, CUDNN };
static const char *const CONV_PATH[] = {"implicit", "im2col", "cudnn"};

static void conv_run(int tile, int path, int h, int n, int H, int W, int cin, int cout, int k, int stride, int pad,
                     bool residual, float scale) {
    if (path != OURS) setenv("SDC_CONV", path == IM2COL ? "im2col" : "cudnn", 1);
    if (tile) setenv("SDC_CONV_TILE", tile == 64 ? "64" : "128", 1);
    sdc_backend *g = gpu_mem(0), *c = test_cpu_backend();
    unsetenv("SDC_CONV");
    unsetenv("SDC_CONV_TILE");
    cr_assert_not_null(g, "%s", sdc_last_error());
    const int ran = path == CUDNN && cin % 8 ? OURS : path; /* cuDNN takes x's channels as the weights have them */
    const sdc_dtype t = HALF[h];
    const int ho = (H + 2 * pad - k) / stride + 1, wo = (W + 2 * pad - k) / stride + 1;
    const size_t nx = (size_t)n * H * W * cin, ny = (size_t)n * ho * wo * cout;
    hin x = hin_make(g, t, nx, 44, 1.0f), r = hin_make(g, t, ny, 45, 1.0f);
    float *w = rounded(t, (size_t)cout * k * k * cin, 46, 0.05f), *b = test_random(cout, 47, 0.5f);
    float *y = malloc(ny * sizeof(float)), *db = dev(g, b, cout);
    sdc_weight dw;
    cr_assert_eq(g->ops->load_conv(g, t, w, SDC_DT_F32, cout, k, cin, &dw), SDC_OK, "%s", sdc_last_error());
    sdc_buf dy = hout(g, t, ny);
    c->ops->conv2d(c, SDC_F32(y), SDC_F32(x.host), SDC_WEIGHT_F32(w), b, SDC_F32(residual ? r.host : NULL), n, H, W,
                   cin, cout, k, stride, pad);
    const size_t allocs = g->allocations;
    if (scale != 1.0f) {
        for (size_t i = 0; i < ny; i++) y[i] *= scale;
        const int cp = (cin + 7) / 8 * 8, op = (cout + 7) / 8 * 8;
        cr_assert_eq(g->ops->sync(g), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(sdc_conv_igemm_cuda(dy.p, x.d.p, dw.p, db, residual ? r.d.p : NULL, (int)t, n, H, W, cin, cp,
                                         cout, op, k, stride, pad, scale, tile, 0, NULL),
                     0, "conv_igemm launch");
        cr_assert_eq(g->ops->sync(g), SDC_OK, "%s", sdc_last_error());
    } else {
        cr_assert_eq(
            g->ops->conv2d(g, dy, x.d, dw, db, residual ? r.d : SDC_NO_BUF, n, H, W, cin, cout, k, stride, pad),
            SDC_OK, "%s", sdc_last_error());
    }
    /* (a plain 1x1 product by cuBLAS takes no scratch either; cuDNN on a GPU
     * may choose an algorithm without workspace, the emulated one never) */
    if (ran == OURS || (ran == IM2COL && k > 1) || (ran == CUDNN && (emu() || cout % 8)))
        cr_assert_eq(g->allocations == allocs, ran == OURS, "cin %d: the %s path was expected", cin,
                     CONV_PATH[ran]);
    char what[112];
    snprintf(what, sizeof what, "conv (%s%s) %dx%dx%dx%d->%d k%d s%d p%d%s x%g", CONV_PATH[ran],
             ran == OURS ? (tile == 64 ? " 64" : tile == 128 ? " 128" : "") : "", n, H, W, cin, cout, k, stride,
             pad, residual ? " +res" : "", (double)scale);
    hexpect(g, what, dy, y, ny, TOL_PRODUCT[h]);
    g->ops->free(g, dw.p), g->ops->free(g, dy.p), g->ops->free(g, db);
    hin_free(g, &x), hin_free(g, &r);
    free(w), free(b), free(y);
    sdc_backend_destroy(g);
    sdc_backend_destroy(c);
}

static void conv_tile(int tile, int path, int h, int n, int H, int W, int cin, int cout, int k, int stride,
                      int pad, bool residual) {
    conv_run(tile, path, h, n, H, W, cin, cout, k, stride, pad, residual, 1.0f);
}

static void conv_half(int path, int h, int n, int H, int W, int cin, int cout, int k, int stride, int pad,
                      bool residual) {
    conv_tile(0, path, h, n, H, W, cin, cout, k, stride, pad, residual);
}

/* Output pixels and channels that leave partial tiles (both tile shapes
 * of the table: 128 x 128 and 64 x 64), K not a multiple of the 32 a step
 * takes (3 x 3 x 8 = 72), several K steps, stride 2 with and without
 * padding (the VAE's downsampler pads right and bottom itself), 1x1, the
 * residual and the output scale in the epilogue, input channels read by
 * element (4, 3, 12: a chunk of 8 that crosses pixels). */
Test(cuda_halfops, conv2d_implicit_gemm) {
    for (int h = 0; h < 2; h++) {
        if (small_shapes()) {
            for (int tile = 64; tile <= 128; tile += 64) {
                conv_tile(tile, OURS, h, 2, 6, 5, 16, 24, 3, 1, 1, true);
                conv_tile(tile, OURS, h, 2, 6, 5, 16, 24, 1, 1, 0, true);
                conv_tile(tile, OURS, h, 1, 7, 6, 16, 16, 3, 2, 1, false);
                conv_tile(tile, OURS, h, 1, 8, 8, 16, 16, 3, 2, 0, false);
                conv_tile(tile, OURS, h, 1, 9, 17, 8, 136, 3, 1, 1, true); /* 153 pixels, 136 channels */
                conv_tile(tile, OURS, h, 1, 6, 6, 16, 3, 3, 1, 1, false);  /* conv_out: 3 output channels */
                conv_tile(tile, OURS, h, 1, 5, 5, 72, 40, 3, 1, 1, false);  /* K = 648: 21 steps of 32 */
                conv_tile(tile, OURS, h, 2, 5, 6, 4, 16, 3, 1, 1, false);   /* conv_in: 4 channels */
                conv_tile(tile, OURS, h, 1, 7, 7, 3, 24, 3, 1, 1, false);   /* the VAE encoder's: 3 */
                conv_tile(tile, OURS, h, 1, 6, 5, 12, 8, 3, 2, 1, true);
                conv_tile(tile, OURS, h, 1, 5, 4, 5, 16, 1, 1, 0, false);
                conv_run(tile, OURS, h, 2, 6, 5, 16, 24, 3, 1, 1, true, 0.5f);
                conv_run(tile, OURS, h, 1, 5, 5, 4, 16, 3, 1, 1, false, 1.0f / 3);
            }
        } else {
            conv_half(OURS, h, 2, 64, 64, 320, 320, 3, 1, 1, true);
            conv_half(OURS, h, 2, 32, 32, 320, 640, 1, 1, 0, true);
            conv_half(OURS, h, 2, 64, 64, 320, 320, 3, 2, 1, false);
            conv_half(OURS, h, 2, 8, 8, 1280, 1280, 3, 1, 1, true);
            conv_half(OURS, h, 1, 256, 256, 128, 3, 3, 1, 1, false);
            conv_half(OURS, h, 2, 64, 64, 4, 320, 3, 1, 1, false);
            conv_half(OURS, h, 1, 512, 512, 3, 128, 3, 1, 1, false);
        }
    }
}

/* The im2col path (SDC_CONV=im2col), with input channels that are not a
 * multiple of 8 too (conv_in's 4). */
Test(cuda_halfops, conv2d_im2col) {
    for (int h = 0; h < 2; h++) {
        if (small_shapes()) {
            conv_half(IM2COL, h, 2, 6, 5, 16, 24, 3, 1, 1, true);
            conv_half(IM2COL, h, 2, 6, 5, 16, 24, 1, 1, 0, true);
            conv_half(IM2COL, h, 1, 7, 6, 16, 16, 3, 2, 1, false);
            conv_half(IM2COL, h, 2, 5, 5, 4, 16, 3, 1, 1, false); /* conv_in: 4 input channels */
        } else {
            conv_half(IM2COL, h, 2, 64, 64, 320, 320, 3, 1, 1, true);
            conv_half(IM2COL, h, 2, 64, 64, 4, 320, 3, 1, 1, false);
        }
    }
}

/* cuDNN's convolution (SDC_CONV=cudnn): the comparison column of make
 * bench, kept under test like the others; conv_in's 4 channels stay on
 * the implicit GEMM. */
Test(cuda_halfops, conv2d_cudnn) {
    for (int h = 0; h < 2; h++) {
        if (small_shapes()) {
            conv_half(CUDNN, h, 2, 6, 5, 16, 24, 3, 1, 1, true);
            conv_half(CUDNN, h, 2, 6, 5, 16, 24, 1, 1, 0, true);
            conv_half(CUDNN, h, 1, 7, 6, 16, 16, 3, 2, 1, false);
            conv_half(CUDNN, h, 1, 6, 6, 16, 3, 3, 1, 1, false); /* 3 output channels, padded to 8 */
            conv_half(CUDNN, h, 2, 5, 5, 4, 16, 3, 1, 1, false); /* conv_in: the implicit GEMM */
        } else {
            conv_half(CUDNN, h, 2, 64, 64, 320, 320, 3, 1, 1, true);
            conv_half(CUDNN, h, 2, 32, 32, 320, 640, 1, 1, 0, true);
            conv_half(CUDNN, h, 1, 256, 256, 128, 3, 3, 1, 1, false);
        }
    }
}

/* attention on half q, k, v (k and v strided in a packed buffer, as the
 * models pass them), by the fused kernel (flash_attn.cu: head dims up to
 * 160) or, with SDC_ATTN=cublas and for wider heads, by two GEMMs around a
 * softmax, or with SDC_ATTN=cudnn by cuDNN's fused attention (the
 * comparison column; the emulated one of kernels/emu/cudnn_graph.cc on the
 * emulated device) up to its head dims; which one ran shows in the
 * scratch: the fused kernel takes none, the GEMM path its score blocks,
 * cuDNN its workspace (always some on the emulated device; a GPU's engine
 * may take none). mem_mb: the emulated device's size, which splits the
 * GEMM path's queries into blocks. */
enum { FUSED, GEMM, DNN };
static const char *const ATTN_PATH[] = {"fused", "gemm", "cudnn"};

static void attention_path(int mem_mb, int path, int h, int batch, int heads, int tq, int tk, int d, bool causal) {
    if (path != FUSED) setenv("SDC_ATTN", path == GEMM ? "cublas" : "cudnn", 1);
    sdc_backend *g = gpu_mem(mem_mb), *c = test_cpu_backend();
    unsetenv("SDC_ATTN");
    const int ran = path == FUSED && d > 160 ? GEMM : path == DNN && d > 256 ? GEMM : path;
    const sdc_dtype t = HALF[h];
    const int width = heads * d, qs = 3 * width, kvs = 2 * width;
    const size_t nq = (size_t)batch * tq * qs, nkv = (size_t)batch * tk * kvs, no = (size_t)batch * tq * width;
    hin q = hin_make(g, t, nq, 48, 2.0f), kv = hin_make(g, t, nkv, 49, 2.0f);
    float *o = malloc(no * sizeof(float));
    sdc_buf dout = hout(g, t, no);
    c->ops->attention(c, SDC_F32(o), SDC_F32(q.host), SDC_F32(kv.host), SDC_F32(kv.host + width), batch, heads, tq, tk,
                      d, qs, kvs, causal);
    const size_t allocs = g->allocations;
    cr_assert_eq(g->ops->attention(g, dout, q.d, kv.d, sdc_at(kv.d, width), batch, heads, tq, tk, d, qs, kvs, causal),
                 SDC_OK, "%s", sdc_last_error());
    if (ran != DNN || emu())
        cr_assert_eq(g->allocations == allocs, ran == FUSED, "d %d: the %s path was expected", d, ATTN_PATH[ran]);
    char what[96];
    snprintf(what, sizeof what, "attention (%s) b%d h%d %dx%d d%d%s", ATTN_PATH[ran], batch, heads, tq, tk, d,
             causal ? " causal" : "");
    hexpect(g, what, dout, o, no, TOL_PRODUCT[h]);
    free(o);
    g->ops->free(g, dout.p);
    hin_free(g, &q), hin_free(g, &kv);
    sdc_backend_destroy(g);
    sdc_backend_destroy(c);
}

static void attention_half(int mem_mb, bool gemm, int h, int batch, int heads, int tq, int tk, int d, bool causal) {
    attention_path(mem_mb, gemm ? GEMM : FUSED, h, batch, heads, tq, tk, d, causal);
}

/* Every head dim SD has (40, 64, 80, 160) and others up to 160, with
 * query and key counts that leave partial tiles (64 queries a block; 64
 * keys a tile up to d 80, 32 above), several key tiles, cross-attention to
 * 77 and 154 keys, the causal mask across tiles, batch and heads > 1. */
Test(cuda_halfops, attention_fused) {
    for (int h = 0; h < 2; h++) {
        if (small_shapes()) {
            attention_half(0, false, h, 2, 2, 70, 70, 40, false);  /* self, tails, two key tiles */
            attention_half(0, false, h, 2, 3, 19, 77, 64, false);  /* cross, 77 tokens */
            attention_half(0, false, h, 1, 2, 9, 154, 64, false);  /* cross, a long prompt's 154 */
            attention_half(0, false, h, 1, 2, 77, 77, 64, true);   /* the text encoder's causal mask */
            attention_half(0, false, h, 1, 1, 130, 130, 24, true); /* causal over three query blocks */
            attention_half(0, false, h, 1, 2, 40, 40, 80, false);
            attention_half(0, false, h, 2, 1, 33, 70, 160, false); /* 32-key tiles */
            attention_half(0, false, h, 1, 1, 16, 16, 8, false);   /* the smallest head */
        } else {
            attention_half(0, false, h, 2, 8, 4096, 4096, 40, false);
            attention_half(0, false, h, 2, 10, 1024, 77, 64, false);
            attention_half(0, false, h, 2, 10, 1024, 1024, 64, false);
            attention_half(0, false, h, 2, 10, 256, 256, 80, false);
            attention_half(0, false, h, 2, 20, 64, 64, 160, false);
            attention_half(0, false, h, 1, 12, 77, 77, 64, true);
        }
    }
}

/* The GEMM path: SDC_ATTN=cublas, and the VAE's single 512-wide head. */
Test(cuda_halfops, attention_gemm) {
    for (int h = 0; h < 2; h++) {
        if (small_shapes()) {
            attention_half(0, true, h, 2, 2, 37, 37, 40, false);
            attention_half(0, true, h, 2, 3, 19, 77, 64, false);
            attention_half(0, true, h, 1, 2, 77, 77, 64, true);
            attention_half(0, false, h, 1, 1, 16, 16, 512, false); /* the VAE's head */
            /* 16 MiB device: query blocks of 109 rows, causal rows past the first block */
            attention_half(16, true, h, 1, 2, 300, 300, 40, true);
        } else {
            attention_half(0, true, h, 2, 8, 4096, 4096, 40, false);
            attention_half(0, false, h, 1, 1, 1024, 1024, 512, false);
        }
    }
}

/* cuDNN's fused attention (SDC_ATTN=cudnn): the comparison column of make
 * bench, kept under test like the others; the VAE's 512-wide head stays on
 * the GEMM path. */
Test(cuda_halfops, attention_cudnn) {
    for (int h = 0; h < 2; h++) {
        if (small_shapes()) {
            attention_path(0, DNN, h, 2, 2, 70, 77, 40, false);
            attention_path(0, DNN, h, 1, 2, 77, 77, 64, true);
            attention_path(0, DNN, h, 2, 1, 33, 70, 160, false);
            attention_path(0, DNN, h, 1, 1, 16, 16, 512, false);
        } else {
            attention_path(0, DNN, h, 2, 8, 4096, 4096, 40, false);
            attention_path(0, DNN, h, 2, 8, 4096, 77, 40, false);
            attention_path(0, DNN, h, 1, 12, 77, 77, 64, true);
            attention_path(0, DNN, h, 2, 8, 256, 256, 160, false);
        }
    }
}

/* layer norm and group norm (+ SiLU) on half activations */
Test(cuda_halfops, norms) {
    sdc_backend *g = gpu_mem(0), *c = test_cpu_backend();
    const bool sm = small_shapes();
    const int n_img = 2, hw = sm ? 37 : 4096, ch = sm ? 40 : 320, groups = sm ? 8 : 32;
    const size_t n = (size_t)n_img * hw * ch;
    float *gm = test_random(ch, 50, 1.0f), *bt = test_random(ch, 51, 1.0f), *y = malloc(n * sizeof(float));
    float *dg = dev(g, gm, ch), *dbt = dev(g, bt, ch);
    for (int h = 0; h < 2; h++) {
        const sdc_dtype t = HALF[h];
        hin x = hin_make(g, t, n, 52, 3.0f);
        sdc_buf dy = hout(g, t, n);
        c->ops->layer_norm(c, SDC_F32(y), SDC_F32(x.host), gm, bt, n_img * hw, ch, 1e-5f);
        cr_assert_eq(g->ops->layer_norm(g, dy, x.d, dg, dbt, n_img * hw, ch, 1e-5f), SDC_OK, "%s", sdc_last_error());
        hexpect(g, "layer_norm", dy, y, n, TOL_ONE[h]);
        for (int silu = 0; silu < 2; silu++) {
            c->ops->group_norm(c, SDC_F32(y), SDC_F32(x.host), gm, bt, n_img, hw, ch, groups, 1e-5f, silu);
            cr_assert_eq(g->ops->group_norm(g, dy, x.d, dg, dbt, n_img, hw, ch, groups, 1e-5f, silu), SDC_OK, "%s",
                         sdc_last_error());
            hexpect(g, silu ? "group_norm + silu" : "group_norm", dy, y, n, TOL_ONE[h]);
        }
        g->ops->free(g, dy.p);
        hin_free(g, &x);
    }
    free(gm), free(bt), free(y);
    g->ops->free(g, dg), g->ops->free(g, dbt);
    sdc_backend_destroy(g);
    sdc_backend_destroy(c);
}

/* The elementwise and layout ops on half activations: each computes in
 * fp32 and rounds once. */
Test(cuda_halfops, elementwise) {
    sdc_backend *g = gpu_mem(0), *c = test_cpu_backend();
    const int nb = 2, H = 5, W = 6, C = 24, f = 36, rows = nb * H * W;
    const size_t n = (size_t)rows * C, big = (size_t)nb * (2 * H) * (2 * W + 1) * C * 2;
    float *y = malloc(big * sizeof(float));
    for (int h = 0; h < 2; h++) {
        const sdc_dtype t = HALF[h];
        const double tol = TOL_ONE[h];
        hin a = hin_make(g, t, n, 55, 3.0f), b = hin_make(g, t, n, 56, 3.0f);
        hin gg = hin_make(g, t, (size_t)rows * 2 * f, 57, 3.0f), v = hin_make(g, t, (size_t)nb * C, 58, 1.0f);
        sdc_buf dy = hout(g, t, big);
        const sdc_act acts[5] = {SDC_ACT_GELU, SDC_ACT_QUICK_GELU, SDC_ACT_SILU, SDC_ACT_RELU, SDC_ACT_TANH3};
        for (int k = 0; k < 5; k++) {
            c->ops->activation(c, SDC_F32(y), SDC_F32(a.host), n, acts[k]);
            cr_assert_eq(g->ops->activation(g, dy, a.d, n, acts[k]), SDC_OK, "%s", sdc_last_error());
            hexpect(g, "activation", dy, y, n, tol);
        }
        c->ops->add(c, SDC_F32(y), SDC_F32(a.host), SDC_F32(b.host), n);
        cr_assert_eq(g->ops->add(g, dy, a.d, b.d, n), SDC_OK, "%s", sdc_last_error());
        hexpect(g, "add", dy, y, n, tol);
        c->ops->geglu(c, SDC_F32(y), SDC_F32(gg.host), rows, f);
        cr_assert_eq(g->ops->geglu(g, dy, gg.d, rows, f), SDC_OK, "%s", sdc_last_error());
        hexpect(g, "geglu", dy, y, (size_t)rows * f, tol);
        c->ops->add_rows(c, SDC_F32(y), SDC_F32(a.host), SDC_F32(v.host), nb, (size_t)H * W, C);
        cr_assert_eq(g->ops->add_rows(g, dy, a.d, v.d, nb, (size_t)H * W, C), SDC_OK, "%s", sdc_last_error());
        hexpect(g, "add_rows", dy, y, n, tol);
        /* layout ops move values: exact */
        c->ops->concat_channels(c, SDC_F32(y), SDC_F32(a.host), SDC_F32(b.host), (size_t)rows, C / 2, C / 2);
        cr_assert_eq(g->ops->concat_channels(g, dy, a.d, b.d, (size_t)rows, C / 2, C / 2), SDC_OK, "%s",
                     sdc_last_error());
        hexpect(g, "concat_channels", dy, y, n, 0.0);
        c->ops->pad(c, SDC_F32(y), SDC_F32(a.host), nb, H, W, C, 0, 1, 0, 1);
        cr_assert_eq(g->ops->pad(g, dy, a.d, nb, H, W, C, 0, 1, 0, 1), SDC_OK, "%s", sdc_last_error());
        hexpect(g, "pad", dy, y, (size_t)nb * (H + 1) * (W + 1) * C, 0.0);
        c->ops->upsample_nearest(c, SDC_F32(y), SDC_F32(a.host), nb, H, W, C, 2 * H, 2 * W + 1);
        cr_assert_eq(g->ops->upsample_nearest(g, dy, a.d, nb, H, W, C, 2 * H, 2 * W + 1), SDC_OK, "%s",
                     sdc_last_error());
        hexpect(g, "upsample_nearest", dy, y, (size_t)nb * 2 * H * (2 * W + 1) * C, 0.0);
        sdc_buf dz = hout(g, t, n);
        cr_assert_eq(g->ops->copy(g, dz, a.d, n), SDC_OK, "%s", sdc_last_error());
        hexpect(g, "copy", dz, a.host, n, 0.0);
        g->ops->free(g, dz.p);
        /* the timestep embedding: fp32 arguments, results rounded to t */
        c->ops->timestep_embedding(c, SDC_F32(y), nb, 320, 981.0);
        cr_assert_eq(g->ops->timestep_embedding(g, dy, nb, 320, 981.0), SDC_OK, "%s", sdc_last_error());
        hexpect(g, "timestep_embedding", dy, y, (size_t)nb * 320, tol);
        g->ops->free(g, dy.p);
        hin_free(g, &a), hin_free(g, &b), hin_free(g, &gg), hin_free(g, &v);
    }
    free(y);
    sdc_backend_destroy(g);
    sdc_backend_destroy(c);
}

/* Ops say which types they take: activations of two types in one op, half
 * activations with weights of another type, and half activations on the
 * CPU are errors that name the op (nothing runs). */
Test(cuda_halfops, types_refused) {
    sdc_backend *g = gpu_mem(0), *c = test_cpu_backend();
    const size_t n = 64;
    sdc_buf a16 = hout(g, SDC_DT_F16, n), b16 = hout(g, SDC_DT_BF16, n);
    cr_assert_eq(g->ops->add(g, a16, a16, b16, n), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "add") && strstr(sdc_last_error(), "BF16"), "%s", sdc_last_error());
    float *w = rounded(SDC_DT_BF16, 8 * 8, 59, 0.1f);
    sdc_weight dw = {.type = SDC_DT_BF16};
    cr_assert_eq(g->ops->load_tensor(g, SDC_DT_BF16, w, SDC_DT_F32, 64, &dw.p), SDC_OK);
    cr_assert_eq(g->ops->linear(g, a16, a16, dw, NULL, 8, 8, 8), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "linear"), "%s", sdc_last_error());
    uint16_t host[64] = {0};
    cr_assert_eq(c->ops->add(c, (sdc_buf){host, SDC_DT_F16}, (sdc_buf){host, SDC_DT_F16},
                             (sdc_buf){host, SDC_DT_F16}, n), SDC_ERR_ARG);
    cr_assert(strstr(sdc_last_error(), "add"), "%s", sdc_last_error());
    g->ops->free(g, a16.p), g->ops->free(g, b16.p), g->ops->free(g, dw.p);
    free(w);
    sdc_backend_destroy(g);
    sdc_backend_destroy(c);
}
