/* test_vae_memory.c - the VAE's four work buffers are sized by role, from
 * a walk of the decoder's and the encoder's ops (vae.c's work_needs), no
 * longer all four as the largest. An op that wrote past its buffer would
 * corrupt the next one silently, so here each buffer gets a gap of
 * canaries behind it, and every shipped VAE layout (SD 1.x, 2.x, XL, both
 * file layouts) decodes and encodes at square, odd and one-pixel sizes
 * with the gaps checked after each call; the decode must also match the
 * same VAE with no gaps bit for bit (the gaps move the buffers only). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nets/vae.h"
#include "testutil.h"

static void canary_case(const char *model) {
    sdc_model_files *m = NULL;
    sdc_backend *be = NULL;
    sdc_vae *v = NULL, *plain = NULL;
    cr_assert_eq(sdc_model_open(model, &m), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_backend_cpu_create(0, &be), SDC_OK);
    cr_assert_eq(sdc_vae_load(m, be, &v), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_vae_load(m, be, &plain), SDC_OK, "%s", sdc_last_error());
    v->canary = 64;
    const int f = sdc_vae_factor(&v->cfg), zc = v->cfg.z_channels;
    const int sizes[][2] = {{8, 6}, {5, 7}, {1, 1}, {16, 16}, {3, 12}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const int h = sizes[s][0], w = sizes[s][1];
        const size_t nz = (size_t)h * w * zc, ni = (size_t)h * f * w * f * 3;
        float *z = test_random(nz, 7 + (unsigned)s, 1.0f), *img = malloc(ni * sizeof(float)),
              *ref = malloc(ni * sizeof(float)), *mom = malloc(2 * nz * sizeof(float));
        cr_assert_eq(sdc_vae_decode(v, z, h, w, img), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq(sdc_vae_canaries_hit(v), -1, "%s: decode %dx%d wrote past work buffer %d", model, h, w,
                     sdc_vae_canaries_hit(v));
        cr_assert_eq(sdc_vae_decode(plain, z, h, w, ref), SDC_OK, "%s", sdc_last_error());
        cr_assert(memcmp(img, ref, ni * sizeof(float)) == 0, "%s: %dx%d decodes differently with gaps", model, h, w);
        if (v->enc) {
            for (size_t i = 0; i < ni; i++) img[i] = img[i] < -1.0f ? -1.0f : img[i] > 1.0f ? 1.0f : img[i];
            cr_assert_eq(sdc_vae_encode_moments(v, img, h * f, w * f, mom), SDC_OK, "%s", sdc_last_error());
            cr_assert_eq(sdc_vae_canaries_hit(v), -1, "%s: encode %dx%d wrote past work buffer %d", model, h * f,
                         w * f, sdc_vae_canaries_hit(v));
        }
        fprintf(stderr, "vae memory %s %dx%d: %zu floats (buffers %zu %zu %zu %zu elements)\n", model, h, w,
                sdc_vae_memory(v, h, w).activations, v->buf_elems[0], v->buf_elems[1], v->buf_elems[2],
                v->buf_elems[3]);
        free(z), free(img), free(ref), free(mom);
    }
    cr_assert(v->enc || strstr(model, "xl"), "%s: no encoder to check", model);
    sdc_vae_free(v), sdc_vae_free(plain);
    sdc_backend_destroy(be);
    sdc_model_close(m);
}

Test(vae_memory, canaries_sd1) {
    canary_case(FIXTURES "/tiny_sd1.safetensors");
    canary_case(FIXTURES "/tiny_sd1_diffusers");
}
Test(vae_memory, canaries_sd2) { canary_case(FIXTURES "/tiny_sd2.safetensors"); }
Test(vae_memory, canaries_sdxl) {
    canary_case(FIXTURES "/tiny_sdxl.safetensors");
    canary_case(FIXTURES "/tiny_sdxl_diffusers");
}

/* Sized by role: at the SD 1.5 VAE's 512x512 (a 64x64 latent; channels
 * 128, 256, 512, 512) the work buffers hold 64M, 32M, 64M and 32M floats
 * (which two are the large ones depends on the ResNets' count), 768 MiB
 * where four of the largest took 1 GiB. The configuration alone decides
 * the sizes. */
Test(vae_memory, sd15_512_by_role, .timeout = 120) {
    if (!full_tests_enabled()) cr_skip_test("full-size: run make test-full");
    sdc_model_files *m = NULL;
    sdc_backend *be = NULL;
    sdc_vae *v = NULL;
    cr_assert_eq(sdc_model_open(FIXTURES_FULL "/full_sd1.safetensors", &m), SDC_OK, "%s", sdc_last_error());
    cr_assert_eq(sdc_backend_cpu_create(0, &be), SDC_OK);
    cr_assert_eq(sdc_vae_load(m, be, &v), SDC_OK, "%s", sdc_last_error());
    const size_t got = sdc_vae_memory(v, 64, 64).activations, M = (size_t)1 << 20;
    fprintf(stderr, "vae memory 512x512: %zu floats (%.0f MiB)\n", got, got * 4.0 / (1 << 20));
    cr_assert_eq(got, 192 * M, "%zu floats, expected 192Mi", got);
    sdc_vae_free(v);
    sdc_backend_destroy(be);
    sdc_model_close(m);
}
