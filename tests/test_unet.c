/* test_unet.c - one U-Net call, fp32 on the CPU backend, against diffusers'
 * UNet2DConditionModel run in float64 on the same fp16-rounded weights
 * (tools/make_fixtures.py). Both layouts, both families, an even and an
 * odd latent size. Tolerance: normwise relative error <= 1e-4. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"
#include "backend/backend_cpu.h"
#include "nets/unet.h"

#define UNET_TOL 1e-4

/* F(4x4) Winograd on every stride-1 3x3 convolution, not only from the
 * CPU's 1024 tiles on (the full-size cases' grids are below that) */
static bool g_wino4_always;

static void unet_case(const char *model_path, const char *ref_path) {
    sdc_model_files *m = NULL;
    sdc_st_file *ref = NULL;
    sdc_backend *be = NULL;
    sdc_unet *u = NULL;
    cr_assert_eq(sdc_model_open(model_path, &m), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_st_open(ref_path, &ref), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_backend_cpu_create(0, &be), SDC_OK);
    if (g_wino4_always) ((sdc_cpu_impl *)be->impl)->wino4_tiles = 0;
    cr_assert_eq(sdc_unet_load(m, be, &u), SDC_OK, "%s", sdc_last_error());
    size_t n_ctx;
    float *ctx = ref_tensor(ref, "context", &n_ctx);
    const int tokens = 77;
    double worst = 0;
    for (int i = 0; i < 2; i++) {
        char xn[16], on[16], tn[16];
        snprintf(xn, sizeof xn, "x%d", i);
        snprintf(on, sizeof on, "out%d", i);
        snprintf(tn, sizeof tn, "t%d", i);
        const sdc_st_tensor *xt = sdc_st_find(ref, xn);
        cr_assert(xt && xt->ndim == 4);
        const int B = (int)xt->shape[0], C = (int)xt->shape[1], H = (int)xt->shape[2], W = (int)xt->shape[3];
        size_t n;
        float *x = ref_tensor(ref, xn, &n), *want = ref_tensor(ref, on, NULL);
        float *xh = malloc(n * sizeof(float)), *yh = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
        sdc_nchw_to_nhwc(x, xh, B, C, H, W);
        double t = atof(sdc_st_meta(ref, tn));
        cr_assert_eq(sdc_unet_forward(u, xh, B, H, W, t, ctx, tokens, yh), SDC_OK, "%s", sdc_last_error());
        sdc_nhwc_to_nchw(yh, y, B, C, H, W);
        size_t wi;
        double e = max_rel_err(y, want, n, &wi);
        if (!(e <= UNET_TOL)) print_mismatches(on, y, want, n, UNET_TOL, 5);
        cr_assert(e <= UNET_TOL, "%s %s (%dx%d): max rel err %.3g > %.0e", model_path, on, H, W, e, UNET_TOL);
        if (e > worst) worst = e;
        free(x), free(want), free(xh), free(yh), free(y);
    }
    fprintf(stderr, "unet %s: max rel err %.2e (%.3f GFLOP last call)\n", model_path, worst, u->flops * 1e-9);
    free(ctx);
    sdc_unet_free(u);
    sdc_backend_destroy(be);
    sdc_st_close(ref);
    sdc_model_close(m);
}

Test(unet, sd1_single_file) { unet_case(FIXTURES "/tiny_sd1.safetensors", FIXTURES "/unet_tiny_sd1_ref.safetensors"); }
Test(unet, sd1_diffusers) { unet_case(FIXTURES "/tiny_sd1_diffusers", FIXTURES "/unet_tiny_sd1_ref.safetensors"); }
Test(unet, sd2_single_file) { unet_case(FIXTURES "/tiny_sd2.safetensors", FIXTURES "/unet_tiny_sd2_ref.safetensors"); }
Test(unet, sd2_diffusers) { unet_case(FIXTURES "/tiny_sd2_diffusers", FIXTURES "/unet_tiny_sd2_ref.safetensors"); }

Test(full, unet_sd15, .timeout = 900) {
    if (!full_tests_enabled()) cr_skip_test("full-size: run make test-full");
    unet_case(FIXTURES_FULL "/full_sd1.safetensors", FIXTURES_FULL "/unet_full_sd1_ref.safetensors");
}
Test(full, unet_sd21, .timeout = 900) {
    if (!full_tests_enabled()) cr_skip_test("full-size: run make test-full");
    unet_case(FIXTURES_FULL "/full_sd2.safetensors", FIXTURES_FULL "/unet_full_sd2_ref.safetensors");
}

Test(full, unet_sd15_winograd_4x4, .timeout = 900) {
    if (!full_tests_enabled()) cr_skip_test("full-size: run make test-full");
    g_wino4_always = true;
    unet_case(FIXTURES_FULL "/full_sd1.safetensors", FIXTURES_FULL "/unet_full_sd1_ref.safetensors");
}
