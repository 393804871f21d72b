/* test_cuda.c - the CUDA backend against the CPU backend, op by op, on
 * random inputs at SD shapes. Both compute in fp32 (cuBLAS in pedantic
 * math: no TF32), so the tolerance is fp32 vs fp32 with different
 * summation orders: normwise relative error <= 1e-5 (2e-5 for the long
 * reductions of attention at 4096 keys). Every test prints
 * "SKIP: no CUDA device" and skips on a machine without one. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cuda.h"
#include "testutil.h"

Test(cuda, built_with_nvcc) {
#ifdef SDC_HAVE_CUDA
    cr_assert_eq(sdc_cuda_compiled(), 1, "built with nvcc, but the CUDA objects are not linked");
#else
    cr_assert_eq(sdc_cuda_compiled(), 0);
#endif
}

static sdc_backend *gpu(void) {
    char why[256] = "";
    if (sdc_cuda_device_count(why, sizeof why) == 0) {
        fprintf(stderr, "SKIP: no CUDA device (%s)\n", why);
        cr_skip_test("SKIP: no CUDA device (%s)", why);
    }
    sdc_backend *be = NULL;
    cr_assert_eq(sdc_backend_cuda_create(0, &be), SDC_OK, "%s", sdc_last_error());
    return be;
}

Test(cuda, device_probe) {
    sdc_backend *be = gpu();
    char name[256];
    sdc_cuda_device_name(name, sizeof name);
    cr_assert(name[0], "device 0 has no name");
    fprintf(stderr, "cuda: device 0: %s\n", name);
    sdc_backend_destroy(be);
}

/* device copy of host data */
static float *dev(sdc_backend *g, const float *h, size_t n) {
    float *d = NULL;
    cr_assert_eq(sdc_backend_upload_new(g, h, n, &d), SDC_OK, "%s", sdc_last_error());
    return d;
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

Test(cuda, linear_and_norms) {
    sdc_backend *g = gpu(), *c = test_cpu_backend();
    const int m = 2 * 4096, k = 320, n = 960, groups = 32;
    float *x = test_random((size_t)m * k, 1, 1.0f), *w = test_random((size_t)n * k, 2, 0.05f);
    float *b = test_random(n, 3, 0.5f), *gm = test_random(k, 4, 1.0f), *bt = test_random(k, 5, 1.0f);
    float *y = malloc((size_t)m * n * sizeof(float)), *dy;
    float *dx = dev(g, x, (size_t)m * k), *dw = dev(g, w, (size_t)n * k), *db = dev(g, b, n);
    float *dg = dev(g, gm, k), *dbt = dev(g, bt, k);
    cr_assert_eq(g->ops->alloc(g, (size_t)m * n, &dy), SDC_OK);
    c->ops->linear(c, y, x, w, b, m, k, n);
    cr_assert_eq(g->ops->linear(g, dy, dx, dw, db, m, k, n), SDC_OK, "%s", sdc_last_error());
    expect(g, "linear 8192x320x960", dy, y, (size_t)m * n, 1e-5);
    c->ops->layer_norm(c, y, x, gm, bt, m, k, 1e-5f);
    cr_assert_eq(g->ops->layer_norm(g, dy, dx, dg, dbt, m, k, 1e-5f), SDC_OK);
    expect(g, "layer_norm", dy, y, (size_t)m * k, 1e-5);
    c->ops->group_norm(c, y, x, gm, bt, 2, 4096, k, groups, 1e-5f, true);
    cr_assert_eq(g->ops->group_norm(g, dy, dx, dg, dbt, 2, 4096, k, groups, 1e-5f, true), SDC_OK);
    expect(g, "group_norm 64x64x320 + silu", dy, y, (size_t)m * k, 1e-5);
    free(x), free(w), free(b), free(gm), free(bt), free(y);
    float *ptrs[] = {dx, dw, db, dg, dbt, dy};
    for (int i = 0; i < 6; i++) g->ops->free(g, ptrs[i]);
    sdc_backend_destroy(g);
    sdc_backend_destroy(c);
}

static void conv_case(int n, int h, int w, int cin, int cout, int k, int stride, int pad) {
    sdc_backend *g = gpu(), *c = test_cpu_backend();
    const int ho = (h + 2 * pad - k) / stride + 1, wo = (w + 2 * pad - k) / stride + 1;
    const size_t nx = (size_t)n * h * w * cin, ny = (size_t)n * ho * wo * cout, nw = (size_t)cout * k * k * cin;
    float *x = test_random(nx, 6, 1.0f), *wt = test_random(nw, 7, 0.05f), *b = test_random(cout, 8, 0.5f);
    float *r = test_random(ny, 9, 1.0f), *y = malloc(ny * sizeof(float)), *dy;
    float *dx = dev(g, x, nx), *dw = dev(g, wt, nw), *db = dev(g, b, cout), *dr = dev(g, r, ny);
    cr_assert_eq(g->ops->alloc(g, ny, &dy), SDC_OK);
    c->ops->conv2d(c, y, x, wt, b, r, n, h, w, cin, cout, k, stride, pad);
    cr_assert_eq(g->ops->conv2d(g, dy, dx, dw, db, dr, n, h, w, cin, cout, k, stride, pad), SDC_OK, "%s",
                 sdc_last_error());
    char what[96];
    snprintf(what, sizeof what, "conv %dx%dx%d->%d k%d s%d", h, w, cin, cout, k, stride);
    expect(g, what, dy, y, ny, 1e-5);
    free(x), free(wt), free(b), free(r), free(y);
    g->ops->free(g, dx), g->ops->free(g, dw), g->ops->free(g, db), g->ops->free(g, dr), g->ops->free(g, dy);
    sdc_backend_destroy(g);
    sdc_backend_destroy(c);
}

Test(cuda, conv_unet_64x64x320) { conv_case(2, 64, 64, 320, 320, 3, 1, 1); }
Test(cuda, conv_unet_8x8x1280) { conv_case(2, 8, 8, 1280, 1280, 3, 1, 1); }
Test(cuda, conv_downsample) { conv_case(2, 64, 64, 320, 320, 3, 2, 1); }
Test(cuda, conv_1x1_skip) { conv_case(2, 32, 32, 960, 640, 1, 1, 0); }
Test(cuda, conv_vae_256x256x256) { conv_case(1, 256, 256, 256, 256, 3, 1, 1); }

static void attention_case(int batch, int heads, int tq, int tk, int d, bool causal, double tol) {
    sdc_backend *g = gpu(), *c = test_cpu_backend();
    const int width = heads * d, qs = 3 * width, kvs = 3 * width;
    const size_t nq = (size_t)batch * tq * qs, nkv = (size_t)batch * tk * kvs, no = (size_t)batch * tq * width;
    float *q = test_random(nq, 10, 2.0f), *kv = test_random(nkv, 11, 2.0f), *o = malloc(no * sizeof(float)), *dout;
    float *dq = dev(g, q, nq), *dkv = dev(g, kv, nkv);
    cr_assert_eq(g->ops->alloc(g, no, &dout), SDC_OK);
    c->ops->attention(c, o, q, kv + width, kv + 2 * width, batch, heads, tq, tk, d, qs, kvs, causal);
    cr_assert_eq(g->ops->attention(g, dout, dq, dkv + width, dkv + 2 * width, batch, heads, tq, tk, d, qs, kvs,
                                   causal), SDC_OK, "%s", sdc_last_error());
    char what[96];
    snprintf(what, sizeof what, "attention b%d h%d %dx%d d%d%s", batch, heads, tq, tk, d, causal ? " causal" : "");
    expect(g, what, dout, o, no, tol);
    free(q), free(kv), free(o);
    g->ops->free(g, dq), g->ops->free(g, dkv), g->ops->free(g, dout);
    sdc_backend_destroy(g);
    sdc_backend_destroy(c);
}

Test(cuda, attention_self_4096_d40) { attention_case(2, 8, 4096, 4096, 40, false, 2e-5); }
Test(cuda, attention_cross_77_d64) { attention_case(2, 10, 1024, 77, 64, false, 1e-5); }
Test(cuda, attention_d80_d160) {
    attention_case(2, 10, 256, 256, 80, false, 1e-5);
    attention_case(2, 8, 64, 64, 160, false, 1e-5);
}
Test(cuda, attention_text_causal) { attention_case(1, 12, 77, 77, 64, true, 1e-5); }
Test(cuda, attention_vae_single_head) { attention_case(1, 1, 1024, 1024, 512, false, 2e-5); }

Test(cuda, elementwise_ops) {
    sdc_backend *g = gpu(), *c = test_cpu_backend();
    const int n = 2, h = 32, w = 32, ch = 640, f = 1280;
    const size_t nx = (size_t)n * h * w * ch;
    float *x = test_random(nx * 2, 12, 3.0f), *v = test_random((size_t)n * ch, 13, 1.0f);
    float *y = malloc(nx * 4 * sizeof(float)), *dy;
    float *dx = dev(g, x, nx * 2), *dv = dev(g, v, (size_t)n * ch);
    cr_assert_eq(g->ops->alloc(g, nx * 4, &dy), SDC_OK);
    const sdc_act acts[] = {SDC_ACT_GELU, SDC_ACT_QUICK_GELU, SDC_ACT_SILU};
    for (int a = 0; a < 3; a++) {
        c->ops->activation(c, y, x, nx, acts[a]);
        g->ops->activation(g, dy, dx, nx, acts[a]);
        expect(g, "activation", dy, y, nx, 1e-5);
    }
    c->ops->geglu(c, y, x, (int)(nx / f), f);
    g->ops->geglu(g, dy, dx, (int)(nx / f), f);
    expect(g, "geglu", dy, y, nx, 1e-5);
    c->ops->add_rows(c, y, x, v, n, (size_t)h * w, ch);
    g->ops->add_rows(g, dy, dx, dv, n, (size_t)h * w, ch);
    expect(g, "add_rows", dy, y, nx, 0);
    c->ops->upsample_nearest(c, y, x, n, h, w, ch, 2 * h, 2 * w);
    g->ops->upsample_nearest(g, dy, dx, n, h, w, ch, 2 * h, 2 * w);
    expect(g, "upsample", dy, y, nx * 4, 0);
    c->ops->concat_channels(c, y, x, x + nx, (size_t)n * h * w, ch, ch);
    g->ops->concat_channels(g, dy, dx, dx + nx, (size_t)n * h * w, ch, ch);
    expect(g, "concat", dy, y, nx * 2, 0);
    c->ops->pad(c, y, x, n, h, w, ch, 0, 1, 0, 1);
    g->ops->pad(g, dy, dx, n, h, w, ch, 0, 1, 0, 1);
    expect(g, "pad", dy, y, (size_t)n * (h + 1) * (w + 1) * ch, 0);
    free(x), free(v), free(y);
    g->ops->free(g, dx), g->ops->free(g, dv), g->ops->free(g, dy);
    sdc_backend_destroy(g);
    sdc_backend_destroy(c);
}

/* The whole tiny pipeline on the GPU against the CPU: 8-bit pixels +-3. */
Test(cuda, tiny_pipeline_matches_cpu, .timeout = 300) {
    char why[256] = "";
    if (sdc_cuda_device_count(why, sizeof why) == 0) {
        fprintf(stderr, "SKIP: no CUDA device (%s)\n", why);
        cr_skip_test("SKIP: no CUDA device (%s)", why);
    }
    const char *samplers[] = {"ddim", "ddpm", "euler", "euler_a", "dpmpp_2m"};
    sdc_ctx *ctx[2];
    for (int b = 0; b < 2; b++) {
        sdc_params p = sdc_params_default();
        p.model_path = FIXTURES "/tiny_sd1.safetensors";
        p.backend = b ? SDC_BACKEND_CUDA : SDC_BACKEND_CPU;
        cr_assert_eq(sdc_load(&p, &ctx[b]), SDC_OK, "%s", sdc_last_error());
    }
    for (int s = 0; s < 5; s++) {
        sdc_gen_params gp = sdc_gen_params_default();
        gp.prompt = "a (red:1.2) circle";
        gp.width = gp.height = 64;
        gp.steps = 6;
        gp.sampler = samplers[s];
        gp.seed = 7;
        sdc_image im[2];
        for (int b = 0; b < 2; b++) cr_assert_eq(sdc_txt2img(ctx[b], &gp, &im[b]), SDC_OK, "%s", sdc_last_error());
        int worst = 0;
        for (size_t k = 0; k < (size_t)64 * 64 * 3; k++) {
            int d = abs((int)im[0].rgb[k] - (int)im[1].rgb[k]);
            if (d > worst) worst = d;
        }
        for (size_t k = 0; k < (size_t)4 * 32 * 32; k++) cr_assert(im[1].latents[k] == im[1].latents[k], "NaN");
        cr_assert(worst <= 3, "%s: GPU pixels differ from CPU by %d", samplers[s], worst);
        fprintf(stderr, "cuda pipeline %s: max pixel diff %d\n", samplers[s], worst);
        sdc_image_free(&im[0]);
        sdc_image_free(&im[1]);
    }
    sdc_free(ctx[0]);
    sdc_free(ctx[1]);
}
