/* test_cuda.c - the CUDA backend against the CPU backend, op by op, on
 * random inputs. Both compute in fp32 (cuBLAS in pedantic math: no TF32),
 * so the tolerance is fp32 vs fp32 with different summation orders:
 * normwise relative error <= 1e-5 (2e-5 for the long reductions of
 * attention at 4096 keys); data movement ops are exact (0).
 *
 * The same tests run on two devices. On a GPU (the nvcc build, sdc_tests)
 * at the real SD shapes. On the emulated device (the same kernels compiled
 * for the host, sdc_tests_emu, run by make test on every machine) at small
 * shapes that still take every path of every kernel: sizes that are not
 * multiples of the block or of each other, rows longer and shorter than a
 * block, every head dim SD uses, causal rows, and a small device memory so
 * that the blocked im2col and the blocked attention take several blocks
 * with a short last one. A machine with neither prints
 * "SKIP: no CUDA device". */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"
#include "backend/backend.h"
#include "backend/cuda.h"
#include "context.h"
#include "model/safetensors.h"
#include "nets/unet.h"
#include "cuda_testutil.h"
#include "testutil.h"

Test(cuda, built_with_nvcc) {
    if (small_shapes()) {
        cr_assert_eq(sdc_cuda_compiled(), 1, "the emulated build has the CUDA objects");
        return;
    }
#ifdef SDC_HAVE_CUDA
    cr_assert_eq(sdc_cuda_compiled(), 1, "built with nvcc, but the CUDA objects are not linked");
#else
    cr_assert_eq(sdc_cuda_compiled(), 0);
#endif
}

static sdc_backend *gpu(void) { return gpu_mem(0); }

Test(cuda, device_probe) {
    sdc_backend *be = gpu();
    char name[256];
    sdc_cuda_device_name(name, sizeof name);
    cr_assert(name[0], "device 0 has no name");
    cr_assert_eq(strstr(name, "emulated") != NULL, small_shapes() != 0, "device '%s' on a %s build", name,
                 small_shapes() ? "emulated" : "GPU");
    size_t free_b = 0, total_b = 0;
    cr_assert_eq(sdc_cuda_mem_info(&free_b, &total_b), 0);
    cr_assert(total_b > 0 && free_b <= total_b);
    fprintf(stderr, "cuda: device 0: %s, %.0f MiB\n", name, total_b / 1048576.0);
    sdc_backend_destroy(be);
}

/* Asking for more than the device has is SDC_ERR_OOM with a message that
 * says how much was needed and how much is free, and the backend goes on
 * working (the emulated device at 16 MiB; a GPU at its own size). */
Test(cuda, out_of_memory_is_a_clear_error) {
    sdc_backend *g = gpu_mem(16);
    size_t free_b = 0, total_b = 0;
    cr_assert_eq(sdc_cuda_mem_info(&free_b, &total_b), 0);
    float *p = NULL;
    const size_t n = total_b / sizeof(float) + ((size_t)1 << 20);
    cr_assert_eq(g->ops->alloc(g, n, &p), SDC_ERR_OOM, "%zu floats on a %zu-byte device", n, total_b);
    cr_assert(strstr(sdc_last_error(), "out of device memory") && strstr(sdc_last_error(), "MiB needed"), "%s",
              sdc_last_error());
    fprintf(stderr, "cuda out of memory: %s\n", sdc_last_error());
    cr_assert_eq(g->ops->alloc(g, 1024, &p), SDC_OK, "after a failed allocation: %s", sdc_last_error());
    g->ops->free(g, p);
    sdc_backend_destroy(g);
}

static void expect(sdc_backend *g, const char *what, const float *d_out, const float *want, size_t n, double tol) {
    float *got = malloc(n * sizeof(float));
    cr_assert_eq(g->ops->download(g, got, d_out, n), SDC_OK, "%s", sdc_last_error());
    size_t worst;
    double e = max_rel_err(got, want, n, &worst);
    if (!(e <= tol)) print_mismatches(what, got, want, n, tol, 5);
    cr_assert(e <= tol, "%s: cuda vs cpu max rel err %.3g > %.0e", what, e, tol);
    fprintf(stderr, "cuda %s: max rel err %.2e\n", what, e);
    free(got);
}

/* linear (m x k -> n, with bias), layer norm over k, group norm of n_img
 * images of hw pixels and k channels in `groups` groups (+ SiLU) */
static void linear_norms_case(int m, int k, int n, int n_img, int groups) {
    sdc_backend *g = gpu(), *c = test_cpu_backend();
    cr_assert_eq(m % n_img, 0);
    float *x = test_random((size_t)m * k, 1, 1.0f), *w = test_random((size_t)n * k, 2, 0.05f);
    float *b = test_random(n, 3, 0.5f), *gm = test_random(k, 4, 1.0f), *bt = test_random(k, 5, 1.0f);
    const size_t ny = (size_t)m * (n > k ? n : k);
    float *y = malloc(ny * sizeof(float)), *dy;
    float *dx = dev(g, x, (size_t)m * k), *dw = dev(g, w, (size_t)n * k), *db = dev(g, b, n);
    float *dg = dev(g, gm, k), *dbt = dev(g, bt, k);
    cr_assert_eq(g->ops->alloc(g, ny, &dy), SDC_OK);
    char what[96];
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        c->ops->linear(c, SDC_F32(y), SDC_F32(x), SDC_WEIGHT_F32(w), with_bias ? b : NULL, m, k, n);
        cr_assert_eq(g->ops->linear(g, SDC_F32(dy), SDC_F32(dx), SDC_WEIGHT_F32(dw), with_bias ? db : NULL, m, k, n), SDC_OK, "%s", sdc_last_error());
        snprintf(what, sizeof what, "linear %dx%dx%d%s", m, k, n, with_bias ? " + bias" : "");
        expect(g, what, dy, y, (size_t)m * n, 1e-5);
    }
    c->ops->layer_norm(c, SDC_F32(y), SDC_F32(x), gm, bt, m, k, 1e-5f);
    cr_assert_eq(g->ops->layer_norm(g, SDC_F32(dy), SDC_F32(dx), dg, dbt, m, k, 1e-5f), SDC_OK);
    snprintf(what, sizeof what, "layer_norm %dx%d", m, k);
    expect(g, what, dy, y, (size_t)m * k, 1e-5);
    for (int silu = 0; silu < 2; silu++) {
        c->ops->group_norm(c, SDC_F32(y), SDC_F32(x), gm, bt, n_img, m / n_img, k, groups, 1e-5f, silu);
        cr_assert_eq(g->ops->group_norm(g, SDC_F32(dy), SDC_F32(dx), dg, dbt, n_img, m / n_img, k, groups, 1e-5f, silu), SDC_OK);
        snprintf(what, sizeof what, "group_norm %dx%dx%d/%d%s", n_img, m / n_img, k, groups, silu ? " + silu" : "");
        expect(g, what, dy, y, (size_t)m * k, 1e-5);
    }
    free(x), free(w), free(b), free(gm), free(bt), free(y);
    float *ptrs[] = {dx, dw, db, dg, dbt, dy};
    for (int i = 0; i < 6; i++) g->ops->free(g, ptrs[i]);
    sdc_backend_destroy(g);
    sdc_backend_destroy(c);
}

Test(cuda, linear_and_norms) {
    if (small_shapes()) {
        linear_norms_case(2 * 37, 40, 72, 2, 8);   /* rows under a block; 5 channels a group */
        linear_norms_case(3 * 21, 300, 33, 3, 30); /* rows over a block (256) */
    } else {
        linear_norms_case(2 * 4096, 320, 960, 2, 32);
    }
}

/* Group norm's statistics split over many blocks (kernels/norm.cu: up to
 * 64 ranges of pixels a group, merged by Chan's formula) on values far
 * from zero (500 + N(0, 1): where E[x^2] - E[x]^2 would lose every digit),
 * against the CPU's two passes in double; fp32, tolerance 1e-5. */
Test(cuda, group_norm_split_offset) {
    sdc_backend *g = gpu(), *c = test_cpu_backend();
    const int n = 2, hw = small_shapes() ? 33 * 31 : 64 * 64, ch = small_shapes() ? 64 : 320, groups = 32;
    const size_t nx = (size_t)n * hw * ch;
    float *x = test_random(nx, 61, 1.0f), *gm = test_random(ch, 62, 1.0f), *bt = test_random(ch, 63, 1.0f);
    for (size_t i = 0; i < nx; i++) x[i] += 500.0f;
    float *y = malloc(nx * sizeof(float)), *dx = dev(g, x, nx), *dg = dev(g, gm, ch), *dbt = dev(g, bt, ch), *dy;
    cr_assert_eq(g->ops->alloc(g, nx, &dy), SDC_OK);
    for (int silu = 0; silu < 2; silu++) {
        c->ops->group_norm(c, SDC_F32(y), SDC_F32(x), gm, bt, n, hw, ch, groups, 1e-5f, silu);
        cr_assert_eq(g->ops->group_norm(g, SDC_F32(dy), SDC_F32(dx), dg, dbt, n, hw, ch, groups, 1e-5f, silu), SDC_OK,
                     "%s", sdc_last_error());
        expect(g, silu ? "group_norm split, offset 500 + silu" : "group_norm split, offset 500", dy, y, nx, 1e-5);
    }
    free(x), free(gm), free(bt), free(y);
    g->ops->free(g, dx), g->ops->free(g, dg), g->ops->free(g, dbt), g->ops->free(g, dy);
    sdc_backend_destroy(g);
    sdc_backend_destroy(c);
}

/* mem_mb: the emulated device's size (sets the im2col block); flags: 1 bias,
 * 2 residual */
static void conv_case_mem(int mem_mb, int flags, int n, int h, int w, int cin, int cout, int k, int stride,
                          int pad) {
    sdc_backend *g = gpu_mem(mem_mb), *c = test_cpu_backend();
    const int ho = (h + 2 * pad - k) / stride + 1, wo = (w + 2 * pad - k) / stride + 1;
    const size_t nx = (size_t)n * h * w * cin, ny = (size_t)n * ho * wo * cout, nw = (size_t)cout * k * k * cin;
    float *x = test_random(nx, 6, 1.0f), *wt = test_random(nw, 7, 0.05f), *b = test_random(cout, 8, 0.5f);
    float *r = test_random(ny, 9, 1.0f), *y = malloc(ny * sizeof(float)), *dy;
    float *dx = dev(g, x, nx), *dw = dev(g, wt, nw), *db = dev(g, b, cout), *dr = dev(g, r, ny);
    cr_assert_eq(g->ops->alloc(g, ny, &dy), SDC_OK);
    const float *cb = flags & 1 ? b : NULL, *cr = flags & 2 ? r : NULL;
    c->ops->conv2d(c, SDC_F32(y), SDC_F32(x), SDC_WEIGHT_F32(wt), cb, SDC_F32(cr), n, h, w, cin, cout, k, stride, pad);
    cr_assert_eq(g->ops->conv2d(g, SDC_F32(dy), SDC_F32(dx), SDC_WEIGHT_F32(dw), flags & 1 ? db : NULL, SDC_F32(flags & 2 ? dr : NULL), n, h, w, cin, cout, k,
                                stride, pad), SDC_OK, "%s", sdc_last_error());
    char what[128];
    snprintf(what, sizeof what, "conv %dx%dx%dx%d->%d k%d s%d p%d%s%s", n, h, w, cin, cout, k, stride, pad,
             flags & 1 ? " +bias" : "", flags & 2 ? " +res" : "");
    expect(g, what, dy, y, ny, 1e-5);
    free(x), free(wt), free(b), free(r), free(y);
    g->ops->free(g, dx), g->ops->free(g, dw), g->ops->free(g, db), g->ops->free(g, dr), g->ops->free(g, dy);
    sdc_backend_destroy(g);
    sdc_backend_destroy(c);
}

static void conv_case(int n, int h, int w, int cin, int cout, int k, int stride, int pad) {
    conv_case_mem(0, 3, n, h, w, cin, cout, k, stride, pad);
}

Test(cuda, conv_unet_64x64x320) {
    if (small_shapes()) {
        conv_case(2, 9, 7, 8, 12, 3, 1, 1);
        conv_case_mem(0, 1, 1, 5, 6, 4, 5, 3, 1, 1); /* bias only */
        conv_case_mem(0, 0, 1, 5, 6, 4, 5, 3, 1, 1); /* neither */
    } else {
        conv_case(2, 64, 64, 320, 320, 3, 1, 1);
    }
}
Test(cuda, conv_unet_8x8x1280) {
    if (small_shapes()) /* 16 MiB device: 64 Ki-float im2col blocks, 227 rows each of 288, 512 rows */
        conv_case_mem(16, 3, 2, 16, 16, 32, 24, 3, 1, 1);
    else
        conv_case(2, 8, 8, 1280, 1280, 3, 1, 1);
}
Test(cuda, conv_downsample) {
    if (small_shapes()) {
        conv_case(2, 9, 8, 8, 16, 3, 2, 1);
        conv_case(1, 8, 8, 4, 4, 3, 2, 0); /* the VAE's asymmetric pad is a pad op, then this */
    } else {
        conv_case(2, 64, 64, 320, 320, 3, 2, 1);
    }
}
Test(cuda, conv_1x1_skip) {
    if (small_shapes())
        conv_case(2, 5, 6, 24, 16, 1, 1, 0);
    else
        conv_case(2, 32, 32, 960, 640, 1, 1, 0);
}
Test(cuda, conv_vae_256x256x256) {
    if (small_shapes()) {
        conv_case(1, 12, 10, 3, 8, 3, 1, 1); /* the VAE's 3-channel ends */
        conv_case(1, 12, 10, 8, 3, 3, 1, 1);
    } else {
        conv_case(1, 256, 256, 256, 256, 3, 1, 1);
    }
}

static void attention_case_mem(int mem_mb, int batch, int heads, int tq, int tk, int d, bool causal, double tol) {
    sdc_backend *g = gpu_mem(mem_mb), *c = test_cpu_backend();
    const int width = heads * d, qs = 3 * width, kvs = 3 * width;
    const size_t nq = (size_t)batch * tq * qs, nkv = (size_t)batch * tk * kvs, no = (size_t)batch * tq * width;
    float *q = test_random(nq, 10, 2.0f), *kv = test_random(nkv, 11, 2.0f), *o = malloc(no * sizeof(float)), *dout;
    float *dq = dev(g, q, nq), *dkv = dev(g, kv, nkv);
    cr_assert_eq(g->ops->alloc(g, no, &dout), SDC_OK);
    c->ops->attention(c, SDC_F32(o), SDC_F32(q), SDC_F32(kv + width), SDC_F32(kv + 2 * width), batch, heads, tq, tk, d, qs, kvs, causal);
    cr_assert_eq(g->ops->attention(g, SDC_F32(dout), SDC_F32(dq), SDC_F32(dkv + width), SDC_F32(dkv + 2 * width), batch, heads, tq, tk, d, qs, kvs,
                                   causal), SDC_OK, "%s", sdc_last_error());
    char what[96];
    snprintf(what, sizeof what, "attention b%d h%d %dx%d d%d%s", batch, heads, tq, tk, d, causal ? " causal" : "");
    expect(g, what, dout, o, no, tol);
    free(q), free(kv), free(o);
    g->ops->free(g, dq), g->ops->free(g, dkv), g->ops->free(g, dout);
    sdc_backend_destroy(g);
    sdc_backend_destroy(c);
}

static void attention_case(int batch, int heads, int tq, int tk, int d, bool causal, double tol) {
    attention_case_mem(0, batch, heads, tq, tk, d, causal, tol);
}

Test(cuda, attention_self_4096_d40) {
    if (small_shapes()) {
        attention_case(2, 2, 37, 37, 40, false, 1e-5);
        attention_case(1, 2, 9, 300, 40, false, 1e-5); /* rows longer than the softmax block */
        /* 16 MiB device: 64 Ki floats of scores, 109 query rows a block of 2 x 300 */
        attention_case_mem(16, 2, 2, 300, 300, 40, false, 1e-5);
    } else {
        attention_case(2, 8, 4096, 4096, 40, false, 2e-5);
    }
}
Test(cuda, attention_cross_77_d64) {
    if (small_shapes())
        attention_case(2, 3, 19, 77, 64, false, 1e-5);
    else
        attention_case(2, 10, 1024, 77, 64, false, 1e-5);
}
Test(cuda, attention_d80_d160) {
    if (small_shapes()) {
        attention_case(1, 2, 16, 16, 80, false, 1e-5);
        attention_case(1, 1, 8, 9, 160, false, 1e-5);
    } else {
        attention_case(2, 10, 256, 256, 80, false, 1e-5);
        attention_case(2, 8, 64, 64, 160, false, 1e-5);
    }
}
Test(cuda, attention_text_causal) {
    attention_case(1, small_shapes() ? 2 : 12, 77, 77, 64, true, 1e-5);
    if (small_shapes()) /* causal rows in blocks after the first (row0 > 0) */
        attention_case_mem(16, 1, 2, 300, 300, 40, true, 1e-5);
}
Test(cuda, attention_vae_single_head) {
    if (small_shapes())
        attention_case(1, 1, 64, 64, 512, false, 1e-5);
    else
        attention_case(1, 1, 1024, 1024, 512, false, 2e-5);
}

Test(cuda, elementwise_ops) {
    sdc_backend *g = gpu(), *c = test_cpu_backend();
    const int n = 2, h = small_shapes() ? 5 : 32, w = small_shapes() ? 7 : 32, ch = small_shapes() ? 24 : 640, f = small_shapes() ? 40 : 1280;
    const int cb = small_shapes() ? 16 : 320; /* concat: a second part narrower than the first */
    const size_t nx = (size_t)n * h * w * ch;
    float *x = test_random(nx * 2, 12, 3.0f), *v = test_random((size_t)n * ch, 13, 1.0f);
    float *y = malloc(nx * 4 * sizeof(float)), *dy;
    float *dx = dev(g, x, nx * 2), *dv = dev(g, v, (size_t)n * ch);
    cr_assert_eq(g->ops->alloc(g, nx * 4, &dy), SDC_OK);
    const sdc_act acts[] = {SDC_ACT_NONE, SDC_ACT_GELU, SDC_ACT_QUICK_GELU, SDC_ACT_SILU, SDC_ACT_RELU, SDC_ACT_TANH3};
    for (int a = 0; a < 6; a++) {
        c->ops->activation(c, SDC_F32(y), SDC_F32(x), nx, acts[a]);
        cr_assert_eq(g->ops->activation(g, SDC_F32(dy), SDC_F32(dx), nx, acts[a]), SDC_OK, "%s", sdc_last_error());
        expect(g, "activation", dy, y, nx, 1e-5);
    }
    c->ops->add(c, SDC_F32(y), SDC_F32(x), SDC_F32(x + nx), nx);
    cr_assert_eq(g->ops->add(g, SDC_F32(dy), SDC_F32(dx), SDC_F32(dx + nx), nx), SDC_OK);
    expect(g, "add", dy, y, nx, 0);
    c->ops->geglu(c, SDC_F32(y), SDC_F32(x), (int)(nx / f), f);
    cr_assert_eq(g->ops->geglu(g, SDC_F32(dy), SDC_F32(dx), (int)(nx / f), f), SDC_OK);
    expect(g, "geglu", dy, y, nx, 1e-5);
    c->ops->add_rows(c, SDC_F32(y), SDC_F32(x), SDC_F32(v), n, (size_t)h * w, ch);
    cr_assert_eq(g->ops->add_rows(g, SDC_F32(dy), SDC_F32(dx), SDC_F32(dv), n, (size_t)h * w, ch), SDC_OK);
    expect(g, "add_rows", dy, y, nx, 0);
    c->ops->upsample_nearest(c, SDC_F32(y), SDC_F32(x), n, h, w, ch, 2 * h, 2 * w);
    cr_assert_eq(g->ops->upsample_nearest(g, SDC_F32(dy), SDC_F32(dx), n, h, w, ch, 2 * h, 2 * w), SDC_OK);
    expect(g, "upsample 2x", dy, y, nx * 4, 0);
    c->ops->upsample_nearest(c, SDC_F32(y), SDC_F32(x), n, h, w, ch, 2 * h - 1, w + 3);
    cr_assert_eq(g->ops->upsample_nearest(g, SDC_F32(dy), SDC_F32(dx), n, h, w, ch, 2 * h - 1, w + 3), SDC_OK);
    expect(g, "upsample to a size not a multiple", dy, y, (size_t)n * (2 * h - 1) * (w + 3) * ch, 0);
    const size_t rows = nx / (size_t)(ch + cb);
    c->ops->concat_channels(c, SDC_F32(y), SDC_F32(x), SDC_F32(x + nx), rows, ch, cb);
    cr_assert_eq(g->ops->concat_channels(g, SDC_F32(dy), SDC_F32(dx), SDC_F32(dx + nx), rows, ch, cb), SDC_OK);
    expect(g, "concat", dy, y, rows * (size_t)(ch + cb), 0);
    c->ops->pad(c, SDC_F32(y), SDC_F32(x), n, h, w, ch, 0, 1, 0, 1);
    cr_assert_eq(g->ops->pad(g, SDC_F32(dy), SDC_F32(dx), n, h, w, ch, 0, 1, 0, 1), SDC_OK);
    expect(g, "pad 0,1,0,1", dy, y, (size_t)n * (h + 1) * (w + 1) * ch, 0);
    c->ops->pad(c, SDC_F32(y), SDC_F32(x), n, h, w, ch, 2, 1, 1, 3);
    cr_assert_eq(g->ops->pad(g, SDC_F32(dy), SDC_F32(dx), n, h, w, ch, 2, 1, 1, 3), SDC_OK);
    expect(g, "pad 2,1,1,3", dy, y, (size_t)n * (h + 3) * (w + 4) * ch, 0);
    free(x), free(v), free(y);
    g->ops->free(g, dx), g->ops->free(g, dv), g->ops->free(g, dy);
    sdc_backend_destroy(g);
    sdc_backend_destroy(c);
}

/* The denoising loop's ops: guidance, input scaling, noise and every
 * sampler update are evaluated without FMA contraction on both backends
 * (backend.h), so they agree exactly (tolerance 0) on the emulated device
 * and on a GPU. The time embedding uses each device's own expf/cosf/sinf:
 * exact on the emulated device (the host's libm, as the CPU), within 5e-4
 * absolute on a GPU (CUDA's expf is within 2 ulp, and t is up to 999). */
Test(cuda, latent_ops) {
    sdc_backend *g = gpu(), *c = test_cpu_backend();
    const size_t n = small_shapes() ? 1000 : (size_t)2 * 4 * 64 * 64;
    float *x = test_random(n, 21, 2.0f), *mo = test_random(n, 22, 1.5f), *prev = test_random(n, 23, 1.0f);
    float *y = malloc(n * sizeof(float)), *x0 = malloc(n * sizeof(float));
    float *dx = dev(g, x, n), *dmo = dev(g, mo, n), *dprev = dev(g, prev, n), *dy, *dx0;
    cr_assert_eq(g->ops->alloc(g, n, &dy), SDC_OK);
    cr_assert_eq(g->ops->alloc(g, n, &dx0), SDC_OK);
    for (int div = 0; div < 2; div++) {
        c->ops->scale(c, y, x, 1.0f / 0.18215f, div, n);
        cr_assert_eq(g->ops->scale(g, dy, dx, 1.0f / 0.18215f, div, n), SDC_OK, "%s", sdc_last_error());
        expect(g, div ? "scale (divide)" : "scale (multiply)", dy, y, n, 0);
    }
    memcpy(y, x, n * sizeof(float));
    c->ops->axpy(c, y, 0.3712f, mo, n);
    cr_assert_eq(g->ops->copy(g, SDC_F32(dy), SDC_F32(dx), n), SDC_OK);
    cr_assert_eq(g->ops->axpy(g, dy, 0.3712f, dmo, n), SDC_OK);
    expect(g, "axpy", dy, y, n, 0);
    c->ops->guidance(c, y, x, mo, 7.5f, n);
    cr_assert_eq(g->ops->guidance(g, dy, dx, dmo, 7.5f, n), SDC_OK);
    expect(g, "guidance", dy, y, n, 0);
    /* every kind, epsilon and v, with coefficients of a real step's size */
    const sdc_latent_update ups[] = {
        {SDC_UPDATE_DDIM, false, {0.93f, 0.36f, 0.97f, 0.24f}},
        {SDC_UPDATE_DDIM, true, {0.93f, 0.36f, 0.97f, 0.24f}},
        {SDC_UPDATE_DDPM, false, {0.81f, 0.58f, 0.12f, 0.87f}},
        {SDC_UPDATE_DDPM, true, {0.81f, 0.58f, 0.12f, 0.87f}},
        {SDC_UPDATE_EULER, false, {3.7f, -0.96f, 14.69f, -0.83f}},
        {SDC_UPDATE_EULER, true, {3.7f, -0.96f, 14.69f, -0.83f}},
        {SDC_UPDATE_DPM1, false, {0.42f, 0.91f, 0.63f, -0.27f}},
        {SDC_UPDATE_DPM1, true, {0.42f, 0.91f, 0.63f, -0.27f}},
        {SDC_UPDATE_DPM2, false, {0.42f, 0.91f, 0.63f, -0.27f, 1.31f, -0.135f}},
        {SDC_UPDATE_DPM2, true, {0.42f, 0.91f, 0.63f, -0.27f, 1.31f, -0.135f}},
    };
    for (size_t u = 0; u < sizeof ups / sizeof ups[0]; u++) {
        memcpy(y, x, n * sizeof(float));
        cr_assert_eq(c->ops->latent_update(c, &ups[u], y, mo, x0, prev, n), SDC_OK);
        cr_assert_eq(g->ops->copy(g, SDC_F32(dy), SDC_F32(dx), n), SDC_OK);
        cr_assert_eq(g->ops->latent_update(g, &ups[u], dy, dmo, dx0, dprev, n), SDC_OK, "%s", sdc_last_error());
        char what[64];
        snprintf(what, sizeof what, "latent update kind %d%s", (int)ups[u].kind, ups[u].v ? " (v)" : "");
        expect(g, what, dy, y, n, 0);
        if (ups[u].kind >= SDC_UPDATE_DPM1) expect(g, "DPM++ data prediction", dx0, x0, n, 0);
    }
    /* DPM++ without its buffers is an error, not a crash */
    cr_assert_eq(g->ops->latent_update(g, &ups[8], dy, dmo, dx0, NULL, n), SDC_ERR_ARG);
    cr_assert_eq(g->ops->latent_update(g, &ups[6], dy, dmo, NULL, NULL, n), SDC_ERR_ARG);
    /* time embedding: odd and even widths, t at both ends of the schedule */
    const int dims[] = {32, 33, 320};
    const double ts[] = {0.0, 1.0, 501.0, 999.0, 37.25};
    for (int di = 0; di < 3; di++)
        for (int ti = 0; ti < 5; ti++) {
            const int rows = 3, dim = dims[di];
            cr_assert_eq(c->ops->timestep_embedding(c, SDC_F32(y), rows, dim, ts[ti]), SDC_OK);
            cr_assert_eq(g->ops->timestep_embedding(g, SDC_F32(dy), rows, dim, ts[ti]), SDC_OK);
            cr_assert_eq(g->ops->download(g, x0, dy, (size_t)rows * dim), SDC_OK);
            double worst = 0;
            for (int k = 0; k < rows * dim; k++) {
                double d = fabs((double)x0[k] - (double)y[k]);
                if (d > worst) worst = d;
            }
            const double tol = small_shapes() ? 0.0 : 5e-4;
            cr_assert(worst <= tol, "time embedding dim %d t %g: max abs diff %.3g > %.0e", dim, ts[ti], worst, tol);
        }
    free(x), free(mo), free(prev), free(y), free(x0);
    g->ops->free(g, dx), g->ops->free(g, dmo), g->ops->free(g, dprev), g->ops->free(g, dy), g->ops->free(g, dx0);
    sdc_backend_destroy(g);
    sdc_backend_destroy(c);
}

/* upload_async returns before the copy and the caller may overwrite its
 * source at once: more uploads in a row than the backend has staging
 * buffers, each source changed right after the call. */
Test(cuda, upload_async_source_reusable) {
    sdc_backend *g = gpu();
    const size_t n = 5000;
    const int k = 9;
    float *src = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float)), *d[9];
    const size_t up0 = g->transfers.uploads;
    for (int i = 0; i < k; i++) {
        cr_assert_eq(g->ops->alloc(g, n, &d[i]), SDC_OK);
        for (size_t j = 0; j < n; j++) src[j] = (float)(i * 100000 + (int)j);
        cr_assert_eq(g->ops->upload_async(g, d[i], src, n - (size_t)i), SDC_OK, "%s", sdc_last_error());
        for (size_t j = 0; j < n; j++) src[j] = -1.0f;
    }
    cr_assert_eq(g->transfers.uploads - up0, (size_t)k, "every upload counted");
    for (int i = 0; i < k; i++) {
        cr_assert_eq(g->ops->download(g, got, d[i], n - (size_t)i), SDC_OK);
        for (size_t j = 0; j < n - (size_t)i; j++)
            cr_assert_eq(got[j], (float)(i * 100000 + (int)j), "upload %d element %zu: %g", i, j, (double)got[j]);
        g->ops->free(g, d[i]);
    }
    free(src), free(got);
    sdc_backend_destroy(g);
}

/* Weights kept in half precision: load_tensor converts exactly as the
 * host's round-to-nearest-even conversions do (bit for bit, every way),
 * and products with fp16 / bf16 weights (x rounded to the same type, fp32
 * accumulation) stay within the rounding of their inputs against the
 * CPU's fp32: normwise relative error <= 1e-3 for fp16 (11-bit
 * significands; ~2.6e-4 measured), <= 5e-3 for bf16 (8-bit; ~2.4e-3). */
Test(cuda, half_weights) {
    sdc_backend *g = gpu(), *c = test_cpu_backend();
    const size_t n = 4098;
    float *x = test_random(n, 31, 3.0f), *back = malloc(n * sizeof(float));
    x[0] = 70000.0f, x[1] = -1e-6f, x[2] = 1.0f / 3.0f; /* past fp16's range, a subnormal, a tie-breaker */
    uint16_t *h16 = malloc(n * 2), *hb = malloc(n * 2), *got = malloc(n * 2);
    for (size_t i = 0; i < n; i++) h16[i] = sdc_f32_to_f16(x[i]), hb[i] = sdc_f32_to_bf16(x[i]);
    const sdc_dtype types[2] = {SDC_DT_F16, SDC_DT_BF16};
    for (int t = 0; t < 2; t++) {
        const uint16_t *want = t ? hb : h16;
        void *p = NULL;
        /* fp32 -> half on the device */
        cr_assert_eq(g->ops->load_tensor(g, types[t], x, SDC_DT_F32, n, &p), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(g->ops->download(g, (float *)got, p, n / 2), SDC_OK);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(got[i], want[i], "%s of %g: 0x%04x, expected 0x%04x", t ? "bf16" : "fp16", (double)x[i],
                         got[i], want[i]);
        g->ops->free(g, p);
        /* half as it is, and half -> fp32 */
        cr_assert_eq(g->ops->load_tensor(g, types[t], want, types[t], n, &p), SDC_OK);
        cr_assert_eq(g->ops->download(g, (float *)got, p, n / 2), SDC_OK);
        cr_assert(memcmp(got, want, n * 2) == 0, "a %s tensor kept as it is", t ? "bf16" : "fp16");
        g->ops->free(g, p);
        cr_assert_eq(g->ops->load_tensor(g, SDC_DT_F32, want, types[t], n, &p), SDC_OK);
        cr_assert_eq(g->ops->download(g, back, p, n), SDC_OK);
        for (size_t i = 0; i < n; i++) {
            const float w = t ? sdc_bf16_to_f32(want[i]) : sdc_f16_to_f32(want[i]);
            cr_assert(back[i] == w || (back[i] != back[i] && w != w), "widened %zu: %g, expected %g", i,
                      (double)back[i], (double)w);
        }
        g->ops->free(g, p);
    }
    /* the CPU keeps half tensors as they are too (weights_as_stored) */
    void *p = NULL;
    cr_assert(c->weights_as_stored && !g->weights_as_stored);
    cr_assert_eq(c->ops->load_tensor(c, SDC_DT_F16, h16, SDC_DT_F16, n, &p), SDC_OK, "%s", sdc_last_error());
    cr_assert(memcmp(p, h16, n * 2) == 0, "the CPU's fp16 tensor kept as it is");
    c->ops->free(c, p);
    free(x), free(back), free(h16), free(hb), free(got);
    /* products: a linear layer and 3x3 / 1x1 / strided convolutions */
    const int m = small_shapes() ? 37 : 4096, k = small_shapes() ? 72 : 320, nn = small_shapes() ? 40 : 640;
    const int N = 2, H = small_shapes() ? 6 : 32, W = small_shapes() ? 5 : 32, cin = small_shapes() ? 12 : 320, cout = small_shapes() ? 20 : 320;
    float *xa = test_random((size_t)m * k, 32, 1.0f), *wa = test_random((size_t)nn * k, 33, 0.1f);
    float *ba = test_random((size_t)nn, 34, 0.5f), *ya = malloc((size_t)m * nn * sizeof(float));
    float *xi = test_random((size_t)N * H * W * cin, 35, 1.0f), *wi = test_random((size_t)cout * 9 * cin, 36, 0.1f);
    float *bi = test_random((size_t)cout, 37, 0.5f), *yi = malloc((size_t)N * H * W * cout * sizeof(float));
    float *dx = dev(g, xa, (size_t)m * k), *db = dev(g, ba, nn), *dxi = dev(g, xi, (size_t)N * H * W * cin);
    float *dbi = dev(g, bi, cout), *dy;
    cr_assert_eq(g->ops->alloc(g, (size_t)N * H * W * cout + (size_t)m * nn, &dy), SDC_OK);
    const double tol[2] = {1e-3, 5e-3};
    for (int t = 0; t < 2; t++) {
        const char *tn = t ? "bf16" : "fp16";
        sdc_weight w = {.type = types[t]}, wc = {.type = types[t]};
        cr_assert_eq(g->ops->load_tensor(g, types[t], wa, SDC_DT_F32, (size_t)nn * k, &w.p), SDC_OK);
        cr_assert_eq(g->ops->load_tensor(g, types[t], wi, SDC_DT_F32, (size_t)cout * 9 * cin, &wc.p), SDC_OK);
        c->ops->linear(c, SDC_F32(ya), SDC_F32(xa), SDC_WEIGHT_F32(wa), ba, m, k, nn);
        cr_assert_eq(g->ops->linear(g, SDC_F32(dy), SDC_F32(dx), w, db, m, k, nn), SDC_OK, "%s", sdc_last_error());
        char what[64];
        snprintf(what, sizeof what, "linear, %s weights", tn);
        expect(g, what, dy, ya, (size_t)m * nn, tol[t]);
        const int ks[3] = {3, 1, 3}, ss[3] = {1, 1, 2}, ps[3] = {1, 0, 1};
        for (int v = 0; v < 3; v++) { /* the 1x1 case reads the first cout x cin of the kernel */
            const int ho = (H + 2 * ps[v] - ks[v]) / ss[v] + 1, wo = (W + 2 * ps[v] - ks[v]) / ss[v] + 1;
            c->ops->conv2d(c, SDC_F32(yi), SDC_F32(xi), SDC_WEIGHT_F32(wi), bi, SDC_NO_BUF, N, H, W, cin, cout, ks[v], ss[v], ps[v]);
            cr_assert_eq(g->ops->conv2d(g, SDC_F32(dy), SDC_F32(dxi), wc, dbi, SDC_NO_BUF, N, H, W, cin, cout, ks[v], ss[v], ps[v]), SDC_OK,
                         "%s", sdc_last_error());
            snprintf(what, sizeof what, "conv %dx%d stride %d, %s weights", ks[v], ks[v], ss[v], tn);
            expect(g, what, dy, yi, (size_t)N * ho * wo * cout, tol[t]);
        }
        g->ops->free(g, w.p), g->ops->free(g, wc.p);
    }
    free(xa), free(wa), free(ba), free(ya), free(xi), free(wi), free(bi), free(yi);
    g->ops->free(g, dx), g->ops->free(g, db), g->ops->free(g, dxi), g->ops->free(g, dbi), g->ops->free(g, dy);
    sdc_backend_destroy(g);
    sdc_backend_destroy(c);
}

/* binary16 / bfloat16 bits of a small integer (exact in both) */
static uint16_t f16_bits(int v) {
    if (v == 0) return 0;
    uint16_t sign = v < 0 ? 0x8000u : 0;
    unsigned m = (unsigned)(v < 0 ? -v : v);
    int e = 0;
    while ((m >> e) > 1) e++; /* m = 1.f * 2^e */
    return (uint16_t)(sign | (uint16_t)((e + 15) << 10) | (uint16_t)(((m << 10) >> e) & 0x3ffu));
}
static uint16_t bf16_bits(int v) {
    float f = (float)v;
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}

/* The fragment layouts of mma.sync.m16n8k16 and ldmatrix (x1, x2, x4, each
 * with and without .trans) and cp.async (4, 8, 16 bytes), as port.h wraps
 * them: A (16x16), B (16x8) and C of small integers, so that D = A B + C is
 * exact in fp32 and must match the plain product exactly (tolerance 0); a
 * lane or half-register out of place changes D. On the emulated device
 * this checks the emulation against the PTX ISA's tables; on a GPU, the
 * same tables against the hardware. */
Test(cuda, fragment_layouts) {
    sdc_backend *g = gpu();
    uint16_t a16[256], b16[128], abf[256], bbf[128];
    int a[256], b[128];
    float c[128], want[128], got[128];
    unsigned seed = 12345u;
    for (int i = 0; i < 256; i++) {
        seed = seed * 1103515245u + 12345u;
        a[i] = (int)((seed >> 16) % 33u) - 16;
        a16[i] = f16_bits(a[i]), abf[i] = bf16_bits(a[i]);
    }
    for (int i = 0; i < 128; i++) {
        seed = seed * 1103515245u + 12345u;
        b[i] = (int)((seed >> 16) % 33u) - 16;
        b16[i] = f16_bits(b[i]), bbf[i] = bf16_bits(b[i]);
        c[i] = (float)((int)((seed >> 8) % 201u) - 100);
    }
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 8; n++) {
            long s = (long)c[m * 8 + n];
            for (int k = 0; k < 16; k++) s += (long)a[m * 16 + k] * b[k * 8 + n];
            want[m * 8 + n] = (float)s;
        }
    float *da, *db, *dc = dev(g, c, 128), *dd;
    cr_assert_eq(g->ops->alloc(g, 128, &da), SDC_OK); /* 256 b16 */
    cr_assert_eq(g->ops->alloc(g, 64, &db), SDC_OK);  /* 128 b16 */
    cr_assert_eq(g->ops->alloc(g, 128, &dd), SDC_OK);
    for (int bf = 0; bf < 2; bf++) {
        float ha[128], hb[64];
        memcpy(ha, bf ? abf : a16, sizeof ha);
        memcpy(hb, bf ? bbf : b16, sizeof hb);
        cr_assert_eq(g->ops->upload(g, da, ha, 128), SDC_OK);
        cr_assert_eq(g->ops->upload(g, db, hb, 64), SDC_OK);
        for (int mode = 0; mode < 4; mode++) {
            cr_assert_eq(g->ops->upload(g, dd, c, 128), SDC_OK); /* not the answer already */
            cr_assert_eq(sdc_fragment_check_cuda(dd, (const uint16_t *)da, (const uint16_t *)db, dc, mode, bf, NULL),
                         0, "fragment_check mode %d %s: launch failed", mode, bf ? "bf16" : "f16");
            /* launched on the legacy stream, which does not order the backend's non-blocking one */
            cr_assert_eq(sdc_cuda_sync(), 0);
            cr_assert_eq(g->ops->download(g, got, dd, 128), SDC_OK, "%s", sdc_last_error());
            int bad = 0;
            for (int i = 0; i < 128; i++)
                if (got[i] != want[i] && bad++ < 4)
                    fprintf(stderr, "fragment_check mode %d %s: D[%d][%d] = %g, want %g\n", mode,
                            bf ? "bf16" : "f16", i / 8, i % 8, got[i], want[i]);
            cr_assert_eq(bad, 0, "fragment_check mode %d %s: %d of 128 elements of D wrong", mode,
                         bf ? "bf16" : "f16", bad);
            fprintf(stderr, "cuda fragment layouts mode %d %s: exact\n", mode, bf ? "bf16" : "f16");
        }
    }
    g->ops->free(g, da), g->ops->free(g, db), g->ops->free(g, dc), g->ops->free(g, dd);
    sdc_backend_destroy(g);
}
