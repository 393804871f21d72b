/* test_vae.c - the VAE decoder, fp32 on the CPU backend, against diffusers'
 * AutoencoderKL.decode in float64 on the same fp16-rounded weights.
 * Tolerance: normwise relative error <= 1e-4. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"
#include "backend/backend_cpu.h"
#include "nets/vae.h"

#define VAE_TOL 1e-4

/* F(4x4) Winograd on every stride-1 3x3 convolution, not only from the
 * CPU's 1024 tiles on (the full-size cases' grids are below that) */
static bool g_wino4_always;

static void vae_case(const char *model_path, const char *ref_path) {
    sdc_model_files *m = NULL;
    sdc_st_file *ref = NULL;
    sdc_backend *be = NULL;
    sdc_vae *v = NULL;
    cr_assert_eq(sdc_model_open(model_path, &m), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_st_open(ref_path, &ref), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_backend_cpu_create(0, &be), SDC_OK);
    if (g_wino4_always) ((sdc_cpu_impl *)be->impl)->wino4_tiles = 0;
    cr_assert_eq(sdc_vae_load(m, be, &v), SDC_OK, "%s", sdc_last_error());
    const sdc_st_tensor *zt = sdc_st_find(ref, "z"), *it = sdc_st_find(ref, "image");
    cr_assert(zt && it);
    const int C = (int)zt->shape[1], H = (int)zt->shape[2], W = (int)zt->shape[3];
    const int f = sdc_vae_factor(&v->cfg), IH = (int)it->shape[2], IW = (int)it->shape[3];
    cr_assert_eq(IH, H * f);
    cr_assert_eq(IW, W * f);
    size_t nz, ni;
    float *z = ref_tensor(ref, "z", &nz), *want = ref_tensor(ref, "image", &ni);
    float *zh = malloc(nz * sizeof(float)), *ih = malloc(ni * sizeof(float)), *img = malloc(ni * sizeof(float));
    sdc_nchw_to_nhwc(z, zh, 1, C, H, W);
    cr_assert_eq(sdc_vae_decode(v, zh, H, W, ih), SDC_OK, "%s", sdc_last_error());
    sdc_nhwc_to_nchw(ih, img, 1, 3, IH, IW);
    size_t wi;
    double e = max_rel_err(img, want, ni, &wi);
    if (!(e <= VAE_TOL)) print_mismatches("image", img, want, ni, VAE_TOL, 5);
    cr_assert(e <= VAE_TOL, "%s: max rel err %.3g > %.0e", model_path, e, VAE_TOL);
    fprintf(stderr, "vae %s: %dx%d -> %dx%d, max rel err %.2e\n", model_path, H, W, IH, IW, e);
    free(z), free(want), free(zh), free(ih), free(img);
    sdc_vae_free(v);
    sdc_backend_destroy(be);
    sdc_st_close(ref);
    sdc_model_close(m);
}

Test(vae, sd1_single_file) { vae_case(FIXTURES "/tiny_sd1.safetensors", FIXTURES "/vae_tiny_sd1_ref.safetensors"); }
Test(vae, sd1_diffusers) { vae_case(FIXTURES "/tiny_sd1_diffusers", FIXTURES "/vae_tiny_sd1_ref.safetensors"); }
Test(vae, sd2_single_file) { vae_case(FIXTURES "/tiny_sd2.safetensors", FIXTURES "/vae_tiny_sd2_ref.safetensors"); }
Test(vae, sd2_diffusers) { vae_case(FIXTURES "/tiny_sd2_diffusers", FIXTURES "/vae_tiny_sd2_ref.safetensors"); }


/* The encoder (for image-to-image): AutoencoderKL.encode(x).latent_dist.mean. */
static void encode_case(const char *model_path, const char *ref_path) {
    sdc_model_files *m = NULL;
    sdc_st_file *ref = NULL;
    sdc_backend *be = NULL;
    sdc_vae *v = NULL;
    cr_assert_eq(sdc_model_open(model_path, &m), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_st_open(ref_path, &ref), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_backend_cpu_create(0, &be), SDC_OK);
    if (g_wino4_always) ((sdc_cpu_impl *)be->impl)->wino4_tiles = 0;
    cr_assert_eq(sdc_vae_load(m, be, &v), SDC_OK, "%s", sdc_last_error());
    const sdc_st_tensor *xt = sdc_st_find(ref, "x"), *mt = sdc_st_find(ref, "mean");
    cr_assert(xt && mt);
    const int H = (int)xt->shape[2], W = (int)xt->shape[3], C = (int)mt->shape[1], h = (int)mt->shape[2],
              w = (int)mt->shape[3];
    size_t nx, nm;
    float *x = ref_tensor(ref, "x", &nx), *want = ref_tensor(ref, "mean", &nm);
    float *xh = malloc(nx * sizeof(float)), *mh = malloc(nm * sizeof(float)), *mean = malloc(nm * sizeof(float));
    sdc_nchw_to_nhwc(x, xh, 1, 3, H, W);
    cr_assert_eq(sdc_vae_encode(v, xh, H, W, mh), SDC_OK, "%s", sdc_last_error());
    sdc_nhwc_to_nchw(mh, mean, 1, C, h, w);
    double e = max_rel_err(mean, want, nm, NULL);
    if (!(e <= VAE_TOL)) print_mismatches("mean", mean, want, nm, VAE_TOL, 5);
    cr_assert(e <= VAE_TOL, "%s: encoder max rel err %.3g > %.0e", model_path, e, VAE_TOL);
    fprintf(stderr, "vae encoder %s: %dx%d -> %dx%d, max rel err %.2e\n", model_path, H, W, h, w, e);
    free(x), free(want), free(xh), free(mh), free(mean);
    sdc_vae_free(v);
    sdc_backend_destroy(be);
    sdc_st_close(ref);
    sdc_model_close(m);
}

Test(vae, encoder_sd1_single_file) { encode_case(FIXTURES "/tiny_sd1.safetensors", FIXTURES "/vae_tiny_sd1_ref.safetensors"); }
Test(vae, encoder_sd2_diffusers) { encode_case(FIXTURES "/tiny_sd2_diffusers", FIXTURES "/vae_tiny_sd2_ref.safetensors"); }

Test(full, vae_sd15, .timeout = 900) {
    if (!full_tests_enabled()) cr_skip_test("full-size: run make test-full");
    vae_case(FIXTURES_FULL "/full_sd1.safetensors", FIXTURES_FULL "/vae_full_sd1_ref.safetensors");
    encode_case(FIXTURES_FULL "/full_sd1.safetensors", FIXTURES_FULL "/vae_full_sd1_ref.safetensors");
}

Test(full, vae_sd15_winograd_4x4, .timeout = 900) {
    if (!full_tests_enabled()) cr_skip_test("full-size: run make test-full");
    g_wino4_always = true;
    vae_case(FIXTURES_FULL "/full_sd1.safetensors", FIXTURES_FULL "/vae_full_sd1_ref.safetensors");
    encode_case(FIXTURES_FULL "/full_sd1.safetensors", FIXTURES_FULL "/vae_full_sd1_ref.safetensors");
}
