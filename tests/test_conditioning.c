/* test_conditioning.c - weighted and long prompts: the U-Net context sdc
 * builds against A1111's computation (tools/make_fixtures.py, float64 from
 * the fp16-rounded weights): windows of 77 tokens encoded alone, scaled by
 * their weights, renormalised to the window's mean, concatenated.
 * Tolerance: normwise relative error <= 1e-5 (fp32 vs float64). */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/conditioning.h"
#include "context.h"
#include "testutil.h"

#define COND_TOL 1e-5

static sdc_ctx *load(const char *path) {
    sdc_params p = sdc_params_default();
    p.model_path = path;
    p.backend = SDC_BACKEND_CPU;
    sdc_ctx *ctx = NULL;
    cr_assert_eq(sdc_load(&p, &ctx), SDC_OK, "%s", sdc_last_error());
    return ctx;
}

static void cond_case(const char *model_path, const char *ref_path) {
    sdc_st_file *ref = NULL;
    cr_assert_eq(sdc_st_open(ref_path, &ref), SDC_OK, "%s", sdc_last_error());
    cJSON *prompts = cJSON_Parse(sdc_st_meta(ref, "prompts"));
    cr_assert(cJSON_IsArray(prompts));
    sdc_ctx *ctx = load(model_path);
    const int W = sdc_context_dim(ctx);
    double worst = 0;
    for (int i = 0; i < cJSON_GetArraySize(prompts); i++) {
        const char *prompt = cJSON_GetArrayItem(prompts, i)->valuestring;
        char name[16];
        snprintf(name, sizeof name, "cond%d", i);
        size_t n;
        float *want = ref_tensor(ref, name, &n), *got = NULL;
        int chunks = 0;
        cr_assert_eq(sdc_encode_conditioning(ctx, prompt, &got, &chunks), SDC_OK, "%s", sdc_last_error());
        cr_assert_eq((size_t)chunks * 77 * W, n, "prompt %d: %d chunks, reference has %zu tokens", i, chunks,
                     n / W);
        double e = max_rel_err(got, want, n, NULL);
        if (!(e <= COND_TOL)) print_mismatches(name, got, want, n, COND_TOL, 5);
        cr_assert(e <= COND_TOL, "%s prompt %d (%d chunks): max rel err %.3g > %.0e", model_path, i, chunks, e,
                  COND_TOL);
        if (e > worst) worst = e;
        free(want), free(got);
    }
    fprintf(stderr, "conditioning %s: %d prompts, max rel err %.2e\n", model_path, cJSON_GetArraySize(prompts),
            worst);
    sdc_free(ctx);
    cJSON_Delete(prompts);
    sdc_st_close(ref);
}

Test(conditioning, sd1_weighted_and_long) {
    cond_case(FIXTURES "/tiny_sd1.safetensors", FIXTURES "/cond_tiny_sd1_ref.safetensors");
}
Test(conditioning, sd2_weighted_and_long) {
    cond_case(FIXTURES "/tiny_sd2.safetensors", FIXTURES "/cond_tiny_sd2_ref.safetensors");
}

/* A prompt without syntax gives bit-identical conditioning to the plain
 * path (one window, no weighting). */
Test(conditioning, plain_prompt_bit_identical) {
    sdc_ctx *ctx = load(FIXTURES "/tiny_sd1.safetensors");
    const int W = sdc_context_dim(ctx);
    const char *prompts[] = {"a photograph of an astronaut riding a horse", "", "red circle, blue background"};
    float *plain = malloc((size_t)77 * W * sizeof(float));
    for (size_t i = 0; i < sizeof prompts / sizeof *prompts; i++) {
        float *z = NULL;
        int chunks = 0;
        cr_assert_eq(sdc_encode_prompt(ctx, prompts[i], plain), SDC_OK);
        cr_assert_eq(sdc_encode_conditioning(ctx, prompts[i], &z, &chunks), SDC_OK);
        cr_assert_eq(chunks, 1);
        cr_assert(memcmp(z, plain, (size_t)77 * W * sizeof(float)) == 0, "prompt '%s' differs", prompts[i]);
        free(z);
    }
    free(plain);
    sdc_free(ctx);
}

/* Cond and uncond of different lengths are padded with empty windows. */
Test(conditioning, negative_padded_to_same_chunks) {
    sdc_ctx *ctx = load(FIXTURES "/tiny_sd1.safetensors");
    const int W = sdc_context_dim(ctx);
    float *a = NULL, *b = NULL, *empty = NULL;
    int na = 0, nb = 0, ne = 0;
    cr_assert_eq(sdc_encode_conditioning(ctx, "one BREAK two BREAK three", &a, &na), SDC_OK);
    cr_assert_eq(sdc_encode_conditioning(ctx, "blurry", &b, &nb), SDC_OK);
    cr_assert_eq(sdc_encode_conditioning(ctx, "", &empty, &ne), SDC_OK);
    cr_assert_eq(na, 3);
    cr_assert_eq(nb, 1);
    cr_assert_eq(sdc_conditioning_match(ctx, &b, &nb, &a, &na), SDC_OK);
    cr_assert_eq(nb, 3);
    const size_t one = (size_t)77 * W;
    cr_assert(memcmp(b + one, empty, one * sizeof(float)) == 0);
    cr_assert(memcmp(b + 2 * one, empty, one * sizeof(float)) == 0);
    free(a), free(b), free(empty);
    sdc_free(ctx);
}

/* Repeated prompts (batch lists) come from the cache, identical. */
Test(conditioning, repeated_prompt_cached) {
    sdc_ctx *ctx = load(FIXTURES "/tiny_sd1.safetensors");
    const size_t one = (size_t)77 * sdc_context_dim(ctx);
    float *a = NULL, *b = NULL;
    int na = 0, nb = 0;
    const long hits = ctx->cond_hits;
    cr_assert_eq(sdc_encode_conditioning(ctx, "a (red:1.3) circle, BREAK blue", &a, &na), SDC_OK);
    cr_assert_eq(ctx->cond_hits, hits);
    cr_assert_eq(sdc_encode_conditioning(ctx, "a (red:1.3) circle, BREAK blue", &b, &nb), SDC_OK);
    cr_assert_eq(ctx->cond_hits, hits + 1);
    cr_assert_eq(na, nb);
    cr_assert(memcmp(a, b, (size_t)na * one * sizeof(float)) == 0);
    free(a), free(b);
    /* 17 other prompts push it out of the 16-entry cache; results still match */
    for (int i = 0; i < 17; i++) {
        char p[32];
        snprintf(p, sizeof p, "prompt %d", i);
        cr_assert_eq(sdc_encode_conditioning(ctx, p, &a, &na), SDC_OK);
        free(a);
    }
    const long before = ctx->cond_hits;
    cr_assert_eq(sdc_encode_conditioning(ctx, "a (red:1.3) circle, BREAK blue", &a, &na), SDC_OK);
    cr_assert_eq(ctx->cond_hits, before, "evicted entry answered from the cache");
    free(a);
    sdc_free(ctx);
}
